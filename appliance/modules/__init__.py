"""Feature modules. BUILTIN is a static tuple (never imports by string) so PyInstaller sees every module."""

from __future__ import annotations

from appliance.core.api import Module

BUILTIN: tuple[type[Module], ...] = ()
