"""Time, in one place: monotonic readings and sleeping.

Everything in the SDK that waits (retry backoff, the poller's cadence, deadlines)
asks a :class:`Clock`, so that tests can swap in
:class:`automation_sdk.testing.FakeClock` and run minutes of polling in
milliseconds without patching anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the SDK needs of time: a monotonic reading and an async sleep."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a value of 0 or less still yields to the loop once)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with :func:`asyncio.sleep`; negative values count as zero."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"
