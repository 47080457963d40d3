"""The run poller: events and their order, cadence, deadline, errors, cancellation, resume."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from automation_sdk import (
    AuthenticationError,
    AutomationClient,
    AutomationError,
    InvalidArgumentError,
    NotFoundError,
    ResponseValidationError,
    Run,
    RunFailedError,
    RunStatus,
    RunTransition,
    RunWatch,
    ServerError,
    StepTransition,
    StepType,
    WaitTimeoutError,
    _tracker,
)
from automation_sdk._convert import RunSteps, fingerprint
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json, run_step_json

RUN_PATH = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
RUN_URL = BASE_URL + RUN_PATH
CANCEL_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/cancel"
INPUT_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/user-input"
OTHER_RUN_ID = "0b6e2a4c-8d1f-4e3a-9c5b-7a6d5e4f3a2b"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
STEPS = {
    "start": ("11111111-1111-4111-8111-111111111111", "START"),
    "draft": ("22222222-2222-4222-8222-222222222222", "LLM"),
    "review": ("33333333-3333-4333-8333-333333333333", "INPUT"),
    "send": ("44444444-4444-4444-8444-444444444444", "TOOL"),
}


def at(seconds: float) -> str:
    """The API's timestamp ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def snap(
    status: str,
    t: float = 0,
    *,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    **steps: str,
) -> dict[str, Any]:
    """A run snapshot updated at ``t``, with ``name=STATUS`` steps in the given order."""
    errors = errors or {}
    return run_json(
        status,
        [
            run_step_json(
                STEPS[name][0],
                name,
                step_status,
                step_type=STEPS[name][1],
                error=errors.get(name),
                updated_at=at(t),
            )
            for name, step_status in steps.items()
        ],
        updated_at=at(t),
        error=error,
    )


class Reply:
    """A scripted answer other than a plain 200 with a run."""

    def __init__(self, status: int, body: object = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class Script:
    """Answers each GET of the run with the next scripted item and records when it came."""

    def __init__(
        self, mock: aioresponses, clock: FakeClock, *items: object, repeat_last: bool = False
    ) -> None:
        self.items = list(items)
        self.clock = clock
        self.repeat_last = repeat_last
        self.times: list[float] = []
        mock.get(RUN_URL, callback=self._answer, repeat=True)

    def add(self, *items: object) -> None:
        """Append answers."""
        self.items.extend(items)

    def _answer(self, url: URL, **kwargs: Any) -> CallbackResult:
        self.times.append(self.clock.monotonic())
        if not self.items:
            raise AssertionError("the run was polled after the script ended")
        item = self.items[0] if self.repeat_last and len(self.items) == 1 else self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Reply):
            if isinstance(item.body, str):
                return CallbackResult(status=item.status, body=item.body, headers=item.headers)
            return CallbackResult(status=item.status, payload=item.body, headers=item.headers)
        return CallbackResult(payload=item)


def show(event: StepTransition | RunTransition) -> str:
    """``name:PREVIOUS>STATUS``, ``-`` for a first sighting, ``run`` for the run itself."""
    name = event.step_name if isinstance(event, StepTransition) else "run"
    previous = "-" if event.previous is None else event.previous.value
    return f"{name}:{previous}>{event.status.value}"


async def shown(watch: RunWatch) -> list[str]:
    """Every remaining event of ``watch``, shown."""
    return [show(event) async for event in watch]


def sent(mock: aioresponses, method: str, url: str) -> int:
    """How many ``method url`` requests were sent."""
    return len(mock.requests.get((method, URL(url)), []))


def within_jitter(sleeps: list[float], bases: list[float]) -> bool:
    """Each sleep is its base +-10%."""
    return len(sleeps) == len(bases) and all(
        0.9 * b - 1e-9 <= s <= 1.1 * b + 1e-9 for s, b in zip(sleeps, bases, strict=True)
    )


# -- events and their order ----------------------------------------------------------------


async def test_steps_come_before_the_run_and_the_stream_ends_at_finished(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Each snapshot yields its step events in run.steps order, then the run's; FINISHED ends it."""
    Script(
        mock,
        clock,
        snap("NEW", 0),
        snap("RUNNING", 1, start="FINISHED", draft="RUNNING"),
        snap("RUNNING", 2, start="FINISHED", draft="FINISHED", send="RUNNING"),
        snap("FINISHED", 3, start="FINISHED", draft="FINISHED", send="FINISHED"),
    )
    async with client.runs.watch(AUTOMATION_ID, RUN_ID) as watch:
        assert await shown(watch) == [
            "run:->NEW",
            "start:->FINISHED",
            "draft:->RUNNING",
            "run:NEW>RUNNING",
            "draft:RUNNING>FINISHED",
            "send:->RUNNING",
            "send:RUNNING>FINISHED",
            "run:RUNNING>FINISHED",
        ]
        assert await shown(watch) == []


async def test_events_carry_the_step_definition_and_the_snapshot(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """step_id is the step definition's id; events carry the step, the run and an aware time."""
    Script(mock, clock, snap("FINISHED", 1, draft="FINISHED"))
    step_event, run_event = [e async for e in client.runs.watch(AUTOMATION_ID, RUN_ID)]
    assert isinstance(step_event, StepTransition)
    assert step_event.step_id == uuid.UUID(STEPS["draft"][0]) != step_event.step.id
    assert step_event.step_name == "draft"
    assert step_event.step_type is StepType.LLM
    assert step_event.run_id == uuid.UUID(RUN_ID)
    assert step_event.step.updated_at == T0 + timedelta(seconds=1)
    assert step_event.observed_at.tzinfo is not None
    assert isinstance(run_event, RunTransition)
    assert run_event.run.status is RunStatus.FINISHED
    assert run_event.previous is None
    assert run_event.observed_at == step_event.observed_at


async def test_skipped_intermediate_states_are_not_invented(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A run seen NEW then FINISHED yields exactly what was seen, nothing in between."""
    Script(
        mock,
        clock,
        snap("NEW", 0),
        snap("FINISHED", 5, start="FINISHED", draft="FINISHED", send="FINISHED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "run:->NEW",
        "start:->FINISHED",
        "draft:->FINISHED",
        "send:->FINISHED",
        "run:NEW>FINISHED",
    ]


async def test_many_steps_changing_in_one_poll_follow_the_servers_order(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Several step changes in one snapshot come in run.steps order, unchanged steps stay silent."""
    Script(
        mock,
        clock,
        snap("RUNNING", 0, send="NEW", start="RUNNING", review="NEW", draft="NEW"),
        snap("RUNNING", 1, send="RUNNING", start="RUNNING", review="RUNNING", draft="FAILED"),
        snap("FAILED", 2, send="RUNNING", start="RUNNING", review="RUNNING", draft="FAILED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "send:->NEW",
        "start:->RUNNING",
        "review:->NEW",
        "draft:->NEW",
        "run:->RUNNING",
        "send:NEW>RUNNING",
        "review:NEW>RUNNING",
        "draft:NEW>FAILED",
        "run:RUNNING>FAILED",
    ]


async def test_a_stale_snapshot_is_ignored(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """An answer older than the last accepted one moves nothing backwards, nor run."""
    Script(
        mock,
        clock,
        snap("RUNNING", 5, start="FINISHED", draft="FINISHED"),
        snap("NEW", 4, start="RUNNING"),  # a lagging replica
        snap("FINISHED", 6, start="FINISHED", draft="FINISHED"),
    )
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert [show(await anext(watch)) for _ in range(3)] == [
        "start:->FINISHED",
        "draft:->FINISHED",
        "run:->RUNNING",
    ]
    event = await anext(watch)
    assert show(event) == "run:RUNNING>FINISHED"
    assert watch.run is not None and watch.run.updated_at == T0 + timedelta(seconds=6)


async def test_a_stale_snapshot_does_not_replace_the_last_run(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """watch.run keeps the newest accepted snapshot when an older one comes after it."""
    script = Script(mock, clock, snap("RUNNING", 5, start="RUNNING"), snap("NEW", 1))
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID, timeout=2)
    assert watch.run is None
    with pytest.raises(WaitTimeoutError) as caught:
        async for _ in watch:
            pass
    assert len(script.times) == 2
    assert caught.value.run is watch.run
    assert watch.run is not None and watch.run.status is RunStatus.RUNNING


async def test_same_updated_at_with_new_statuses_is_accepted(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A snapshot with an equal updated_at is not stale: its changes are delivered."""
    Script(
        mock,
        clock,
        snap("RUNNING", 1, draft="RUNNING"),
        snap("RUNNING", 1, draft="FINISHED"),
        snap("FINISHED", 1, draft="FINISHED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "draft:->RUNNING",
        "run:->RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_a_step_that_disappears_yields_nothing(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A step missing from a later snapshot gives no event; when back, it is compared as before."""
    Script(
        mock,
        clock,
        snap("RUNNING", 1, start="FINISHED", draft="RUNNING"),
        snap("RUNNING", 2, start="FINISHED"),
        snap("RUNNING", 3, start="FINISHED", draft="RUNNING"),
        snap("FINISHED", 4, start="FINISHED", draft="FINISHED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "start:->FINISHED",
        "draft:->RUNNING",
        "run:->RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_a_step_visited_twice_is_reported_by_its_latest_visit(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """When a loop lists a step definition twice, its latest visit stands for it."""
    first = snap("RUNNING", 1, draft="FINISHED", review="FINISHED")
    again = run_step_json(STEPS["draft"][0], "draft", "RUNNING", step_type="LLM", updated_at=at(2))
    again["id"] = str(uuid.uuid4())
    looped = snap("RUNNING", 2, draft="FINISHED", review="FINISHED")
    looped["steps"].append(again)
    Script(mock, clock, first, looped, looped, snap("FINISHED", 3, draft="FINISHED"))
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "draft:->FINISHED",
        "review:->FINISHED",
        "run:->RUNNING",
        "draft:FINISHED>RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_unknown_statuses_are_ordinary(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Statuses this SDK does not know are yielded as UNKNOWN members and polling goes on."""
    Script(
        mock,
        clock,
        snap("PAUSED", 1, draft="THROTTLED"),
        snap("RUNNING", 2, draft="RUNNING"),
        snap("FINISHED", 3, draft="FINISHED"),
    )
    events = [e async for e in client.runs.watch(AUTOMATION_ID, RUN_ID)]
    assert [show(e) for e in events] == [
        "draft:->THROTTLED",
        "run:->PAUSED",
        "draft:THROTTLED>RUNNING",
        "run:PAUSED>RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]
    assert events[0].status.is_unknown and not events[1].status.is_terminal


async def test_waiting_for_user_input_and_back(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """WAITING_FOR_USER_INPUT is yielded like any status; after submit_input the watch goes on."""
    Script(
        mock,
        clock,
        snap("RUNNING", 1, start="FINISHED", review="RUNNING"),
        snap("WAITING_FOR_USER_INPUT", 2, start="FINISHED", review="WAITING_FOR_USER_INPUT"),
        snap("RUNNING", 3, start="FINISHED", review="FINISHED", send="RUNNING"),
        snap("FINISHED", 4, start="FINISHED", review="FINISHED", send="FINISHED"),
    )
    mock.post(INPUT_URL, payload=snap("RUNNING", 3, start="FINISHED", review="FINISHED"))
    got = []
    async with client.runs.watch(AUTOMATION_ID, RUN_ID) as watch:
        async for event in watch:
            got.append(show(event))
            match event:
                case RunTransition(status=RunStatus.WAITING_FOR_USER_INPUT):
                    await client.runs.submit_input(AUTOMATION_ID, RUN_ID, "looks good")
    assert sent(mock, "POST", INPUT_URL) == 1
    assert got == [
        "start:->FINISHED",
        "review:->RUNNING",
        "run:->RUNNING",
        "review:RUNNING>WAITING_FOR_USER_INPUT",
        "run:RUNNING>WAITING_FOR_USER_INPUT",
        "review:WAITING_FOR_USER_INPUT>FINISHED",
        "send:->RUNNING",
        "run:WAITING_FOR_USER_INPUT>RUNNING",
        "send:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_identical_answers_skip_structuring(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer equal in ids, statuses and timestamps to the last one is not structured again."""
    parsed: list[object] = []
    real_structure = RunSteps.structure

    def counting_structure(self: RunSteps, data: object) -> Any:
        parsed.append(data)
        return real_structure(self, data)

    monkeypatch.setattr(RunSteps, "structure", counting_structure)
    same = snap("RUNNING", 1, draft="RUNNING")
    Script(mock, clock, same, same, same, snap("FINISHED", 2, draft="FINISHED"))
    assert len(await shown(client.runs.watch(AUTOMATION_ID, RUN_ID))) == 4
    assert len(parsed) == 2


# -- clocks that lie ------------------------------------------------------------------------

FAR = (datetime(2099, 1, 1, tzinfo=UTC) - T0).total_seconds()  # seconds from T0 to 2099


def restamped(body: dict[str, Any], name: str, t: float) -> dict[str, Any]:
    """``body`` with the step ``name`` stamped ``t`` seconds after T0."""
    for entry in body["steps"]:
        if entry["step"]["name"] == name:
            entry["updated_at"] = at(t)
    return body


async def test_a_step_never_goes_backwards_under_an_equal_run_timestamp(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """An entry of a step older than the one delivered is ignored; the other steps move on."""
    Script(
        mock,
        clock,
        snap("RUNNING", 5, start="FINISHED", draft="FINISHED"),
        restamped(
            snap("RUNNING", 5, start="FINISHED", draft="RUNNING", review="RUNNING"), "draft", 3
        ),
        snap("FINISHED", 6, start="FINISHED", draft="FINISHED", review="FINISHED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "start:->FINISHED",
        "draft:->FINISHED",
        "run:->RUNNING",
        "review:->RUNNING",
        "review:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_a_resumed_watch_never_moves_a_step_backwards(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """After a resume, a step's entry older than the one delivered before is ignored too."""
    script = Script(mock, clock, snap("RUNNING", 5, start="FINISHED", draft="FINISHED"))
    first = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert [show(await anext(first)) for _ in range(3)] == [
        "start:->FINISHED",
        "draft:->FINISHED",
        "run:->RUNNING",
    ]
    script.add(
        restamped(snap("RUNNING", 5, start="FINISHED", draft="RUNNING"), "draft", 3),
        snap("FINISHED", 6, start="FINISHED", draft="FINISHED"),
    )
    resumed = client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=first.checkpoint())
    assert await shown(resumed) == ["run:RUNNING>FINISHED"]


async def test_the_end_of_a_run_is_taken_whatever_its_timestamp(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A FINISHED snapshot stamped before the last accepted one still ends the watch."""
    script = Script(
        mock,
        clock,
        snap("RUNNING", 5, draft="RUNNING"),
        snap("FINISHED", 4, draft="FINISHED"),  # a replica whose clock lags
        repeat_last=True,
    )
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID, timeout=60)
    assert await shown(watch) == [
        "draft:->RUNNING",
        "run:->RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]
    assert len(script.times) == 2
    assert watch.run is not None and watch.run.status is RunStatus.FINISHED


async def test_wait_returns_at_the_end_after_a_snapshot_stamped_2099(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """One snapshot from a clock in 2099 does not hide the FINISHED that follows it."""
    script = Script(
        mock,
        clock,
        snap("RUNNING", FAR, draft="RUNNING"),
        snap("FINISHED", 2, draft="FINISHED"),
        repeat_last=True,
    )
    run = await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=3600)
    assert run.status is RunStatus.FINISHED
    assert len(script.times) == 2


def follow_the_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's wall clock reads T0 plus the fake clock's time."""
    monkeypatch.setattr(_tracker, "_now", lambda: T0 + timedelta(seconds=clock.monotonic()))


async def test_the_watch_recovers_from_a_snapshot_stamped_2099(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a snapshot from 2099, true snapshots are delivered again within MAX_CLOCK_AHEAD."""
    follow_the_clock(clock, monkeypatch)
    polls: list[float] = []

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        now = clock.monotonic()
        polls.append(now)
        if len(polls) == 1:
            return CallbackResult(payload=snap("RUNNING", now, draft="RUNNING"))
        if len(polls) == 2:  # the truth, from a replica whose clock says 2099
            return CallbackResult(payload=snap("RUNNING", FAR, draft="FINISHED"))
        if now < 600:
            return CallbackResult(
                payload=snap(
                    "WAITING_FOR_USER_INPUT",
                    now - 1,
                    draft="FINISHED",
                    review="WAITING_FOR_USER_INPUT",
                )
            )
        return CallbackResult(payload=snap("FINISHED", now, draft="FINISHED", review="FINISHED"))

    mock.get(RUN_URL, callback=answer, repeat=True)
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID, interval=30, max_interval=30, timeout=3600)
    with caplog.at_level(logging.WARNING, logger="automation_sdk"):
        got = [(show(event), clock.monotonic()) async for event in watch]
    assert [shown for shown, _ in got] == [
        "draft:->RUNNING",
        "run:->RUNNING",
        "draft:RUNNING>FINISHED",
        "review:->WAITING_FOR_USER_INPUT",
        "run:RUNNING>WAITING_FOR_USER_INPUT",
        "review:WAITING_FOR_USER_INPUT>FINISHED",
        "run:WAITING_FOR_USER_INPUT>FINISHED",
    ]
    # Blind while the true snapshots are older than the 2099 one taken as "now + 5 min".
    limit = polls[1] + _tracker.MAX_CLOCK_AHEAD.total_seconds()
    waiting_at = got[3][1]
    assert limit + 1 <= waiting_at <= limit + 1 + 33
    assert sum("ahead of this machine's clock" in r.message for r in caplog.records) == 1


async def test_a_checkpoint_edited_to_2099_blinds_a_watch_for_at_most_max_clock_ahead(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resumed watch whose checkpoint says 2099 delivers again after MAX_CLOCK_AHEAD."""
    follow_the_clock(clock, monkeypatch)
    checkpoint = json.loads(client.runs.watch(AUTOMATION_ID, RUN_ID).checkpoint())
    checkpoint |= {"run_status": "RUNNING", "updated_at": "2099-01-01T00:00:00+00:00"}

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        now = clock.monotonic()
        if now < 600:
            return CallbackResult(payload=snap("RUNNING", now - 1, draft="RUNNING"))
        return CallbackResult(payload=snap("FINISHED", now, draft="FINISHED"))

    mock.get(RUN_URL, callback=answer, repeat=True)
    watch = client.runs.watch(
        AUTOMATION_ID,
        RUN_ID,
        interval=30,
        max_interval=30,
        timeout=3600,
        resume_from=json.dumps(checkpoint),
    )
    got = [(show(event), clock.monotonic()) async for event in watch]
    assert [shown for shown, _ in got] == [
        "draft:->RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]
    limit = _tracker.MAX_CLOCK_AHEAD.total_seconds()
    assert limit + 1 <= got[0][1] <= limit + 1 + 33


# -- wait() --------------------------------------------------------------------------------


async def test_wait_returns_the_final_run(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """wait() returns the FINISHED snapshot."""
    Script(mock, clock, snap("RUNNING", 1, start="RUNNING"), snap("FINISHED", 2, start="FINISHED"))
    run = await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=600)
    assert isinstance(run, Run)
    assert run.status is RunStatus.FINISHED
    assert run.updated_at == T0 + timedelta(seconds=2)


async def test_wait_on_a_run_that_already_ended_polls_once(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A run already FINISHED costs one request and no sleep."""
    script = Script(mock, clock, snap("FINISHED", 1, start="FINISHED"))
    await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert len(script.times) == 1
    assert clock.sleeps == []


async def test_wait_raises_run_failed_with_the_failing_steps_error(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A run going straight from NEW to FAILED raises RunFailedError naming the step's error."""
    Script(
        mock,
        clock,
        snap("NEW", 0),
        snap(
            "FAILED",
            1,
            error="step draft failed",
            errors={"draft": "the model refused"},
            start="FINISHED",
            draft="FAILED",
        ),
    )
    with pytest.raises(RunFailedError) as caught:
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert isinstance(caught.value, AutomationError)
    assert caught.value.run.status is RunStatus.FAILED
    message = str(caught.value)
    assert "draft" in message and "the model refused" in message and RUN_ID in message


async def test_wait_can_return_a_failed_run(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """With raise_on_failure=False the FAILED run is returned."""
    Script(mock, clock, snap("FAILED", 1, error="cancelled"))
    run = await client.runs.wait(AUTOMATION_ID, RUN_ID, raise_on_failure=False)
    assert run.status is RunStatus.FAILED and run.error == "cancelled"


async def test_run_failed_without_a_failed_step_uses_the_runs_error(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """When no step failed, the message carries the run's own error."""
    Script(mock, clock, snap("FAILED", 1, error="cancelled by a user", start="FINISHED"))
    with pytest.raises(RunFailedError, match="cancelled by a user"):
        await client.runs.wait(AUTOMATION_ID, RUN_ID)


# -- cadence ---------------------------------------------------------------------------------


async def test_cadence_grows_while_nothing_changes_and_drops_back_on_a_change(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Sleeps start at interval, grow 1.5x up to max_interval, reset on change, +-10% jitter."""
    same = snap("RUNNING", 1, draft="RUNNING")
    changed = snap("RUNNING", 2, draft="FINISHED")
    script = Script(mock, clock, *[same] * 9, changed, changed, snap("FINISHED", 3))
    assert len(await shown(client.runs.watch(AUTOMATION_ID, RUN_ID))) == 4
    bases = [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 15.0, 15.0, 1.0, 1.5]
    assert within_jitter(clock.sleeps, bases), clock.sleeps
    assert len({round(s / b, 9) for s, b in zip(clock.sleeps, bases, strict=True)}) > 1
    assert script.times[0] == 0.0  # the first poll goes out at once


async def test_cadence_follows_interval_and_max_interval(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """interval and max_interval set the first wait and the ceiling."""
    same = snap("RUNNING", 1)
    Script(mock, clock, *[same] * 5, snap("FINISHED", 2))
    await client.runs.wait(AUTOMATION_ID, RUN_ID, interval=0.2, max_interval=0.5)
    assert within_jitter(clock.sleeps, [0.2, 0.3, 0.45, 0.5, 0.5]), clock.sleeps


async def test_retry_after_on_a_successful_poll_delays_the_next_one(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A Retry-After on a 200 sets the next poll no earlier than it says, beyond max_interval."""
    script = Script(
        mock, clock, Reply(200, snap("RUNNING", 1), {"Retry-After": "40"}), snap("FINISHED", 2)
    )
    await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [40.0]
    assert script.times == [0.0, 40.0]


async def test_retry_after_never_goes_beyond_the_deadline(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A Retry-After longer than the time left ends the watch at its deadline."""
    Script(mock, clock, Reply(200, snap("RUNNING", 1), {"Retry-After": "40"}))
    with pytest.raises(WaitTimeoutError):
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=30)
    assert clock.monotonic() == 30.0


async def test_flaky_polls_are_retried_apart_from_the_cadence(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A 503, a 429 with Retry-After and a reset connection mid-watch are absorbed by retries."""
    script = Script(
        mock,
        clock,
        snap("RUNNING", 1, draft="RUNNING"),
        Reply(503, {"detail": "busy"}),
        Reply(429, {"detail": "slow down"}, {"Retry-After": "3"}),
        aiohttp.ServerDisconnectedError(),
        snap("RUNNING", 2, draft="FINISHED"),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        snap("FINISHED", 3, draft="FINISHED"),
    )
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == [
        "draft:->RUNNING",
        "run:->RUNNING",
        "draft:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]
    cadence = [clock.sleeps[0], clock.sleeps[4]]
    retries = clock.sleeps[1:4] + clock.sleeps[5:]
    assert within_jitter(cadence, [1.0, 1.0])
    assert retries == [0.5, 3.0, 2.0, 0.5]
    assert len(script.times) == 7


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ([Reply(401, {"detail": "Invalid token"})], AuthenticationError),
        ([Reply(404, {"detail": "Not found"})], NotFoundError),
        ([Reply(200, {"id": RUN_ID, "status": 7})], ResponseValidationError),
        ([Reply(200, snap("RUNNING", 2) | {"id": OTHER_RUN_ID})], ResponseValidationError),
        ([Reply(503, "<html>busy</html>")] * 4, ServerError),
    ],
    ids=["401", "404", "malformed", "another-run", "retries-exhausted"],
)
async def test_a_poll_error_propagates_with_the_checkpoint(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    answers: list[Reply],
    error: type[AutomationError],
) -> None:
    """An error the retry policy does not absorb leaves the iterator with .checkpoint; it ends."""
    Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"), *answers)
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert len([await anext(watch), await anext(watch)]) == 2
    with pytest.raises(error) as caught:
        await anext(watch)
    assert TOKEN not in str(caught.value)
    assert caught.value.checkpoint == watch.checkpoint()
    document = json.loads(caught.value.checkpoint)
    assert document["run_status"] == "RUNNING"
    assert document["steps"] == {STEPS["draft"][0]: "RUNNING"}
    assert [e async for e in watch] == []


async def test_a_closed_client_fails_the_watch_with_its_checkpoint(
    client: AutomationClient, clock: FakeClock
) -> None:
    """Watching with a closed client raises ClientClosedError, checkpoint attached."""
    await client.aclose()
    with pytest.raises(AutomationError) as caught:
        await anext(client.runs.watch(AUTOMATION_ID, RUN_ID))
    assert caught.value.checkpoint is not None


# -- the deadline ----------------------------------------------------------------------------


async def test_the_deadline_ends_the_watch_on_time(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """WaitTimeoutError comes at the deadline exactly, with the last snapshot and a checkpoint."""
    script = Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"), repeat_last=True)
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID, timeout=10)
    with pytest.raises(WaitTimeoutError) as caught:
        async for _ in watch:
            pass
    error = caught.value
    assert clock.monotonic() == 10.0
    assert all(t < 10.0 for t in script.times) and len(script.times) == 5
    assert isinstance(error, TimeoutError) and isinstance(error, AutomationError)
    assert error.run is watch.run and error.run is not None
    assert error.run.status is RunStatus.RUNNING
    assert json.loads(error.checkpoint or "")["run_status"] == "RUNNING"
    assert "10s" in str(error) and "left running" in str(error)
    assert sent(mock, "PATCH", CANCEL_URL) == 0


async def test_the_deadline_starts_at_the_first_iteration(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Time spent between watch() and the first iteration does not count."""
    Script(mock, clock, snap("RUNNING", 1), repeat_last=True)
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID, timeout=5)
    clock.advance(100)
    with pytest.raises(WaitTimeoutError):
        async for _ in watch:
            pass
    assert clock.monotonic() == 105.0


async def test_the_deadline_cuts_transport_retries_short(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """When no retry fits before the deadline, WaitTimeoutError is raised from the last failure."""
    Script(mock, clock, snap("RUNNING", 1), Reply(503, {"detail": "busy"}), repeat_last=True)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=3)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.run is not None
    assert clock.monotonic() <= 3.0


async def test_no_run_seen_before_the_deadline(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A deadline reached before any answer gives a WaitTimeoutError without a run."""
    Script(mock, clock, Reply(503, {"detail": "busy"}), repeat_last=True)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=1)
    assert caught.value.run is None
    assert json.loads(caught.value.checkpoint or "")["run_status"] is None


async def test_cancel_on_timeout_sends_one_cancel(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """With cancel_on_timeout the run is cancelled once before WaitTimeoutError."""
    Script(mock, clock, snap("RUNNING", 1), repeat_last=True)
    mock.patch(CANCEL_URL, payload=snap("FAILED", 9, error="cancelled"))
    with pytest.raises(WaitTimeoutError, match="cancel of the run was requested"):
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=4, cancel_on_timeout=True)
    assert sent(mock, "PATCH", CANCEL_URL) == 1


async def test_a_failed_cancel_is_logged_and_the_timeout_raised(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the cancel fails, a warning is logged (without the token) and the timeout raised."""
    Script(mock, clock, snap("RUNNING", 1), repeat_last=True)
    mock.patch(CANCEL_URL, status=409, payload={"detail": "run already ended"})
    with (
        caplog.at_level(logging.WARNING, logger="automation_sdk"),
        pytest.raises(WaitTimeoutError, match="cancelling the run failed"),
    ):
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=4, cancel_on_timeout=True)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "run already ended" in record.getMessage() and RUN_ID in record.getMessage()
    assert TOKEN not in caplog.text


async def test_the_cancel_is_bounded_to_five_seconds(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancel that keeps failing gives up within 5 seconds past the deadline."""
    Script(mock, clock, snap("RUNNING", 1), repeat_last=True)
    mock.patch(CANCEL_URL, status=503, headers={"Retry-After": "3"}, repeat=True)
    with caplog.at_level(logging.WARNING, logger="automation_sdk"), pytest.raises(WaitTimeoutError):
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=4, cancel_on_timeout=True)
    assert 4.0 <= clock.monotonic() <= 9.0
    assert "no answer within 5s" in caplog.text


# -- cancellation and cleanup ----------------------------------------------------------------


async def test_cancelling_the_task_mid_request_leaves_nothing_open(clock: FakeClock) -> None:
    """Cancelling the iterating task closes the in-flight response and leaves no task."""
    before = asyncio.all_tasks()
    second_poll = asyncio.Event()
    disconnected = asyncio.Event()
    polls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        if polls == 1:
            return web.json_response(snap("RUNNING", 1, draft="RUNNING"))
        second_poll.set()
        try:
            await asyncio.Event().wait()
        finally:
            disconnected.set()
        raise AssertionError("unreachable")  # pragma: no cover

    app = web.Application()
    app.router.add_get(RUN_PATH, handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        async with AutomationClient(TOKEN, base_url=f"http://{host}:{port}", clock=clock) as client:
            seen: list[str] = []

            async def consume() -> None:
                async for event in client.runs.watch(AUTOMATION_ID, RUN_ID):
                    seen.append(show(event))

            task = asyncio.create_task(consume())
            await asyncio.wait_for(second_poll.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(disconnected.wait(), 5)
            assert seen == ["draft:->RUNNING", "run:->RUNNING"]
    finally:
        await runner.cleanup()
    assert asyncio.all_tasks() == before


async def test_asyncio_timeout_around_the_loop_leaves_no_task(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """asyncio.timeout cancelling a hung poll leaves no pending task behind."""
    before = asyncio.all_tasks()
    hang = asyncio.Event()

    async def hung(url: URL, **kwargs: Any) -> CallbackResult:
        await hang.wait()
        raise AssertionError("unreachable")  # pragma: no cover

    mock.get(RUN_URL, payload=snap("RUNNING", 1))
    mock.get(RUN_URL, callback=hung)
    seen = []

    async def watch_for_a_while() -> None:
        async with asyncio.timeout(0.005):
            async for event in client.runs.watch(AUTOMATION_ID, RUN_ID):
                seen.append(event)

    with pytest.raises(TimeoutError):
        await watch_for_a_while()
    assert len(seen) == 1
    assert asyncio.all_tasks() == before


async def test_breaking_out_without_async_with_leaves_nothing_behind(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A loop that breaks holds nothing: no task, no warning when the watch is collected."""
    before = asyncio.all_tasks()
    Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"))
    async for _ in client.runs.watch(AUTOMATION_ID, RUN_ID):
        break
    gc.collect()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_aclose_is_idempotent_and_ends_the_watch(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """After aclose() (twice is fine) the watch yields nothing and sends nothing."""
    script = Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"))
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    await anext(watch)
    await watch.aclose()
    await watch.aclose()
    assert [e async for e in watch] == []
    assert len(script.times) == 1


async def test_the_watch_works_with_contextlib_aclosing(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """contextlib.aclosing closes the watch, dropping the events not yet taken."""
    Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"))
    async with contextlib.aclosing(client.runs.watch(AUTOMATION_ID, RUN_ID)) as watch:
        async for _ in watch:
            break
    assert [e async for e in watch] == []


async def test_a_watch_has_one_consumer_at_a_time(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A second task iterating while the first waits gets a RuntimeError."""
    release = asyncio.Event()

    async def slow(url: URL, **kwargs: Any) -> CallbackResult:
        await release.wait()
        return CallbackResult(payload=snap("FINISHED", 1))

    mock.get(RUN_URL, callback=slow)
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    first = asyncio.create_task(anext(watch))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one consumer"):
        await anext(watch)
    release.set()
    assert show(await first) == "run:->FINISHED"


# -- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": -1.0}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"interval": True}, "interval"),
        ({"max_interval": float("inf")}, "max_interval"),
        ({"interval": 5.0, "max_interval": 2.0}, "max_interval"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "60"}, "timeout"),
    ],
)
def test_bad_arguments_are_refused_at_once(
    client: AutomationClient, kwargs: dict[str, Any], message: str
) -> None:
    """Bad numbers raise InvalidArgumentError (a ValueError) before anything is sent."""
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        client.runs.watch(AUTOMATION_ID, RUN_ID, **kwargs)
    assert isinstance(caught.value, ValueError)


def test_bad_ids_are_refused_at_once(client: AutomationClient) -> None:
    """An id that is not a UUID is refused by watch() itself."""
    with pytest.raises(InvalidArgumentError, match="run_id"):
        client.runs.watch(AUTOMATION_ID, "../../etc")


async def test_an_infinite_timeout_means_no_deadline(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """timeout=math.inf behaves as no timeout."""
    Script(mock, clock, snap("RUNNING", 1), snap("FINISHED", 2))
    run = await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=float("inf"))
    assert run.status is RunStatus.FINISHED


def test_the_watch_exposes_its_ids_and_a_readable_repr(client: AutomationClient) -> None:
    """RunWatch says which run it follows."""
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert watch.run_id == uuid.UUID(RUN_ID)
    assert watch.automation_id == uuid.UUID(AUTOMATION_ID)
    assert RUN_ID in repr(watch) and "watching" in repr(watch)


# -- checkpoint and resume -------------------------------------------------------------------


TIMELINE = [
    snap("NEW", 0),
    snap("RUNNING", 1, start="FINISHED", draft="RUNNING"),
    snap(
        "WAITING_FOR_USER_INPUT",
        2,
        start="FINISHED",
        draft="FINISHED",
        review="WAITING_FOR_USER_INPUT",
    ),
    snap("RUNNING", 3, start="FINISHED", draft="FINISHED", review="FINISHED", send="RUNNING"),
    snap("FINISHED", 4, start="FINISHED", draft="FINISHED", review="FINISHED", send="FINISHED"),
]


class Timeline:
    """A run that moves one snapshot further at each poll; ``hold()`` keeps it still once."""

    def __init__(self, mock: aioresponses) -> None:
        self.position = 0
        self.held = False
        mock.get(RUN_URL, callback=self._answer, repeat=True)

    def hold(self) -> None:
        """The next poll sees the same snapshot as the last one (the run did not move)."""
        self.held = True

    def _answer(self, url: URL, **kwargs: Any) -> CallbackResult:
        if self.held:
            self.held = False
            self.position -= 1
        body = TIMELINE[min(self.position, len(TIMELINE) - 1)]
        self.position += 1
        return CallbackResult(payload=body)


UNINTERRUPTED = [
    "run:->NEW",
    "start:->FINISHED",
    "draft:->RUNNING",
    "run:NEW>RUNNING",
    "draft:RUNNING>FINISHED",
    "review:->WAITING_FOR_USER_INPUT",
    "run:RUNNING>WAITING_FOR_USER_INPUT",
    "review:WAITING_FOR_USER_INPUT>FINISHED",
    "send:->RUNNING",
    "run:WAITING_FOR_USER_INPUT>RUNNING",
    "send:RUNNING>FINISHED",
    "run:RUNNING>FINISHED",
]


async def test_the_timeline_uninterrupted(client: AutomationClient, mock: aioresponses) -> None:
    """The timeline the resume tests cut, watched in one go."""
    Timeline(mock)
    assert await shown(client.runs.watch(AUTOMATION_ID, RUN_ID)) == UNINTERRUPTED


@pytest.mark.parametrize("stop_after", range(1, len(UNINTERRUPTED)))
async def test_resume_delivers_every_transition_exactly_once(
    client: AutomationClient, mock: aioresponses, stop_after: int
) -> None:
    """Stopping after any event and resuming from the checkpoint loses and repeats nothing."""
    timeline = Timeline(mock)
    first: list[str] = []
    async with client.runs.watch(AUTOMATION_ID, RUN_ID) as watch:
        async for event in watch:
            first.append(show(event))
            if len(first) == stop_after:
                break
        checkpoint = watch.checkpoint()
    timeline.hold()
    rest = await shown(client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=checkpoint))
    assert first + rest == UNINTERRUPTED


async def test_resume_delivers_what_happened_meanwhile(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Transitions made while nobody watched come with the right previous status."""
    script = Script(mock, clock, snap("RUNNING", 1, start="FINISHED", draft="RUNNING"))
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert len([await anext(watch) for _ in range(3)]) == 3
    checkpoint = watch.checkpoint()
    await watch.aclose()

    script.add(
        snap("RUNNING", 0.5, start="RUNNING"),  # a stale replica first
        snap("RUNNING", 7, start="FINISHED", draft="FINISHED", send="RUNNING"),
        snap("FINISHED", 8, start="FINISHED", draft="FINISHED", send="FINISHED"),
    )
    resumed = client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=checkpoint)
    assert await shown(resumed) == [
        "draft:RUNNING>FINISHED",
        "send:->RUNNING",
        "send:RUNNING>FINISHED",
        "run:RUNNING>FINISHED",
    ]


async def test_a_finished_checkpoint_resumes_to_an_empty_stream(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A checkpoint taken after the final event resumes to nothing, without a request."""
    script = Script(mock, clock, snap("FINISHED", 1, start="FINISHED"))
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    assert len(await shown(watch)) == 2
    resumed = client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=watch.checkpoint())
    assert await shown(resumed) == []
    assert len(script.times) == 1


async def test_a_timed_out_watch_resumes_from_the_errors_checkpoint(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """WaitTimeoutError.checkpoint continues where the timed-out watch stopped."""
    script = Script(mock, clock, snap("RUNNING", 1, draft="RUNNING"), repeat_last=True)
    with pytest.raises(WaitTimeoutError) as caught:
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=2)
    script.items = [snap("RUNNING", 1, draft="RUNNING"), snap("FINISHED", 2, draft="FINISHED")]
    resumed = client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=caught.value.checkpoint)
    assert await shown(resumed) == ["draft:RUNNING>FINISHED", "run:RUNNING>FINISHED"]


async def test_a_checkpoint_of_another_run_is_refused(client: AutomationClient) -> None:
    """resume_from for another run raises InvalidArgumentError naming both runs."""
    checkpoint = client.runs.watch(AUTOMATION_ID, OTHER_RUN_ID).checkpoint()
    with pytest.raises(InvalidArgumentError) as caught:
        client.runs.watch(AUTOMATION_ID, RUN_ID, resume_from=checkpoint)
    assert OTHER_RUN_ID in str(caught.value) and RUN_ID in str(caught.value)


# -- the fast path ---------------------------------------------------------------------------


def test_the_fingerprint_covers_what_events_depend_on() -> None:
    """Answers differing in any status, id or updated_at have different fingerprints."""
    base = snap("RUNNING", 1, start="FINISHED", draft="RUNNING")
    expected = fingerprint(base)
    assert expected is not None
    assert fingerprint(json.loads(json.dumps(base))) == expected
    variants = [
        snap("WAITING_FOR_USER_INPUT", 1, start="FINISHED", draft="RUNNING"),
        snap("RUNNING", 2, start="FINISHED", draft="RUNNING"),
        snap("RUNNING", 1, start="FINISHED", draft="FINISHED"),
        snap("RUNNING", 1, draft="RUNNING", start="FINISHED"),
        snap("RUNNING", 1, start="FINISHED"),
        snap("RUNNING", 1, start="FINISHED", draft="RUNNING") | {"id": OTHER_RUN_ID},
    ]
    assert all(fingerprint(v) not in (None, expected) for v in variants)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"id": RUN_ID},
        snap("RUNNING", 1) | {"steps": "none"},
        snap("RUNNING", 1) | {"status": 3},
        snap("RUNNING", 1) | {"status": "RUN\x00NING"},
        snap("RUNNING", 1, draft="RUNNING") | {"steps": [{"id": "x", "step": []}]},
        snap("RUNNING", 1, draft="RUNNING") | {"steps": ["a step"]},
    ],
)
def test_an_odd_answer_has_no_fingerprint(data: object) -> None:
    """Anything unexpected skips the fast path, so that full validation judges it."""
    assert fingerprint(data) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_processes_forked_after_import_draw_their_own_jitter() -> None:
    """Workers forked from one parent (a pre-forking server) do not poll in lockstep.

    The watches' and monitors' jitter comes from one generator per module; each child forked
    after the SDK was imported reseeds it, as Python reseeds ``random``'s. In a fresh process,
    for os.fork() from pytest's worker, which has threads, is unsafe.
    """
    script = textwrap.dedent(
        """
        import os
        from automation_sdk import _monitor, _poller

        def draws():
            return f"{_poller._rng.random()!r} {_monitor._rng.random()!r}"

        children = []
        for _ in range(2):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write, draws().encode())
                os._exit(0)
            os.close(write)
            children.append(os.read(read, 200).decode())
            os.waitpid(pid, 0)
        print(draws())
        print(*children, sep="\\n")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    parent, *children = [line.split() for line in done.stdout.splitlines()]
    assert len(children) == 2
    for module in (0, 1):  # the poller's draw, the monitor's
        draws = {parent[module], children[0][module], children[1][module]}
        assert len(draws) == 3, done.stdout
