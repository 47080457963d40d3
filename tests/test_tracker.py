"""RunTracker: snapshots in, events out, without a server or a clock."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from test_poller import FAR, STEPS, T0, at, restamped, show, snap

from automation_sdk import ResponseValidationError, RunStatus, RunSummary, StepTransition
from automation_sdk._tracker import MAX_CLOCK_AHEAD, RunTracker
from automation_sdk.errors import InvalidArgumentError
from payloads import AUTOMATION_ID, RUN_ID, run_json, run_step_json

URL = "http://api.test/run"
NOW = T0 + timedelta(hours=1)  # this machine's clock, later than every snapshot below


KEEP_SNAPSHOT = True  # set per test by _both_modes


@pytest.fixture(autouse=True, params=[True, False], ids=["snapshot-kept", "keys-only"])
def _both_modes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule holds whether a tracker keeps its last snapshot (a watch) or keys (a monitor)."""
    monkeypatch.setattr(f"{__name__}.KEEP_SNAPSHOT", request.param)


def tracker(resume_from: str | None = None) -> RunTracker:
    """A tracker of the test run, in the mode of the test."""
    return RunTracker(
        uuid.UUID(AUTOMATION_ID),
        uuid.UUID(RUN_ID),
        resume_from=resume_from,
        keep_snapshot=KEEP_SNAPSHOT,
    )


def take(t: RunTracker, body: object, now: datetime = NOW) -> list[str]:
    """Accept ``body`` at ``now`` and show the events, delivering none."""
    return [show(e) for e in t.accept(body, status=200, method="GET", url=URL, observed_at=now)]


def summary(status: str, seconds: float) -> RunSummary:
    """A run summary stamped ``seconds`` after T0."""
    return RunSummary(
        id=uuid.UUID(RUN_ID),
        automation_id=uuid.UUID(AUTOMATION_ID),
        status=RunStatus(status),
        created_at=T0,
        updated_at=T0 + timedelta(seconds=seconds),
    )


def test_events_are_emitted_once_even_before_they_are_delivered() -> None:
    """accept() diffs against what it returned before, so a second call repeats nothing."""
    t = tracker()
    assert take(t, snap("RUNNING", 1, draft="RUNNING")) == ["draft:->RUNNING", "run:->RUNNING"]
    assert take(t, snap("RUNNING", 2, draft="FINISHED")) == ["draft:RUNNING>FINISHED"]
    assert take(t, snap("RUNNING", 2, draft="FINISHED")) == []


def test_the_checkpoint_records_what_was_delivered_not_what_was_emitted() -> None:
    """Only events passed to deliver() reach the checkpoint; a resume gives the rest again."""
    t = tracker()
    events = t.accept(snap("RUNNING", 1, draft="RUNNING"), status=200, method="GET", url=URL)
    t.deliver(events[0])
    checkpoint = json.loads(t.checkpoint())
    assert checkpoint["run_status"] is None
    assert checkpoint["steps"] == {STEPS["draft"][0]: "RUNNING"}
    assert t.run_status is None and not t.done
    resumed = tracker(t.checkpoint())
    assert take(resumed, snap("RUNNING", 1, draft="RUNNING")) == ["run:->RUNNING"]


def test_delivering_the_final_event_makes_the_tracker_done() -> None:
    """done turns True only when the RunTransition into FINISHED is delivered."""
    t = tracker()
    events = t.accept(snap("FINISHED", 1, draft="FINISHED"), status=200, method="GET", url=URL)
    assert t.ended and not t.done
    for event in events:
        t.deliver(event)
    assert t.done and t.run_status is RunStatus.FINISHED
    assert take(t, snap("FINISHED", 2, draft="FINISHED")) == []


def test_a_stale_snapshot_gives_nothing_and_keeps_the_last_run() -> None:
    """A live snapshot older than the mark is ignored whole."""
    t = tracker()
    take(t, snap("RUNNING", 5, draft="RUNNING"))
    first = t.run
    assert take(t, snap("NEW", 4)) == []
    assert t.run is first and t.updated_at == T0 + timedelta(seconds=5)
    assert t.status is RunStatus.RUNNING and t.snapshots == 1


def test_a_final_snapshot_is_taken_whole_whatever_its_timestamps() -> None:
    """Ends are never missed: a FINISHED snapshot stamped in the past gives every step's end."""
    t = tracker()
    take(t, snap("RUNNING", 5, start="FINISHED", draft="RUNNING"))
    final = restamped(snap("FINISHED", 3, start="FINISHED", draft="FINISHED"), "draft", 2)
    assert take(t, final) == ["draft:RUNNING>FINISHED", "run:RUNNING>FINISHED"]


def test_an_older_entry_of_one_step_keeps_that_step_only() -> None:
    """A step whose entry is older than the one taken keeps its status; others move on."""
    t = tracker()
    take(t, snap("RUNNING", 5, start="RUNNING", draft="FINISHED"))
    older = restamped(snap("RUNNING", 6, start="FINISHED", draft="RUNNING"), "draft", 4)
    assert take(t, older) == ["start:RUNNING>FINISHED"]
    assert take(t, snap("RUNNING", 7, start="FINISHED", draft="FAILED")) == [
        "draft:FINISHED>FAILED"
    ]


def test_a_later_visit_of_a_step_is_not_older() -> None:
    """A loop's new visit of a step (a new entry, later stamped) is delivered."""
    t = tracker()
    first = run_step_json(STEPS["draft"][0], "draft", "FINISHED", step_type="LLM", updated_at=at(2))
    again = run_step_json(STEPS["draft"][0], "draft", "RUNNING", step_type="LLM", updated_at=at(3))
    again["id"] = str(uuid.uuid4())
    take(t, run_json("RUNNING", [first], updated_at=at(2)))
    assert take(t, run_json("RUNNING", [first, again], updated_at=at(3))) == [
        "draft:FINISHED>RUNNING"
    ]


def test_a_timestamp_far_ahead_counts_as_the_clock_plus_max_clock_ahead() -> None:
    """After a snapshot from 2099, a snapshot later than now + MAX_CLOCK_AHEAD is taken."""
    t = tracker()
    take(t, snap("RUNNING", 1, draft="RUNNING"), now=T0 + timedelta(seconds=2))
    assert take(t, snap("RUNNING", FAR, draft="FINISHED"), now=T0 + timedelta(seconds=10)) == [
        "draft:RUNNING>FINISHED"
    ]
    assert t.updated_at == T0 + timedelta(seconds=10) + MAX_CLOCK_AHEAD
    later = T0 + timedelta(seconds=10) + MAX_CLOCK_AHEAD
    stale = snap("RUNNING", 5, draft="RUNNING")
    assert take(t, stale, now=later) == []
    fresh = snap("WAITING_FOR_USER_INPUT", (later - T0).total_seconds(), draft="FINISHED")
    assert take(t, fresh, now=later) == ["run:RUNNING>WAITING_FOR_USER_INPUT"]


def test_a_checkpoint_stamped_far_ahead_is_clamped_once() -> None:
    """A checkpoint from 2099 counts as the clock at the first snapshot plus MAX_CLOCK_AHEAD."""
    doc = json.loads(tracker().checkpoint()) | {"updated_at": "2099-01-01T00:00:00+00:00"}
    t = tracker(json.dumps(doc))
    assert take(t, snap("RUNNING", 10, draft="RUNNING"), now=T0 + timedelta(seconds=10)) == []
    assert t.updated_at == T0 + timedelta(seconds=10) + MAX_CLOCK_AHEAD
    later = T0 + timedelta(seconds=11) + MAX_CLOCK_AHEAD
    assert take(t, snap("RUNNING", (later - T0).total_seconds(), draft="RUNNING"), now=later) == [
        "draft:->RUNNING",
        "run:->RUNNING",
    ]


def test_another_run_is_refused() -> None:
    """A snapshot of another run raises ResponseValidationError naming both."""
    other = str(uuid.uuid4())
    with pytest.raises(ResponseValidationError) as caught:
        take(tracker(), run_json("RUNNING", run_id=other))
    assert other in str(caught.value) and RUN_ID in str(caught.value)


def test_a_bad_checkpoint_is_refused() -> None:
    """resume_from that is not a checkpoint raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError):
        tracker("{}")


@pytest.mark.parametrize(
    ("status", "seconds", "changed"),
    [
        ("RUNNING", 5, False),  # the same as the last snapshot
        ("RUNNING", 4, False),  # stale
        ("WAITING_FOR_USER_INPUT", 4, False),  # stale, though the status differs
        ("RUNNING", 6, True),  # newer
        ("WAITING_FOR_USER_INPUT", 5, True),  # same time, another status
        ("FINISHED", 1, True),  # an end is never stale
    ],
)
def test_summary_changed_follows_the_stale_guard(
    status: str, seconds: float, changed: bool
) -> None:
    """A summary says "fetch the run" only when a snapshot it announces would be taken."""
    t = tracker()
    assert t.summary_changed(summary(status, seconds))  # nothing seen yet
    take(t, snap("RUNNING", 5, draft="RUNNING"))
    assert t.summary_changed(summary(status, seconds)) is changed


def test_summary_changed_is_false_once_the_end_was_emitted() -> None:
    """After the final event, no summary asks for a fetch."""
    t = tracker()
    take(t, snap("FAILED", 5, draft="FAILED"))
    assert not t.summary_changed(summary("FAILED", 9))


def test_events_carry_the_time_they_were_observed() -> None:
    """observed_at passed to accept() is the events' observed_at."""
    seen = datetime(2026, 11, 29, 12, tzinfo=UTC)
    events = tracker().accept(
        snap("RUNNING", 1, draft="RUNNING"), status=200, method="GET", url=URL, observed_at=seen
    )
    assert [e.observed_at for e in events] == [seen, seen]
    assert isinstance(events[0], StepTransition)


def test_summary_changed_does_not_believe_a_clock_far_ahead() -> None:
    """After a snapshot from 2099, a summary later than now + MAX_CLOCK_AHEAD asks for a fetch."""
    t = tracker()
    take(t, snap("RUNNING", FAR, draft="RUNNING"), now=T0)
    soon = T0 + MAX_CLOCK_AHEAD
    assert not t.summary_changed(summary("RUNNING", 60), now=soon)
    later = (MAX_CLOCK_AHEAD + timedelta(seconds=1)).total_seconds()
    assert t.summary_changed(summary("RUNNING", later), now=soon)


def test_a_checkpoint_with_a_step_stamped_far_ahead_recovers() -> None:
    """A step time from 2099 in a checkpoint counts as now + MAX_CLOCK_AHEAD, once."""
    t = tracker()
    for event in t.accept(snap("RUNNING", 1, draft="RUNNING"), status=200, method="GET", url=URL):
        t.deliver(event)
    doc = json.loads(t.checkpoint())
    doc["step_updated_at"] = dict.fromkeys(doc["step_updated_at"], "2099-01-01T00:00:00+00:00")
    resumed = tracker(json.dumps(doc))
    assert take(resumed, snap("RUNNING", 2, draft="FINISHED"), now=T0) == []
    later = (MAX_CLOCK_AHEAD + timedelta(seconds=1)).total_seconds()
    assert take(
        resumed, snap("RUNNING", later, draft="FINISHED"), now=T0 + timedelta(seconds=2)
    ) == ["draft:RUNNING>FINISHED"]


def test_without_keep_snapshot_only_the_final_snapshot_is_kept() -> None:
    """A monitor's tracker holds no snapshot between polls, and the final one once it came."""
    t = tracker()
    take(t, snap("RUNNING", 1, draft="RUNNING"))
    assert (t.run is not None) is KEEP_SNAPSHOT
    assert t.status is RunStatus.RUNNING
    take(t, snap("FINISHED", 2, draft="FINISHED"))
    assert t.run is not None and t.run.status is RunStatus.FINISHED
    assert [s.status.value for s in t.run.steps] == ["FINISHED"]


def test_a_bad_answer_moves_nothing() -> None:
    """A snapshot refused for a bad step leaves the tracker as it was: the next one says all."""
    t = tracker()
    take(t, snap("RUNNING", 1, draft="RUNNING"))
    bad = snap("WAITING_FOR_USER_INPUT", 2, draft="FINISHED")
    bad["steps"][0]["step"]["id"] = "not-a-uuid"
    with pytest.raises(ResponseValidationError, match=r"steps\[0\]\.step\.id"):
        take(t, bad)
    assert t.snapshots == 1 and t.status is RunStatus.RUNNING
    assert take(t, snap("WAITING_FOR_USER_INPUT", 3, draft="FINISHED")) == [
        "draft:RUNNING>FINISHED",
        "run:RUNNING>WAITING_FOR_USER_INPUT",
    ]


def test_steps_ahead_says_a_step_was_updated_after_its_run() -> None:
    """steps_ahead is True while an entry is stamped later than the run, unchanged or not."""
    t = tracker()
    take(t, restamped(snap("RUNNING", 2, start="FINISHED", draft="RUNNING"), "draft", 5))
    assert t.steps_ahead
    # start changed, draft did not (its stamp still 5 s, later than the run's 3 s).
    later = restamped(snap("RUNNING", 3, start="FAILED", draft="RUNNING"), "draft", 5)
    assert take(t, later) == ["start:FINISHED>FAILED"]
    assert t.steps_ahead
    take(t, restamped(snap("RUNNING", 6, start="FAILED", draft="FINISHED"), "draft", 6))
    assert not t.steps_ahead


def test_a_final_snapshot_from_a_lagging_replica_moves_no_mark_back() -> None:
    """Resumed before its final event, a watch still ignores snapshots older than its mark."""
    t = tracker()
    running = snap("RUNNING", 5, start="FINISHED", draft="NEW")
    for event in t.accept(running, status=200, method="GET", url=URL, observed_at=NOW):
        t.deliver(event)
    lagging = restamped(snap("FINISHED", 1, start="FINISHED", draft="FINISHED"), "draft", 1)
    final = t.accept(lagging, status=200, method="GET", url=URL, observed_at=NOW)
    assert [show(e) for e in final] == ["draft:NEW>FINISHED", "run:RUNNING>FINISHED"]
    t.deliver(final[0])  # the consumer stops before the run's final event
    assert t.updated_at == T0 + timedelta(seconds=5)
    resumed = tracker(t.checkpoint())
    assert take(resumed, snap("RUNNING", 3, start="FINISHED", draft="NEW")) == []  # stale
    assert take(resumed, snap("FINISHED", 6, start="FINISHED", draft="FINISHED")) == [
        "run:RUNNING>FINISHED"
    ]
