"""The watch checkpoint: a small versioned JSON document, read strictly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from automation_sdk import AutomationClient, InvalidArgumentError, RunStatus, StepStatus
from automation_sdk._checkpoint import FORMAT, VERSION, dump, load
from payloads import AUTOMATION_ID, RUN_ID

AID = uuid.UUID(AUTOMATION_ID)
RID = uuid.UUID(RUN_ID)
STEP = uuid.UUID("22222222-2222-4222-8222-222222222222")
WHEN = datetime(2026, 11, 29, 10, 0, 3, 120000, tzinfo=UTC)


def document(**changes: object) -> str:
    """A valid checkpoint of RUN_ID, with some fields replaced."""
    doc = json.loads(
        dump(
            automation_id=AID,
            run_id=RID,
            run_status=RunStatus.RUNNING,
            updated_at=WHEN,
            steps={STEP: StepStatus.FINISHED},
        )
    )
    doc.update(changes)
    return json.dumps(doc)


def test_a_checkpoint_is_small_versioned_json() -> None:
    """The document is plain JSON with a format tag, a version, ids, statuses and updated_at."""
    doc = json.loads(document())
    assert doc == {
        "format": FORMAT,
        "version": VERSION,
        "automation_id": AUTOMATION_ID,
        "run_id": RUN_ID,
        "run_status": "RUNNING",
        "updated_at": "2026-11-29T10:00:03.120000+00:00",
        "steps": {str(STEP): "FINISHED"},
    }
    assert len(document()) < 400


def test_a_checkpoint_reads_back_what_was_written() -> None:
    """load() returns the ids, statuses (unknown ones kept) and the exact updated_at."""
    text = dump(
        automation_id=AID,
        run_id=RID,
        run_status=RunStatus("PAUSED"),
        updated_at=WHEN,
        steps={STEP: StepStatus.WAITING_FOR_USER_INPUT},
    )
    cp = load(text, automation_id=AID, run_id=RID)
    assert cp.run_status is not None and cp.run_status.is_unknown
    assert cp.run_status.value == "PAUSED"
    assert cp.updated_at == WHEN
    assert cp.steps == {STEP: StepStatus.WAITING_FOR_USER_INPUT}
    assert cp.step_updated_at == {}


def test_the_time_of_each_steps_entry_reads_back() -> None:
    """step_updated_at round-trips; a checkpoint without it (older SDKs) reads as empty."""
    text = dump(
        automation_id=AID,
        run_id=RID,
        run_status=RunStatus.RUNNING,
        updated_at=WHEN,
        steps={STEP: StepStatus.FINISHED},
        step_updated_at={STEP: WHEN},
    )
    assert load(text, automation_id=AID, run_id=RID).step_updated_at == {STEP: WHEN}
    assert "step_updated_at" not in json.loads(document())


def test_a_fresh_watch_checkpoints_nothing_delivered(client: AutomationClient) -> None:
    """Before any event the checkpoint has no status and no updated_at, and resumes fine."""
    checkpoint = client.runs.watch(AUTOMATION_ID, RUN_ID).checkpoint()
    doc = json.loads(checkpoint)
    assert (doc["run_status"], doc["updated_at"], doc["steps"]) == (None, None, {})
    client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=checkpoint)


def test_another_run_is_refused_naming_both() -> None:
    """A checkpoint of another run raises InvalidArgumentError naming both run ids."""
    other = uuid.uuid4()
    with pytest.raises(InvalidArgumentError) as caught:
        load(document(), automation_id=AID, run_id=other)
    assert isinstance(caught.value, ValueError)
    assert RUN_ID in str(caught.value) and str(other) in str(caught.value)


def test_another_automation_is_refused() -> None:
    """A checkpoint whose automation differs is refused too."""
    other = uuid.uuid4()
    with pytest.raises(InvalidArgumentError, match=str(other)):
        load(document(), automation_id=other, run_id=RID)


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_an_unknown_version_is_refused(version: object) -> None:
    """Only version 1 is read; anything else says which version was found."""
    with pytest.raises(InvalidArgumentError, match="version"):
        load(document(version=version), automation_id=AID, run_id=RID)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a watch checkpoint"),
        ('{"version": 1}', "not a watch checkpoint"),
        (document(run_id="nope"), "run_id"),
        (document(automation_id=3), "automation_id"),
        (document(run_status=7), "run_status"),
        (document(steps=["FINISHED"]), "steps"),
        (document(steps={"x": "FINISHED"}), "steps key"),
        (document(steps={str(STEP): 1}), "steps"),
        (document(updated_at="yesterday"), "updated_at"),
        (document(step_updated_at=[WHEN.isoformat()]), "step_updated_at"),
        (document(step_updated_at={"x": WHEN.isoformat()}), "step_updated_at key"),
        (document(step_updated_at={str(STEP): None}), "step_updated_at"),
        (document(step_updated_at={str(STEP): "soon"}), "step_updated_at"),
    ],
)
def test_a_malformed_checkpoint_is_refused_clearly(text: str, message: str) -> None:
    """Anything but a checkpoint raises InvalidArgumentError saying what is wrong."""
    with pytest.raises(InvalidArgumentError, match=message):
        load(text, automation_id=AID, run_id=RID)


def test_a_checkpoint_must_be_a_string() -> None:
    """bytes or a dict are refused with a hint to pass the string back unchanged."""
    with pytest.raises(InvalidArgumentError, match="checkpoint string"):
        load(document().encode(), automation_id=AID, run_id=RID)


def test_watch_refuses_a_bad_checkpoint_at_once(client: AutomationClient) -> None:
    """client.runs.watch(resume_from=...) checks the checkpoint before anything is sent."""
    with pytest.raises(InvalidArgumentError, match="version 9"):
        client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=document(version=9))


def test_a_naive_updated_at_is_read_as_utc() -> None:
    """A timestamp without an offset is taken as UTC, like the API's."""
    cp = load(document(updated_at="2026-11-29T10:00:03"), automation_id=AID, run_id=RID)
    assert cp.updated_at == datetime(2026, 11, 29, 10, 0, 3, tzinfo=UTC)
