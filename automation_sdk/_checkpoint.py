"""A watch's checkpoint: a small versioned JSON document, and its strict reader.

A checkpoint records what a :class:`~automation_sdk.RunWatch` already
delivered, so that ``client.runs.watch(..., resume_from=checkpoint)`` in
another process delivers every later transition exactly once. It is plain
JSON (never pickle), safe to store anywhere::

    {"format": "automation_sdk.run_watch", "version": 1,
     "automation_id": "...", "run_id": "...",
     "run_status": "RUNNING", "updated_at": "2026-11-29T10:00:03.120000+00:00",
     "steps": {"<step definition id>": "FINISHED", ...},
     "step_updated_at": {"<step definition id>": "2026-11-29T10:00:02+00:00", ...}}

``run_status`` and ``steps`` hold the last status *delivered* (not merely
seen) for the run and for each step, keyed by the step definition's id;
``updated_at`` is the server time of the last accepted snapshot, and
``step_updated_at`` that of each step's entry last taken, so that a resumed
watch judges stale entries as the first one did. ``step_updated_at`` is
optional (checkpoints of SDKs before it lack it; older SDKs ignore it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from attrs import frozen

from ._models import RunStatus, StepStatus
from .errors import InvalidArgumentError

__all__ = ["FORMAT", "VERSION", "Checkpoint", "dump", "load"]

FORMAT: Final = "automation_sdk.run_watch"
VERSION: Final = 1
_HOW: Final = "pass the string that RunWatch.checkpoint() (or an error's .checkpoint) returned"


@frozen(kw_only=True)
class Checkpoint:
    """A parsed checkpoint: what a watch had delivered when it was taken."""

    automation_id: uuid.UUID
    run_id: uuid.UUID
    run_status: RunStatus | None
    updated_at: datetime | None
    steps: Mapping[uuid.UUID, StepStatus]
    step_updated_at: Mapping[uuid.UUID, datetime]


def dump(
    *,
    automation_id: uuid.UUID,
    run_id: uuid.UUID,
    run_status: RunStatus | None,
    updated_at: datetime | None,
    steps: Mapping[uuid.UUID, StepStatus],
    step_updated_at: Mapping[uuid.UUID, datetime] | None = None,
) -> str:
    """Serialise a watch's delivered state as a checkpoint (compact JSON)."""
    doc: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "automation_id": str(automation_id),
        "run_id": str(run_id),
        "run_status": None if run_status is None else run_status.value,
        "updated_at": None if updated_at is None else updated_at.isoformat(),
        "steps": {str(step_id): status.value for step_id, status in steps.items()},
    }
    if step_updated_at:
        doc["step_updated_at"] = {str(k): v.isoformat() for k, v in step_updated_at.items()}
    return json.dumps(doc, separators=(",", ":"))


def load(text: object, *, automation_id: uuid.UUID, run_id: uuid.UUID) -> Checkpoint:
    """Read a checkpoint and check that it belongs to this run.

    Args:
        text: The checkpoint, as :func:`dump` wrote it.
        automation_id: The automation of the watch being resumed.
        run_id: The run of the watch being resumed.

    Raises:
        InvalidArgumentError: (a ``ValueError``) the text is not a checkpoint,
            is of a version this SDK cannot read, or belongs to another run.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(
            f"resume_from must be a checkpoint string, got {type(text).__name__}; {_HOW}"
        )
    try:
        doc = json.loads(text)
    except RecursionError:
        raise InvalidArgumentError(
            f"resume_from is not a watch checkpoint: JSON nested too deep to read; {_HOW}"
        ) from None
    except ValueError as exc:
        # A syntax error, or an integer string longer than Python converts.
        raise InvalidArgumentError(
            f"resume_from is not a watch checkpoint: not JSON ({exc}); {_HOW}"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidArgumentError(
            f'resume_from is not a watch checkpoint (no "format": {FORMAT!r}); {_HOW}'
        )
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        raise InvalidArgumentError(
            f"checkpoint version {version!r} is not supported: this version of automation_sdk "
            f"reads version {VERSION} (was the checkpoint written by a newer one?)"
        )
    cp_run = _uuid(doc, "run_id")
    cp_automation = _uuid(doc, "automation_id")
    if cp_run != run_id:
        raise InvalidArgumentError(
            f"the checkpoint is for run {cp_run}, not run {run_id}; "
            "resume a watch with the checkpoint of the same run"
        )
    if cp_automation != automation_id:
        raise InvalidArgumentError(
            f"the checkpoint is for run {cp_run} of automation {cp_automation}, "
            f"not of automation {automation_id}"
        )
    run_status = doc.get("run_status")
    if run_status is not None and not isinstance(run_status, str):
        raise _bad("run_status", "a status string or null", run_status)
    steps = doc.get("steps")
    if not isinstance(steps, dict):
        raise _bad("steps", "an object of step id -> status", steps)
    parsed_steps: dict[uuid.UUID, StepStatus] = {}
    for key, status in steps.items():
        if not isinstance(status, str):
            raise _bad(f"steps[{key!r}]", "a status string", status)
        parsed_steps[_parse_uuid(key, f"steps key {key!r}")] = StepStatus(status)
    step_times = doc.get("step_updated_at", {})
    if not isinstance(step_times, dict):
        raise _bad("step_updated_at", "an object of step id -> timestamp", step_times)
    parsed_times: dict[uuid.UUID, datetime] = {}
    for key, at in step_times.items():
        field = f"step_updated_at[{key!r}]"
        parsed_at = _datetime(at, field)
        if parsed_at is None:
            raise _bad(field, "an ISO 8601 timestamp", at)
        parsed_times[_parse_uuid(key, f"step_updated_at key {key!r}")] = parsed_at
    return Checkpoint(
        automation_id=cp_automation,
        run_id=cp_run,
        run_status=None if run_status is None else RunStatus(run_status),
        updated_at=_datetime(doc.get("updated_at")),
        steps=parsed_steps,
        step_updated_at=parsed_times,
    )


def _bad(field: str, expected: str, got: object) -> InvalidArgumentError:
    try:
        shown = repr(got)
    except RecursionError:  # a value nested almost as deep as json.loads goes
        shown = f"a {type(got).__name__} nested too deep to show"
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return InvalidArgumentError(
        f"checkpoint field {field}: expected {expected}, got {shown}; {_HOW} unchanged"
    )


def _uuid(doc: Mapping[str, object], field: str) -> uuid.UUID:
    return _parse_uuid(doc.get(field), field)


def _parse_uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _bad(field, "a UUID string", value)


def _datetime(value: object, field: str = "updated_at") -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _bad(field, "an ISO 8601 timestamp or null", value)
