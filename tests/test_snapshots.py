"""Structuring successive snapshots of a run: reuse of unchanged steps, keys of steps, shared
definitions."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automation_sdk import ResponseValidationError, Run, RunStatus, Step, StepTransition
from automation_sdk._convert import (
    RunSteps,
    StepKeys,
    StructureFailed,
    _StepTable,
    run_head,
    structure,
)
from automation_sdk._tracker import RunTracker
from payloads import AUTOMATION_ID, RUN_ID, run_json, run_step_json

RUN_STEPS = [
    ("11111111-1111-4111-8111-111111111111", "start", "START"),
    ("22222222-2222-4222-8222-222222222222", "draft", "LLM"),
    ("33333333-3333-4333-8333-333333333333", "review", "INPUT"),
]


def body(*statuses: str) -> dict[str, Any]:
    """A run whose steps have ``statuses``, in RUN_STEPS order."""
    return run_json(
        "RUNNING",
        [
            run_step_json(step_id, name, status, step_type=kind)
            for (step_id, name, kind), status in zip(RUN_STEPS, statuses, strict=False)
        ],
    )


def test_an_unchanged_step_keeps_its_runstep_and_a_changed_one_is_new() -> None:
    """Only the step whose JSON changed is built again; the run equals a full structuring."""
    steps = RunSteps()
    first = steps.structure(body("FINISHED", "RUNNING"))
    later = body("FINISHED", "FINISHED")
    second = steps.structure(later)
    assert second.steps[0] is first.steps[0]
    assert second.steps[1] is not first.steps[1]
    assert second == structure(copy.deepcopy(later), Run)


def change(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``path`` (keys and indexes separated by dots) to ``value``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    """A mutation removing the key at the end of ``path``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return mutate


MUTATIONS = pytest.mark.parametrize(
    "mutate",
    [
        change("steps.1.result", "a new result"),  # updated_at not moved: read all the same
        change("steps.1.error", "boom"),
        change("steps.1.status", "THROTTLED"),
        change("steps.1.prompt", {"type": "text", "text": "other"}),
        drop("steps.1.prompt"),
        change("steps.1.user_input", "yes"),
        change("steps.1.created_at", "2026-11-29T09:00:00Z"),
        change("steps.1.updated_at", "2026-11-29T11:00:00Z"),  # kept as one hashed key
        change("steps.1.id", str(uuid.UUID(int=7, version=4))),
        change("steps.1.updated_at", "2026-11-29T11:00:00\x00Z"),  # no joined key: refused
        change("steps.1.step.name", "renamed"),  # same definition id and updated_at
        change("steps.1.step.prompt_template", {"type": "text", "text": "v2"}),
        change("steps.1.extra", "ignored"),
        change("status", "WAITING_FOR_USER_INPUT"),
        change("inputs", {"ticket": "T-2"}),
        change("current_step", None),
        lambda d: d["steps"].reverse(),
        lambda d: d["steps"].pop(0),
        lambda d: d["steps"].append(copy.deepcopy(d["steps"][0]) | {"id": str(uuid.uuid4())}),
    ],
)


@MUTATIONS
def test_reuse_gives_what_a_full_structuring_gives(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    """Whatever changed between two snapshots, the run equals one structured from scratch."""
    steps = RunSteps()
    first = body("FINISHED", "RUNNING", "NEW")
    steps.structure(first)
    second = copy.deepcopy(first)
    mutate(second)
    assert steps.structure(second) == structure(copy.deepcopy(second), Run)


def read(keys: StepKeys, data: dict[str, Any], *, whole: bool = False) -> list[int]:
    """Read and commit ``data``; the indexes of the entries that were built."""
    entries = keys.read(data, run_head(data), whole=whole)
    keys.commit(entries)
    return [i for i, run_step in enumerate(entries.steps) if run_step is not None]


def test_keys_build_only_the_entries_whose_status_or_stamps_changed() -> None:
    """An entry with the same id, timestamps, status and definition is not built again."""
    keys = StepKeys()
    assert read(keys, body("FINISHED", "RUNNING", "NEW")) == [0, 1, 2]
    later = body("FINISHED", "FINISHED", "NEW")
    later["steps"][0]["result"] = "a result changed under the same updated_at: no event in it"
    assert read(keys, later) == [1]
    assert read(keys, copy.deepcopy(later)) == []
    assert read(keys, later, whole=True) == [0, 1, 2]


@MUTATIONS
def test_keys_give_the_whole_run_a_full_structuring_gives(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    """Whatever changed, the run built from keyed entries equals one structured from scratch."""
    keys = StepKeys()
    first = body("FINISHED", "RUNNING", "NEW")
    read(keys, first)
    second = copy.deepcopy(first)
    mutate(second)
    entries = keys.read(second, run_head(second), whole=False)
    assert entries.run() == structure(copy.deepcopy(second), Run)


@pytest.mark.parametrize(
    "mutate",
    [
        change("steps.1.result", 12),
        change("steps.1.error", ["no"]),
        change("steps.1.prompt", "text"),
        change("steps.1.step", None),
        change("steps.1", "a step"),
    ],
)
def test_an_entry_of_a_wrong_shape_is_built_and_refused_even_unchanged(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    """Keys trust no entry whose fields have the wrong types: it is built, and fails by path."""
    keys = StepKeys()
    read(keys, body("FINISHED", "RUNNING"))
    bad = body("FINISHED", "RUNNING")
    mutate(bad)
    with pytest.raises(StructureFailed) as caught:
        keys.read(bad, run_head(bad), whole=False)
    assert any(p.startswith("steps[1]") for p in caught.value.problems), caught.value.problems


def test_the_head_of_a_run_is_validated_without_its_steps() -> None:
    """run_head() checks the run's own fields and refuses steps that are not a list."""
    head = run_head(body("FINISHED", "RUNNING"))
    assert head.steps == () and head.current_step is None and head.status is RunStatus.RUNNING
    with pytest.raises(StructureFailed, match="steps"):
        run_head(body("FINISHED") | {"steps": {"0": "not a list"}})
    with pytest.raises(StructureFailed, match="status"):
        run_head(body("FINISHED") | {"status": 3})


def test_keys_validate_a_step_in_progress_that_is_none_of_the_entries() -> None:
    """A current_step without the key of an entry is built, and refused by its path if bad."""
    keys = StepKeys()
    data = body("FINISHED", "RUNNING")
    read(keys, data)
    bad = copy.deepcopy(data)
    bad["current_step"] = copy.deepcopy(bad["current_step"]) | {"id": str(uuid.uuid4())}
    del bad["current_step"]["step"]
    with pytest.raises(StructureFailed, match=r"current_step\.step"):
        keys.read(bad, run_head(bad), whole=False)
    other = copy.deepcopy(data) | {"current_step": run_step_json(str(uuid.uuid4()), "x", "NEW")}
    entries = keys.read(other, run_head(other), whole=False)
    assert entries.run() == structure(copy.deepcopy(other), Run)


def test_keys_share_the_step_in_progress_with_its_entry() -> None:
    """The whole run built from keys has current_step as one of its steps."""
    keys = StepKeys()
    data = body("FINISHED", "RUNNING")
    run = keys.read(data, run_head(data), whole=False).run()
    assert run.current_step is run.steps[1]


def test_a_changed_step_is_validated_and_named_by_its_path() -> None:
    """A bad field in a changed step fails with the same path as a full structuring."""
    steps = RunSteps()
    steps.structure(body("FINISHED", "RUNNING"))
    bad = body("FINISHED", "FINISHED")
    bad["steps"][1]["step"]["id"] = "not-a-uuid"
    with pytest.raises(StructureFailed) as caught:
        steps.structure(bad)
    assert any(p.startswith("steps[1].step.id: expected a UUID") for p in caught.value.problems)


def test_a_bad_snapshot_does_not_spoil_the_next_one() -> None:
    """After a failure, the next good snapshot is structured as if from scratch."""
    steps = RunSteps()
    steps.structure(body("FINISHED", "RUNNING"))
    with pytest.raises(StructureFailed):
        steps.structure(body("FINISHED", "RUNNING") | {"steps": [5]})
    good = body("FINISHED", "FINISHED")
    assert steps.structure(good) == structure(copy.deepcopy(good), Run)


def test_the_step_in_progress_shares_its_runstep_with_the_steps() -> None:
    """current_step, equal to one of the steps, is that step's RunStep."""
    run = RunSteps().structure(body("FINISHED", "RUNNING"))
    assert run.current_step is run.steps[1]
    assert run.status is RunStatus.RUNNING


def test_a_shared_definition_holds_nothing_of_the_answer_it_came_from() -> None:
    """Changing an answer's JSON after structuring changes no shared Step."""
    raw = run_step_json(str(uuid.uuid4()))
    run = structure(run_json("RUNNING", [raw]), Run)
    raw["step"]["prompt_template"]["text"] = "changed"
    assert run.steps[0].step.prompt_template["text"] == ""


def test_a_definition_nested_too_deep_to_compare_is_read_all_the_same() -> None:
    """A prompt template nested deeper than comparisons go is structured, not shared."""
    step_id = str(uuid.uuid4())

    def snapshot() -> dict[str, Any]:
        deep: Any = "x"
        # Deeper than any comparison goes: Python 3.11 compares up to about 1,000 levels,
        # 3.13 (its own limit for C code) up to 10,000.
        for _ in range(20_000):
            deep = {"a": deep}
        raw = run_step_json(step_id)
        raw["step"]["prompt_template"] = raw["prompt"] = deep
        return run_json("RUNNING", [raw])

    steps = RunSteps()
    for _ in range(2):
        data = snapshot()
        run = steps.structure(data)
        assert run.steps[0].step.prompt_template is data["steps"][0]["step"]["prompt_template"]


def test_runs_of_one_version_share_their_step_definitions() -> None:
    """Two runs with equal definitions hold the very same Step objects."""
    one = structure(run_json("RUNNING", [run_step_json()]), Run)
    other = structure(run_json("RUNNING", [run_step_json()], run_id=str(uuid.uuid4())), Run)
    assert one.steps[0].step is other.steps[0].step


def test_a_definition_changed_under_the_same_timestamp_is_not_shared() -> None:
    """Equal id and updated_at but another name: a new Step with the new name."""
    first = structure(run_json("RUNNING", [run_step_json()]), Run)
    renamed = run_step_json()
    renamed["step"]["name"] = "begin"
    second = structure(run_json("RUNNING", [renamed]), Run)
    assert second.steps[0].step.name == "begin"
    assert first.steps[0].step.name == "start"


def test_the_intern_table_is_bounded() -> None:
    """Beyond its size the oldest definition goes; a changed definition is not found."""
    table = _StepTable(3)
    raws = [run_step_json(str(uuid.uuid4()), f"s{i}")["step"] for i in range(5)]
    for raw in raws:
        table.add(raw, structure(raw, Step))
    assert len(table) == 3
    assert table.find(raws[0]) is None
    assert table.find(raws[4]) is not None
    assert table.find(raws[4] | {"name": "changed"}) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: object, here: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every key or index path inside ``value``."""
    found: list[tuple[object, ...]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += [(*here, key), *paths(inner, (*here, key))]
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += [(*here, index), *paths(inner, (*here, index))]
    return found


def outcome(keep_snapshot: bool, answers: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """What a tracker in that mode makes of each answer: its events and checkpoint, or refusal."""
    tracker = RunTracker(uuid.UUID(AUTOMATION_ID), uuid.UUID(RUN_ID), keep_snapshot=keep_snapshot)
    seen: list[tuple[Any, Any]] = []
    for answer in answers:
        try:
            events = tracker.accept(copy.deepcopy(answer), status=200, method="GET", url="/run")
        except ResponseValidationError as exc:
            seen.append(("refused", exc.problems))
            continue
        shown = [
            (e.step_name if isinstance(e, StepTransition) else "run", e.previous, e.status)
            for e in events
        ]
        seen.append((shown, tracker.checkpoint()))
    return seen


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_answer_gives_the_same_in_both_modes_or_a_typed_error(data: st.DataObject) -> None:
    """Whatever fields of the answers become, both modes give the same, or refuse with a type.

    Keys read less than a kept snapshot: the fields of an entry whose key did not change (no
    event depends on them) until a whole run is built. So where a kept snapshot refuses an
    answer for such a field, keys may take it; anywhere else both give the same.
    """
    first = body("FINISHED", "RUNNING", "NEW")
    answers = [first, copy.deepcopy(first), body("FINISHED", "FINISHED", "RUNNING")]
    for _ in range(data.draw(st.integers(1, 3))):
        answer = answers[data.draw(st.integers(0, len(answers) - 1))]
        *parents, last = data.draw(st.sampled_from(paths(answer)))
        target: Any = answer
        for part in parents:
            target = target[part]
        if isinstance(target, dict) and data.draw(st.booleans()):
            del target[last]
        else:
            target[last] = data.draw(JSON_VALUES)
    kept, keys = outcome(True, answers), outcome(False, answers)
    for by_snapshot, by_keys in zip(kept, keys, strict=True):
        if by_snapshot == by_keys:
            continue
        # The first difference: a refusal by the kept snapshot alone, for a step entry's field.
        assert by_snapshot[0] == "refused" and by_keys[0] != "refused", (by_snapshot, by_keys)
        assert all(problem.startswith("steps[") for problem in by_snapshot[1]), by_snapshot
        break
