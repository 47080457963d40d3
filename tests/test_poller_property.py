"""The watch's ordering guarantees, over random run histories and random poll timings.

A scripted server plays a random history of a run (versions that become
current at random virtual times), answers some polls with failures, with a
stale older version, or from a replica with a skewed clock (the current version
stamped in 2099, or stamped far in the past), and the consumer stops and resumes
from checkpoints at random points, some of them edited to 2099. This machine's
clock reads the server's time, and how far ahead of it a timestamp is believed
is drawn too. Every version carries its index in the run's ``inputs`` and in
each step's ``prompt``, so that each event can be traced to the answer it came from.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock as patching

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from attrs import frozen
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from automation_sdk import (
    AutomationClient,
    AutomationError,
    RetryPolicy,
    RunTransition,
    StepTransition,
    WaitTimeoutError,
    _tracker,
)
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
STEP_IDS = [uuid.UUID(int=i + 1, version=4) for i in range(4)]
STEP_STATUSES = ["NEW", "RUNNING", "WAITING_FOR_USER_INPUT", "FINISHED", "FAILED", "THROTTLED"]
LIVE_RUN_STATUSES = ["NEW", "RUNNING", "WAITING_FOR_USER_INPUT", "PAUSED"]
OUTCOMES = ["ok", "ok", "ok", "stale", "stale", "503", "429", "reset", "slow", "future", "behind"]
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


# Hypothesis seeds the jitter for each example, so that a failure replays (conftest.py).
pytestmark = pytest.mark.usefixtures("jitter_seeded_by_hypothesis")


@frozen
class Version:
    """One state of the run: when it becomes current, its updated_at, its statuses."""

    time: float
    ts: int
    run: str
    steps: tuple[str, ...]

    def statuses(self) -> dict[object, str]:
        """Status by key: each step's definition id, and "run"."""
        found: dict[object, str] = {STEP_IDS[i]: s for i, s in enumerate(self.steps)}
        found["run"] = self.run
        return found


# The strategies ``histories`` draws from, built once: a strategy made inside the loop is
# built again at each draw (those of lists are not cached), which cost as much as the test.
_CHANGES = st.lists(st.sampled_from(["run", "add", "step"]), max_size=3)
_LIVE_RUN_STATUS = st.sampled_from(LIVE_RUN_STATUSES)
_STEP_STATUS = st.sampled_from(STEP_STATUSES)
_STEP_INDEX = [st.integers(0, n - 1) for n in range(1, len(STEP_IDS) + 1)]
_GAP = st.floats(0.05, 25.0)
_TICK = st.sampled_from([0, 1, 1, 1])  # sometimes updated_at does not move
_END = st.sampled_from(["FINISHED", "FAILED"])


@st.composite
def histories(draw: st.DrawFn) -> list[Version]:
    """NEW, then random changes of the run and its steps, then FINISHED or FAILED."""
    n_steps = draw(st.integers(1, 4))
    run, steps = "NEW", []
    time, ts = 0.0, 0
    versions = [Version(0.0, 0, run, ())]
    for _ in range(draw(st.integers(0, 10))):
        for change in draw(_CHANGES):
            if change == "run":
                run = draw(_LIVE_RUN_STATUS)
            elif change == "add" and len(steps) < n_steps:
                steps.append(draw(_STEP_STATUS))
            elif change == "step" and steps:
                steps[draw(_STEP_INDEX[len(steps) - 1])] = draw(_STEP_STATUS)
        time += draw(_GAP)
        ts += draw(_TICK)
        versions.append(Version(time, ts, run, tuple(steps)))
    if draw(st.booleans()) and steps:
        steps[-1] = draw(_END)
    time += draw(_GAP)
    versions.append(Version(time, ts + 1, draw(_END), tuple(steps)))
    return versions


def at(ts: int) -> str:
    """The API's timestamp ``ts`` seconds after T0."""
    return (T0 + timedelta(seconds=ts)).isoformat().replace("+00:00", "Z")


def body(versions: list[Version], k: int, *, shift: float = 0.0) -> dict[str, Any]:
    """Version ``k`` as the API sends it, ``k`` written in inputs and prompts.

    ``shift`` moves every ``updated_at`` by that many seconds, as a replica
    whose clock is off would stamp it.
    """
    v = versions[k]
    return {
        "id": RUN_ID,
        "automation_id": AUTOMATION_ID,
        "inputs": {"v": k},
        "error": "failed" if v.run == "FAILED" else None,
        "status": v.run,
        "created_at": at(0),
        "updated_at": at(v.ts + shift),
        "steps": [
            {
                "id": str(uuid.uuid5(STEP_IDS[i], RUN_ID)),
                "status": status,
                "prompt": {"type": "text", "v": k},
                "result": None,
                "error": None,
                "step": {
                    "id": str(STEP_IDS[i]),
                    "name": f"s{i}",
                    "step_type": "LLM",
                    "prompt_template": {"type": "text"},
                },
                "created_at": at(0),
                "updated_at": at(v.ts + shift),
            }
            for i, status in enumerate(v.steps)
        ],
        "steps_count": len(v.steps),
        "current_step": None,
    }


class Server:
    """Answers each poll with the version current at the fake clock's time, or a scripted fault."""

    def __init__(self, versions: list[Version], clock: FakeClock, outcomes: list[Any]) -> None:
        self.versions = versions
        self.clock = clock
        self.outcomes = outcomes
        self.newest = 0

    def current(self) -> int:
        """The index of the version current at the fake clock's time."""
        now = self.clock.monotonic()
        return max(i for i, v in enumerate(self.versions) if v.time <= now)

    def now(self) -> datetime:
        """The server's time: the client's wall clock agrees with it."""
        return T0 + timedelta(seconds=self.versions[self.current()].ts)

    def answer(self, url: URL, **kwargs: Any) -> CallbackResult:
        """One poll."""
        current = self.current()
        outcome, pick = self.outcomes.pop(0) if self.outcomes else ("ok", 0)
        if outcome == "503":
            return CallbackResult(status=503, payload={"detail": "busy"})
        if outcome == "429":
            return CallbackResult(
                status=429, payload={"detail": "slow"}, headers={"Retry-After": "1"}
            )
        if outcome == "reset":
            raise aiohttp.ServerDisconnectedError()
        if outcome == "stale":
            newest_ts = self.versions[self.newest].ts
            older = [i for i in range(current) if self.versions[i].ts < newest_ts]
            if older:
                return CallbackResult(payload=body(self.versions, older[pick % len(older)]))
        if outcome == "behind":  # the current version, from a replica whose clock lags far
            return CallbackResult(payload=body(self.versions, current, shift=-1000.0 - pick))
        self.newest = current
        if outcome == "future":  # the current version, from a replica whose clock says 2099
            shift = (FAR_FUTURE - T0).total_seconds() + pick
            return CallbackResult(payload=body(self.versions, current, shift=shift))
        headers = {"Retry-After": str(pick % 30)} if outcome == "slow" else {}
        return CallbackResult(payload=body(self.versions, current), headers=headers)


Logged = tuple[int, StepTransition | RunTransition]


def skewed(checkpoint: str) -> str:
    """The checkpoint with its updated_at edited to 2099."""
    doc = json.loads(checkpoint)
    doc["updated_at"] = FAR_FUTURE.isoformat()
    return json.dumps(doc)


async def play(
    versions: list[Version],
    outcomes: list[Any],
    stops: list[int],
    interval: float,
    *,
    ahead: float = 300.0,
    skew_at: frozenset[int] = frozenset(),
) -> list[Logged]:
    """Watch the history to its end, stopping and resuming as told; return (segment, event)s.

    ``ahead`` is the stale guard's ``MAX_CLOCK_AHEAD`` in seconds; the
    checkpoints of the segments in ``skew_at`` are edited to 2099 before resuming.
    """
    clock = FakeClock()
    server = Server(versions, clock, outcomes)
    log: list[Logged] = []
    stops = sorted(set(stops))
    with (
        aioresponses() as mock,
        patching.patch.object(_tracker, "_now", server.now),
        patching.patch.object(_tracker, "MAX_CLOCK_AHEAD", timedelta(seconds=ahead)),
    ):
        mock.get(RUN_URL, callback=server.answer, repeat=True)
        retry = RetryPolicy(attempts=3, wait_initial=0.5, wait_max=2.0, jitter=False)
        async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=retry) as client:
            checkpoint: str | None = None
            for segment in range(200):
                watch = client.runs.watch(
                    AUTOMATION_ID,
                    RUN_ID,
                    interval=interval,
                    max_interval=interval * 8,
                    timeout=versions[-1].time + 1000,  # a watch that never ends fails
                    resume_from=checkpoint,
                )
                ended = False
                failure: AutomationError | None = None
                try:
                    async with watch:
                        async for event in watch:
                            log.append((segment, event))
                            if stops and len(log) >= stops[0]:
                                stops.pop(0)
                                break
                        else:
                            ended = True
                except AutomationError as exc:  # retries exhausted: resume from the error
                    failure = exc
                if isinstance(failure, WaitTimeoutError):
                    raise AssertionError("the watch did not end after the final version")
                if failure is not None:
                    assert failure.checkpoint == watch.checkpoint()
                    checkpoint = failure.checkpoint
                    continue
                if ended:
                    return log
                checkpoint = watch.checkpoint()
                if segment in skew_at:
                    checkpoint = skewed(checkpoint)
    raise AssertionError("the watch never reached the end")  # pragma: no cover


def check(log: list[Logged], versions: list[Version]) -> None:
    """The guarantees of the issue, on the whole (resumed) stream."""
    delivered: dict[object, str] = {}
    previous_segment, previous_v = -1, -1
    last_step_position, run_seen = -1, False
    for n, (segment, event) in enumerate(log):
        if isinstance(event, StepTransition):
            key: object = event.step_id
            v = event.step.prompt["v"]
        else:
            key = "run"
            v = event.run.inputs["v"]
        assert isinstance(v, int)
        version = versions[v]
        # Never a state the server did not report, never backwards.
        assert event.status.value == version.statuses()[key]
        assert v >= previous_v
        # One event per change: previous is what was delivered last, and differs.
        expected_previous = delivered.get(key)
        assert (event.previous.value if event.previous else None) == expected_previous
        assert event.status.value != expected_previous
        if v != previous_v:
            if segment == previous_segment:
                # The poller moved on only after delivering all of the previous snapshot.
                for k, s in versions[previous_v].statuses().items():
                    assert delivered.get(k) == s, (k, s, delivered)
            last_step_position, run_seen = -1, False
        # Step events first, in run.steps order, then the run's own.
        assert not run_seen
        if isinstance(event, StepTransition):
            position = STEP_IDS.index(event.step_id)
            assert position > last_step_position
            last_step_position = position
        else:
            run_seen = True
            if event.status.is_terminal:
                assert n == len(log) - 1, "the stream goes on after the final event"
        delivered[key] = event.status.value
        previous_segment, previous_v = segment, v
    final = log[-1][1]
    assert isinstance(final, RunTransition) and final.status.is_terminal
    assert delivered == versions[-1].statuses()


@settings(max_examples=60, deadline=None)
@given(
    versions=histories(),
    outcomes=st.lists(
        st.tuples(st.sampled_from(OUTCOMES), st.integers(0, 100)), min_size=5, max_size=60
    ),
    stops=st.lists(st.integers(1, 40), max_size=4),
    interval=st.sampled_from([0.5, 1.0, 3.0]),
    ahead=st.sampled_from([2.0, 300.0]),
    skew_at=st.frozensets(st.integers(0, 4), max_size=2),
)
def test_random_histories_keep_the_ordering_guarantees(
    versions: list[Version],
    outcomes: list[Any],
    stops: list[int],
    interval: float,
    ahead: float,
    skew_at: frozenset[int],
) -> None:
    """Random histories, faults, skewed clocks and resumes: ordered, complete, no duplicate."""
    log = asyncio.run(play(versions, list(outcomes), stops, interval, ahead=ahead, skew_at=skew_at))
    check(log, versions)
