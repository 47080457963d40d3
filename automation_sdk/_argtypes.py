"""Value types for command-line options, shared by ``automation-sdk`` and the emulator's command.

Each takes the option's text and returns its value, or raises
``argparse.ArgumentTypeError`` with a message saying what is accepted, so that a
bad value is a usage error (exit 2) naming the option, never a traceback later.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["count", "duration", "port", "rate", "seconds"]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds above 0 (a timeout, an interval)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def duration(text: str) -> float:
    """A finite number of seconds, 0 or more (a step's duration)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def rate(text: str) -> float:
    """A fraction from 0 to 1."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a rate from 0 to 1, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def count(text: str) -> int:
    """A whole number, 1 or more (tries per request)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, from 0 (any free one) to 65535."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value
