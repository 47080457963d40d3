"""The monitor keeps every promise of a watch, over random histories of several runs.

A scripted server plays a random history per run (as in test_poller_property),
answers both the automation's summary and each run's detail, and fails or goes
stale at random: 503, 429, dropped connections, ``Retry-After`` on success,
snapshots and summaries older than ones already served. Whether a summary's
``updated_at`` moves on step changes is drawn too. The consumer stops at random
points and resumes every run from its checkpoint in a new monitor; a run whose
polls fail for good is added again from its checkpoint. Each run's stream must
pass the very check the per-run watch passes: every event traced to an answer,
in order, none repeated or backwards, complete up to the final status.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_poller_property import STEP_IDS, Logged, Version, at, check, histories
from yarl import URL

from automation_sdk import (
    AutomationClient,
    AutomationError,
    RetryPolicy,
    Run,
    RunStatus,
)
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, TOKEN

SUMMARY_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/"
OUTCOMES = ["ok", "ok", "ok", "ok", "stale", "stale", "503", "429", "reset", "slow"]
# Runs of the automation that nobody watches: the summary lists them all the same.
OTHERS = [uuid.UUID(int=1000 + i, version=4) for i in range(3)]


# Hypothesis seeds the jitter for each example, so that a failure replays (conftest.py).
pytestmark = pytest.mark.usefixtures("jitter_seeded_by_hypothesis")


def detail(run_id: uuid.UUID, versions: list[Version], k: int) -> dict[str, Any]:
    """Version ``k`` of a run as the API sends it, ``k`` written in inputs and prompts."""
    v = versions[k]
    return {
        "id": str(run_id),
        "automation_id": AUTOMATION_ID,
        "inputs": {"v": k},
        "error": "failed" if v.run == "FAILED" else None,
        "status": v.run,
        "created_at": at(0),
        "updated_at": at(v.ts),
        "steps": [
            {
                "id": str(uuid.uuid5(STEP_IDS[i], str(run_id))),
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
                "updated_at": at(v.ts),
            }
            for i, status in enumerate(v.steps)
        ],
        "steps_count": len(v.steps),
        "current_step": None,
    }


class Server:
    """Answers summaries and details from the histories current at the fake clock's time."""

    def __init__(
        self,
        histories: dict[uuid.UUID, list[Version]],
        clock: FakeClock,
        outcomes: list[Any],
        moves_on_steps: bool,
    ) -> None:
        self.histories = histories
        self.clock = clock
        self.outcomes = outcomes
        self.moves_on_steps = moves_on_steps
        self.newest = dict.fromkeys(histories, 0)

    def current(self, run_id: uuid.UUID, now: float) -> int:
        """The index of the run's version current at ``now``."""
        return max(i for i, v in enumerate(self.histories[run_id]) if v.time <= now)

    def fault(self) -> tuple[str, int, CallbackResult | None]:
        """The next scripted outcome, and its answer when it is a failure."""
        outcome, pick = self.outcomes.pop(0) if self.outcomes else ("ok", 0)
        if outcome == "503":
            return outcome, pick, CallbackResult(status=503, payload={"detail": "busy"})
        if outcome == "429":
            headers = {"Retry-After": "1"}
            return (
                outcome,
                pick,
                CallbackResult(status=429, payload={"detail": "slow"}, headers=headers),
            )
        if outcome == "reset":
            raise aiohttp.ServerDisconnectedError()
        return outcome, pick, None

    def entry(self, run_id: uuid.UUID, k: int) -> dict[str, Any]:
        """The run's summary entry at version ``k``."""
        versions = self.histories[run_id]
        v = versions[k]
        ts = v.ts
        if not self.moves_on_steps:
            # updated_at moves only when the run's own status does.
            start = k
            while start > 0 and versions[start - 1].run == v.run:
                start -= 1
            ts = versions[start].ts
        return {
            "id": str(run_id),
            "automation_id": AUTOMATION_ID,
            "inputs": {"v": k},
            "error": None,
            "status": v.run,
            "created_at": at(0),
            "updated_at": at(ts),
        }

    def summary(self, url: URL, **kwargs: Any) -> CallbackResult:
        """One GET of the automation."""
        outcome, pick, failed = self.fault()
        if failed is not None:
            return failed
        now = self.clock.monotonic()
        if outcome == "stale":
            now = max(0.0, now - pick % 30)  # a replica behind
        sessions = [self.entry(run_id, self.current(run_id, now)) for run_id in self.histories]
        sessions += [
            {
                "id": str(other),
                "automation_id": AUTOMATION_ID,
                "inputs": {},
                "error": None,
                "status": "FINISHED",
                "created_at": at(0),
                "updated_at": at(0),
            }
            for other in OTHERS
        ]
        body = {"id": AUTOMATION_ID, "name": "fleet", "sessions": sessions}
        headers = {"Retry-After": str(pick % 5)} if outcome == "slow" else {}
        return CallbackResult(payload=body, headers=headers)

    def run(self, run_id: uuid.UUID) -> Any:
        """The callback of one run's GET."""

        def answer(url: URL, **kwargs: Any) -> CallbackResult:
            outcome, pick, failed = self.fault()
            if failed is not None:
                return failed
            versions = self.histories[run_id]
            current = self.current(run_id, self.clock.monotonic())
            if outcome == "stale":
                newest_ts = versions[self.newest[run_id]].ts
                older = [i for i in range(current) if versions[i].ts < newest_ts]
                if older:
                    return CallbackResult(
                        payload=detail(run_id, versions, older[pick % len(older)])
                    )
            self.newest[run_id] = max(self.newest[run_id], current)
            headers = {"Retry-After": str(pick % 5)} if outcome == "slow" else {}
            return CallbackResult(payload=detail(run_id, versions, current), headers=headers)

        return answer


async def play(
    runs: dict[uuid.UUID, list[Version]],
    outcomes: list[Any],
    stops: list[int],
    strategy: str,
    moves_on_steps: bool,
    max_pending: int,
) -> tuple[dict[uuid.UUID, list[Logged]], list[Run | BaseException]]:
    """Follow every run to its end through monitors; return each run's log and the waits."""
    clock = FakeClock()
    server = Server(runs, clock, outcomes, moves_on_steps)
    logs: dict[uuid.UUID, list[Logged]] = {run_id: [] for run_id in runs}
    checkpoints: dict[uuid.UUID, str | None] = dict.fromkeys(runs)
    stops = sorted(set(stops))
    waits: list[Run | BaseException] = []
    taken = 0
    with aioresponses() as mock:
        mock.get(SUMMARY_URL, callback=server.summary, repeat=True)
        for run_id in runs:
            url = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{run_id}/"
            mock.get(url, callback=server.run(run_id), repeat=True)
        retry = RetryPolicy(attempts=3, wait_initial=0.5, wait_max=2.0, jitter=False)
        async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=retry) as client:
            for segment in range(100):
                left = [run_id for run_id in runs if not _ended(checkpoints[run_id])]
                if not left:
                    return logs, waits
                async with client.runs.monitor(
                    strategy=strategy,  # type: ignore[arg-type]
                    interval=1.0,
                    max_interval=8.0,
                    max_concurrency=2,
                    max_pending_events=max_pending,
                ) as monitor:
                    for run_id in left:
                        monitor.add(AUTOMATION_ID, run_id, resume_from=checkpoints[run_id])
                    pending = {
                        run_id: asyncio.create_task(monitor.wait(AUTOMATION_ID, run_id))
                        for run_id in left
                        if segment == 0
                    }
                    stopped = False
                    while not stopped:
                        try:
                            async for event in monitor:
                                logs[event.run_id].append((segment, event))
                                taken += 1
                                if stops and taken >= stops[0]:
                                    stops.pop(0)
                                    stopped = True
                                    break
                            else:
                                break
                        except AutomationError as exc:
                            # Failed for good: add the runs again from their checkpoints.
                            failed = exc.run_ids
                            assert failed, "an error that names no run"
                            for run_id in failed:
                                monitor.add(
                                    AUTOMATION_ID, run_id, resume_from=monitor.checkpoint(run_id)
                                )
                    if pending:
                        done = await asyncio.gather(*pending.values(), return_exceptions=True)
                        waits += done
                    for run_id in left:
                        checkpoints[run_id] = monitor.checkpoint(run_id)
    raise AssertionError("the runs never reached their ends")  # pragma: no cover


def _ended(checkpoint: str | None) -> bool:
    """Whether a checkpoint records the run's final event as delivered."""
    if checkpoint is None:
        return False
    status = json.loads(checkpoint)["run_status"]
    return status is not None and RunStatus(status).is_terminal


@settings(max_examples=40, deadline=None)
@example(  # a run failing for good while the consumer is away: its checkpoint stays readable
    runs=[[Version(0.0, 0, "NEW", ()), Version(1.0, 1, "FINISHED", ())]] * 2,
    outcomes=[("ok", 0), ("ok", 0), ("503", 0), ("503", 0), ("503", 0)],
    stops=[1],
    strategy="auto",
    moves_on_steps=False,
    max_pending=1,
)
@given(
    runs=st.lists(histories(), min_size=2, max_size=4),
    outcomes=st.lists(
        st.tuples(st.sampled_from(OUTCOMES), st.integers(0, 100)), min_size=5, max_size=80
    ),
    stops=st.lists(st.integers(1, 60), max_size=3),
    strategy=st.sampled_from(["auto", "summary", "per_run"]),
    moves_on_steps=st.booleans(),
    max_pending=st.sampled_from([1, 3, 1000]),
)
def test_random_histories_keep_every_runs_guarantees(
    runs: list[list[Version]],
    outcomes: list[Any],
    stops: list[int],
    strategy: str,
    moves_on_steps: bool,
    max_pending: int,
) -> None:
    """Random runs, faults, stale answers, resumes: each run's stream passes the watch's check."""
    histories_by_id = {uuid.UUID(int=i + 1, version=4): versions for i, versions in enumerate(runs)}

    async def main() -> tuple[dict[uuid.UUID, list[Logged]], list[Run | BaseException]]:
        # A safety net in real seconds: a hang is a bug, reported as one.
        return await asyncio.wait_for(
            play(histories_by_id, list(outcomes), stops, strategy, moves_on_steps, max_pending),
            timeout=60,
        )

    logs, waits = asyncio.run(main())
    for run_id, versions in histories_by_id.items():
        check(logs[run_id], versions)
    for outcome in waits:
        if isinstance(outcome, Run):
            versions = histories_by_id[outcome.id]
            assert outcome.status.is_terminal
            assert outcome.inputs["v"] == len(versions) - 1  # the final version
        else:
            # A run failing ends FAILED (RunFailedError), or its polls failed for good.
            assert isinstance(outcome, AutomationError), outcome
            if hasattr(outcome, "run") and isinstance(outcome.run, Run):
                assert outcome.run.status is RunStatus.FAILED
