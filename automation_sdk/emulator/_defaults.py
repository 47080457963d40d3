"""The emulator's defaults, apart from its server so that reading them imports no aiohttp."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_ORGANISATION_ID", "DEFAULT_STEP_DURATION", "DEFAULT_TOKEN"]

DEFAULT_TOKEN: Final = "test-token"
"""The token the emulator accepts unless told otherwise."""
DEFAULT_STEP_DURATION: Final = 0.5
"""Seconds each step of a run takes (and a run's NEW -> RUNNING delay)."""
DEFAULT_ORGANISATION_ID: Final = "org-emulator"
"""The ``organisation_id`` of every automation, and the only ``Current-Org-Id`` accepted."""
