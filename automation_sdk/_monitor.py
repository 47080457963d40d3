"""The fleet monitor: :class:`RunMonitor` (``client.runs.monitor``) follows many runs at once.

Where a :class:`~automation_sdk.RunWatch` polls its own run, a monitor polls
per *automation*. Its plan for each automation is one of two:

- **summary**: one ``GET /automations/{id}/`` per tick lists every run of the
  automation with its ``status`` and ``updated_at``; only the watched runs
  whose entry changed since the last tick are then fetched in full, at most
  ``max_concurrency`` detail fetches in flight across the monitor. A run that
  only needs its end (a :meth:`RunMonitor.wait`, or ``add(..., events=False)``)
  is fetched once, when its entry says it ended;
- **per_run**: each watched run is fetched in full on its own cadence, as
  a watch would.

``strategy="auto"`` weighs the two from measured sizes after each summary: the
summary's bytes (its entries times the bytes of one) against the bytes of one
detail times the watched runs. The API does not say whether a summary's
``updated_at`` moves when only a step changes. Until it has seen it move on a
step change alone, the monitor also fetches one run per tick that the summary
did not point at; a detail whose steps changed later than its run's
``updated_at``, or a summary older than a detail already seen, shows that it
does not, and from then on the runs of that automation watched for step events
are fetched on their own cadence (the summary still tells when a run needing
only its end has ended).

One scheduler task owns the timing; each tick of an automation runs in its own
task; everything waits on the client's clock. Events go through one bounded
queue: a run whose events are still queued is not fetched again, and no run
watched for events is fetched while the queue holds ``max_pending_events``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from . import _paths
from ._convert import summary_states
from ._events import RunTransition, WatchEvent
from ._ids import to_uuid
from ._models import Run, RunStatus
from ._poller import _check_seconds, _failure_message
from ._tracker import RunTracker
from ._transport import DeadlineExceeded
from .errors import (
    AutomationError,
    ClientClosedError,
    InvalidArgumentError,
    ResponseValidationError,
    RunFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MAX_PENDING_EVENTS",
    "RunMonitor",
    "Strategy",
    "cancel_after_timeout",
]

logger = logging.getLogger("automation_sdk")

Strategy: TypeAlias = Literal["auto", "summary", "per_run"]
"""How a :class:`RunMonitor` polls an automation's runs (see :meth:`Runs.monitor`)."""


DEFAULT_INTERVAL: Final = 1.0
DEFAULT_MAX_INTERVAL: Final = 15.0
DEFAULT_MAX_CONCURRENCY: Final = 10
DEFAULT_MAX_PENDING_EVENTS: Final = 1000

_CANCEL_BUDGET: Final = 5.0
_GROWTH: Final = 1.5
# Jitter only shortens a wait (by up to 20%): ``interval`` is then the longest gap
# between two polls while things change, so an end is seen within it; a jitter
# of +-10% made the monitor's p95 detection latency 6% worse than a fixed 1 s loop's.
_JITTER: Final = 0.2
# Switching plans needs the other one cheaper by this factor, so that sizes
# near the balance do not flip the plan on every tick.
_HYSTERESIS: Final = 1.25
_STRATEGIES: Final = ("auto", "summary", "per_run")
# What one more request costs beyond its body, in bytes: the request line and
# headers both ways (about 500 bytes against aiohttp and the emulator).
_REQUEST_BYTES: Final = 500
# One generator for the whole module, as in the poller.
_rng: Final = random.Random()
if hasattr(os, "register_at_fork"):  # as in the poller (not on Windows)
    os.register_at_fork(after_in_child=_rng.seed)

# What a run is watched for.
_STEPS: Final = "steps"  # every event (add(..., events=True))
_END: Final = "end"  # only its final RunTransition (add(..., events=False))
_WAIT: Final = "wait"  # nothing in the stream: only waits on it

_Mode: TypeAlias = Literal["steps", "end", "wait"]
_Plan: TypeAlias = Literal["summary", "per_run"]


class _Cadence:
    """When to poll next: ``interval`` while things change, 1.5x longer while not, jittered.

    The jitter takes 0-20% off each wait and never adds to it.
    """

    __slots__ = ("delay", "next_at")

    def __init__(self) -> None:
        self.delay: float | None = None
        self.next_at = -math.inf  # due at once

    def schedule(
        self,
        now: float,
        *,
        changed: bool,
        interval: float,
        max_interval: float,
        retry_after: float | None,
        max_retry_after: float,
    ) -> None:
        if changed or self.delay is None:
            delay = interval
        else:
            delay = min(self.delay * _GROWTH, max_interval)
        self.delay = delay
        wait = delay * _rng.uniform(1.0 - _JITTER, 1.0)
        if retry_after is not None:
            if retry_after > max_retry_after:
                logger.info(
                    "a poll asked to wait %.3gs (Retry-After); waiting the retry policy's "
                    "max_retry_after of %.3gs instead",
                    retry_after,
                    max_retry_after,
                )
            wait = max(wait, min(retry_after, max_retry_after))
        self.next_at = now + wait


class _Waiter:
    """One pending :meth:`RunMonitor.wait`."""

    __slots__ = ("deadline", "future", "timeout")

    def __init__(
        self, future: asyncio.Future[Run], deadline: float | None, timeout: float | None
    ) -> None:
        self.future = future
        self.deadline = deadline
        self.timeout = timeout


class _Watched:
    """One run of the monitor: its tracker and where it stands in the polling plan."""

    __slots__ = (
        "automation_id",
        "busy",
        "cadence",
        "dirty",
        "ended",
        "fetched_at",
        "mode",
        "path",
        "queued",
        "run_id",
        "seen",
        "settled",
        "shown",
        "step_only",
        "tracker",
        "waiters",
    )

    def __init__(
        self, automation_id: uuid.UUID, run_id: uuid.UUID, mode: _Mode, tracker: RunTracker
    ):
        self.automation_id = automation_id
        self.run_id = run_id
        self.path = _paths.run(automation_id, run_id)
        self.mode: _Mode = mode
        self.tracker = tracker
        self.waiters: list[_Waiter] = []
        self.queued = 0  # events in the monitor's queue, not consumed yet
        self.dirty = mode == _STEPS  # a detail fetch is wanted (the first one at once)
        self.seen: tuple[str, str] | None = None  # the last summary entry: (status, updated_at)
        # The same two raw fields of the last snapshot accepted: a summary entry equal to
        # them announces what that snapshot showed already.
        self.shown: tuple[str, str] | None = None
        self.step_only = False  # the entry moved, its status did not: a step changed
        self.fetched_at = -math.inf  # when the last detail fetch ended, on the clock
        self.busy = False  # a detail fetch is in flight
        self.settled = False  # a final snapshot was accepted: nothing more to fetch
        self.ended = False  # left the monitor (end delivered, failed, removed)
        self.cadence = _Cadence()


class _Automation:
    """The runs of one automation and its polling plan."""

    __slots__ = (
        "busy",
        "cadence",
        "detail_bytes",
        "entry_bytes",
        "fallback",
        "id",
        "listed",
        "moves_on_steps",
        "path",
        "plan",
        "runs",
    )

    def __init__(self, automation_id: uuid.UUID, plan: _Plan) -> None:
        self.id = automation_id
        self.path = _paths.automation(automation_id)
        self.runs: dict[uuid.UUID, _Watched] = {}
        self.cadence = _Cadence()
        self.busy = False  # a tick is in flight
        self.plan: _Plan = plan
        self.fallback = False  # the summary's updated_at does not move on step changes
        self.moves_on_steps = False  # it was seen moving on a step change alone
        self.entry_bytes: float | None = None  # bytes per summary entry, last measured
        self.listed = 0  # runs the last summary listed
        self.detail_bytes: int | None = None  # bytes of the largest detail seen


_QueueItem: TypeAlias = tuple[_Watched, WatchEvent] | tuple[tuple[_Watched, ...], AutomationError]


class RunMonitor:
    """Follows many runs at once, polling per automation; one stream of events for all of them.

    Create it with :meth:`client.runs.monitor() <automation_sdk.Runs.monitor>`
    and use it as an async context manager, which owns its polling tasks::

        async with client.runs.monitor() as monitor:
            for run in runs:
                monitor.add(automation_id, run.id)
            async for event in monitor:
                ...  # StepTransition / RunTransition, as a watch yields them

    Each run's events keep every promise of :class:`RunWatch`: in order, never
    repeated, never backwards, stale snapshots ignored, the end never missed.
    Events of different runs interleave. The iteration ends when no run added
    with :meth:`add` is left (each ended or was removed), or, made with
    ``end_when_empty=False``, only when the monitor is closed. Runs may be
    added and removed at any time, also while iterating, and a later
    ``async for`` goes on with the runs added since.

    A poll that fails for good (after the client's :class:`RetryPolicy`) ends
    only the runs it concerns: the iteration raises the error once (its
    ``run_ids`` lists them) after delivering their earlier events, and can be
    resumed with another ``async for``; their waits raise it too.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        strategy: Literal["auto", "summary", "per_run"] = "auto",
        interval: float = DEFAULT_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        end_when_empty: bool = True,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise InvalidArgumentError(
                f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, got {strategy!r}"
            )
        _check_seconds("interval", interval)
        _check_seconds("max_interval", max_interval)
        if max_interval < interval:
            raise InvalidArgumentError(
                f"max_interval ({max_interval!r}) must not be shorter than interval ({interval!r})"
            )
        for name, value in (
            ("max_concurrency", max_concurrency),
            ("max_pending_events", max_pending_events),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        self._transport = transport
        self._strategy: Strategy = strategy
        self._interval = float(interval)
        self._max_interval = float(max_interval)
        self._max_concurrency = max_concurrency
        self._max_pending = max_pending_events
        self._end_when_empty = bool(end_when_empty)
        self._automations: dict[uuid.UUID, _Automation] = {}
        self._runs: dict[uuid.UUID, _Watched] = {}
        self._ended: dict[uuid.UUID, str] = {}  # checkpoints of runs that left the monitor
        # Runs ended by an error not raised yet: their earlier events are still queued.
        self._failed: dict[uuid.UUID, _Watched] = {}
        self._listed = 0  # runs in the stream (added, not ended)
        self._queue: deque[_QueueItem] = deque()
        self._timed: set[tuple[_Watched, _Waiter]] = set()
        self._state: Literal["new", "open", "closed"] = "new"
        self._scheduler: asyncio.Task[None] | None = None
        self._ticks: set[asyncio.Task[None]] = set()
        self._limit: asyncio.Semaphore | None = None
        self._poke_future: asyncio.Future[None] | None = None
        self._ready: asyncio.Event | None = None
        self._iterating = False
        self._crash: BaseException | None = None

    # -- public surface ----------------------------------------------------------------------

    @property
    def strategy(self) -> Literal["auto", "summary", "per_run"]:
        """The strategy asked for: ``"auto"``, ``"summary"`` or ``"per_run"``."""
        return self._strategy

    @property
    def pending_events(self) -> int:
        """Events polled, not yet taken by the iteration (about ``max_pending_events`` at most)."""
        return sum(1 for item in self._queue if not isinstance(item[1], AutomationError))

    def plan(self, automation_id: uuid.UUID | str) -> Literal["summary", "per_run"] | None:
        """How the runs of an automation are polled now, or None if none is watched."""
        automation = self._automations.get(to_uuid(automation_id, "automation_id"))
        return None if automation is None or not automation.runs else automation.plan

    def add(
        self,
        automation_id: uuid.UUID | str,
        run_id: uuid.UUID | str,
        *,
        resume_from: str | None = None,
        events: bool = True,
    ) -> None:
        """Start following a run; its events come through ``async for event in monitor``.

        Callable at any time, also while another task iterates.

        Args:
            automation_id: The run's automation.
            run_id: The run.
            resume_from: A checkpoint of this run (from :meth:`checkpoint`, a
                :class:`RunWatch` or an error's ``.checkpoint``): what it
                delivered is not delivered again.
            events: With False the run only needs its end: the stream yields
                only its final :class:`RunTransition`, and with the summary
                plan the run is never fetched in full before it ends.

        Raises:
            InvalidArgumentError: a bad id or checkpoint, or the run is
                already added.
            ClientClosedError: the monitor is closed.
        """
        self._check_not_closed()
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        mode: _Mode = _STEPS if events else _END
        tracker = RunTracker(aid, rid, resume_from=resume_from, keep_snapshot=False)
        existing = self._runs.get(rid)
        if existing is not None:
            if existing.automation_id != aid:
                raise _other_automation(rid, existing.automation_id, aid)
            if existing.mode != _WAIT:
                raise InvalidArgumentError(
                    f"run {rid} is already watched by this monitor; remove() it first"
                )
            # Only waits followed it so far: the stream starts from resume_from.
            existing.mode = mode
            existing.tracker = tracker
            existing.dirty = mode == _STEPS
            existing.seen = existing.shown = None
            self._listed += 1
            self._ended.pop(rid, None)
            self._failed.pop(rid, None)
            self._poke()
            return
        self._ended.pop(rid, None)
        self._failed.pop(rid, None)
        if tracker.done:
            # The checkpoint's final event was delivered: nothing is left to say.
            self._ended[rid] = tracker.checkpoint()
            return
        self._listed += 1
        self._track(_Watched(aid, rid, mode, tracker))

    def remove(self, automation_id: uuid.UUID | str, run_id: uuid.UUID | str) -> None:
        """Stop following a run: its events still queued are dropped, its checkpoint forgotten.

        Waits on the run go on. Removing a run that is not followed does nothing.
        """
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        self._ended.pop(rid, None)
        self._failed.pop(rid, None)
        watched = self._runs.get(rid)
        if watched is None or watched.automation_id != aid or watched.mode == _WAIT:
            return
        if watched.queued:
            self._queue = deque(item for item in self._queue if item[0] is not watched)
            watched.queued = 0
        self._listed -= 1
        if watched.waiters:
            watched.mode = _WAIT
            watched.dirty = False
        else:
            self._untrack(watched)
        self._wake_iterator()

    def checkpoint(self, run_id: uuid.UUID | str) -> str:
        """Return what was delivered so far for a run, as ``RunWatch.checkpoint()`` does.

        Available while the run is followed, and after it ended or failed until
        :meth:`remove` is called for it.

        Raises:
            InvalidArgumentError: the run is not (or no longer) known to the monitor.
        """
        rid = to_uuid(run_id, "run_id")
        watched = self._runs.get(rid)
        if watched is None or watched.mode == _WAIT:
            watched = self._failed.get(rid)
        if watched is not None:
            return watched.tracker.checkpoint()
        ended = self._ended.get(rid)
        if ended is not None:
            return ended
        raise InvalidArgumentError(
            f"run {rid} is not followed by this monitor (never added, or removed)"
        )

    async def wait(
        self,
        automation_id: uuid.UUID | str,
        run_id: uuid.UUID | str,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = True,
    ) -> Run:
        """Wait for a run to end, sharing the monitor's polling, and return its final snapshot.

        Any number of tasks may wait at once, on the same run or on others; a
        timeout or a cancellation of one wait affects no other. The run need not
        be added: a run only waited for is polled until its last wait returns,
        and puts nothing in the event stream.

        Args:
            automation_id: The run's automation.
            run_id: The run.
            timeout: Seconds to wait, on the client's clock; None waits as long
                as the run takes.
            raise_on_failure: Raise :class:`RunFailedError` when the run ends
                FAILED; with False, return the FAILED run.

        Raises:
            RunFailedError: the run ended FAILED.
            WaitTimeoutError: the timeout passed first (the run goes on).
            AutomationError: a poll of the run or its automation failed for good.
            ClientClosedError: the monitor was closed before the run ended.
        """
        self._check_open()
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        if timeout is not None:
            _check_seconds("timeout", timeout, finite=False)
        watched = self._runs.get(rid)
        if watched is None:
            watched = _Watched(aid, rid, _WAIT, RunTracker(aid, rid, keep_snapshot=False))
            self._track(watched)
        elif watched.automation_id != aid:
            raise _other_automation(rid, watched.automation_id, aid)
        loop = asyncio.get_running_loop()
        final = watched.tracker.run
        if watched.settled and final is not None:
            return _outcome(final, raise_on_failure)
        deadline = None
        if timeout is not None and timeout != math.inf:
            deadline = self._transport.clock.monotonic() + float(timeout)
        waiter = _Waiter(loop.create_future(), deadline, timeout)
        watched.waiters.append(waiter)
        if deadline is not None:
            self._timed.add((watched, waiter))
            self._poke()
        try:
            run = await waiter.future
        finally:
            if waiter in watched.waiters:
                watched.waiters.remove(waiter)
            self._timed.discard((watched, waiter))
            if watched.mode == _WAIT and not watched.waiters and not watched.ended:
                self._untrack(watched)
        return _outcome(run, raise_on_failure)

    async def aclose(self) -> None:
        """Stop polling: cancel the monitor's tasks and wait for them; pending waits fail.

        Idempotent. The iteration then ends; nothing is left running or open.
        """
        if self._state == "closed":
            return
        self._state = "closed"
        tasks = [t for t in (self._scheduler, *self._ticks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._ticks.clear()
        self._queue.clear()
        for watched in list(self._runs.values()):
            for waiter in watched.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(
                        ClientClosedError(
                            f"the RunMonitor was closed while waiting for run {watched.run_id}; "
                            "keep the monitor open until its waits return"
                        )
                    )
        self._timed.clear()
        self._wake_iterator()

    async def __aenter__(self) -> RunMonitor:
        if self._state == "closed":
            raise ClientClosedError("this RunMonitor is closed; create a new one")
        if self._state == "new":
            self._state = "open"
            self._limit = asyncio.Semaphore(self._max_concurrency)
            self._ready = asyncio.Event()
            self._scheduler = asyncio.get_running_loop().create_task(
                self._schedule(), name="automation_sdk RunMonitor scheduler"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> RunMonitor:
        return self

    async def __anext__(self) -> WatchEvent:
        """Return the next event of any followed run, waiting for the polls as long as needed.

        Raises:
            StopAsyncIteration: no added run is left (unless the monitor was made
                with ``end_when_empty=False``), or the monitor was closed.
            AutomationError: a poll failed for good; ``.run_ids`` names the runs
                it ended. Iterating again goes on with the other runs.
        """
        if self._iterating:
            raise RuntimeError(
                "this RunMonitor is already being iterated by another task; it has one consumer"
            )
        self._iterating = True
        try:
            return await self._next()
        finally:
            self._iterating = False

    def __repr__(self) -> str:
        return (
            f"<RunMonitor strategy={self._strategy} runs={self._listed} "
            f"queued={len(self._queue)} {self._state}>"
        )

    # -- the stream --------------------------------------------------------------------------

    async def _next(self) -> WatchEvent:
        ready = self._ready
        while True:
            if self._queue:
                return self._take()
            if self._crash is not None:
                raise self._crash
            if self._state == "closed" or (self._listed == 0 and self._end_when_empty):
                raise StopAsyncIteration
            if ready is None:
                raise ClientClosedError(
                    "iterate a RunMonitor inside 'async with client.runs.monitor() as monitor:'"
                )
            ready.clear()
            await ready.wait()

    def _take(self) -> WatchEvent:
        was_full = len(self._queue) >= self._max_pending
        target, item = self._queue.popleft()
        if was_full:
            self._poke()
        if isinstance(item, AutomationError):
            runs = target if isinstance(target, tuple) else (target,)
            for watched in runs:
                if self._failed.get(watched.run_id) is watched:
                    del self._failed[watched.run_id]
                    self._ended[watched.run_id] = watched.tracker.checkpoint()
            if len(runs) == 1:
                item.checkpoint = runs[0].tracker.checkpoint()
            raise item
        assert isinstance(target, _Watched)
        target.queued -= 1
        target.tracker.deliver(item)
        self._transport.observer.transition(item, target.automation_id, None)
        if isinstance(item, RunTransition) and item.status.is_terminal:
            self._ended[target.run_id] = target.tracker.checkpoint()
            self._listed -= 1
            if target.waiters:
                target.mode = _WAIT
            else:
                self._untrack(target)
        elif target.queued == 0 and (target.dirty or self._per_run(target)):
            self._poke()
        return item

    def _enqueue(self, watched: _Watched, events: Iterable[WatchEvent]) -> None:
        before = len(self._queue)
        self._queue.extend((watched, event) for event in events)
        watched.queued += len(self._queue) - before
        self._wake_iterator()

    def _wake_iterator(self) -> None:
        if self._ready is not None:
            self._ready.set()

    # -- bookkeeping -------------------------------------------------------------------------

    def _check_not_closed(self) -> None:
        if self._state == "closed":
            raise ClientClosedError("this RunMonitor is closed; create a new one")

    def _check_open(self) -> None:
        self._check_not_closed()
        if self._crash is not None:
            raise self._crash
        if self._state == "new":
            raise ClientClosedError(
                "use the RunMonitor inside 'async with client.runs.monitor() as monitor:' "
                "before waiting on it"
            )

    def _track(self, watched: _Watched) -> None:
        automation = self._automations.get(watched.automation_id)
        if automation is None:
            plan: _Plan = "per_run" if self._strategy == "per_run" else "summary"
            automation = _Automation(watched.automation_id, plan)
            self._automations[watched.automation_id] = automation
        automation.runs[watched.run_id] = watched
        self._runs[watched.run_id] = watched
        # A new run makes its automation's summary due at once.
        automation.cadence.next_at = -math.inf
        automation.cadence.delay = None
        self._poke()

    def _untrack(self, watched: _Watched) -> None:
        watched.ended = True
        if self._runs.get(watched.run_id) is watched:
            del self._runs[watched.run_id]
        automation = self._automations.get(watched.automation_id)
        if automation is not None and automation.runs.get(watched.run_id) is watched:
            del automation.runs[watched.run_id]
            if not automation.runs and not automation.busy:
                del self._automations[automation.id]

    def _poke(self) -> None:
        """Make the scheduler look again (a run was added, unpaused, a tick ended...)."""
        future = self._poke_future
        if future is not None and not future.done():
            future.set_result(None)

    def _paused(self, watched: _Watched) -> bool:
        if watched.mode == _WAIT or watched.waiters:
            # A wait must not hang on a consumer that has not come yet: a waited-for
            # run goes on being polled, its events queuing beyond the bound.
            return False
        return watched.queued > 0 or len(self._queue) >= self._max_pending

    def _per_run(self, watched: _Watched) -> bool:
        automation = self._automations.get(watched.automation_id)
        if automation is None:
            return False
        return automation.plan == "per_run" or (automation.fallback and watched.mode == _STEPS)

    def _fail(self, runs: list[_Watched], exc: AutomationError) -> None:
        """End ``runs`` with ``exc``: their waits raise it, the stream raises it once."""
        exc.run_ids = tuple(w.run_id for w in runs)
        listed: list[_Watched] = []
        for watched in runs:
            if watched.ended:
                continue
            for waiter in watched.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            if watched.mode != _WAIT:
                listed.append(watched)
                self._listed -= 1
                self._failed[watched.run_id] = watched
            watched.settled = True
            self._untrack(watched)
        if listed:
            exc.run_ids = tuple(w.run_id for w in listed)
            self._queue.append((tuple(listed), exc))
            for watched in listed:
                logger.warning(
                    "monitor: stopped following run %s of automation %s: %s",
                    watched.run_id,
                    watched.automation_id,
                    self._transport.redact(str(exc)),
                )
            self._wake_iterator()

    # -- scheduling --------------------------------------------------------------------------

    async def _schedule(self) -> None:
        clock = self._transport.clock
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._poke_future = loop.create_future()
                now = clock.monotonic()
                self._expire_waits(now)
                wake_at = math.inf
                for automation in list(self._automations.values()):
                    if automation.busy:
                        continue
                    due = self._due(automation, now)
                    if due <= now:
                        automation.busy = True
                        task = loop.create_task(self._tick(automation))
                        self._ticks.add(task)
                        task.add_done_callback(self._ticks.discard)
                    else:
                        wake_at = min(wake_at, due)
                # Read again now that the ticks are started: their deadlines are theirs.
                wake_at = min(wake_at, self._expire_waits(now))
                await self._sleep_until(wake_at - now)
        except Exception as exc:  # pragma: no cover - a bug: surface it, never hang
            self._crashed(exc)

    def _crashed(self, exc: Exception) -> None:
        """Stop polling after a bug: the iteration and every wait raise it."""
        logger.error("monitor: stopped polling after an unexpected error", exc_info=exc)
        self._crash = exc
        scheduler = self._scheduler
        if scheduler is not None and scheduler is not asyncio.current_task():
            scheduler.cancel()
        for watched in list(self._runs.values()):
            for waiter in watched.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
        self._wake_iterator()

    async def _sleep_until(self, delay: float) -> None:
        poked = self._poke_future
        assert poked is not None
        if poked.done():
            return
        if delay == math.inf:
            await poked
            return
        sleeper = asyncio.get_running_loop().create_task(self._transport.clock.sleep(delay))
        try:
            await asyncio.wait((sleeper, poked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sleeper.done():
                sleeper.cancel()
                await asyncio.wait((sleeper,))

    def _expire_waits(self, now: float) -> float:
        """Fail the waits whose deadline passed; return the next deadline to wake up for.

        The deadline of a run whose automation is being polled is left to that
        tick, whose requests it bounds: the tick ends by then and wakes the
        scheduler, which is never asleep while a request could still bring the end.
        """
        earliest = math.inf
        for watched, waiter in list(self._timed):
            deadline = waiter.deadline
            assert deadline is not None
            if waiter.future.done():
                self._timed.discard((watched, waiter))
            elif deadline <= now:
                self._timed.discard((watched, waiter))
                waiter.future.set_exception(self._timed_out(watched, waiter))
            else:
                automation = self._automations.get(watched.automation_id)
                if automation is None or not automation.busy:
                    earliest = min(earliest, deadline)
        return earliest

    def _deadline(self, automation: _Automation) -> float | None:
        """The earliest deadline of a wait on the automation's runs, which bounds its tick."""
        deadlines = [
            waiter.deadline
            for watched in automation.runs.values()
            for waiter in watched.waiters
            if waiter.deadline is not None
        ]
        return min(deadlines) if deadlines else None

    def _timed_out(self, watched: _Watched, waiter: _Waiter) -> WaitTimeoutError:
        # A monitor keeps no run's snapshot before its end (a key per step instead), so the
        # error has the last status seen, not the run (docs/watching.md, "Many runs"): in
        # the last snapshot, else in the summary (a run only waited for is never fetched).
        run = watched.tracker.run
        shown = watched.tracker.status
        if shown is not None:
            status = shown.value
        elif watched.seen is not None:
            status = f"{watched.seen[0]}, in the automation's list of runs"
        else:
            status = "not seen yet"
        return WaitTimeoutError(
            f"run {watched.run_id} of automation {watched.automation_id} did not end within "
            f"the wait's timeout of {waiter.timeout:g}s (last status: {status}); the run was "
            "left running. Wait again with a longer timeout, or cancel it with "
            "client.runs.cancel()",
            run=run,
            checkpoint=watched.tracker.checkpoint(),
        )

    def _due(self, automation: _Automation, now: float) -> float:
        """When the automation next has something to poll (``-inf``: now)."""
        due = math.inf
        summary = False
        for watched in automation.runs.values():
            if watched.busy or watched.settled or self._paused(watched):
                continue
            if self._per_run(watched):
                due = min(due, watched.cadence.next_at)
            else:
                summary = True
                if watched.dirty:
                    due = min(due, watched.cadence.next_at)
        if summary:
            due = min(due, automation.cadence.next_at)
        return due

    # -- one tick of an automation -----------------------------------------------------------

    async def _tick(self, automation: _Automation) -> None:
        clock = self._transport.clock
        try:
            now = clock.monotonic()
            wants_summary = any(
                not (w.settled or self._paused(w) or self._per_run(w))
                for w in automation.runs.values()
            )
            deadline = self._deadline(automation)
            if wants_summary and automation.cadence.next_at <= now:
                await self._poll_summary(automation, deadline)
                self._choose_plan(automation)
                self._probe(automation)
            now = clock.monotonic()
            todo = [
                w
                for w in automation.runs.values()
                if not (w.busy or w.settled or self._paused(w))
                and (w.dirty or self._per_run(w))
                and w.cadence.next_at <= now
            ]
            if todo:
                await self._fetch_all(automation, todo, deadline)
            self._choose_plan(automation)
        except DeadlineExceeded:
            # A wait's deadline came first; the scheduler ends that wait, and the
            # next tick (due at once) polls afresh for the others.
            pass
        except AutomationError as exc:
            # A run whose end was already seen keeps it: only the others fail.
            self._fail([w for w in automation.runs.values() if not w.settled], exc)
        except Exception as exc:  # a bug: surface it, never loop on it
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]  # from the fetches' task group
            self._crashed(exc)
        finally:
            automation.busy = False
            if not automation.runs and self._automations.get(automation.id) is automation:
                del self._automations[automation.id]
            self._poke()

    async def _poll_summary(self, automation: _Automation, deadline: float | None) -> None:
        transport = self._transport
        response = await transport.request(
            "GET", automation.path, idempotent=True, deadline=deadline
        )
        states = summary_states(response.data)
        if states is None:
            url = transport.base_url + automation.path
            raise ResponseValidationError(
                f"GET {url} answered {response.status} with a body that is not an automation "
                "with a 'sessions' list; the server may be newer or older than this SDK: "
                "upgrade the SDK, or watch these runs with strategy='per_run'",
                method="GET",
                url=url,
                status_code=response.status,
                problems=("sessions: expected a JSON array of session summaries",),
            )
        if states:
            automation.entry_bytes = response.size / len(states)
        automation.listed = len(states)
        changed = False
        for watched in automation.runs.values():
            if watched.settled or self._per_run(watched):
                continue
            entry = states.get(str(watched.run_id))
            if entry is None:
                # Not listed (a replica behind, or a run created a moment ago): only a
                # detail can tell.
                watched.dirty = watched.mode == _STEPS or watched.dirty or watched.seen is None
                continue
            if entry == watched.seen:
                continue
            changed = True
            if entry == watched.shown:
                # The run moved between the last summary and its detail fetch, which
                # showed this state already: fetching it again would find nothing new.
                watched.seen = entry
                continue
            watched.step_only = watched.seen is not None and watched.seen[0] == entry[0]
            watched.seen = entry
            terminal = RunStatus(entry[0]).is_terminal
            if watched.mode == _STEPS or terminal:
                watched.dirty = True
            if watched.mode == _STEPS and not automation.fallback:
                self._check_summary_age(automation, watched, entry[1])
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "monitor: automation %s: summary polled (%d), %d runs listed, %s",
                automation.id,
                response.status,
                len(states),
                "some changed" if changed else "none of those followed changed",
                extra={"automation_id": str(automation.id), "status": response.status},
            )
        automation.cadence.schedule(
            transport.clock.monotonic(),
            changed=changed,
            interval=self._interval,
            max_interval=self._max_interval,
            retry_after=response.retry_after,
            max_retry_after=transport.retry.max_retry_after,
        )

    def _probe(self, automation: _Automation) -> None:
        """Fetch one unannounced run per tick until the summary is known to move on steps.

        Fetches that follow the summary come right after a run's own changes, when
        its steps are as fresh as its ``updated_at``: only a fetch the summary did
        not ask for can catch a step that changed without it.
        """
        if automation.plan != "summary" or automation.fallback or automation.moves_on_steps:
            return
        candidates = [
            w
            for w in automation.runs.values()
            if w.mode == _STEPS
            and w.tracker.snapshots
            and not (w.dirty or w.busy or w.settled or self._paused(w))
        ]
        if candidates:
            min(candidates, key=lambda w: w.fetched_at).dirty = True

    def _check_summary_age(self, automation: _Automation, watched: _Watched, raw: str) -> None:
        """A summary older than a detail seen before it: its updated_at missed a step change."""
        seen = watched.tracker.updated_at
        if seen is None:
            return
        try:
            listed = datetime.fromisoformat(raw)
        except ValueError:
            return
        if listed.tzinfo is None or listed >= seen:
            return
        self._fall_back(
            automation,
            f"its summary listed run {watched.run_id} as updated at {raw}, before the "
            f"{seen.isoformat()} of a snapshot of the run fetched earlier",
        )

    def _fall_back(self, automation: _Automation, why: str) -> None:
        if automation.fallback:
            return
        automation.fallback = True
        logger.info(
            "monitor: automation %s: %s; the summary's updated_at does not move on step "
            "changes, so runs watched for step events are now polled one by one",
            automation.id,
            why,
        )
        now = self._transport.clock.monotonic()
        for watched in automation.runs.values():
            if watched.mode == _STEPS and not watched.busy:
                watched.cadence.delay = None
                watched.cadence.next_at = now + self._interval

    async def _fetch_all(
        self, automation: _Automation, todo: list[_Watched], deadline: float | None
    ) -> None:
        todo.reverse()
        for watched in todo:
            watched.busy = True

        async def worker() -> None:
            while todo:
                await self._fetch(automation, todo.pop(), deadline)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(len(todo), self._max_concurrency)):
                    group.create_task(worker())
        finally:
            for watched in todo:
                watched.busy = False

    async def _fetch(
        self, automation: _Automation, watched: _Watched, deadline: float | None
    ) -> None:
        transport = self._transport
        limit = self._limit
        assert limit is not None
        try:
            if watched.ended:
                return
            async with limit:
                response = await transport.request(
                    "GET", watched.path, idempotent=True, deadline=deadline
                )
            if watched.ended:
                return  # removed while the answer was on its way
            # The largest detail seen: runs grow as they go, and a plan chosen on the
            # small answers of new runs would be undone as soon as they grow.
            automation.detail_bytes = max(automation.detail_bytes or 0, response.size)
            before = watched.tracker.snapshots
            events = watched.tracker.accept(
                response.data,
                status=response.status,
                method="GET",
                url=transport.base_url + watched.path,
            )
        except DeadlineExceeded:
            return  # asked again at the next tick
        except AutomationError as exc:
            self._fail([watched], exc)
            return
        finally:
            watched.busy = False
        accepted = watched.tracker.snapshots != before
        state = _state_of(response.data)
        if accepted:
            watched.shown = state
        now = transport.clock.monotonic()
        watched.fetched_at = now
        if watched.step_only and events and not isinstance(events[-1], RunTransition):
            # The summary announced a change of steps alone: it moves with them.
            automation.moves_on_steps = True
        watched.step_only = False
        # Still wanted only when the answer lags behind what the summary announced: an
        # unchanged answer that shows the summary's own state (a probe of a quiet run)
        # would otherwise be fetched again on every tick, forever.
        if accepted or not watched.dirty or watched.seen is None or state == watched.seen:
            watched.dirty = False
        if self._per_run(watched) or watched.dirty:
            # A detail that lags behind the summary is asked again on the run's cadence.
            watched.cadence.schedule(
                now,
                changed=bool(events),
                interval=self._interval,
                max_interval=self._max_interval,
                retry_after=response.retry_after,
                max_retry_after=transport.retry.max_retry_after,
            )
        tracker = watched.tracker
        if not tracker.snapshots:
            return
        if (
            accepted
            and watched.mode == _STEPS
            and automation.plan == "summary"
            and not automation.fallback
            and tracker.steps_ahead
        ):
            self._fall_back(
                automation,
                f"a snapshot of run {watched.run_id} has steps updated after the run's own "
                "updated_at",
            )
        if watched.mode == _STEPS:
            if events:
                self._enqueue(watched, events)
        elif watched.mode == _END:
            # Only the end goes out; what came before counts as seen, so that the
            # final event's ``previous`` is the last status the monitor saw.
            final = [e for e in events if isinstance(e, RunTransition) and e.status.is_terminal]
            for event in events:
                if not final or event is not final[0]:
                    watched.tracker.deliver(event)
            if final:
                self._enqueue(watched, final)
        else:
            for event in events:
                watched.tracker.deliver(event)
        if tracker.ended:
            watched.settled = True
            last = tracker.run
            assert last is not None  # the final snapshot is kept
            for waiter in watched.waiters:
                if not waiter.future.done():
                    waiter.future.set_result(last)
            if watched.mode == _WAIT:
                self._untrack(watched)

    def _choose_plan(self, automation: _Automation) -> None:
        """Under ``strategy="auto"``, poll by summary or per run, whichever moves fewer bytes."""
        if self._strategy != "auto" or automation.entry_bytes is None:
            return
        watched = sum(1 for w in automation.runs.values() if not w.settled)
        if not watched:
            return
        summary_cost = automation.entry_bytes * automation.listed + _REQUEST_BYTES
        # Before any detail is measured, a detail is at least a summary entry.
        detail = automation.detail_bytes or automation.entry_bytes
        per_run_cost = (detail + _REQUEST_BYTES) * watched
        if automation.plan == "summary":
            switch = summary_cost > per_run_cost * _HYSTERESIS
        else:
            switch = summary_cost * _HYSTERESIS < per_run_cost
        if not switch:
            return
        plan: _Plan = "per_run" if automation.plan == "summary" else "summary"
        logger.info(
            "monitor: automation %s now polled %s (summary: %d runs listed x %.0f bytes; "
            "per run: %d watched x %.0f bytes)",
            automation.id,
            "run by run" if plan == "per_run" else "by its summary",
            automation.listed,
            automation.entry_bytes,
            watched,
            detail,
        )
        automation.plan = plan
        now = self._transport.clock.monotonic()
        automation.cadence.delay = None
        automation.cadence.next_at = now
        for run in automation.runs.values():
            run.cadence.delay = None
            run.cadence.next_at = now
            run.seen = None  # the next summary is read afresh


def _state_of(data: object) -> tuple[str, str] | None:
    """A run answer's raw ``(status, updated_at)``, as a summary entry has them, or None."""
    if type(data) is not dict:
        return None
    status, updated_at = data.get("status"), data.get("updated_at")
    if type(status) is str and type(updated_at) is str:
        return status, updated_at
    return None


def _outcome(run: Run, raise_on_failure: bool) -> Run:
    if raise_on_failure and run.status == RunStatus.FAILED:
        raise RunFailedError(_failure_message(run), run=run)
    return run


def _other_automation(
    run_id: uuid.UUID, known: uuid.UUID, given: uuid.UUID
) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"run {run_id} is followed as a run of automation {known}, not of automation {given}"
    )


async def cancel_after_timeout(
    transport: Transport, automation_id: uuid.UUID, run_id: uuid.UUID, exc: WaitTimeoutError
) -> WaitTimeoutError:
    """Ask the server to cancel a run whose wait timed out; return the error to raise."""
    try:
        await transport.request(
            "PATCH",
            _paths.run_cancel(automation_id, run_id),
            idempotent=True,
            deadline=transport.clock.monotonic() + _CANCEL_BUDGET,
        )
    except Exception as failure:
        why = (
            f"no answer within {_CANCEL_BUDGET:g}s"
            if isinstance(failure, DeadlineExceeded)
            else str(failure)
        )
        logger.warning(
            "the wait of run %s timed out, and cancelling the run failed: %s",
            run_id,
            transport.redact(why),
        )
        fate = "cancelling the run failed (see the log)"
    else:
        fate = "a cancel of the run was requested"
    message = exc.message.replace("the run was left running", fate)
    return WaitTimeoutError(message, run=exc.run, checkpoint=exc.checkpoint)
