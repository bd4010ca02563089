"""The service's settings: the one typed `Settings` of web, worker and CLI lives in `hofhir.adapters.settings`
(the worker needs it too, and `hofhir` never imports `cds_hooks`); this name stays for the edge's imports."""

from __future__ import annotations

from hofhir.adapters.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
