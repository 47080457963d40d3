"""Helpers for testing code that uses the SDK.

:class:`FakeClock` replaces real time: pass it as ``AutomationClient(clock=...)``
(and to the emulator) and every sleep of the SDK returns at once while virtual
time moves forward by the amount slept.
"""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """A virtual clock whose sleeps return at once and move time forward.

    ``sleep(s)`` adds ``s`` to :meth:`monotonic` and yields to the event loop
    once, so other tasks still get to run. The clock is exact for one sleeper
    at a time (one watch, one wait, one retry loop): each sleep moves the
    shared time, so several tasks sleeping concurrently move it by the sum of
    their sleeps.

    Args:
        start: The initial reading of :meth:`monotonic`.

    Attributes:
        sleeps: Every duration passed to :meth:`sleep`, in order; tests read
            it to check a cadence or a backoff.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the current virtual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, advance virtual time by it, and yield once."""
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` without sleeping."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r})")
        self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
