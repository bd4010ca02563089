"""Adapters at the edge of the domain: FHIR REST client, SMART auth, store, metrics, files, notifications."""

# Here rather than in `settings` so that a command that needs no settings (`hofhir evaluate` with no
# HOFHIR_* variable set) can catch the error and see the prefix without importing pydantic.
PREFIX = "HOFHIR_"


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line that says what to set."""
