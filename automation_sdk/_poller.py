"""The run poller: :class:`RunWatch` (``client.runs.watch``) and ``client.runs.wait``.

A watch polls one run and turns the difference between what the server reports
and what the watch already delivered into events (:mod:`automation_sdk._events`).
It keeps no history: only the last status delivered per step and for the run,
the last accepted ``updated_at`` and the last snapshot, so that thousands of
watches fit in one process.

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
import random
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final

from . import _checkpoint, _paths
from ._events import RunTransition, StepTransition, WatchEvent
from ._models import Run, RunStatus, RunStep, StepStatus
from ._resources import parse
from ._retry import retry_after_of
from ._transport import DeadlineExceeded
from .errors import (
    AutomationError,
    InvalidArgumentError,
    ResponseValidationError,
    RunFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from ._transport import Response, Transport

__all__ = ["RunWatch", "wait"]

logger = logging.getLogger("automation_sdk")

_GROWTH: Final = 1.5
_JITTER: Final = 0.1
_CANCEL_BUDGET: Final = 5.0
# One generator for every watch: a Random per watch would cost 2.5 kB each.
_rng: Final = random.Random()

_SEPARATOR: Final = "\x00"


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
    one (by ``updated_at``) is ignored, so no event ever goes backwards.

    Nothing is held open between events: iterating without ``async with``,
    breaking out of the loop or cancelling the task leaves nothing behind.
    Once it ended, raised or was closed, it stays ended; to go on, start a
    new watch with ``resume_from=watch.checkpoint()``.
    """

    __slots__ = (
        "_automation_id",
        "_busy",
        "_cancel_on_timeout",
        "_deadline",
        "_delay",
        "_done",
        "_fingerprint",
        "_interval",
        "_max_interval",
        "_next_at",
        "_path",
        "_pending",
        "_run",
        "_run_id",
        "_run_status",
        "_started",
        "_steps",
        "_timeout",
        "_transport",
        "_updated_at",
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
        self._automation_id = automation_id
        self._run_id = run_id
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
        self._done = False
        self._pending: list[WatchEvent] = []  # events still to deliver, last one first
        self._run: Run | None = None
        self._fingerprint: str | None = None
        self._run_status: RunStatus | None = None
        self._updated_at: datetime | None = None
        self._steps: dict[uuid.UUID, StepStatus] = {}
        if resume_from is not None:
            cp = _checkpoint.load(resume_from, automation_id=automation_id, run_id=run_id)
            self._run_status = cp.run_status
            self._updated_at = cp.updated_at
            self._steps = dict(cp.steps)
            # The final event was delivered before: nothing is left to say.
            self._done = cp.run_status is not None and cp.run_status.is_terminal

    # -- public surface ----------------------------------------------------------------------

    @property
    def automation_id(self) -> uuid.UUID:
        """The automation of the watched run."""
        return self._automation_id

    @property
    def run_id(self) -> uuid.UUID:
        """The watched run's id."""
        return self._run_id

    @property
    def run(self) -> Run | None:
        """The last accepted snapshot of the run, or None before the first one."""
        return self._run

    def checkpoint(self) -> str:
        """Return what was delivered so far, as a small versioned JSON document.

        Pass it as ``client.runs.watch(..., resume_from=checkpoint)``, in this
        process or another, to deliver every later transition exactly once.
        It may be taken at any time, between any two events.

        Returns:
            A JSON string: the run and automation ids, the last status
            delivered for the run and each step, the last accepted ``updated_at``.
        """
        return _checkpoint.dump(
            automation_id=self._automation_id,
            run_id=self._run_id,
            run_status=self._run_status,
            updated_at=self._updated_at,
            steps=self._steps,
        )

    async def aclose(self) -> None:
        """End the watch: iterating further yields nothing. Idempotent; holds nothing to free."""
        self._done = True
        self._pending = []

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
        if self._done:
            raise StopAsyncIteration
        self._busy = True
        try:
            return await self._next_event()
        except AutomationError as exc:
            self._done = True
            exc.checkpoint = self.checkpoint()
            self._transport.scrub(exc)
            raise
        except BaseException:
            self._done = True
            raise
        finally:
            self._busy = False

    def __repr__(self) -> str:
        status = self._run_status.value if self._run_status is not None else "not seen yet"
        state = "ended" if self._done and not self._pending else "watching"
        return f"<RunWatch run_id={self._run_id} status={status} {state}>"

    # -- the loop ----------------------------------------------------------------------------

    async def _next_event(self) -> WatchEvent:
        if not self._started:
            self._started = True
            if self._timeout is not None:
                self._deadline = self._transport.clock.monotonic() + self._timeout
        while True:
            await self._sleep_until_next_poll()
            await self._poll()
            if self._done:  # closed by another task while the poll was in flight
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

    def _accept(self, response: Response) -> bool:
        """Take a snapshot in if it is not stale; return True when it queued events."""
        fingerprint = _fingerprint(response.data)
        if fingerprint is not None and fingerprint == self._fingerprint:
            # The same run, statuses and timestamps as the last accepted snapshot:
            # it cannot yield anything, so skip structuring it.
            return False
        run = parse(response, Run, "GET", self._path, self._transport.base_url)
        if run.id != self._run_id or run.automation_id != self._automation_id:
            url = self._transport.base_url + self._path
            raise ResponseValidationError(
                f"GET {url} answered with run {run.id} of automation {run.automation_id} "
                f"where run {self._run_id} of automation {self._automation_id} was asked for",
                method="GET",
                url=url,
                status_code=response.status,
                problems=("id: not the run that was asked for",),
            )
        if self._updated_at is not None and run.updated_at < self._updated_at:
            logger.debug(
                "watch of run %s: ignored a stale snapshot (updated_at %s < %s)",
                self._run_id,
                run.updated_at.isoformat(),
                self._updated_at.isoformat(),
            )
            return False
        self._run = run
        self._updated_at = run.updated_at
        self._fingerprint = fingerprint
        events = self._diff(run)
        if not events:
            return False
        events.reverse()
        self._pending = events
        return True

    def _diff(self, run: Run) -> list[WatchEvent]:
        observed_at = datetime.now(UTC)
        delivered = self._steps
        events: list[WatchEvent] = []
        for run_step in _latest_visits(run.steps):
            step = run_step.step
            previous = delivered.get(step.id)
            if previous is None or previous != run_step.status:
                events.append(
                    StepTransition(
                        run_id=run.id,
                        step_id=step.id,
                        step_name=step.name,
                        step_type=step.step_type,
                        previous=previous,
                        status=run_step.status,
                        step=run_step,
                        observed_at=observed_at,
                    )
                )
        if self._run_status is None or self._run_status != run.status:
            events.append(
                RunTransition(
                    run_id=run.id,
                    previous=self._run_status,
                    status=run.status,
                    run=run,
                    observed_at=observed_at,
                )
            )
        return events

    def _deliver(self, event: WatchEvent) -> WatchEvent:
        # The checkpoint records what was handed out, not merely what was seen.
        if isinstance(event, StepTransition):
            self._steps[event.step_id] = event.status
        else:
            self._run_status = event.status
            if event.status.is_terminal:
                self._done = True
        return event

    def _server_hint(self, retry_after: float) -> float:
        """A successful answer's ``Retry-After``, clipped as the retry policy clips retries."""
        cap = self._transport.retry.max_retry_after
        if retry_after <= cap:
            return retry_after
        logger.warning(
            "watch of run %s: the server asked to poll again in %.3gs (Retry-After); "
            "waiting RetryPolicy.max_retry_after (%.3gs) instead",
            self._run_id,
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
        status = self._run.status.value if self._run is not None else "no snapshot yet"
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
            f"run {self._run_id} of automation {self._automation_id} {what} "
            f"(last status: {status}); {fate}. "
            "Pass a longer timeout, or resume with "
            "client.runs.watch(..., resume_from=exc.checkpoint)",
            run=self._run,
            checkpoint=self.checkpoint(),
        )

    async def _cancel(self) -> bool:
        transport = self._transport
        try:
            await transport.request(
                "PATCH",
                _paths.run_cancel(self._automation_id, self._run_id),
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
                self._run_id,
                transport.redact(why),
            )
            return False
        logger.info("the watch of run %s timed out; the run was cancelled", self._run_id)
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


def _latest_visits(steps: tuple[RunStep, ...]) -> tuple[RunStep, ...]:
    """``steps`` with one entry per step definition: its latest visit, if a loop revisited it."""
    if len(steps) < 2:
        return steps
    last = {s.step.id: i for i, s in enumerate(steps)}
    if len(last) == len(steps):
        return steps
    return tuple(s for i, s in enumerate(steps) if last[s.step.id] == i)


def _fingerprint(data: object) -> str | None:
    """What events depend on, read straight from the decoded JSON; None if the shape is off.

    Two answers with equal fingerprints have the same run, status and
    ``updated_at``, and the same steps with the same statuses and
    ``updated_at``: the second can yield no event. Anything unexpected gives
    None, and the answer goes through full validation. The pieces are joined
    into one string (a tenth of the memory of a tuple of them), which is only
    used when no piece contains the separator, so that it stays unambiguous.
    """
    if type(data) is not dict:
        return None
    try:
        steps = data["steps"]
        if type(steps) is not list:
            return None
        pieces = [data["id"], data["automation_id"], data["updated_at"], data["status"]]
        for s in steps:
            pieces += (s["id"], s["step"]["id"], s["status"], s["updated_at"])
        joined = _SEPARATOR.join(pieces)  # a TypeError unless every piece is a string
    except (KeyError, TypeError):
        return None
    return joined if joined.count(_SEPARATOR) == len(pieces) - 1 else None


def _check_seconds(name: str, value: object, *, finite: bool = True) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and (math.isfinite(value) or (not finite and value == math.inf))
    )
    if not ok:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
