"""Typed models of the Automation API's objects, and the inputs of ``create``.

All models are immutable (``@frozen(kw_only=True)``). The API calls an
execution of an automation an *automation session*; the SDK calls it a
**run** (:class:`Run`, :class:`RunSummary`, :class:`RunStep`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

from attrs import Attribute, field, frozen

from ._json_model import _JSONModel
from ._jsonable import to_json
from .errors import InvalidArgumentError

__all__ = [
    "Automation",
    "AutomationVersion",
    "EdgeSpec",
    "JSONValue",
    "Run",
    "RunStatus",
    "RunStep",
    "RunSummary",
    "Step",
    "StepEdge",
    "StepSpec",
    "StepStatus",
    "StepType",
]

JSONValue: TypeAlias = (
    "str | int | float | bool | Mapping[str, JSONValue] | tuple[JSONValue, ...] "
    "| list[JSONValue] | None"
)
"""Any value JSON can carry (objects as mappings, arrays as tuples or lists)."""


class _OpenEnum(str, enum.Enum):  # noqa: UP042 - StrEnum's own __new__ breaks _missing_
    """A string enum that also accepts values it does not know.

    An unknown value becomes a member named ``UNKNOWN`` whose ``value`` is the
    raw string; it equals no known member and compares equal to another
    unknown member only when the raw strings match.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @property
    def is_unknown(self) -> bool:
        """True when the server sent a value this SDK version does not know."""
        return self._name_ == "UNKNOWN"

    def __str__(self) -> str:
        return str(self.value)


class RunStatus(_OpenEnum):
    """The status of a run (an automation session).

    Lifecycle: NEW -> RUNNING -> (WAITING_FOR_USER_INPUT -> RUNNING)* ->
    FINISHED | FAILED. An unknown value from the server becomes an ``UNKNOWN``
    member keeping the raw string.
    """

    NEW = "NEW"
    """Created; not started yet."""
    RUNNING = "RUNNING"
    """Working through its steps."""
    WAITING_FOR_USER_INPUT = "WAITING_FOR_USER_INPUT"
    """Stopped at an input step until :meth:`~automation_sdk.Runs.submit_input` answers it."""
    FINISHED = "FINISHED"
    """Ended successfully; final."""
    FAILED = "FAILED"
    """Ended with an error, or cancelled; final."""

    @property
    def is_terminal(self) -> bool:
        """True exactly for FINISHED and FAILED: the service never changes such a run."""
        return self in _TERMINAL_RUN


class StepStatus(_OpenEnum):
    """The status of one step within a run; the same values as :class:`RunStatus`."""

    NEW = "NEW"
    """Reached, not started yet."""
    RUNNING = "RUNNING"
    """In progress."""
    WAITING_FOR_USER_INPUT = "WAITING_FOR_USER_INPUT"
    """An input step waiting for its answer."""
    FINISHED = "FINISHED"
    """Done; its ``result`` is set. Final."""
    FAILED = "FAILED"
    """Failed; its ``error`` is set. Final."""

    @property
    def is_terminal(self) -> bool:
        """True exactly for FINISHED and FAILED."""
        return self in _TERMINAL_STEP


class StepType(_OpenEnum):
    """The kind of a step. Only START is printed in the reference; the set is open."""

    START = "START"
    """The entry of the graph; its prompt and result are empty."""
    LLM = "LLM"
    """Sends its rendered prompt to a model; the answer is its result."""
    INPUT = "INPUT"
    """Shows its prompt to a person; the answer is its result."""
    TOOL = "TOOL"
    """Calls a tool."""


_TERMINAL_RUN = frozenset({RunStatus.FINISHED, RunStatus.FAILED})
_TERMINAL_STEP = frozenset({StepStatus.FINISHED, StepStatus.FAILED})


@frozen(kw_only=True)
class Step(_JSONModel):
    """A step of an automation's graph (its definition, shared by every run)."""

    id: uuid.UUID
    """The step's id; stable across runs of the same automation version."""
    name: str
    """The step's name, used in templates as ``${name.result}``."""
    step_type: StepType
    """START, LLM, INPUT, ... (an open enum)."""
    prompt_template: Mapping[str, JSONValue] = field(factory=dict)
    """The template, an object tagged by ``type``; every key is kept."""
    created_at: datetime | None = None
    """When the step was created (timezone-aware)."""
    updated_at: datetime | None = None
    """When the step was last changed (timezone-aware)."""


@frozen(kw_only=True)
class StepEdge(_JSONModel):
    """An edge of an automation's graph: from one step to the next."""

    id: uuid.UUID | None = None
    """The edge's id."""
    source_step_id: uuid.UUID
    """The step the edge leaves."""
    target_step_id: uuid.UUID
    """The step the edge enters."""
    label: str = ""
    """A free label."""


@frozen(kw_only=True)
class AutomationVersion(_JSONModel):
    """A version of an automation: its steps and the edges between them."""

    id: uuid.UUID
    """The version's id."""
    automation_id: uuid.UUID | None = None
    """The automation this version belongs to."""
    steps: tuple[Step, ...] = ()
    """The steps, as the server lists them."""
    step_transitions: tuple[StepEdge, ...] = ()
    """The graph's edges (the API calls them step transitions)."""
    created_at: datetime | None = None
    """When the version was created."""
    updated_at: datetime | None = None
    """When the version was last changed."""


@frozen(kw_only=True)
class RunSummary(_JSONModel):
    """A run as listed inside an :class:`Automation`: no steps, cheap to read."""

    id: uuid.UUID
    """The run's id."""
    automation_id: uuid.UUID
    """The automation it runs."""
    inputs: Mapping[str, JSONValue] = field(factory=dict)
    """The inputs the run was started with."""
    error: str | None = None
    """Why the run failed, when it did."""
    status: RunStatus
    """The run's status."""
    created_at: datetime
    """When the run was created."""
    updated_at: datetime
    """When the run last changed."""


@frozen(kw_only=True)
class Automation(_JSONModel):
    """An automation: a named graph of steps that runs execute."""

    id: uuid.UUID
    """The automation's id."""
    name: str
    """Its name."""
    description: str | None = None
    """Its description."""
    organisation_id: str | None = None
    """The organisation that owns it (a string, not a UUID)."""
    current_version: AutomationVersion | None = None
    """The version new runs execute."""
    created_at: datetime | None = None
    """When it was created."""
    updated_at: datetime | None = None
    """When it last changed."""
    runs: tuple[RunSummary, ...] = ()
    """Its runs, as summaries (the API's ``sessions``; empty in a create answer)."""


@frozen(kw_only=True)
class RunStep(_JSONModel):
    """One step as reached by a run: its status, rendered prompt, result or error."""

    id: uuid.UUID
    """The id of this step *within this run*."""
    status: StepStatus
    """The step's status in this run."""
    prompt: Mapping[str, JSONValue] = field(factory=dict)
    """The rendered prompt (for an input step: what to show the user)."""
    result: str | None = None
    """The step's result, once it has one."""
    error: str | None = None
    """Why the step failed, when it did."""
    step: Step
    """The step's definition (``step.id`` is the same in every run)."""
    created_at: datetime
    """When the run reached the step."""
    updated_at: datetime
    """When this step last changed."""
    user_input: str | None = None
    """The answer given to an input step, when the server reports it."""


@frozen(kw_only=True)
class Run(_JSONModel):
    """A run (the API's *automation session*): one execution of an automation."""

    id: uuid.UUID
    """The run's id."""
    automation_id: uuid.UUID
    """The automation it runs."""
    inputs: Mapping[str, JSONValue] = field(factory=dict)
    """The inputs the run was started with."""
    error: str | None = None
    """Why the run failed, when it did."""
    status: RunStatus
    """The run's status; FINISHED and FAILED are final."""
    created_at: datetime
    """When the run was created."""
    updated_at: datetime
    """When the run last changed."""
    steps: tuple[RunStep, ...] = ()
    """The steps reached so far, in the server's order."""
    steps_count: int = 0
    """How many steps the server counts for this run."""
    current_step: RunStep | None = None
    """The step in progress; when waiting for input, its prompt is the question."""

    def step(self, name: str) -> RunStep:
        """Return the run's step whose definition is named ``name``.

        The run knows only the steps it has reached: a step further down the
        graph is not there yet. Use :meth:`find_step` to get None instead.

        Raises:
            StepNotFoundError: no step of that name in ``steps`` (a ``KeyError``
                too); the message lists the steps the run has reached.
        """
        found = self.find_step(name)
        if found is None:
            from .errors import StepNotFoundError

            known = ", ".join(repr(s.step.name) for s in self.steps) or "none yet"
            raise StepNotFoundError(
                f"run {self.id} ({self.status.value}) has no step named {name!r} "
                f"(steps reached: {known}); a step appears once the run reaches it: "
                "check the name, or use run.find_step(name) to get None",
                name=name,
                known=tuple(s.step.name for s in self.steps),
            )
        return found

    def find_step(self, name: str) -> RunStep | None:
        """Return the run's step whose definition is named ``name``, or None if not reached."""
        for run_step in self.steps:
            if run_step.step.name == name:
                return run_step
        return None


def _spec_id(value: uuid.UUID | str | None) -> uuid.UUID:
    if value is None:
        return uuid.uuid4()
    if isinstance(value, uuid.UUID):
        return value
    from ._ids import to_uuid

    return to_uuid(value, "StepSpec.id")


def _type_name(value: object) -> str:
    """``value`` for a message about its type: ``None``, ``int 5``."""
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _spec_name(_: object, __: Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        raise InvalidArgumentError(
            f"StepSpec: name must be a non-empty string such as 'summarise', got {shown}"
        )


def _spec_step_type(spec: StepSpec, _: Attribute[StepType | str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        raise InvalidArgumentError(
            f"StepSpec {spec.name!r}: step_type must be a StepType or its name as a string "
            f"('START', 'LLM', 'INPUT', ...), got {shown}"
        )


def _spec_prompt(spec: StepSpec, _: Attribute[Mapping[str, JSONValue]], value: object) -> None:
    where = f"StepSpec {spec.name!r}"
    if not isinstance(value, Mapping):
        # The most natural mistake: the prompt's text where its object belongs.
        text = value if isinstance(value, str) and len(value) <= 60 else "..."
        shown = f"the string {_short(value)}" if isinstance(value, str) else _type_name(value)
        raise InvalidArgumentError(
            f"{where}: prompt_template must be a mapping tagged by its type, such as "
            f'prompt_template={{"type": "text", "text": "{text}"}}, got {shown}'
        )
    if value and not isinstance(value.get("type"), str):
        raise InvalidArgumentError(
            f'{where}: prompt_template needs a "type" key holding a string, such as '
            f'prompt_template={{"type": "text", "text": "..."}}, got the keys '
            f"{', '.join(repr(k) for k in list(value)[:5])}"
        )
    to_json(value, f"{where}: prompt_template")


def _short(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57] + "...")


@frozen
class StepSpec(_JSONModel):
    """A step to create with :meth:`~automation_sdk.Automations.create`.

    Args:
        name: The step's name (unique within the automation).
        step_type: START, LLM, INPUT, ... as a :class:`StepType` or a string.
        prompt_template: The template, an object tagged by ``type``, e.g.
            ``{"type": "text", "text": "Summarise ${INPUTS.ticket}"}``;
            empty for a START step.
        id: The step's id; a new UUID when omitted.

    Raises:
        InvalidArgumentError: a field of the wrong form (a name that is not a
            string, a prompt given as a plain string, a value JSON cannot
            carry); checked when the spec is built.
    """

    name: str = field(validator=_spec_name)
    step_type: StepType | str = field(validator=_spec_step_type)
    prompt_template: Mapping[str, JSONValue] = field(factory=dict, validator=_spec_prompt)
    id: uuid.UUID = field(default=None, converter=_spec_id)


def _edge_end(_: object, attribute: Attribute[str | uuid.UUID], value: object) -> None:
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and value.strip()):
        return
    shown = repr(value) if isinstance(value, str) else _type_name(value)
    raise InvalidArgumentError(
        f"EdgeSpec: {attribute.name} must name a StepSpec by its name (a string) or its id "
        f"(a uuid.UUID), e.g. EdgeSpec('start', 'summarise'), got {shown}"
    )


def _edge_label(_: object, __: Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"EdgeSpec: label must be a string, got {_type_name(value)}")


@frozen
class EdgeSpec(_JSONModel):
    """An edge to create: ``source`` and ``target`` name a :class:`StepSpec` by name or id.

    Raises:
        InvalidArgumentError: an end that is neither a string nor a UUID, or a
            label that is not a string; checked when the edge is built.
    """

    source: str | uuid.UUID = field(validator=_edge_end)
    """The step the edge leaves: a :class:`StepSpec`'s name or id."""
    target: str | uuid.UUID = field(validator=_edge_end)
    """The step the edge enters: a :class:`StepSpec`'s name or id."""
    label: str = field(default="", validator=_edge_label)
    """A free label."""
