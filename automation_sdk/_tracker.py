"""What a watch knows about one run, without I/O or sleeping: :class:`RunTracker`.

A tracker takes snapshots of a run in (the decoded body of ``GET run``) and
says which events they give, in delivery order; it records what was handed to
the consumer, so that its checkpoint is exact. :class:`~automation_sdk.RunWatch`
drives one tracker with its own polls; a monitor of many runs drives one per
run. Nothing here reads a clock except for the ``observed_at`` of events, which
a caller may pass in, so that every rule is testable without a server.

It keeps no history: the last snapshot accepted, the last status emitted and
delivered per step and for the run, and the timestamps of the stale guard.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from . import _checkpoint
from ._convert import fingerprint, parse
from ._events import RunTransition, StepTransition, WatchEvent
from ._models import Run, RunStatus, RunStep, RunSummary, StepStatus
from .errors import ResponseValidationError

__all__ = ["RunTracker"]

logger = logging.getLogger("automation_sdk")


class RunTracker:
    """The state of one watched run: accepts snapshots, emits events, checkpoints deliveries.

    Args:
        automation_id: The run's automation.
        run_id: The run.
        resume_from: A checkpoint of an earlier watch of this run: what it
            delivered is not emitted again.

    Raises:
        InvalidArgumentError: ``resume_from`` is not a checkpoint of this run.
    """

    __slots__ = (
        "_automation_id",
        "_delivered_run",
        "_delivered_steps",
        "_done",
        "_emitted_run",
        "_emitted_steps",
        "_fingerprint",
        "_run",
        "_run_id",
        "_updated_at",
    )

    def __init__(
        self, automation_id: uuid.UUID, run_id: uuid.UUID, *, resume_from: str | None = None
    ) -> None:
        self._automation_id = automation_id
        self._run_id = run_id
        self._run: Run | None = None
        self._fingerprint: str | None = None
        self._updated_at: datetime | None = None
        # Emitted: returned by accept(), maybe not handed out yet (what the next diff starts
        # from). Delivered: handed to the consumer (what a checkpoint records).
        self._emitted_run: RunStatus | None = None
        self._delivered_run: RunStatus | None = None
        self._emitted_steps: dict[uuid.UUID, StepStatus] = {}
        self._delivered_steps: dict[uuid.UUID, StepStatus] = {}
        self._done = False
        if resume_from is not None:
            cp = _checkpoint.load(resume_from, automation_id=automation_id, run_id=run_id)
            self._emitted_run = self._delivered_run = cp.run_status
            self._updated_at = cp.updated_at
            self._emitted_steps = dict(cp.steps)
            self._delivered_steps = dict(cp.steps)
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
        """The last accepted snapshot, or None before the first one."""
        return self._run

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
            steps=self._delivered_steps,
        )

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
            observed_at: When the answer arrived (UTC); now when omitted.

        Raises:
            ResponseValidationError: the body is not a run, or not this run.
        """
        if self.ended:
            return []
        fp = fingerprint(data)
        if fp is not None and fp == self._fingerprint:
            # The same run, statuses and timestamps as the last accepted snapshot:
            # it cannot yield anything, so skip structuring it.
            return []
        run = parse(data, Run, status=status, method=method, url=url)
        if run.id != self._run_id or run.automation_id != self._automation_id:
            raise ResponseValidationError(
                f"{method} {url} answered with run {run.id} of automation {run.automation_id} "
                f"where run {self._run_id} of automation {self._automation_id} was asked for",
                method=method,
                url=url,
                status_code=status,
                problems=("id: not the run that was asked for",),
            )
        if self._updated_at is not None and run.updated_at < self._updated_at:
            logger.debug(
                "watch of run %s: ignored a stale snapshot (updated_at %s < %s)",
                self._run_id,
                run.updated_at.isoformat(),
                self._updated_at.isoformat(),
            )
            return []
        self._run = run
        self._updated_at = run.updated_at
        self._fingerprint = fp
        return self._diff(run, observed_at or datetime.now(UTC))

    def summary_changed(self, summary: RunSummary) -> bool:
        """Whether a run summary (status, ``updated_at``) says the run moved since the snapshot.

        True when no snapshot was accepted yet, or when the summary is newer
        than the last accepted snapshot by the stale guard's rules (and differs
        from it); False when the run's end was already emitted, or when the
        summary says nothing a detail fetch would find new. A summary cannot
        show step changes: whether it moves with them is for the caller to know.
        """
        if self.ended:
            return False
        run = self._run
        if run is None or self._updated_at is None:
            return True
        if summary.updated_at < self._updated_at:
            return False  # stale
        return summary.updated_at != self._updated_at or summary.status != run.status

    def deliver(self, event: WatchEvent) -> WatchEvent:
        """Record that ``event`` (from :meth:`accept`) was handed to the consumer; return it."""
        if isinstance(event, StepTransition):
            self._delivered_steps[event.step_id] = event.status
        else:
            self._delivered_run = event.status
            if event.status.is_terminal:
                self._done = True
        return event

    def _diff(self, run: Run, observed_at: datetime) -> list[WatchEvent]:
        emitted = self._emitted_steps
        events: list[WatchEvent] = []
        for run_step in _latest_visits(run.steps):
            step = run_step.step
            previous = emitted.get(step.id)
            if previous is None or previous != run_step.status:
                emitted[step.id] = run_step.status
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
        if self._emitted_run is None or self._emitted_run != run.status:
            events.append(
                RunTransition(
                    run_id=run.id,
                    previous=self._emitted_run,
                    status=run.status,
                    run=run,
                    observed_at=observed_at,
                )
            )
            self._emitted_run = run.status
        return events

    def __repr__(self) -> str:
        status = self._delivered_run.value if self._delivered_run is not None else "not seen yet"
        return f"<RunTracker run_id={self._run_id} status={status}>"


def _latest_visits(steps: tuple[RunStep, ...]) -> tuple[RunStep, ...]:
    """``steps`` with one entry per step definition: its latest visit, if a loop revisited it."""
    if len(steps) < 2:
        return steps
    last = {s.step.id: i for i, s in enumerate(steps)}
    if len(last) == len(steps):
        return steps
    return tuple(s for i, s in enumerate(steps) if last[s.step.id] == i)
