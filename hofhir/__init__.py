"""hofhir: clinical decision support for heterotopic ossification (HO) over FHIR R4.

The domain package: reading FHIR, the knowledge base, patient facts, the rules, guidance and the
single `evaluate` entry point. It never imports the web edge (`cds_hooks`) nor Flask.
"""

__version__ = "0.1.0"
