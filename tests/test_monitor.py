"""The fleet monitor against the emulator: events, waits, the polling plan, backpressure, leaks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from automation_sdk import (
    AuthenticationError,
    Automation,
    AutomationClient,
    ClientClosedError,
    EdgeSpec,
    InvalidArgumentError,
    NotFoundError,
    ResponseValidationError,
    RetryPolicy,
    Run,
    RunFailedError,
    RunMonitor,
    RunStatus,
    RunTransition,
    StepSpec,
    StepStatus,
    StepTransition,
    WaitTimeoutError,
    WatchEvent,
    _tracker,
)
from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock
from payloads import (
    AUTOMATION_ID,
    BASE_URL,
    RUN_ID,
    START_ID,
    STEP2_ID,
    TS,
    run_json,
    run_step_json,
)
from payloads import TOKEN as CLIENT_TOKEN

TOKEN = "monitor-token"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
NO_JITTER = RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False)
SUMMARY = "GET /automations/{automation_id}/"
DETAIL = "GET /automations/{automation_id}/sessions/{session_id}/"
Event = StepTransition | RunTransition


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on the fake clock: two-second steps, seeded."""
    async with Emulator(token=TOKEN, clock=clock, step_duration=2.0, seed=3, epoch=EPOCH) as e:
        yield e


@pytest.fixture
async def sdk(emu: Emulator, clock: FakeClock) -> AsyncIterator[AutomationClient]:
    """A client of the emulator on the same fake clock."""
    async with AutomationClient(TOKEN, base_url=emu.url, clock=clock, retry=NO_JITTER) as c:
        yield c


async def chain(client: AutomationClient, steps: int = 3, *, ask: bool = False) -> Automation:
    """An automation START -> s1 -> ... -> sN (the last one an INPUT step when ``ask``)."""
    specs = [StepSpec("start", "START")]
    for i in range(1, steps + 1):
        kind = "INPUT" if ask and i == steps else "LLM"
        specs.append(StepSpec(f"s{i}", kind, {"type": "text", "text": f"part {i}"}))
    edges = [EdgeSpec(a.name, b.name) for a, b in itertools.pairwise(specs)]
    return await client.automations.create(name="chain", steps=specs, edges=edges)


async def start(client: AutomationClient, automation: Automation, n: int) -> list[Run]:
    """``n`` new runs of ``automation``."""
    return [await client.runs.create(automation.id) for _ in range(n)]


def key(event: Event) -> str:
    """``step name`` or ``run``."""
    return event.step_name if isinstance(event, StepTransition) else "run"


def check_runs(events: list[Event], emu: Emulator) -> dict[uuid.UUID, list[Event]]:
    """Per run: previous is what came before, nothing repeats or goes back, the end comes last.

    Each run's statuses, key by key, follow the order of the emulator's own history.
    """
    by_run: dict[uuid.UUID, list[Event]] = {}
    for event in events:
        by_run.setdefault(event.run_id, []).append(event)
    for run_id, run_events in by_run.items():
        history: dict[str, list[str]] = {}
        for t in emu.history(run_id):
            history.setdefault(t.step_name or "run", []).append(t.status)
        delivered: dict[str, str | None] = {}
        positions: dict[str, int] = {}
        for n, event in enumerate(run_events):
            k = key(event)
            previous = None if event.previous is None else event.previous.value
            assert previous == delivered.get(k), (run_id, k, previous)
            assert event.status.value != previous
            # Never backwards: a later position in the server's history of that key.
            statuses = history[k]
            position = statuses.index(event.status.value, positions.get(k, 0))
            positions[k] = position + 1
            delivered[k] = event.status.value
            if isinstance(event, RunTransition) and event.status.is_terminal:
                assert n == len(run_events) - 1, "events after the run's end"
        last = run_events[-1]
        assert isinstance(last, RunTransition) and last.status.is_terminal
    return by_run


def sdk_tasks() -> set[asyncio.Task[object]]:
    """The running tasks whose code is the SDK's (the emulator's own server tasks aside)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        where = code.co_filename if code is not None else ""
        if "automation_sdk" in where and "emulator" not in where:
            found.add(task)
    return found


async def collect(monitor: RunMonitor) -> list[Event]:
    """Every event until the iteration ends."""
    return [event async for event in monitor]


# -- the stream ----------------------------------------------------------------------------


async def test_every_run_gets_the_guarantees_of_a_watch(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """Runs of two automations: each run's events are ordered, complete and end at FINISHED."""
    first, second = await chain(sdk, 3), await chain(sdk, 2)
    runs = await start(sdk, first, 4) + await start(sdk, second, 3)
    async with sdk.runs.monitor() as monitor:
        for run in runs:
            monitor.add(run.automation_id, run.id)
        events = await collect(monitor)
    by_run = check_runs(events, emu)
    assert set(by_run) == {r.id for r in runs}
    for run_events in by_run.values():
        final = {key(e): e.status.value for e in run_events}
        assert set(final.values()) == {"FINISHED"}
        assert len(final) in (4 + 1, 3 + 1)  # every step and the run


async def test_the_stream_matches_per_run_watches(sdk: AutomationClient, emu: Emulator) -> None:
    """The final state each run reaches through the monitor is the one a watch reaches."""
    automation = await chain(sdk, 2)
    runs = await start(sdk, automation, 3)
    async with sdk.runs.monitor(strategy="summary") as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        events = check_runs(await collect(monitor), emu)
    for run in runs:
        watched = [e async for e in sdk.runs.watch(automation.id, run.id)]
        assert {key(e): e.status for e in events[run.id]} == {key(e): e.status for e in watched}


async def test_runs_added_and_removed_while_iterating(sdk: AutomationClient, emu: Emulator) -> None:
    """A run added mid-stream is followed to its end; a removed one yields nothing more."""
    automation = await chain(sdk, 3)
    first, removed, late = await start(sdk, automation, 3)
    events: list[Event] = []
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, first.id)
        monitor.add(automation.id, removed.id)
        async for event in monitor:
            events.append(event)
            if len(events) == 1:
                monitor.add(automation.id, late.id)
            if event.run_id == removed.id:
                monitor.remove(automation.id, removed.id)
        with pytest.raises(InvalidArgumentError, match="not followed"):
            monitor.checkpoint(removed.id)
    assert [e.run_id for e in events].count(removed.id) == 1
    by_run = check_runs([e for e in events if e.run_id != removed.id], emu)
    assert set(by_run) == {first.id, late.id}


async def test_resume_many_runs_from_their_checkpoints(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """Checkpoints taken mid-stream resume every run in a new monitor, nothing repeated."""
    automation = await chain(sdk, 3)
    runs = await start(sdk, automation, 5)
    events: list[Event] = []
    async with sdk.runs.monitor() as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        async for event in monitor:
            events.append(event)
            if len(events) == 12:
                break
        checkpoints = {run.id: monitor.checkpoint(run.id) for run in runs}
    async with sdk.runs.monitor() as monitor:
        for run in runs:
            monitor.add(automation.id, run.id, resume_from=checkpoints[run.id])
        events += await collect(monitor)
    by_run = check_runs(events, emu)
    assert set(by_run) == {r.id for r in runs}


async def test_a_stream_that_outlives_its_runs(sdk: AutomationClient, emu: Emulator) -> None:
    """end_when_empty=False: the iteration waits for runs added later, and ends at close."""
    automation = await chain(sdk, 1)
    first, second = await start(sdk, automation, 2)
    events: list[Event] = []
    async with sdk.runs.monitor(end_when_empty=False) as monitor:
        ended = asyncio.Queue[uuid.UUID]()

        async def consume() -> None:
            async for event in monitor:
                events.append(event)
                if event.status.is_terminal and isinstance(event, RunTransition):
                    ended.put_nowait(event.run_id)

        consumer = asyncio.create_task(consume())
        for run in (first, second):
            monitor.add(automation.id, run.id)
            assert await ended.get() == run.id
            await asyncio.sleep(0)
            assert not consumer.done()  # no run is left, and the stream goes on
    await consumer
    assert set(check_runs(events, emu)) == {first.id, second.id}


async def test_a_finished_checkpoint_adds_nothing(sdk: AutomationClient) -> None:
    """A run resumed from a checkpoint of its end yields nothing, and the stream ends at once."""
    automation = await chain(sdk, 1)
    (run,) = await start(sdk, automation, 1)
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, run.id)
        await collect(monitor)
        checkpoint = monitor.checkpoint(run.id)
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, run.id, resume_from=checkpoint)
        assert await collect(monitor) == []
        assert monitor.checkpoint(run.id) == checkpoint


async def test_runs_that_need_only_their_end(sdk: AutomationClient, emu: Emulator) -> None:
    """events=False yields only the final RunTransition, and no detail is fetched before it."""
    automation = await chain(sdk, 3)
    runs = await start(sdk, automation, 4)
    async with sdk.runs.monitor(strategy="summary") as monitor:
        for run in runs:
            monitor.add(automation.id, run.id, events=False)
        events = await collect(monitor)
    assert [(type(e), e.status) for e in events] == [(RunTransition, RunStatus.FINISHED)] * 4
    assert all(e.previous is not RunStatus.FINISHED for e in events)
    assert emu.request_counts[DETAIL] == 4  # one per run, at its end


# -- waits ---------------------------------------------------------------------------------


async def test_many_waits_share_the_polls(sdk: AutomationClient, emu: Emulator) -> None:
    """Thirty concurrent waits: one summary per tick, one detail per run, at its end."""
    automation = await chain(sdk, 2)
    runs = await start(sdk, automation, 30)
    async with sdk.runs.monitor(strategy="summary") as monitor:
        finished = await asyncio.gather(*(monitor.wait(automation.id, r.id) for r in runs))
    assert [r.status for r in finished] == [RunStatus.FINISHED] * 30
    assert [r.id for r in finished] == [r.id for r in runs]
    counts = emu.request_counts
    assert counts[DETAIL] == 30
    assert counts[SUMMARY] < 20


async def test_one_wait_timing_out_or_cancelled_leaves_the_others(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """A wait that times out and one that is cancelled do not disturb a third on the same run."""
    automation = await chain(sdk, 2)
    (run,) = await start(sdk, automation, 1)
    async with sdk.runs.monitor() as monitor:
        patient = asyncio.create_task(monitor.wait(automation.id, run.id))
        cancelled = asyncio.create_task(monitor.wait(automation.id, run.id))
        with pytest.raises(WaitTimeoutError, match=r"timeout of 0\.5s") as caught:
            await monitor.wait(automation.id, run.id, timeout=0.5)
        assert caught.value.checkpoint is not None
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (await patient).status is RunStatus.FINISHED


async def test_a_wait_raises_when_the_run_fails(sdk: AutomationClient) -> None:
    """A run cancelled on the server ends FAILED: RunFailedError, or the run when asked."""
    automation = await chain(sdk, 2, ask=True)
    (run,) = await start(sdk, automation, 1)
    async with sdk.runs.monitor() as monitor:
        waiting = asyncio.create_task(monitor.wait(automation.id, run.id))
        returned = asyncio.create_task(monitor.wait(automation.id, run.id, raise_on_failure=False))
        await asyncio.sleep(0)
        await sdk.runs.cancel(automation.id, run.id)
        with pytest.raises(RunFailedError, match="cancelled by user"):
            await waiting
        assert (await returned).status is RunStatus.FAILED


async def test_client_wait_through_a_monitor(sdk: AutomationClient, emu: Emulator) -> None:
    """client.runs.wait(monitor=...) shares the monitor's polls; its timeout can cancel the run."""
    automation = await chain(sdk, 1)
    asking = await chain(sdk, 1, ask=True)
    (run,) = await start(sdk, automation, 1)
    (stuck,) = await start(sdk, asking, 1)
    async with sdk.runs.monitor(strategy="summary") as monitor:
        done = await sdk.runs.wait(automation.id, run.id, monitor=monitor)
        with pytest.raises(WaitTimeoutError, match="a cancel of the run was requested"):
            await sdk.runs.wait(
                asking.id, stuck.id, monitor=monitor, timeout=30, cancel_on_timeout=True
            )
    assert done.status is RunStatus.FINISHED
    assert emu.request_counts[DETAIL] == 1  # the finished run, once; never the stuck one
    assert (await sdk.runs.get(asking.id, stuck.id)).status is RunStatus.FAILED


async def test_a_wait_on_an_added_run_returns_before_the_stream_ends(
    sdk: AutomationClient,
) -> None:
    """Waiting on a run that is also iterated returns its final snapshot; the stream goes on."""
    automation = await chain(sdk, 1)
    (run,) = await start(sdk, automation, 1)
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, run.id)
        final = await monitor.wait(automation.id, run.id)
        events = await collect(monitor)
    assert final.status is RunStatus.FINISHED
    assert events[-1].status is RunStatus.FINISHED


# -- the polling plan ----------------------------------------------------------------------


async def test_auto_polls_run_by_run_when_the_summary_is_too_big(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """Forty runs listed, one watched: auto fetches that run alone, and no more summaries."""
    automation = await chain(sdk, 1)
    runs = await start(sdk, automation, 40)
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, runs[0].id)
        events = [await anext(monitor)]
        assert monitor.plan(automation.id) == "per_run"
        events += await collect(monitor)
        assert monitor.plan(automation.id) is None  # nothing is watched any more
    assert events[-1].status is RunStatus.FINISHED
    assert emu.request_counts[SUMMARY] == 1  # the one that measured it


async def test_auto_keeps_the_summary_when_most_runs_are_watched(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """Every listed run watched: auto keeps the summary plan."""
    automation = await chain(sdk, 1)
    runs = await start(sdk, automation, 10)
    async with sdk.runs.monitor() as monitor:
        for run in runs:
            monitor.add(automation.id, run.id, events=False)
        await monitor.wait(automation.id, runs[0].id)
        assert monitor.plan(automation.id) == "summary"
        await collect(monitor)
    assert emu.request_counts[DETAIL] == 10


async def test_per_run_never_reads_the_summary(sdk: AutomationClient, emu: Emulator) -> None:
    """strategy="per_run" polls each run on its own, as a watch does."""
    automation = await chain(sdk, 1)
    runs = await start(sdk, automation, 3)
    async with sdk.runs.monitor(strategy="per_run") as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        assert monitor.plan(automation.id) == "per_run"
        check_runs(await collect(monitor), emu)
    assert SUMMARY not in emu.request_counts


@pytest.mark.parametrize("on_steps", [True, False])
async def test_step_events_whether_or_not_the_summary_moves_with_steps(
    clock: FakeClock, on_steps: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A summary blind to step changes is detected; the steps are then polled run by run."""
    async with (
        Emulator(
            token=TOKEN,
            clock=clock,
            step_duration=10.0,
            seed=5,
            epoch=EPOCH,
            updated_at_on_steps=on_steps,
        ) as emu,
        AutomationClient(TOKEN, base_url=emu.url, clock=clock, retry=NO_JITTER) as sdk,
    ):
        automation = await chain(sdk, 3)
        runs = await start(sdk, automation, 3)
        with caplog.at_level(logging.INFO, logger="automation_sdk"):
            async with sdk.runs.monitor(strategy="summary", max_interval=2.0) as monitor:
                for run in runs:
                    monitor.add(automation.id, run.id)
                by_run = check_runs(await collect(monitor), emu)
    fell_back = "does not move on step changes" in caplog.text
    assert fell_back is not on_steps
    for run_events in by_run.values():
        # Each step is NEW for 5 s, then RUNNING for 5 s, and polls are at most 2.2 s
        # apart: once the rule is settled (during s1), every later RUNNING is seen,
        # which a summary that does not move with steps would never have announced.
        seen = {(key(e), e.status.value) for e in run_events}
        assert {("s2", "RUNNING"), ("s3", "RUNNING")} <= seen


async def test_one_missing_automation_ends_only_its_runs(
    sdk: AutomationClient, emu: Emulator
) -> None:
    """A 404 on one automation raises once with its run ids; the other runs go on to the end."""
    automation = await chain(sdk, 2)
    runs = await start(sdk, automation, 2)
    ghost_automation, ghost_run = uuid.uuid4(), uuid.uuid4()
    events: list[Event] = []
    errors: list[NotFoundError] = []
    async with sdk.runs.monitor(strategy="summary") as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        monitor.add(ghost_automation, ghost_run)
        ghost_wait = asyncio.create_task(monitor.wait(ghost_automation, ghost_run))
        while True:
            try:
                async for event in monitor:
                    events.append(event)
                break
            except NotFoundError as exc:
                errors.append(exc)
        with pytest.raises(NotFoundError):
            await ghost_wait
        assert monitor.checkpoint(ghost_run)  # still readable after the failure
    (error,) = errors
    assert error.run_ids == (ghost_run,)
    assert error.checkpoint == monitor.checkpoint(ghost_run)
    assert set(check_runs(events, emu)) == {r.id for r in runs}


async def test_a_timed_out_wait_says_the_last_status_without_keeping_the_run(
    sdk: AutomationClient,
) -> None:
    """A monitor keeps no snapshot before the end: the error has the status, .run is None."""
    automation = await chain(sdk, 1, ask=True)
    followed, waited = await start(sdk, automation, 2)
    async with sdk.runs.monitor(strategy="summary") as monitor:
        monitor.add(automation.id, followed.id)
        seen: list[WatchEvent] = []

        async def consume() -> None:
            seen.extend([event async for event in monitor])

        consumer = asyncio.create_task(consume())
        for run in (followed, waited):
            with pytest.raises(WaitTimeoutError) as caught:
                await monitor.wait(automation.id, run.id, timeout=40)
            assert caught.value.run is None and caught.value.checkpoint is not None
            assert "WAITING_FOR_USER_INPUT" in str(caught.value)
        assert "in the automation's list of runs" in str(caught.value)  # never fetched
        monitor.remove(automation.id, followed.id)
        await consumer
    assert seen[-1].status is RunStatus.WAITING_FOR_USER_INPUT


# -- cadence -------------------------------------------------------------------------------


async def test_the_summary_cadence_backs_off_and_resets(
    sdk: AutomationClient, clock: FakeClock
) -> None:
    """A run waiting for input: polls 1 s apart while it moves, then 1.5x longer up to the max."""
    automation = await chain(sdk, 1, ask=True)
    (run,) = await start(sdk, automation, 1)
    async with sdk.runs.monitor(strategy="summary", interval=1.0, max_interval=4.0) as monitor:
        with pytest.raises(WaitTimeoutError):
            await monitor.wait(automation.id, run.id, timeout=40)
        sleeps = list(clock.sleeps)
    # The run moves NEW -> RUNNING (2 s) -> WAITING (3 s), then never again; the last
    # sleep only reaches the wait's deadline.
    *cadence, _ = sleeps
    assert all(3.2 <= s <= 4.0 for s in cadence[-5:]), sleeps  # max_interval, jittered down
    quiet = [b / a for a, b in itertools.pairwise(cadence) if 1.15 < b / a < 1.95]
    assert len(quiet) >= 3, sleeps  # 1.5x longer while nothing changes (each 0-20% shorter)
    assert any(0.8 <= s <= 1.0 for s in cadence[2:]), sleeps  # back to interval on a change


# -- backpressure --------------------------------------------------------------------------


async def test_a_slow_consumer_pauses_the_polling(
    sdk: AutomationClient, emu: Emulator, clock: FakeClock
) -> None:
    """With the queue full, no run watched for events is fetched until events are taken."""
    automation = await chain(sdk, 3)
    runs = await start(sdk, automation, 6)
    async with sdk.runs.monitor(strategy="summary", max_pending_events=3) as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        first = await anext(monitor)
        for _ in range(200):  # let the monitor run as long as it wants
            await asyncio.sleep(0)
        assert monitor.pending_events <= 3 + 3 + 1  # the bound plus one snapshot's events
        before = dict(emu.request_counts)
        clock.advance(60)
        for _ in range(200):
            await asyncio.sleep(0)
        assert emu.request_counts == before, "polled while nobody consumed"
        events = [first] + await collect(monitor)
    assert set(check_runs(events, emu)) == {r.id for r in runs}


# -- lifecycle -----------------------------------------------------------------------------


async def test_closing_leaves_no_task(sdk: AutomationClient) -> None:
    """Leaving the block mid-stream cancels every task of the monitor; pending waits fail."""
    automation = await chain(sdk, 3)
    runs = await start(sdk, automation, 5)
    async with sdk.runs.monitor() as monitor:
        for run in runs:
            monitor.add(automation.id, run.id)
        waiting = asyncio.create_task(monitor.wait(automation.id, runs[0].id))
        await anext(monitor)
    with pytest.raises(ClientClosedError, match="closed while waiting"):
        await waiting
    assert sdk_tasks() == set()
    assert [e async for e in monitor] == []
    with pytest.raises(ClientClosedError):
        monitor.add(automation.id, runs[0].id)


async def test_cancelling_the_iterating_task_leaves_nothing(sdk: AutomationClient) -> None:
    """Cancelling the task that iterates (and owns the monitor) ends every task it started."""
    automation = await chain(sdk, 3)
    runs = await start(sdk, automation, 5)
    started = asyncio.Event()

    async def consume() -> None:
        async with sdk.runs.monitor() as monitor:
            for run in runs:
                monitor.add(automation.id, run.id)
            async for _ in monitor:
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sdk_tasks() == set()


def test_no_leak_under_asyncio_debug(tmp_path: object) -> None:
    """In a fresh interpreter with PYTHONASYNCIODEBUG=1, a cancelled monitor prints nothing."""
    script = textwrap.dedent(
        """
        import asyncio, gc, warnings
        warnings.simplefilter("error")
        from automation_sdk import AutomationClient, EdgeSpec, StepSpec
        from automation_sdk.emulator import Emulator

        async def main():
            async with Emulator(token="t", step_duration=0.05) as emu:
                async with AutomationClient("t", base_url=emu.url) as client:
                    steps = [StepSpec("start", "START"), StepSpec("a", "LLM")]
                    automation = await client.automations.create(
                        name="x", steps=steps, edges=[EdgeSpec("start", "a")]
                    )
                    runs = [await client.runs.create(automation.id) for _ in range(20)]

                    async def consume():
                        async with client.runs.monitor(interval=0.01) as monitor:
                            for run in runs:
                                monitor.add(automation.id, run.id)
                            async for _ in monitor:
                                pass

                    task = asyncio.create_task(consume())
                    await asyncio.sleep(0.05)
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    for other in asyncio.all_tasks() - {asyncio.current_task()}:
                        # Only the emulator's own connection handlers may remain.
                        assert "emulator" in repr(other) or "web_protocol" in repr(other), other
            gc.collect()

        asyncio.run(main(), debug=True)
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONASYNCIODEBUG": "1", "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    noise = [
        line
        for line in done.stderr.splitlines()
        if "Executing <" not in line  # debug mode's slow-callback notices are timing, not leaks
    ]
    assert noise == [], done.stderr


async def test_a_bug_surfaces_instead_of_looping(
    sdk: AutomationClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error while polling stops the monitor: the stream and the waits raise it."""
    automation = await chain(sdk, 1)
    first, second = await start(sdk, automation, 2)

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(_tracker.RunTracker, "accept", broken)
    async with sdk.runs.monitor() as monitor:
        monitor.add(automation.id, first.id)
        waiting = asyncio.create_task(monitor.wait(automation.id, second.id))
        with pytest.raises(TypeError, match="a bug"):
            await anext(monitor)
        with pytest.raises(TypeError, match="a bug"):
            await waiting
    assert "stopped polling after an unexpected error" in caplog.text
    assert sdk_tasks() == set()


# -- arguments -----------------------------------------------------------------------------


def test_bad_arguments_are_refused(client: AutomationClient) -> None:
    """A bad strategy or number is refused when the monitor is made."""
    for kwargs in (
        {"strategy": "fast"},
        {"interval": 0},
        {"interval": 2.0, "max_interval": 1.0},
        {"max_concurrency": 0},
        {"max_pending_events": 1.5},
    ):
        with pytest.raises(InvalidArgumentError):
            client.runs.monitor(**kwargs)  # type: ignore[arg-type]


async def test_misuse_is_refused_with_a_typed_error(sdk: AutomationClient) -> None:
    """Adding a run twice, a checkpoint of an unknown run, a wait outside async with."""
    automation = await chain(sdk, 1)
    (run,) = await start(sdk, automation, 1)
    monitor = sdk.runs.monitor()
    with pytest.raises(ClientClosedError, match="async with"):
        await monitor.wait(automation.id, run.id)
    async with monitor:
        monitor.add(automation.id, run.id)
        with pytest.raises(InvalidArgumentError, match="already watched"):
            monitor.add(automation.id, run.id)
        with pytest.raises(InvalidArgumentError, match="not of automation"):
            await monitor.wait(uuid.uuid4(), run.id)
        with pytest.raises(InvalidArgumentError, match="not followed"):
            monitor.checkpoint(uuid.uuid4())
        with pytest.raises(InvalidArgumentError):
            monitor.add(automation.id, "not-a-uuid")
        assert "RunMonitor strategy=auto runs=1" in repr(monitor)


# -- scripted servers ----------------------------------------------------------------------

OTHER_AUTOMATION = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
OTHER_RUN = "8d2e3f4a-5b6c-4d7e-9f0a-1b2c3d4e5f6a"


def summary_of(*entries: tuple[str, str, str], automation_id: str = AUTOMATION_ID) -> dict:
    """An automation answer whose sessions are ``(run id, status, updated_at)``."""
    return {
        "id": automation_id,
        "name": "scripted",
        "sessions": [
            {
                "id": run_id,
                "automation_id": automation_id,
                "inputs": {},
                "error": None,
                "status": status,
                "created_at": TS,
                "updated_at": updated_at,
            }
            for run_id, status, updated_at in entries
        ],
    }


def scripted(mock: aioresponses, url: str, *answers: CallbackResult) -> list[float]:
    """Answer each GET of ``url`` with the next answer (the last one repeated)."""
    times: list[float] = []
    queue = list(answers)

    def answer(_: URL, **kwargs: object) -> CallbackResult:
        times.append(0.0)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    mock.get(url, callback=answer, repeat=True)
    return times


async def test_quiet_runs_probed_once_are_not_fetched_again_on_every_tick(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A probe that finds a quiet run unchanged leaves it alone: one probe per tick, no more."""
    quiet = [str(uuid.UUID(int=i + 1)) for i in range(5)]
    waiter = str(uuid.UUID(int=99))
    entries = [(rid, "RUNNING", TS) for rid in [*quiet, waiter]]
    details: dict[str, int] = dict.fromkeys(quiet, 0)
    summaries = 0

    def summary(_: URL, **kwargs: object) -> CallbackResult:
        nonlocal summaries
        summaries += 1
        return CallbackResult(payload=summary_of(*entries))

    def detail_of(rid: str) -> object:
        def detail(_: URL, **kwargs: object) -> CallbackResult:
            if rid in details:
                details[rid] += 1
            return CallbackResult(payload=run_json("RUNNING", run_id=rid))

        return detail

    mock.get(f"{BASE_URL}/automations/{AUTOMATION_ID}/", callback=summary, repeat=True)
    for rid in [*quiet, waiter]:
        mock.get(run_url(AUTOMATION_ID, rid), callback=detail_of(rid), repeat=True)
    async with client.runs.monitor(
        strategy="summary", interval=1.0, max_interval=1.0, end_when_empty=False
    ) as monitor:
        for rid in quiet:
            monitor.add(AUTOMATION_ID, rid)

        async def consume() -> None:
            async for _ in monitor:
                pass

        consumer = asyncio.create_task(consume())
        with pytest.raises(WaitTimeoutError):
            await monitor.wait(AUTOMATION_ID, waiter, timeout=30)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    fetched = sum(details.values())
    # One first fetch each, then at most one probe per summary tick; runs that stayed
    # marked after a probe made it grow towards every run on every tick.
    assert summaries >= 30
    assert len(quiet) < fetched <= len(quiet) + summaries, (summaries, details)


def run_url(automation_id: str, run_id: str) -> str:
    """The URL of one run."""
    return f"{BASE_URL}/automations/{automation_id}/sessions/{run_id}/"


async def test_retry_after_on_a_summary_pushes_the_next_one_back(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A summary answered with Retry-After: 7 is not asked again for 7 seconds."""
    moving = summary_of((RUN_ID, "RUNNING", TS))
    ended = summary_of((RUN_ID, "FINISHED", "2026-11-29T10:00:09Z"))
    scripted(
        mock,
        f"{BASE_URL}/automations/{AUTOMATION_ID}/",
        CallbackResult(payload=moving, headers={"Retry-After": "7"}),
        CallbackResult(payload=ended),
    )
    scripted(
        mock,
        run_url(AUTOMATION_ID, RUN_ID),
        CallbackResult(payload=run_json("FINISHED", updated_at="2026-11-29T10:00:09Z")),
    )
    async with client.runs.monitor(strategy="summary") as monitor:
        run = await monitor.wait(AUTOMATION_ID, RUN_ID)
    assert run.status is RunStatus.FINISHED
    assert clock.sleeps[0] >= 7.0


async def test_a_failing_summary_is_retried_by_the_retry_policy(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A 503 on the summary is retried after the policy's backoff; nothing fails."""
    ended = summary_of((RUN_ID, "FINISHED", TS))
    scripted(
        mock,
        f"{BASE_URL}/automations/{AUTOMATION_ID}/",
        CallbackResult(status=503, payload={"detail": "busy"}),
        CallbackResult(payload=ended),
    )
    scripted(mock, run_url(AUTOMATION_ID, RUN_ID), CallbackResult(payload=run_json("FINISHED")))
    async with client.runs.monitor(strategy="summary") as monitor:
        run = await monitor.wait(AUTOMATION_ID, RUN_ID)
    assert run.status is RunStatus.FINISHED
    assert clock.sleeps[0] == 0.5  # the retry policy's first wait, not the cadence


async def test_a_401_on_one_automation_ends_only_its_runs(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """AuthenticationError for the runs of one automation; the other's run goes on to its end."""
    scripted(
        mock,
        f"{BASE_URL}/automations/{AUTOMATION_ID}/",
        CallbackResult(status=401, payload={"detail": f"bad token {CLIENT_TOKEN}"}),
    )
    other = summary_of((OTHER_RUN, "FINISHED", TS), automation_id=OTHER_AUTOMATION)
    scripted(mock, f"{BASE_URL}/automations/{OTHER_AUTOMATION}/", CallbackResult(payload=other))
    finished = run_json("FINISHED", run_id=OTHER_RUN)
    finished["automation_id"] = OTHER_AUTOMATION
    scripted(mock, run_url(OTHER_AUTOMATION, OTHER_RUN), CallbackResult(payload=finished))
    events: list[Event] = []
    with caplog.at_level(logging.WARNING, logger="automation_sdk"):
        async with client.runs.monitor(strategy="summary") as monitor:
            monitor.add(AUTOMATION_ID, RUN_ID, events=False)
            monitor.add(OTHER_AUTOMATION, OTHER_RUN, events=False)

            async def consume() -> None:
                events.extend([event async for event in monitor])

            with pytest.raises(AuthenticationError) as caught:
                await consume()
            events += await collect(monitor)
    assert caught.value.run_ids == (uuid.UUID(RUN_ID),)
    assert [(str(e.run_id), e.status) for e in events] == [(OTHER_RUN, RunStatus.FINISHED)]
    assert "stopped following run" in caplog.text
    assert CLIENT_TOKEN not in caplog.text


async def test_a_summary_without_sessions_is_a_validation_error(
    client: AutomationClient, mock: aioresponses
) -> None:
    """An automation answer with no sessions list fails its runs with ResponseValidationError."""
    scripted(
        mock,
        f"{BASE_URL}/automations/{AUTOMATION_ID}/",
        CallbackResult(payload={"id": AUTOMATION_ID, "sessions": "many"}),
    )
    async with client.runs.monitor(strategy="summary") as monitor:
        with pytest.raises(ResponseValidationError, match="sessions"):
            await monitor.wait(AUTOMATION_ID, RUN_ID)


async def test_a_summary_older_than_a_snapshot_means_it_misses_steps(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """A summary listing a run older than a snapshot fetched before: step runs go per run."""
    later = "2026-11-29T10:00:05Z"
    scripted(
        mock,
        f"{BASE_URL}/automations/{AUTOMATION_ID}/",
        CallbackResult(payload=summary_of((RUN_ID, "NEW", TS))),
        CallbackResult(payload=summary_of((RUN_ID, "RUNNING", TS))),
        CallbackResult(payload=summary_of((RUN_ID, "FINISHED", "2026-11-29T10:00:09Z"))),
    )
    scripted(
        mock,
        run_url(AUTOMATION_ID, RUN_ID),
        CallbackResult(payload=run_json("RUNNING", updated_at=later)),
        CallbackResult(payload=run_json("FINISHED", updated_at="2026-11-29T10:00:09Z")),
    )
    with caplog.at_level(logging.INFO, logger="automation_sdk"):
        async with client.runs.monitor(strategy="summary") as monitor:
            monitor.add(AUTOMATION_ID, RUN_ID)
            events = await collect(monitor)
    assert "before the 2026-11-29T10:00:05+00:00 of a snapshot" in caplog.text
    assert events[-1].status is RunStatus.FINISHED


async def test_a_summary_showing_what_a_detail_showed_fetches_nothing(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A summary entry equal to the snapshot last fetched (the run moved before it) costs no GET."""
    t1, t2, t3 = "2026-11-29T10:00:01Z", "2026-11-29T10:00:02Z", "2026-11-29T10:00:03Z"
    summaries = [("RUNNING", TS), ("RUNNING", t1), ("RUNNING", t2), ("FINISHED", t3)]
    first = [
        run_step_json(START_ID, "start", "FINISHED"),
        run_step_json(STEP2_ID, "ask", "RUNNING", step_type="LLM"),
    ]
    second = [
        run_step_json(START_ID, "start", "FINISHED"),
        run_step_json(STEP2_ID, "ask", "FINISHED", step_type="LLM", updated_at=t2),
    ]
    details = [
        run_json("RUNNING", first),
        # Between the second summary (t1) and the fetch it asked for, the run moved on (t2).
        run_json("RUNNING", second, updated_at=t2),
        run_json("RUNNING", second, updated_at=t2),
        run_json("FINISHED", second, updated_at=t3),
    ]
    polled = {"summary": 0, "detail": 0}

    def summary(_: URL, **kwargs: object) -> CallbackResult:
        polled["summary"] += 1
        status, updated_at = summaries[min(polled["summary"], len(summaries)) - 1]
        return CallbackResult(payload=summary_of((RUN_ID, status, updated_at)))

    def detail(_: URL, **kwargs: object) -> CallbackResult:
        polled["detail"] += 1
        return CallbackResult(payload=details[min(polled["summary"], len(details)) - 1])

    mock.get(f"{BASE_URL}/automations/{AUTOMATION_ID}/", callback=summary, repeat=True)
    mock.get(run_url(AUTOMATION_ID, RUN_ID), callback=detail, repeat=True)
    async with client.runs.monitor(strategy="summary") as monitor:
        monitor.add(AUTOMATION_ID, RUN_ID)
        events = await collect(monitor)
    assert [(e.previous, e.status) for e in events] == [
        (None, StepStatus.FINISHED),
        (None, StepStatus.RUNNING),
        (None, RunStatus.RUNNING),
        (StepStatus.RUNNING, StepStatus.FINISHED),
        (RunStatus.RUNNING, RunStatus.FINISHED),
    ]
    # One fetch per summary that moved beyond what was fetched: not the third one.
    assert polled == {"summary": 4, "detail": 3}
