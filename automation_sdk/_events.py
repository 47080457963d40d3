"""What a watch yields: one event per status change of a step or of the run.

A :class:`~automation_sdk.RunWatch` compares each snapshot of a run with what
it already delivered and yields, in order, a :class:`StepTransition` for each
step whose status changed (in the order of ``run.steps``), then a
:class:`RunTransition` if the run's own status changed.

As JSON (``event.to_dict()``), an event is an object whose ``"type"`` is
``"step_transition"`` or ``"run_transition"``, followed by its fields;
:func:`event_from_dict` reads either back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeAlias

from attrs import frozen

from ._json_model import _JSONModel
from ._models import Run, RunStatus, RunStep, StepStatus, StepType

__all__ = ["RunTransition", "StepTransition", "WatchEvent"]


@frozen(kw_only=True)
class StepTransition(_JSONModel):
    """A step of the run changed status (or was seen for the first time).

    Match it by keyword::

        case StepTransition(step_name=name, previous=prev, status=status): ...
    """

    run_id: uuid.UUID
    """The run the step belongs to."""
    step_id: uuid.UUID
    """The step *definition's* id (``step.step.id``): the same in every run of the automation."""
    step_name: str
    """The step's name, as in templates (``${name.result}``)."""
    step_type: StepType
    """START, LLM, INPUT, ... (an open enum)."""
    previous: StepStatus | None
    """The status delivered before for this step, or None the first time it is seen."""
    status: StepStatus
    """The status the server reported."""
    step: RunStep
    """The step as the snapshot reported it (prompt, result, error)."""
    observed_at: datetime
    """When the SDK received the snapshot (UTC); the server's time is ``step.updated_at``."""


@frozen(kw_only=True)
class RunTransition(_JSONModel):
    """The run changed status; the first snapshot always gives one, from ``previous=None``.

    A watch ends right after the :class:`RunTransition` into FINISHED or FAILED.
    """

    run_id: uuid.UUID
    """The run's id."""
    previous: RunStatus | None
    """The status delivered before, or None for the first snapshot."""
    status: RunStatus
    """The status the server reported."""
    run: Run
    """The snapshot that reported it."""
    observed_at: datetime
    """When the SDK received the snapshot (UTC); the server's time is ``run.updated_at``."""


WatchEvent: TypeAlias = StepTransition | RunTransition
"""Anything a :class:`~automation_sdk.RunWatch` yields."""
