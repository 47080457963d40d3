"""What a watch knows about one run, without I/O or sleeping: :class:`RunTracker`.

A tracker takes snapshots of a run in (the decoded body of ``GET run``) and
says which events they give, in delivery order; it records what was handed to
the consumer, so that its checkpoint is exact. :class:`~automation_sdk.RunWatch`
drives one tracker with its own polls; a monitor of many runs drives one per
run. The only clock read is this machine's wall clock (the events'
``observed_at`` and rule 4 below), and a caller may pass its reading in, so
that every rule is testable without a server or a sleep.

It keeps no history: the last status emitted and delivered per step and for
the run, the timestamps of the stale guard, and what it needs to tell a changed
step entry from an unchanged one. With ``keep_snapshot=True`` (a
:class:`~automation_sdk.RunWatch`, whose ``run`` is public) that is the last
snapshot accepted, whose unchanged entries the next snapshot reuses; with
``keep_snapshot=False`` (a monitor of many runs) it is a 64-bit key per entry
(:class:`~._convert.StepKeys`), the changed entries alone are built, the whole
run only for a run transition, and only the final snapshot is kept.

The stale guard (docs/watching.md says why, for users):

1. A snapshot whose run is FINISHED or FAILED is always accepted, whole: a
   lagging replica cannot show an end that has not happened, so whatever its
   timestamps say, the end of a run is never missed. Its timestamps move no
   mark backwards, so that a checkpoint taken before its final event was
   delivered still recognises stale snapshots.
2. Otherwise a snapshot whose ``updated_at`` is older than the last accepted
   one's (the *mark*) is stale and ignored.
3. Within an accepted snapshot, a step (its latest visit) whose ``updated_at``
   is older than that of the entry last taken for the same step is ignored:
   that step keeps its status, the others move on. A step never goes backwards.
4. No timestamp is believed beyond this machine's clock plus
   :data:`MAX_CLOCK_AHEAD`: a later one (a server clock in 2099, an edited
   checkpoint) counts as that limit. One bad clock thus blinds the guard for
   at most ``MAX_CLOCK_AHEAD``, never for ever.
"""

from __future__ import annotations

import logging
import operator
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from . import _checkpoint
from ._convert import (
    RunSteps,
    StepKeys,
    StructureFailed,
    fingerprint,
    invalid_answer,
    run_head,
)
from ._events import RunTransition, StepTransition, WatchEvent
from ._models import Run, RunStatus, RunStep, RunSummary, StepStatus
from .errors import ResponseValidationError

__all__ = ["MAX_CLOCK_AHEAD", "RunTracker"]

logger = logging.getLogger("automation_sdk")

MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)
"""How far ahead of this machine's clock a server timestamp is believed (rule 4)."""


def _now() -> datetime:
    return datetime.now(UTC)


class RunTracker:
    """The state of one watched run: accepts snapshots, emits events, checkpoints deliveries.

    Args:
        automation_id: The run's automation.
        run_id: The run.
        resume_from: A checkpoint of an earlier watch of this run: what it
            delivered is not emitted again.
        keep_snapshot: Keep the last accepted snapshot (:attr:`run`) between
            snapshots. False keeps only the final one, and a key per step
            entry in between: for a monitor of many runs.

    Raises:
        InvalidArgumentError: ``resume_from`` is not a checkpoint of this run.
    """

    __slots__ = (
        "_automation_id",
        "_delivered_run",
        "_done",
        "_emitted_run",
        "_emitted_steps",
        "_fingerprint",
        "_keys",
        "_newest_step",
        "_run",
        "_run_id",
        "_shown",
        "_snapshots",
        "_step_marks",
        "_structurer",
        "_undelivered",
        "_updated_at",
        "_warned",
    )

    def __init__(
        self,
        automation_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        resume_from: str | None = None,
        keep_snapshot: bool = True,
    ) -> None:
        self._automation_id = automation_id
        self._run_id = run_id
        self._run: Run | None = None
        # One of the two: the kept snapshot's reusable entries, or a key per entry.
        self._structurer = RunSteps() if keep_snapshot else None
        self._keys = None if keep_snapshot else StepKeys()
        # The status and updated_at of the last accepted snapshot, as the server wrote them.
        self._shown: tuple[RunStatus, datetime] | None = None
        self._snapshots = 0
        # The latest updated_at of a step entry in the last accepted snapshot (see steps_ahead).
        self._newest_step: datetime | None = None
        self._fingerprint: int | None = None
        self._updated_at: datetime | None = None
        # Per step definition: the updated_at of the entry last taken (rule 3).
        self._step_marks: dict[uuid.UUID, datetime] = {}
        self._warned = False
        # Emitted: returned by accept(), maybe not handed out yet (what the next diff starts
        # from). Delivered: handed to the consumer (what a checkpoint records): the emitted
        # state with the events still undelivered undone, so that one dict serves both.
        self._emitted_run: RunStatus | None = None
        self._delivered_run: RunStatus | None = None
        self._emitted_steps: dict[uuid.UUID, StepStatus] = {}
        self._undelivered: list[WatchEvent] = []
        self._done = False
        if resume_from is not None:
            cp = _checkpoint.load(resume_from, automation_id=automation_id, run_id=run_id)
            self._emitted_run = self._delivered_run = cp.run_status
            self._updated_at = cp.updated_at
            self._emitted_steps = dict(cp.steps)
            self._step_marks = dict(cp.step_updated_at)
            # The final event was delivered before: nothing is left to say.
            self._done = cp.run_status is not None and cp.run_status.is_terminal

    # -- state -------------------------------------------------------------------------------

    @property
    def automation_id(self) -> uuid.UUID:
        """The automation of the tracked run."""
        return self._automation_id

    @property
    def run_id(self) -> uuid.UUID:
        """The tracked run's id."""
        return self._run_id

    @property
    def run(self) -> Run | None:
        """The last accepted snapshot, or None before the first one.

        Without ``keep_snapshot``: the final snapshot once accepted, else None.
        """
        return self._run

    @property
    def status(self) -> RunStatus | None:
        """The run's status in the last accepted snapshot, or None before the first one."""
        return None if self._shown is None else self._shown[0]

    @property
    def steps_ahead(self) -> bool:
        """Whether a step of the last accepted snapshot was updated after the run itself.

        A step updated after its run shows a server whose run ``updated_at`` did
        not move with that step's change. Entries not built (unchanged since the
        snapshot before) count with the ``updated_at`` they had then, so a server
        that moves a step's ``updated_at`` backwards can only make this say so
        wrongly, never miss it.
        """
        shown, newest = self._shown, self._newest_step
        return shown is not None and newest is not None and newest > shown[1]

    @property
    def snapshots(self) -> int:
        """How many snapshots were accepted (a snapshot unchanged, stale or late is not)."""
        return self._snapshots

    @property
    def run_status(self) -> RunStatus | None:
        """The run's status last delivered, or None."""
        return self._delivered_run

    @property
    def updated_at(self) -> datetime | None:
        """The stale guard's mark: the server time of the last accepted snapshot, or None."""
        return self._updated_at

    @property
    def done(self) -> bool:
        """True once the run's final event (into FINISHED or FAILED) was delivered."""
        return self._done

    @property
    def ended(self) -> bool:
        """True once the run's final event was emitted (delivered or not): nothing more comes."""
        return self._emitted_run is not None and self._emitted_run.is_terminal

    def checkpoint(self) -> str:
        """What was delivered so far, in the checkpoint format of :mod:`._checkpoint`."""
        return _checkpoint.dump(
            automation_id=self._automation_id,
            run_id=self._run_id,
            run_status=self._delivered_run,
            updated_at=self._updated_at,
            steps=self._delivered_steps(),
            step_updated_at=self._step_marks,
        )

    def _delivered_steps(self) -> dict[uuid.UUID, StepStatus]:
        steps = dict(self._emitted_steps)
        for event in reversed(self._undelivered):
            if isinstance(event, StepTransition):
                if event.previous is None:
                    steps.pop(event.step_id, None)
                else:
                    steps[event.step_id] = event.previous
        return steps

    # -- snapshots in, events out ------------------------------------------------------------

    def accept(
        self,
        data: object,
        *,
        status: int,
        method: str,
        url: str,
        observed_at: datetime | None = None,
    ) -> list[WatchEvent]:
        """Take one snapshot of the run in; return the events it gives, in delivery order.

        Events are computed against what was *emitted* before (returned by an
        earlier call), so calling it again before the events were delivered
        repeats none of them. A snapshot equal to the last one accepted, a
        stale one, and any snapshot after the run's final event give ``[]``.

        Args:
            data: The decoded JSON body of ``GET`` run.
            status: The answer's HTTP status, for error messages.
            method: The request's method, for error messages.
            url: The request's URL, for error messages.
            observed_at: When the answer arrived (UTC), by this machine's
                clock; now when omitted.

        Raises:
            ResponseValidationError: the body is not a run, or not this run.
        """
        if self.ended:
            return []
        fp = fingerprint(data)
        if fp is not None and fp == self._fingerprint:
            # The same run, statuses and timestamps as the last accepted snapshot:
            # it cannot yield anything, so skip structuring it.
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "watch of run %s: snapshot unchanged", self._run_id, extra=self._extra()
                )
            return []
        structurer = self._structurer
        try:
            # A kept snapshot is structured whole (reusing unchanged entries), else the head.
            head = structurer.structure(data) if structurer is not None else run_head(data)
        except StructureFailed as exc:
            raise invalid_answer(exc, Run, status=status, method=method, url=url) from exc
        if head.id != self._run_id or head.automation_id != self._automation_id:
            raise ResponseValidationError(
                f"{method} {url} answered with run {head.id} of automation {head.automation_id} "
                f"where run {self._run_id} of automation {self._automation_id} was asked for",
                method=method,
                url=url,
                status_code=status,
                problems=("id: not the run that was asked for",),
            )
        now = observed_at if observed_at is not None else _now()
        limit = now + MAX_CLOCK_AHEAD
        # A checkpoint's mark comes unchecked: clamp it once, for good, so that time catches up.
        mark = self._updated_at
        if mark is not None:
            mark = self._updated_at = self._believed(mark, limit)
        terminal = head.status.is_terminal
        if not terminal and mark is not None and head.updated_at < mark:
            logger.debug(
                "watch of run %s: ignored a stale snapshot (updated_at %s < %s)",
                self._run_id,
                head.updated_at.isoformat(),
                mark.isoformat(),
                extra=self._extra(),
            )
            return []
        moved = self._emitted_run != head.status
        try:
            run, judged, definitions = self._entries(data, head, terminal=terminal, moved=moved)
        except StructureFailed as exc:
            raise invalid_answer(exc, Run, status=status, method=method, url=url) from exc
        if self._keys is None or terminal:
            self._run = run
        # Every entry judged: the newest of them; else entries not judged count as before.
        newest = None if len(judged) == len(definitions) else self._newest_step
        for _, run_step in judged:
            if newest is None or run_step.updated_at > newest:
                newest = run_step.updated_at
        self._newest_step = newest
        self._shown = (head.status, head.updated_at)
        self._snapshots += 1
        # A final snapshot is taken whatever its timestamps (rule 1), but moves no mark back.
        stamp = self._believed(head.updated_at, limit)
        self._updated_at = stamp if mark is None or stamp > mark else mark
        self._fingerprint = fp
        events: list[WatchEvent] = self._diff(judged, definitions, now, limit, terminal)
        if moved:
            assert run is not None
            events.append(
                RunTransition(
                    run_id=run.id,
                    previous=self._emitted_run,
                    status=run.status,
                    run=run,
                    observed_at=now,
                )
            )
            self._emitted_run = run.status
        self._undelivered += events
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "watch of run %s: snapshot accepted (run %s, updated_at %s), %d events",
                self._run_id,
                head.status.value,
                head.updated_at.isoformat(),
                len(events),
                extra=self._extra(),
            )
        return events

    def _entries(
        self, data: object, head: Run, *, terminal: bool, moved: bool
    ) -> tuple[Run | None, list[tuple[int, RunStep]], list[int]]:
        """The snapshot's entries to judge, as (index, entry), each entry's definition id.

        With them, the whole run where it is kept or an event carries it (the
        run moved, or ended), else None. Everything is built before the
        tracker's state moves, so that a bad answer leaves it as it was.

        Raises:
            StructureFailed: an entry to build is not a valid step.
        """
        keys = self._keys
        if keys is None:
            # Entries reused from the last snapshot taken were judged with it; a final
            # snapshot is taken whole, so each of its entries is judged again.
            before = self._run.steps if self._run is not None and not terminal else ()
            known = len(before)
            steps = head.steps  # structured whole
            judged = [(i, s) for i, s in enumerate(steps) if not (i < known and before[i] is s)]
            return head, judged, list(map(_definition_of, steps))
        assert type(data) is dict  # run_head() accepted it
        entries = keys.read(data, head, whole=terminal)
        run = entries.run() if moved or terminal else None
        # Nothing raises past this point: the entries are the last accepted ones now.
        if terminal:
            keys.clear()  # nothing is read after the end
        else:
            keys.commit(entries)
        judged = [(i, s) for i, s in enumerate(entries.steps) if s is not None]
        return run, judged, entries.definitions

    def _extra(self) -> dict[str, object]:
        return {"run_id": str(self._run_id), "automation_id": str(self._automation_id)}

    def summary_changed(self, summary: RunSummary, *, now: datetime | None = None) -> bool:
        """Whether a run summary (status, ``updated_at``) says the run moved since the snapshot.

        True when no snapshot was accepted yet, when the summary shows the
        run's end (not emitted yet), or when it is not stale by the guard's
        rules and differs from the last accepted snapshot; False when the end
        was already emitted or the summary says nothing a detail fetch would
        find new. A summary shows no step: whether its ``updated_at`` moves
        with step changes is for the caller to know.

        Args:
            summary: The run's entry in ``GET /automations/{id}/``.
            now: This machine's clock (UTC) for rule 4; now when omitted.
        """
        if self.ended:
            return False
        shown = self._shown
        mark = self._updated_at
        if shown is None or mark is None or summary.status.is_terminal:
            return True
        mark = self._believed(mark, (now if now is not None else _now()) + MAX_CLOCK_AHEAD)
        if summary.updated_at < mark:
            return False  # stale
        return summary.updated_at != shown[1] or summary.status != shown[0]

    def deliver(self, event: WatchEvent) -> WatchEvent:
        """Record that ``event`` (from :meth:`accept`) was handed to the consumer; return it."""
        undelivered = self._undelivered
        if undelivered and undelivered[0] is event:
            del undelivered[0]
        else:  # handed out of order: found all the same
            for i, waiting in enumerate(undelivered):
                if waiting is event:
                    del undelivered[i]
                    break
        if isinstance(event, RunTransition):
            self._delivered_run = event.status
            if event.status.is_terminal:
                self._done = True
        return event

    def _believed(self, at: datetime, limit: datetime) -> datetime:
        """``at``, or ``limit`` when ``at`` is later: a clock ahead of ours is not believed."""
        if at <= limit:
            return at
        if not self._warned:
            self._warned = True
            logger.warning(
                "watch of run %s: the timestamp %s is more than %s ahead of this machine's "
                "clock (a server clock or a checkpoint that is wrong?); it counts as %s, so "
                "that stale snapshots are still recognised and the watch recovers",
                self._run_id,
                at.isoformat(),
                MAX_CLOCK_AHEAD,
                limit.isoformat(),
            )
        return limit

    def _diff(
        self,
        judged: list[tuple[int, RunStep]],
        definitions: list[int],
        observed_at: datetime,
        limit: datetime,
        terminal: bool,
    ) -> list[WatchEvent]:
        """The step events of the ``judged`` entries (index, entry) of an accepted snapshot.

        ``definitions`` holds every entry's step definition id (as an int), so
        that an entry of a step that a loop visited again later is passed over.
        """
        emitted = self._emitted_steps
        marks = self._step_marks
        events: list[WatchEvent] = []
        latest = _latest_visit_index(definitions)
        for i, run_step in judged:
            step = run_step.step
            if latest is not None and latest[step.id.int] != i:
                continue  # a loop visited this step again later in the run
            taken = marks.get(step.id)
            if taken is not None and taken > limit:  # from a checkpoint: clamped once (rule 4)
                taken = marks[step.id] = self._believed(taken, limit)
            if not terminal and taken is not None and run_step.updated_at < taken:
                continue  # an older entry of this step than the one taken: it stands
            stamp = self._believed(run_step.updated_at, limit)
            if taken is None or stamp > taken:  # a final snapshot's older entry: no mark back
                marks[step.id] = stamp
            previous = emitted.get(step.id)
            if previous is None or previous != run_step.status:
                emitted[step.id] = run_step.status
                events.append(
                    StepTransition(
                        run_id=self._run_id,
                        step_id=step.id,
                        step_name=step.name,
                        step_type=step.step_type,
                        previous=previous,
                        status=run_step.status,
                        step=run_step,
                        observed_at=observed_at,
                    )
                )
        return events

    def __repr__(self) -> str:
        status = self._delivered_run.value if self._delivered_run is not None else "not seen yet"
        return f"<RunTracker run_id={self._run_id} status={status}>"


_definition_of: Final = operator.attrgetter("step.id.int")  # UUID's own hash is slow Python


def _latest_visit_index(definitions: list[int]) -> dict[int, int] | None:
    """None when each step definition appears once, else definition -> index of its last visit."""
    last = dict(zip(definitions, range(len(definitions)), strict=True))
    return None if len(last) == len(definitions) else last
