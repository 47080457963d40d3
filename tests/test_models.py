"""Models accept what the server may add and refuse what it must not send."""

from __future__ import annotations

import attrs
import pytest

from automation_sdk import Run, RunStatus, StepStatus, StepType
from automation_sdk._convert import StructureFailed, structure, unstructure
from payloads import automation_json, run_json, run_step_json


def test_unknown_enum_values_keep_the_raw_string() -> None:
    """An unknown status becomes an UNKNOWN member with the wire value, not terminal."""
    body = run_json("PAUSED", steps=[run_step_json(status="SKIPPED", step_type="WEBHOOK")])
    run = structure(body, Run)
    assert run.status.is_unknown and run.status.name == "UNKNOWN"
    assert run.status.value == "PAUSED" and str(run.status) == "PAUSED"
    assert not run.status.is_terminal
    assert run.status != RunStatus.RUNNING
    assert run.status == RunStatus("PAUSED")
    assert run.steps[0].status.value == "SKIPPED" and not run.steps[0].status.is_terminal
    assert run.steps[0].step.step_type.value == "WEBHOOK"


def test_known_values_are_the_members() -> None:
    """A known wire value decodes to the very member, and is_terminal is exact."""
    assert RunStatus("FINISHED") is RunStatus.FINISHED
    assert StepType("START") is StepType.START
    terminal = {s for s in RunStatus if s.is_terminal}
    assert terminal == {RunStatus.FINISHED, RunStatus.FAILED}
    assert {s for s in StepStatus if s.is_terminal} == {StepStatus.FINISHED, StepStatus.FAILED}
    assert not RunStatus.FINISHED.is_unknown


def test_extra_fields_are_ignored() -> None:
    """New server fields at any depth break nothing."""
    body = run_json(cost_usd=0.12)
    body["steps"][0]["tokens"] = 42
    body["steps"][0]["step"]["model"] = "x"
    run = structure(body, Run)
    assert run.steps_count == 1


def test_prompt_keeps_every_key() -> None:
    """prompt and prompt_template stay mappings with all their keys."""
    body = run_json()
    body["steps"][0]["prompt"] = {"type": "chat", "messages": [{"role": "user"}], "x": 1}
    run = structure(body, Run)
    assert run.steps[0].prompt == {"type": "chat", "messages": [{"role": "user"}], "x": 1}


def test_models_are_frozen() -> None:
    """Models cannot be changed after they are built."""
    run = structure(run_json(), Run)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        run.status = RunStatus.FAILED  # type: ignore[misc]


def test_null_current_step_and_naive_timestamps() -> None:
    """current_step may be null; a timestamp without offset is read as UTC."""
    body = run_json("FINISHED", updated_at="2026-11-29T10:00:01")
    body["current_step"] = None
    run = structure(body, Run)
    assert run.current_step is None
    assert run.updated_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b.pop("id"), "id: required field missing"),
        (lambda b: b.update(steps_count="3"), "steps_count: expected an integer, got str '3'"),
        (lambda b: b.update(steps={"a": 1}), "steps: expected a JSON array, got dict"),
        (lambda b: b.update(created_at="yesterday"), "created_at: expected an ISO 8601 timestamp"),
        (lambda b: b.update(status=None), "status: expected a RunStatus string, got NoneType"),
        (lambda b: b["steps"][0].update(result=3), "steps[0].result: expected a string, got int 3"),
        (lambda b: b.update(inputs="x"), "inputs: expected a JSON object, got str 'x'"),
    ],
)
def test_bad_fields_are_named(mutate: object, problem: str) -> None:
    """Each wrong or missing field is reported with its path."""
    body = run_json()
    mutate(body)  # type: ignore[operator]
    with pytest.raises(StructureFailed) as info:
        structure(body, Run)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_automation_round_trips_to_the_wire_shape() -> None:
    """unstructure gives back the API's field names (``sessions``) and string values."""
    from automation_sdk import Automation

    body = automation_json(sessions=[])
    data = unstructure(structure(body, Automation))
    assert data["sessions"] == []
    assert data["current_version"]["steps"][0]["step_type"] == "START"
    assert data["created_at"] == "2026-11-29T10:00:00Z"
