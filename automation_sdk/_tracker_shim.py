"""Interim per-run state for the monitor, until the shared RunTracker lands (to be removed)."""

from __future__ import annotations

import uuid
from datetime import datetime

from . import _checkpoint
from ._events import WatchEvent
from ._models import Run, RunStatus, StepStatus
from ._poller import _fingerprint, _latest_visits  # noqa: F401
from ._resources import parse
from ._transport import Response
from .errors import ResponseValidationError


class RunTracker:
    """What a watch of one run delivered and saw; turns snapshots into undelivered events."""

    def __init__(
        self, automation_id: uuid.UUID, run_id: uuid.UUID, *, resume_from: str | None = None
    ) -> None:
        self.automation_id = automation_id
        self.run_id = run_id
        self._run: Run | None = None
        self._run_status: RunStatus | None = None
        self._updated_at: datetime | None = None
        self._steps: dict[uuid.UUID, StepStatus] = {}
        self._done = False
        if resume_from is not None:
            cp = _checkpoint.load(resume_from, automation_id=automation_id, run_id=run_id)
            self._run_status = cp.run_status
            self._updated_at = cp.updated_at
            self._steps = dict(cp.steps)
            self._done = cp.run_status is not None and cp.run_status.is_terminal

    @property
    def run(self) -> Run | None:
        return self._run

    @property
    def run_status(self) -> RunStatus | None:
        return self._run_status

    @property
    def updated_at(self) -> datetime | None:
        return self._updated_at

    @property
    def done(self) -> bool:
        return self._done

    def accept(self, data: object, *, status: int, method: str, url: str) -> list[WatchEvent]:
        from ._poller import RunWatch

        response = Response(status=status, headers={}, data=data, retry_after=None)
        base, _, path = url.partition("/automations/")
        run = parse(response, Run, method, "/automations/" + path, base)
        if run.id != self.run_id or run.automation_id != self.automation_id:
            raise ResponseValidationError(
                f"{method} {url} answered with another run",
                method=method,
                url=url,
                status_code=status,
                problems=("id: not the run that was asked for",),
            )
        if (
            self._updated_at is not None
            and run.updated_at < self._updated_at
            and not run.status.is_terminal
        ):
            return []
        self._run = run
        self._updated_at = run.updated_at
        fake = RunWatch.__new__(RunWatch)
        fake._steps = self._steps
        fake._run_status = self._run_status
        return RunWatch._diff(fake, run)

    def deliver(self, event: WatchEvent) -> None:
        from ._events import StepTransition

        if isinstance(event, StepTransition):
            self._steps[event.step_id] = event.status
        else:
            self._run_status = event.status
            if event.status.is_terminal:
                self._done = True

    def checkpoint(self) -> str:
        return _checkpoint.dump(
            automation_id=self.automation_id,
            run_id=self.run_id,
            run_status=self._run_status,
            updated_at=self._updated_at,
            steps=self._steps,
        )
