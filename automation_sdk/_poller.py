"""The run poller: :class:`RunWatch` (``client.runs.watch``) and ``client.runs.wait``.

A watch polls one run and hands each answer to its
:class:`~automation_sdk._tracker.RunTracker`, which turns the difference between
what the server reports and what was already delivered into events
(:mod:`automation_sdk._events`) and keeps no history, so that thousands of
watches fit in one process. This module owns the I/O and the waiting.

Two clocks of waiting are kept apart:

- the *cadence* (polling is not retrying): the first poll goes out at once,
  the next after ``interval``, then 1.5x longer while nothing changes, up to
  ``max_interval``, back to ``interval`` on any change, each wait jittered by
  +-10%; a ``Retry-After`` on a successful answer pushes the next poll back;
- the *retries* of one failed poll, which belong to the session layer's
  :class:`~automation_sdk.RetryPolicy`.

Both are bounded by one deadline on the client's monotonic clock. No task is
created and no response is held open between two events, so a loop that
breaks, or a task that is cancelled, leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
import os
import random
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Final

from . import _observe, _paths
from ._events import WatchEvent
from ._models import Run, RunStatus, StepStatus
from ._retry import retry_after_of
from ._tracker import RunTracker
from ._transport import DeadlineExceeded
from .errors import (
    AutomationError,
    InvalidArgumentError,
    RunFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from ._otel import WatchSpan
    from ._transport import Response, Transport

__all__ = ["RunWatch", "wait"]

logger = logging.getLogger("automation_sdk")

_GROWTH: Final = 1.5
_JITTER: Final = 0.1
_CANCEL_BUDGET: Final = 5.0
# One generator for every watch: a Random per watch would cost 2.5 kB each.
_rng: Final = random.Random()
# A process forked from one that imported the SDK (a pre-forking server, a task queue's
# worker pool) would draw the same jitter as its siblings: reseeded there, like `random`'s.
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_rng.seed)


class RunWatch:
    """Follows one run to its end, yielding a transition for each change the server reports.

    Create it with :meth:`client.runs.watch() <automation_sdk.Runs.watch>`.
    It is a single-use async iterator and an async context manager::

        async with client.runs.watch(automation_id, run_id, timeout=600) as watch:
            async for event in watch:
                match event:
                    case StepTransition(step_name=name, previous=prev, status=status): ...
                    case RunTransition(status=status): ...

    For each accepted snapshot it yields a :class:`StepTransition` per step
    whose status changed, in the order of ``run.steps``, then a
    :class:`RunTransition` if the run's status changed (always on the first
    snapshot). It ends right after the :class:`RunTransition` into FINISHED
    or FAILED; otherwise it raises. A snapshot older than the last accepted
    one (by ``updated_at``), or a step's entry older than the one delivered,
    is ignored, so no event ever goes backwards; a snapshot showing the run's
    end is always taken, so the end is never missed (see "Stale snapshots" in
    the guide for the rules, and for clocks that lie).

    Nothing is held open between events: iterating without ``async with``,
    breaking out of the loop or cancelling the task leaves nothing behind.
    Once it ended, raised or was closed, it stays ended; to go on, start a
    new watch with ``resume_from=watch.checkpoint()``.
    """

    __slots__ = (
        "_busy",
        "_cancel_on_timeout",
        "_closed",
        "_deadline",
        "_delay",
        "_interval",
        "_max_interval",
        "_next_at",
        "_path",
        "_pending",
        "_span",
        "_started",
        "_timeout",
        "_tracker",
        "_transport",
    )

    def __init__(
        self,
        transport: Transport,
        automation_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        interval: float = 1.0,
        max_interval: float = 15.0,
        timeout: float | None = None,
        cancel_on_timeout: bool = False,
        resume_from: str | None = None,
    ) -> None:
        _check_seconds("interval", interval)
        _check_seconds("max_interval", max_interval)
        if max_interval < interval:
            raise InvalidArgumentError(
                f"max_interval ({max_interval!r}) must not be shorter than interval ({interval!r})"
            )
        if timeout is not None:
            _check_seconds("timeout", timeout, finite=False)
        self._transport = transport
        self._path = _paths.run(automation_id, run_id)
        self._interval = float(interval)
        self._max_interval = float(max_interval)
        self._timeout = None if timeout is None else float(timeout)
        self._cancel_on_timeout = bool(cancel_on_timeout)
        self._deadline: float | None = None
        self._delay: float | None = None
        self._next_at: float | None = None
        self._started = False
        self._busy = False
        self._closed = False
        self._pending: list[WatchEvent] = []  # events still to deliver, last one first
        self._span: WatchSpan | None = None  # with the otel extra, from the first poll on
        self._tracker = RunTracker(automation_id, run_id, resume_from=resume_from)

    # -- public surface ----------------------------------------------------------------------

    @property
    def automation_id(self) -> uuid.UUID:
        """The automation of the watched run."""
        return self._tracker.automation_id

    @property
    def run_id(self) -> uuid.UUID:
        """The watched run's id."""
        return self._tracker.run_id

    @property
    def run(self) -> Run | None:
        """The last accepted snapshot of the run, or None before the first one."""
        return self._tracker.run

    def checkpoint(self) -> str:
        """Return what was delivered so far, as a small versioned JSON document.

        Pass it as ``client.runs.watch(..., resume_from=checkpoint)``, in this
        process or another, to deliver every later transition exactly once.
        It may be taken at any time, between any two events.

        Returns:
            A JSON string: the run and automation ids, the last status
            delivered for the run and each step, the last accepted ``updated_at``.
        """
        return self._tracker.checkpoint()

    async def aclose(self) -> None:
        """End the watch: iterating further yields nothing. Idempotent; holds nothing to free."""
        self._closed = True
        self._pending = []
        if self._span is not None:
            self._span.end(None)

    def __aiter__(self) -> RunWatch:
        return self

    async def __aenter__(self) -> RunWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def __anext__(self) -> WatchEvent:
        """Return the next transition, polling (and sleeping) as long as needed.

        Raises:
            StopAsyncIteration: the run's final transition was delivered, or
                the watch was closed.
            WaitTimeoutError: the watch's ``timeout`` passed first.
            AutomationError: a poll failed and the retry policy gave up (401,
                404, a malformed answer, retries exhausted); ``.checkpoint``
                is set to resume from.
        """
        if self._busy:
            raise RuntimeError(
                "this RunWatch is already being iterated by another task; a watch has one consumer"
            )
        if self._pending:
            return self._deliver(self._pending.pop())
        if self._closed or self._tracker.done:
            raise StopAsyncIteration
        self._busy = True
        try:
            return await self._next_event()
        except AutomationError as exc:
            self._closed = True
            exc.checkpoint = self.checkpoint()
            self._transport.scrub(exc)
            if self._span is not None:
                self._span.end(exc)
            raise
        except BaseException as exc:
            self._closed = True
            if self._span is not None:
                self._span.end(exc)
            raise
        finally:
            self._busy = False

    def __repr__(self) -> str:
        tracker = self._tracker
        status = tracker.run_status.value if tracker.run_status is not None else "not seen yet"
        ended = (self._closed or tracker.done) and not self._pending
        return (
            f"<RunWatch run_id={tracker.run_id} status={status} {'ended' if ended else 'watching'}>"
        )

    # -- the loop ----------------------------------------------------------------------------

    async def _next_event(self) -> WatchEvent:
        if not self._started:
            self._started = True
            if self._timeout is not None:
                self._deadline = self._transport.clock.monotonic() + self._timeout
            tracing = self._transport.observer.tracing
            if tracing is not None and tracing.live():
                self._span = tracing.watch(self.automation_id, self.run_id)
        while True:
            with _observe.active(self._span):  # the parent of the polls' spans
                await self._sleep_until_next_poll()
                await self._poll()
            if self._closed:  # closed by another task while the poll was in flight
                raise StopAsyncIteration
            if self._pending:
                return self._deliver(self._pending.pop())

    async def _sleep_until_next_poll(self) -> None:
        next_at = self._next_at
        if next_at is None:
            return  # the first poll goes out at once
        clock = self._transport.clock
        deadline = self._deadline
        now = clock.monotonic()
        if deadline is not None and next_at >= deadline:
            if deadline > now:
                await clock.sleep(deadline - now)
            raise await self._timed_out()
        if next_at > now:
            await clock.sleep(next_at - now)

    async def _poll(self) -> None:
        transport = self._transport
        try:
            response = await transport.request(
                "GET", self._path, idempotent=True, deadline=self._deadline
            )
        except DeadlineExceeded as exc:
            raise await self._timed_out(self._cut_short_by(exc.last)) from exc.last
        changed = self._accept(response)
        if changed or self._delay is None:
            delay = self._interval
        else:
            delay = min(self._delay * _GROWTH, self._max_interval)
        self._delay = delay
        wait = delay * _rng.uniform(1.0 - _JITTER, 1.0 + _JITTER)
        if response.retry_after is not None:
            wait = max(wait, self._server_hint(response.retry_after))
        self._next_at = transport.clock.monotonic() + wait
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "watch of run %s: polled (%d), %d new events; next poll in %.2fs",
                self.run_id,
                response.status,
                len(self._pending) if changed else 0,
                wait,
                extra={
                    "run_id": str(self.run_id),
                    "automation_id": str(self.automation_id),
                    "status": response.status,
                },
            )

    def _deliver(self, event: WatchEvent) -> WatchEvent:
        self._tracker.deliver(event)
        self._transport.observer.transition(event, self.automation_id, self._span)
        return event

    def _accept(self, response: Response) -> bool:
        """Take a snapshot in; return True when it queued events."""
        events = self._tracker.accept(
            response.data,
            status=response.status,
            method="GET",
            url=self._transport.base_url + self._path,
        )
        if not events:
            return False
        events.reverse()
        self._pending = events
        return True

    def _server_hint(self, retry_after: float) -> float:
        """A successful answer's ``Retry-After``, clipped as the retry policy clips retries."""
        cap = self._transport.retry.max_retry_after
        if retry_after <= cap:
            return retry_after
        logger.warning(
            "watch of run %s: the server asked to poll again in %.3gs (Retry-After); "
            "waiting RetryPolicy.max_retry_after (%.3gs) instead",
            self.run_id,
            retry_after,
            cap,
        )
        return cap

    def _cut_short_by(self, last: BaseException | None) -> str | None:
        """Why the retries of a poll stopped before the deadline, when the server asked for it."""
        asked = retry_after_of(last) if last is not None else None
        if asked is None or self._deadline is None:
            return None
        left = max(0.0, self._deadline - self._transport.clock.monotonic())
        if asked < left:
            return None
        status = getattr(last, "status_code", "an error")
        return (
            f"the server answered {status} and asked to be polled again in {asked:.3g}s "
            f"(Retry-After), more than the {left:.3g}s left"
        )

    async def _timed_out(self, cut_short_by: str | None = None) -> WaitTimeoutError:
        cancelled = await self._cancel() if self._cancel_on_timeout else None
        run = self._tracker.run
        status = run.status.value if run is not None else "no snapshot yet"
        if cancelled is None:
            fate = "the run was left running"
        elif cancelled:
            fate = "a cancel of the run was requested"
        else:
            fate = "cancelling the run failed (see the log)"
        if cut_short_by is None:
            what = f"did not end within the watch's timeout of {self._timeout:g}s"
        else:
            what = f"cannot be seen to end within the watch's timeout of {self._timeout:g}s: "
            what += cut_short_by
        return WaitTimeoutError(
            f"run {self.run_id} of automation {self.automation_id} {what} "
            f"(last status: {status}); {fate}. "
            "Pass a longer timeout, or resume with "
            "client.runs.watch(..., resume_from=exc.checkpoint)",
            run=run,
            checkpoint=self.checkpoint(),
        )

    async def _cancel(self) -> bool:
        transport = self._transport
        try:
            await transport.request(
                "PATCH",
                _paths.run_cancel(self.automation_id, self.run_id),
                idempotent=True,
                deadline=transport.clock.monotonic() + _CANCEL_BUDGET,
            )
        except Exception as exc:
            if isinstance(exc, DeadlineExceeded):
                why = f"no answer within {_CANCEL_BUDGET:g}s"
                if exc.last is not None:
                    why += f" (last error: {exc.last})"
            else:
                why = str(exc)
            logger.warning(
                "the watch of run %s timed out, and cancelling the run failed: %s",
                self.run_id,
                transport.redact(why),
            )
            return False
        logger.info("the watch of run %s timed out; the run was cancelled", self.run_id)
        return True


async def wait(
    transport: Transport,
    automation_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    interval: float = 1.0,
    max_interval: float = 15.0,
    timeout: float | None = None,
    cancel_on_timeout: bool = False,
    raise_on_failure: bool = True,
) -> Run:
    """Watch a run to its end and return its final snapshot (see :meth:`Runs.wait`)."""
    watch = RunWatch(
        transport,
        automation_id,
        run_id,
        interval=interval,
        max_interval=max_interval,
        timeout=timeout,
        cancel_on_timeout=cancel_on_timeout,
    )
    async with watch:
        async for _ in watch:
            pass
    run = watch.run
    if run is None:  # pragma: no cover - the stream only ends after a snapshot
        raise AssertionError("the watch ended without a snapshot")
    if raise_on_failure and run.status == RunStatus.FAILED:
        # The message quotes the server's error texts, which could echo the token.
        raise transport.scrub(RunFailedError(_failure_message(run), run=run))
    return run


def _failure_message(run: Run) -> str:
    failed = next((s for s in run.steps if s.status == StepStatus.FAILED), None)
    message = f"run {run.id} of automation {run.automation_id} ended FAILED"
    if failed is not None:
        message += f" at step {failed.step.name!r} ({failed.step.step_type.value})"
    step_error = failed.error if failed is not None else None
    if step_error:
        message += f": {step_error}"
        if run.error and run.error != step_error:
            message += f" (run error: {run.error})"
    elif run.error:
        message += f": {run.error}"
    else:
        message += ": the server gave no error message"
    return message


def _check_seconds(name: str, value: object, *, finite: bool = True) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and (math.isfinite(value) or (not finite and value == math.inf))
    )
    if not ok:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
