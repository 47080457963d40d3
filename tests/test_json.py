"""Models and events to JSON and back: ``to_dict``/``to_json``, ``from_dict``/``from_json``."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automation_sdk import (
    Automation,
    AutomationVersion,
    EdgeSpec,
    InvalidArgumentError,
    Run,
    RunStatus,
    RunStep,
    RunSummary,
    RunTransition,
    Step,
    StepEdge,
    StepSpec,
    StepStatus,
    StepTransition,
    StepType,
    ValidationDetail,
    event_from_dict,
    event_from_json,
)
from payloads import TS, automation_json, run_json, run_step_json

# -- strategies -------------------------------------------------------------------------------

ZONES = [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]
aware = st.datetimes(timezones=st.sampled_from(ZONES))
maybe_aware = st.none() | aware
text = st.text(max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(text, json_values, max_size=3)


def open_enum(cls: Any) -> st.SearchStrategy[Any]:
    """Known members, and unknown values the server might send."""
    return st.sampled_from(list(cls)) | st.sampled_from(["PAUSED", "", "x y"]).map(cls)


steps = st.builds(
    Step,
    id=st.uuids(),
    name=text,
    step_type=open_enum(StepType),
    prompt_template=json_objects,
    created_at=maybe_aware,
    updated_at=maybe_aware,
)
step_edges = st.builds(
    StepEdge,
    id=st.none() | st.uuids(),
    source_step_id=st.uuids(),
    target_step_id=st.uuids(),
    label=text,
)
versions = st.builds(
    AutomationVersion,
    id=st.uuids(),
    automation_id=st.none() | st.uuids(),
    steps=st.lists(steps, max_size=2).map(tuple),
    step_transitions=st.lists(step_edges, max_size=2).map(tuple),
    created_at=maybe_aware,
    updated_at=maybe_aware,
)
summaries = st.builds(
    RunSummary,
    id=st.uuids(),
    automation_id=st.uuids(),
    inputs=json_objects,
    error=st.none() | text,
    status=open_enum(RunStatus),
    created_at=aware,
    updated_at=aware,
)
automations = st.builds(
    Automation,
    id=st.uuids(),
    name=text,
    description=st.none() | text,
    organisation_id=st.none() | text,
    current_version=st.none() | versions,
    created_at=maybe_aware,
    updated_at=maybe_aware,
    runs=st.lists(summaries, max_size=2).map(tuple),
)
run_steps = st.builds(
    RunStep,
    id=st.uuids(),
    status=open_enum(StepStatus),
    prompt=json_objects,
    result=st.none() | text,
    error=st.none() | text,
    step=steps,
    created_at=aware,
    updated_at=aware,
    user_input=st.none() | text,
)
runs = st.builds(
    Run,
    id=st.uuids(),
    automation_id=st.uuids(),
    inputs=json_objects,
    error=st.none() | text,
    status=open_enum(RunStatus),
    created_at=aware,
    updated_at=aware,
    steps=st.lists(run_steps, max_size=2).map(tuple),
    steps_count=st.integers(min_value=0),
    current_step=st.none() | run_steps,
)
names = text.filter(str.strip)  # specs refuse a blank name or reference
step_specs = st.builds(
    StepSpec,
    name=names,
    step_type=st.sampled_from(list(StepType)) | st.sampled_from(["LLM", "START", "CUSTOM"]),
    prompt_template=st.just({}) | json_objects.map(lambda d: {**d, "type": "text"}),
    id=st.uuids(),
)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# A reference is a step's name or its id; a name that reads as a UUID is read back as one.
step_refs = names.filter(lambda s: not _is_uuid(s)) | st.uuids()
edge_specs = st.builds(EdgeSpec, source=step_refs, target=step_refs, label=text)
step_transitions = st.builds(
    StepTransition,
    run_id=st.uuids(),
    step_id=st.uuids(),
    step_name=text,
    step_type=open_enum(StepType),
    previous=st.none() | open_enum(StepStatus),
    status=open_enum(StepStatus),
    step=run_steps,
    observed_at=aware,
)
run_transitions = st.builds(
    RunTransition,
    run_id=st.uuids(),
    previous=st.none() | open_enum(RunStatus),
    status=open_enum(RunStatus),
    run=runs,
    observed_at=aware,
)

validation_details = st.builds(
    ValidationDetail,
    loc=st.lists(text | st.integers(), max_size=3).map(tuple),
    msg=text,
    type=text,
)

MODELS = [
    (Step, steps),
    (StepEdge, step_edges),
    (AutomationVersion, versions),
    (RunSummary, summaries),
    (Automation, automations),
    (RunStep, run_steps),
    (Run, runs),
    (StepSpec, step_specs),
    (EdgeSpec, edge_specs),
    (StepTransition, step_transitions),
    (RunTransition, run_transitions),
    (ValidationDetail, validation_details),
]


def assert_plain_json(value: object) -> None:
    """Only the types json.loads gives back: no enum member, UUID, datetime or tuple."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "strategy"), MODELS, ids=[cls.__name__ for cls, _ in MODELS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_model_and_event_comes_back_equal(cls: Any, strategy: Any, data: Any) -> None:
    """from_dict(to_dict()) and from_json(to_json()) give back an equal object, for every model."""
    obj = data.draw(strategy)
    as_dict = obj.to_dict()
    assert_plain_json(as_dict)
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert cls.from_dict(as_dict) == obj
    assert cls.from_json(obj.to_json()) == obj
    assert cls.from_json(obj.to_json(indent=2).encode()) == obj
    if cls in (StepTransition, RunTransition):
        assert event_from_dict(as_dict) == obj
        assert event_from_json(obj.to_json()) == obj


def test_run_to_dict_is_the_api_shape() -> None:
    """A run read from the API gives back the API's JSON: same keys, strings for ids and times."""
    body = run_json("FINISHED", [run_step_json()])
    run = Run.from_dict(body)
    data = run.to_dict()
    assert set(body) <= set(data)
    assert data["id"] == body["id"] and data["status"] == "FINISHED"
    assert Run.from_dict(data) == run
    assert isinstance(data["created_at"], str)
    assert datetime.fromisoformat(data["created_at"]) == datetime.fromisoformat(TS)
    assert data["steps"][0]["step"]["step_type"] == "START"


def test_automation_runs_are_sessions_in_json() -> None:
    """Automation.runs is written and read as the API's "sessions"."""
    automation = Automation.from_dict(automation_json(sessions=[]))
    data = automation.to_dict()
    assert "sessions" in data and "runs" not in data
    assert Automation.from_dict(data) == automation


def test_events_carry_their_type_first() -> None:
    """An event's JSON starts with a "type" naming its kind, which event_from_dict dispatches on."""
    run = Run.from_dict(run_json("RUNNING", [run_step_json()]))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    step_event = StepTransition(
        run_id=run.id,
        step_id=run.steps[0].step.id,
        step_name="start",
        step_type=StepType.START,
        previous=None,
        status=StepStatus.FINISHED,
        step=run.steps[0],
        observed_at=now,
    )
    run_event = RunTransition(
        run_id=run.id, previous=None, status=RunStatus.RUNNING, run=run, observed_at=now
    )
    assert next(iter(step_event.to_dict())) == "type"
    assert step_event.to_dict()["type"] == "step_transition"
    assert run_event.to_dict()["type"] == "run_transition"
    assert run_event.to_dict()["observed_at"] == "2026-01-01T00:00:00Z"
    assert isinstance(event_from_dict(run_event.to_dict()), RunTransition)
    without_type = {k: v for k, v in step_event.to_dict().items() if k != "type"}
    assert StepTransition.from_dict(without_type) == step_event


def test_naive_datetimes_are_read_back_as_utc() -> None:
    """A naive timestamp is written without an offset and read back as UTC, as the API's are."""
    body = run_json("RUNNING")
    run = Run.from_dict(body)
    naive = run.to_dict() | {"created_at": "2026-11-29T10:00:00"}
    assert Run.from_dict(naive).created_at == datetime(2026, 11, 29, 10, tzinfo=UTC)


def test_any_mapping_is_accepted_and_inputs_become_plain_json() -> None:
    """from_dict takes any Mapping; tuples and mappings in inputs come out as lists and dicts."""
    run = Run.from_dict(MappingProxyType(run_json("RUNNING")))
    odd = Run(
        id=run.id,
        automation_id=run.automation_id,
        status=run.status,
        created_at=run.created_at,
        updated_at=run.updated_at,
        inputs={"tags": ("a", "b"), "meta": MappingProxyType({"n": 1})},
    )
    assert odd.to_dict()["inputs"] == {"tags": ["a", "b"], "meta": {"n": 1}}
    assert_plain_json(odd.to_dict())


def test_from_dict_copies_what_the_caller_keeps() -> None:
    """Changing the dict a model was read from, afterwards, changes nothing in the model."""
    data = run_json("RUNNING", [run_step_json()])
    run = Run.from_dict(data)
    data["inputs"]["ticket"] = "changed"
    data["steps"][0]["prompt"]["text"] = "changed"
    assert run.inputs == {"ticket": "T-1"}
    assert run.steps[0].prompt["text"] == ""


# -- errors -----------------------------------------------------------------------------------


def test_a_bad_dict_raises_invalid_argument_naming_each_field_path() -> None:
    """A wrong value or a missing field raises InvalidArgumentError with the field's path."""
    data = Run.from_dict(run_json("RUNNING", [run_step_json()])).to_dict()
    data["steps"][0]["status"] = 7  # type: ignore[index]
    del data["created_at"]
    with pytest.raises(InvalidArgumentError) as caught:
        Run.from_dict(data)
    message = str(caught.value)
    assert message.startswith("Run.from_dict(): the data does not have the expected shape: ")
    assert "steps[0].status: expected a StepStatus string, got int 7" in message
    assert "created_at: required field missing" in message
    assert "Pass what to_dict() or to_json() returned" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "Run.from_json(): the text is not JSON"),
        ("[1, 2]", "expected a JSON object, got [1, 2]"),
        (b'"a string"', "expected a JSON object, got 'a string'"),
        (3, "Run.from_json() takes a JSON string or bytes, got int"),
    ],
)
def test_from_json_refuses_what_is_not_a_json_object(text: Any, expected: str) -> None:
    """Not JSON, not an object, or not text at all: InvalidArgumentError saying which."""
    with pytest.raises(InvalidArgumentError) as caught:
        Run.from_json(text)
    assert expected in str(caught.value)


def test_a_spec_the_constructor_refuses_is_refused_by_from_dict() -> None:
    """from_dict runs the specs' own checks: a blank name is an InvalidArgumentError too."""
    with pytest.raises(InvalidArgumentError) as caught:
        StepSpec.from_dict({"name": " ", "step_type": "LLM"})
    assert "StepSpec.from_dict()" in str(caught.value)
    assert "name must be a non-empty string" in str(caught.value)


def test_data_nested_too_deeply_is_an_invalid_argument() -> None:
    """Data nested deeper than Python recurses: InvalidArgumentError, not RecursionError."""
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5000):
        inner["a"] = {}
        inner = inner["a"]
    data = Run.from_dict(run_json("RUNNING")).to_dict() | {"inputs": deep}
    assert sys.getrecursionlimit() < 5000  # Python's default is 1000
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        Run.from_dict(data)
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        Run.from_json('{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_an_event_of_the_other_type_is_refused() -> None:
    """StepTransition.from_dict of a run_transition says which type it expected."""
    with pytest.raises(InvalidArgumentError) as caught:
        StepTransition.from_dict({"type": "run_transition"})
    assert "(the whole object): expected an event of type 'step_transition', got type" in str(
        caught.value
    )


@pytest.mark.parametrize(
    "data", [{"type": "heartbeat"}, {"status": "RUNNING"}, {"type": 3}, ["not", "a", "dict"]]
)
def test_event_from_dict_needs_a_known_type(data: Any) -> None:
    """event_from_dict refuses data without a known "type", naming the types it knows."""
    with pytest.raises(InvalidArgumentError, match="'step_transition' or 'run_transition'"):
        event_from_dict(data)


def test_event_from_json_refuses_non_objects() -> None:
    """event_from_json of JSON that is not an object, or not JSON, raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="expected a JSON object"):
        event_from_json("[]")
    with pytest.raises(InvalidArgumentError, match="not JSON"):
        event_from_json("{")
