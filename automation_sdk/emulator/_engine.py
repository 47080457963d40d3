"""The emulator's state and its run state machine, with no HTTP in sight.

Runs advance *lazily*: nothing happens in the background. Whenever a request
reads or touches a run, :meth:`Engine.advance` replays every transition whose
time has come, up to ``clock.monotonic()``. With a fake clock the emulator is
therefore fully deterministic.

Time is kept in integer microseconds since the engine was made (a *stamp*);
wall timestamps are ``epoch + stamp``. Every change of a run gets a stamp
strictly greater than the run's previous one, so ``updated_at`` changes with
every change a client can observe and never goes backwards.

Timeline of a run, with ``D`` a step duration (fixed, or drawn from a
:class:`~._durations.StepDurations` once per phase when the run is created):

- ``t0``: created, ``NEW``, no steps.
- ``t0 + D``: ``RUNNING``; the START step is reached and finishes at once
  (empty prompt ``{"type": "text", "text": ""}``, result ``""``); the next
  step is reached in the same instant.
- every other step is ``NEW`` for ``D/2``, then ``RUNNING`` for ``D/2`` and
  ``FINISHED``; an input step waits (``WAITING_FOR_USER_INPUT``) instead of
  running, until its answer arrives. The next step is reached the moment the
  previous one finishes; after the last one the run is ``FINISHED``.

Each run also keeps its *history*: every status its steps and itself took, with
the stamp it took it at, so that a benchmark can check that a client missed or
repeated nothing. The ``updated_at`` a client sees moves with every change, or,
with ``updated_at_on_steps=False``, only when the run's own status changes (the
contract leaves open which one the real server does).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from attrs import define, field, frozen

from .._clock import Clock
from ._durations import StepDurations

__all__ = [
    "AutomationRecord",
    "Conflict",
    "Engine",
    "NewAutomation",
    "NewEdge",
    "NewStep",
    "RunRecord",
]

NEW = "NEW"
RUNNING = "RUNNING"
WAITING = "WAITING_FOR_USER_INPUT"
FINISHED = "FINISHED"
FAILED = "FAILED"
_TERMINAL = frozenset({FINISHED, FAILED})

_START_TYPES = frozenset({"START"})
_INPUT_TYPES = frozenset({"INPUT", "USER_INPUT"})

CANCELLED = "cancelled by user"
"""The ``error`` of a cancelled run and of the step it was on."""

_EMPTY_PROMPT: dict[str, Any] = {"type": "text", "text": ""}
_REFERENCE = re.compile(r"\$\{([^{}]*)\}")


class Conflict(Exception):
    """The request does not fit the run's state (answered 409)."""


@frozen(kw_only=True)
class NewStep:
    """A validated step of a create request."""

    id: uuid.UUID
    name: str
    step_type: str
    prompt_template: dict[str, Any]


@frozen(kw_only=True)
class NewEdge:
    """A validated step transition of a create request."""

    source_step_id: uuid.UUID
    target_step_id: uuid.UUID
    label: str


@frozen(kw_only=True)
class NewAutomation:
    """A validated ``AutomationCreate`` body."""

    name: str
    description: str | None
    steps: tuple[NewStep, ...]
    edges: tuple[NewEdge, ...]


@frozen(kw_only=True)
class _StepDef:
    id: uuid.UUID
    name: str
    step_type: str
    prompt_template: dict[str, Any]
    created: int

    @property
    def kind(self) -> str:
        return self.step_type.upper()


@frozen(kw_only=True)
class _Edge:
    id: uuid.UUID
    source: uuid.UUID
    target: uuid.UUID
    label: str


@define(kw_only=True)
class AutomationRecord:
    """An automation as the emulator stores it."""

    id: uuid.UUID
    name: str
    description: str | None
    organisation_id: str
    version_id: uuid.UUID
    steps: tuple[_StepDef, ...]
    edges: tuple[_Edge, ...]
    created: int
    runs: dict[uuid.UUID, RunRecord] = field(factory=dict)


@define(kw_only=True)
class _RunStep:
    id: uuid.UUID
    step: _StepDef
    status: str
    prompt: dict[str, Any]
    created: int
    updated: int
    result: str | None = None
    error: str | None = None
    user_input: str | None = None
    problem: str | None = None
    """A rendering problem: the step fails when its NEW phase ends."""


@define(kw_only=True)
class RunRecord:
    """A run (automation session) as the emulator stores it."""

    id: uuid.UUID
    automation: AutomationRecord
    inputs: dict[str, Any]
    status: str
    created: int
    updated: int
    plan: tuple[_StepDef, ...]
    """The steps to run, breadth-first from START."""
    durations: tuple[int, ...]
    """Microseconds of the NEW phase, then of each step of the plan."""
    shown: int
    """The stamp shown as ``updated_at``."""
    history: list[tuple[int, int, str]]
    """``(stamp, step index or -1 for the run, status)`` of every status taken, in order."""
    logged: list[str] = field(factory=list)
    """The last status logged for each step reached."""
    logged_status: str = NEW
    """The last status of the run logged."""
    error: str | None = None
    steps: list[_RunStep] = field(factory=list)
    next_event: int | None = None
    """When the next timed transition happens; None when waiting or ended."""

    @property
    def current(self) -> _RunStep | None:
        """The step in progress or waiting, None when none is."""
        if self.steps and self.steps[-1].status not in _TERMINAL:
            return self.steps[-1]
        return None


def _plan(steps: tuple[_StepDef, ...], edges: tuple[_Edge, ...]) -> tuple[_StepDef, ...]:
    """Breadth-first order from the START steps, each step once."""
    by_id = {s.id: s for s in steps}
    out: dict[uuid.UUID, list[uuid.UUID]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge.target)
    queue = deque(s.id for s in steps if s.kind in _START_TYPES)
    seen = set(queue)
    order: list[_StepDef] = []
    while queue:
        step_id = queue.popleft()
        order.append(by_id[step_id])
        for target in out.get(step_id, ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return tuple(order)


class _Renderer:
    """Renders ``${INPUTS.key}`` and ``${step_name.result}`` in every string."""

    def __init__(self, run: RunRecord) -> None:
        self._inputs = run.inputs
        self._results = {s.step.name: s.result or "" for s in run.steps if s.status == FINISHED}
        self._names = {s.name for s in run.automation.steps}
        self.problems: list[str] = []

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(self._replace, value)
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value

    def _replace(self, match: re.Match[str]) -> str:
        ref = match.group(1).strip()
        if ref.startswith("INPUTS."):
            key = ref.removeprefix("INPUTS.")
            if key in self._inputs:
                value = self._inputs[key]
                return value if isinstance(value, str) else json.dumps(value)
            self.problems.append(f"unknown input {key!r} in {match.group(0)}")
        elif ref.endswith(".result"):
            name = ref.removesuffix(".result")
            if name in self._results:
                return self._results[name]
            if name in self._names:
                self.problems.append(f"step {name!r} has no result yet in {match.group(0)}")
            else:
                self.problems.append(f"unknown step {name!r} in {match.group(0)}")
        return match.group(0)


def _texts(value: Any, key: str | None = None) -> Iterator[str]:
    """Every string in a prompt except its ``type`` tag, depth first."""
    if isinstance(value, str):
        if key != "type":
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _texts(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def llm_result(step_type: str, prompt: dict[str, Any]) -> str:
    """The deterministic stand-in for a model's answer: ``"[TYPE] " + the prompt's text``."""
    return f"[{step_type}] " + "\n".join(_texts(prompt))


class Engine:
    """All automations and runs, and the rules that move runs forward.

    Args:
        clock: Where ``now`` comes from.
        durations: How long each step takes (and the NEW -> RUNNING delay).
        rng: Draws the durations.
        epoch: The wall time of the engine's stamp 0.
        organisation_id: The organisation every automation belongs to.
        new_id: Makes the server's ids (seeded in tests for reproducibility).
        updated_at_on_steps: Whether a step's change moves the run's ``updated_at``
            (else only a change of the run's status does).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        durations: StepDurations,
        rng: random.Random,
        epoch: datetime,
        organisation_id: str,
        new_id: Callable[[], uuid.UUID],
        updated_at_on_steps: bool = True,
    ) -> None:
        self._clock = clock
        self._origin = clock.monotonic()
        self._durations = durations
        self._rng = rng
        self._epoch = epoch
        self.updated_at_on_steps = updated_at_on_steps
        self.organisation_id = organisation_id
        self._new_id = new_id
        self.automations: dict[uuid.UUID, AutomationRecord] = {}

    # -- time --------------------------------------------------------------

    def now(self) -> int:
        """The clock's reading as a stamp (microseconds since the engine began)."""
        return max(0, round((self._clock.monotonic() - self._origin) * 1_000_000))

    def wall(self, stamp: int) -> str:
        """A stamp as an ISO 8601 UTC timestamp ending in ``Z``."""
        text = (self._epoch + timedelta(microseconds=stamp)).isoformat()
        return text.replace("+00:00", "Z")

    @property
    def epoch(self) -> datetime:
        """The wall time of stamp 0."""
        return self._epoch

    def clock_of(self, stamp: int) -> float:
        """A stamp as a reading of the engine's clock (``clock.monotonic()`` seconds)."""
        return self._origin + stamp / 1_000_000

    @staticmethod
    def _touch(run: RunRecord, at: int) -> int:
        run.updated = max(at, run.updated + 1)
        return run.updated

    def _log(self, run: RunRecord, stamp: int) -> None:
        """Append the statuses that changed at ``stamp`` to the history: steps first, then the run.

        Only the last step logged and the new ones can have changed: a step is
        reached when the one before it finished.
        """
        logged = run.logged
        for index in range(max(0, len(logged) - 1), len(run.steps)):
            status = run.steps[index].status
            if index == len(logged):
                logged.append(status)
            elif logged[index] == status:
                continue
            else:
                logged[index] = status
            run.history.append((stamp, index, status))
        if run.status != run.logged_status:
            run.logged_status = run.status
            run.history.append((stamp, -1, run.status))
            run.shown = stamp
        elif self.updated_at_on_steps:
            run.shown = stamp

    # -- automations -------------------------------------------------------

    def create_automation(self, spec: NewAutomation) -> AutomationRecord:
        """Store a new automation and return it."""
        now = self.now()
        automation_id = self._new_id()
        steps = tuple(
            _StepDef(
                id=s.id,
                name=s.name,
                step_type=s.step_type,
                prompt_template=s.prompt_template,
                created=now,
            )
            for s in spec.steps
        )
        edges = tuple(
            _Edge(
                id=self._new_id(), source=e.source_step_id, target=e.target_step_id, label=e.label
            )
            for e in spec.edges
        )
        record = AutomationRecord(
            id=automation_id,
            name=spec.name,
            description=spec.description,
            organisation_id=self.organisation_id,
            version_id=self._new_id(),
            steps=steps,
            edges=edges,
            created=now,
        )
        self.automations[automation_id] = record
        return record

    # -- runs --------------------------------------------------------------

    def create_run(self, automation: AutomationRecord, inputs: dict[str, Any]) -> RunRecord:
        """Start a run: NEW now, RUNNING one step duration later."""
        now = self.now()
        plan = _plan(automation.steps, automation.edges)
        draw = self._durations.draw
        durations = tuple(round(draw(self._rng) * 1_000_000) for _ in range(len(plan) + 1))
        run = RunRecord(
            id=self._new_id(),
            automation=automation,
            inputs=inputs,
            status=NEW,
            created=now,
            updated=now,
            plan=plan,
            durations=durations,
            shown=now,
            history=[(now, -1, NEW)],
            next_event=now + durations[0],
        )
        automation.runs[run.id] = run
        return run

    def advance(self, run: RunRecord) -> None:
        """Apply every transition of ``run`` due at or before now."""
        now = self.now()
        while run.next_event is not None and run.next_event <= now:
            at = run.next_event
            run.next_event = None
            stamp = self._touch(run, at)
            self._fire(run, at, stamp)
            self._log(run, stamp)

    def _fire(self, run: RunRecord, at: int, stamp: int) -> None:
        current = run.current
        if run.status == NEW:
            run.status = RUNNING
            if not run.plan:
                run.status = FAILED
                run.error = "the automation has no START step"
                return
            self._reach_next(run, at, stamp)
        elif current is None:
            return
        elif current.status == NEW:
            current.updated = stamp
            if current.problem is not None:
                current.status = FAILED
                current.error = current.problem
                run.status = FAILED
                run.error = f"step {current.step.name!r} failed: {current.problem}"
            elif current.step.kind in _INPUT_TYPES:
                current.status = WAITING
                run.status = WAITING
            else:
                current.status = RUNNING
                duration = run.durations[len(run.steps)]
                run.next_event = at + duration - duration // 2
        elif current.status == RUNNING:
            current.status = FINISHED
            current.result = llm_result(current.step.step_type, current.prompt)
            current.updated = stamp
            self._reach_next(run, at, stamp)

    def _reach_next(self, run: RunRecord, at: int, stamp: int) -> None:
        while len(run.steps) < len(run.plan):
            step = run.plan[len(run.steps)]
            if step.kind in _START_TYPES:
                run.steps.append(
                    _RunStep(
                        id=self._new_id(),
                        step=step,
                        status=FINISHED,
                        prompt=dict(_EMPTY_PROMPT),
                        result="",
                        created=stamp,
                        updated=stamp,
                    )
                )
                continue
            renderer = _Renderer(run)
            prompt = renderer.render(step.prompt_template)
            run.steps.append(
                _RunStep(
                    id=self._new_id(),
                    step=step,
                    status=NEW,
                    prompt=prompt,
                    created=stamp,
                    updated=stamp,
                    problem="; ".join(renderer.problems) or None,
                )
            )
            run.next_event = at + run.durations[len(run.steps)] // 2
            return
        run.status = FINISHED
        run.error = None

    def cancel(self, run: RunRecord) -> None:
        """End the run FAILED with ``"cancelled by user"``; its current step too.

        Raises:
            Conflict: the run already ended (FINISHED or FAILED).
        """
        self.advance(run)
        if run.status in _TERMINAL:
            raise Conflict(f"session {run.id} already ended {run.status}; it cannot be cancelled")
        stamp = self._touch(run, self.now())
        current = run.current
        if current is not None:
            current.status = FAILED
            current.error = CANCELLED
            current.updated = stamp
        run.status = FAILED
        run.error = CANCELLED
        run.next_event = None
        self._log(run, stamp)

    def submit_input(self, run: RunRecord, text: str) -> None:
        """Answer the waiting input step and let the run go on.

        Raises:
            Conflict: the run is not WAITING_FOR_USER_INPUT.
        """
        self.advance(run)
        current = run.current
        if run.status != WAITING or current is None:
            raise Conflict(
                f"session {run.id} is {run.status}, not {WAITING}; it takes no user input now"
            )
        now = self.now()
        stamp = self._touch(run, now)
        current.status = FINISHED
        current.result = text
        current.user_input = text
        current.updated = stamp
        run.status = RUNNING
        self._reach_next(run, now, stamp)
        self._log(run, stamp)

    # -- JSON shapes -------------------------------------------------------

    def _step_json(self, step: _StepDef) -> dict[str, Any]:
        return {
            "id": str(step.id),
            "name": step.name,
            "step_type": step.step_type,
            "prompt_template": step.prompt_template,
            "created_at": self.wall(step.created),
            "updated_at": self.wall(step.created),
        }

    def automation_json(self, automation: AutomationRecord, *, sessions: bool) -> dict[str, Any]:
        """The Automation shape; with ``sessions`` (SessionSummary[]) for a GET."""
        created = self.wall(automation.created)
        body: dict[str, Any] = {
            "id": str(automation.id),
            "name": automation.name,
            "description": automation.description,
            "organisation_id": automation.organisation_id,
            "current_version": {
                "id": str(automation.version_id),
                "automation_id": str(automation.id),
                "steps": [self._step_json(s) for s in automation.steps],
                "step_transitions": [
                    {
                        "id": str(e.id),
                        "source_step_id": str(e.source),
                        "target_step_id": str(e.target),
                        "label": e.label,
                    }
                    for e in automation.edges
                ],
                "created_at": created,
                "updated_at": created,
            },
            "created_at": created,
            "updated_at": created,
        }
        if sessions:
            body["sessions"] = [self.summary_json(run) for run in automation.runs.values()]
        return body

    def summary_json(self, run: RunRecord) -> dict[str, Any]:
        """The SessionSummary shape (no steps)."""
        return {
            "id": str(run.id),
            "automation_id": str(run.automation.id),
            "inputs": run.inputs,
            "error": run.error,
            "status": run.status,
            "created_at": self.wall(run.created),
            "updated_at": self.wall(run.shown),
        }

    def _run_step_json(self, step: _RunStep) -> dict[str, Any]:
        return {
            "id": str(step.id),
            "status": step.status,
            "prompt": step.prompt,
            "result": step.result,
            "error": step.error,
            "user_input": step.user_input,
            "step": self._step_json(step.step),
            "created_at": self.wall(step.created),
            "updated_at": self.wall(step.updated),
        }

    def run_json(self, run: RunRecord) -> dict[str, Any]:
        """The Session shape: the summary plus steps, steps_count and current_step."""
        current = run.current
        return {
            **self.summary_json(run),
            "steps": [self._run_step_json(s) for s in run.steps],
            "steps_count": len(run.steps),
            "current_step": None if current is None else self._run_step_json(current),
        }
