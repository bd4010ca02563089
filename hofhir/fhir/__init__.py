"""FHIR R4 in (reading, selecting, validating) and out (the resources hofhir suggests or writes)."""
