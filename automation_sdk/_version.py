"""The installed package's version, from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("automation-sdk")
    """The version of the installed package, from its metadata (e.g. ``"0.1.0"``)."""
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"
