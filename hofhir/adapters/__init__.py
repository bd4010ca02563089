"""Adapters at the edge of the domain: FHIR REST client, SMART auth, store, metrics, files, notifications."""
