"""What a fleet benchmark needs of the emulator: drawn durations, counters, history, updated_at."""

from __future__ import annotations

import argparse
import math
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from automation_sdk.emulator import Emulator, Faults, RecordedTransition, StepDurations
from automation_sdk.emulator import main as emulator_main
from automation_sdk.emulator._serve import add_arguments
from automation_sdk.testing import FakeClock

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
Api = Any
OpenEmulator = Callable[..., Awaitable[tuple[Emulator, Any]]]


def timeline(emu: Emulator, run_id: str) -> list[tuple[str | None, str, float]]:
    """``(step name, status, seconds since the run's creation)`` of each transition."""
    records = emu.history(uuid.UUID(run_id))
    start = records[0].clock
    return [(r.step_name, r.status, round(r.clock - start, 6)) for r in records]


# -- StepDurations -------------------------------------------------------------------------


def test_parse_reads_the_three_forms_and_prints_them_back() -> None:
    """``--step-duration`` takes SECONDS, uniform:LOW:HIGH, exponential:MEAN; str() gives it."""
    assert StepDurations.parse("2.5") == StepDurations.fixed(2.5)
    assert StepDurations.parse("fixed:3") == StepDurations.fixed(3)
    assert StepDurations.parse(" uniform:1:4 ") == StepDurations.uniform(1, 4)
    assert StepDurations.parse("exponential:25") == StepDurations.exponential(25)
    for text in ("2.5", "uniform:1:4", "exponential:25"):
        assert str(StepDurations.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["", "abc", "uniform:1", "uniform:4:1", "exponential:0", "normal:3", "-1", "nan", "inf"],
)
def test_parse_rejects_what_it_cannot_honour(text: str) -> None:
    """A malformed or impossible spec is a ValueError naming the accepted forms or the bound."""
    with pytest.raises(ValueError, match=r"step durations|StepDurations"):
        StepDurations.parse(text)


def test_draws_stay_in_bounds_and_have_the_mean() -> None:
    """Uniform draws stay within their bounds; exponential ones average their mean."""
    rng = random.Random(7)
    uniform = StepDurations.uniform(2, 3)
    assert all(2 <= uniform.draw(rng) <= 3 for _ in range(1000))
    exponential = StepDurations.exponential(5)
    mean = sum(exponential.draw(rng) for _ in range(20_000)) / 20_000
    assert math.isclose(mean, 5, rel_tol=0.05)
    assert StepDurations.fixed(1.5).draw(rng) == 1.5


async def test_drawn_durations_shape_the_timeline(
    open_emulator: OpenEmulator, clock: FakeClock
) -> None:
    """Each phase lasts its own draw: NEW, then each step NEW for half and RUNNING for half."""
    emu, api = await open_emulator(step_duration=StepDurations.uniform(1, 3), seed=4)
    run = await api.start(await api.chain("one", "two"))
    clock.advance(100)
    events = timeline(emu, run["id"])
    assert [(name, status) for name, status, _ in events] == [
        (None, "NEW"),
        ("start", "FINISHED"),
        ("s1", "NEW"),
        (None, "RUNNING"),
        ("s1", "RUNNING"),
        ("s1", "FINISHED"),
        ("s2", "NEW"),
        ("s2", "RUNNING"),
        ("s2", "FINISHED"),
        (None, "FINISHED"),
    ]
    times = [t for _, _, t in events]
    new_phase, s1, s2 = times[1], times[5] - times[2], times[8] - times[6]
    assert all(1 <= d <= 3 for d in (new_phase, s1, s2))
    assert len({new_phase, s1, s2}) == 3
    assert math.isclose(times[4] - times[2], s1 / 2, abs_tol=2e-6)


async def test_same_seed_same_durations_other_seed_others(open_emulator: OpenEmulator) -> None:
    """Drawn durations are reproducible with the seed, and differ with another one."""

    async def durations(seed: int, spec: StepDurations) -> list[list[float]]:
        clock = FakeClock()
        emu, api = await open_emulator(step_duration=spec, seed=seed, clock=clock)
        automation = await api.chain("one", "two")
        runs = [await api.start(automation) for _ in range(3)]
        clock.advance(10_000)
        return [[t for _, _, t in timeline(emu, run["id"])] for run in runs]

    for spec in (StepDurations.uniform(1, 3), StepDurations.exponential(2)):
        first = await durations(1, spec)
        assert first == await durations(1, spec)
        assert first != await durations(2, spec)
        assert first[0] != first[1]


# -- request counts ------------------------------------------------------------------------


async def test_requests_are_counted_per_method_and_route(emu: Emulator, api: Api) -> None:
    """Each request counts once under its method and path template, unknown paths apart."""
    automation = await api.chain("one")
    run = await api.start(automation)
    for _ in range(3):
        await api.get(run)
    await api.send("GET", f"/automations/{automation['id']}/")
    await api.send("GET", "/nowhere")
    assert emu.request_counts == {
        "GET (no route)": 1,
        "GET /automations/{automation_id}/": 1,
        "GET /automations/{automation_id}/sessions/{session_id}/": 3,
        "POST /automations/": 1,
        "POST /automations/{automation_id}/sessions/": 1,
    }


async def test_faulted_and_refused_requests_count_too(emu: Emulator, api: Api) -> None:
    """A request answered by a fault or a 401 still counts: the client sent it."""
    run = await api.start(await api.chain("one"))
    emu.faults = Faults(error_rate=1.0)
    status, _, _ = await api.send("GET", f"/automations/{run['automation_id']}/")
    assert status >= 500
    emu.faults = Faults()
    async with (
        aiohttp.ClientSession(emu.url) as anonymous,
        anonymous.get(f"/automations/{run['automation_id']}/") as resp,
    ):
        assert resp.status == 401
    assert emu.request_counts["GET /automations/{automation_id}/"] == 2


async def test_stats_endpoint_serves_the_counts_unauthenticated_and_uncounted(
    emu: Emulator, api: Api, clock: FakeClock
) -> None:
    """``GET /_emulator/stats`` needs no token, counts nothing, and shows counts and the clock."""
    run = await api.start(await api.chain("one"))
    await api.get(run)
    clock.advance(2.5)
    async with aiohttp.ClientSession(emu.url) as anonymous:
        for _ in range(2):
            async with anonymous.get("/_emulator/stats") as resp:
                assert resp.status == 200
                stats = await resp.json()
    assert stats == {
        "requests": {
            "GET /automations/{automation_id}/sessions/{session_id}/": 1,
            "POST /automations/": 1,
            "POST /automations/{automation_id}/sessions/": 1,
        },
        "automations": 1,
        "runs": 1,
        "clock": 2.5,
        "now": "2026-01-01T00:00:02.500000Z",
    }
    assert [r.path for r in emu.requests if r.path.startswith("/_emulator")] == []


# -- updated_at ----------------------------------------------------------------------------


@pytest.mark.parametrize("on_steps", [True, False])
async def test_updated_at_moves_on_step_changes_only_when_asked(
    open_emulator: OpenEmulator, clock: FakeClock, on_steps: bool
) -> None:
    """With ``updated_at_on_steps=False`` a step's change leaves the run's updated_at alone."""
    _, api = await open_emulator(step_duration=1.0, updated_at_on_steps=on_steps)
    automation = await api.chain("one", "two")
    run = await api.start(automation)
    clock.advance(1.0)  # RUNNING: a run-level change
    running = await api.get(run)
    clock.advance(0.5)  # s1 RUNNING: a step-level change only
    step_moved = await api.get(run)
    _, summary, _ = await api.send("GET", f"/automations/{automation['id']}/")
    clock.advance(10)  # FINISHED
    finished = await api.get(run)
    assert running["updated_at"] == "2026-01-01T00:00:01Z"
    assert step_moved["steps"][1]["status"] == "RUNNING"
    expected = "2026-01-01T00:00:01.500000Z" if on_steps else "2026-01-01T00:00:01Z"
    assert step_moved["updated_at"] == expected
    assert summary["sessions"][0]["updated_at"] == expected
    assert finished["updated_at"] == "2026-01-01T00:00:03Z"


async def test_cancel_and_user_input_move_updated_at_in_both_modes(
    open_emulator: OpenEmulator, clock: FakeClock
) -> None:
    """A cancel or an answer changes the run's status, so updated_at moves even run-level only."""
    _, api = await open_emulator(step_duration=1.0, updated_at_on_steps=False)
    automation = await api.create_automation(
        api.step("start", "START"), api.step("ask", "INPUT", "name?"), api.step("s2")
    )
    run = await api.start(automation)
    clock.advance(1.5)
    waiting = await api.get(run)
    clock.advance(1.0)
    base = f"/automations/{automation['id']}/sessions/{run['id']}"
    _, answered, _ = await api.send("POST", f"{base}/user-input", json={"user_input": "x"})
    clock.advance(0.2)
    _, cancelled, _ = await api.send("PATCH", f"{base}/cancel")
    assert waiting["status"] == "WAITING_FOR_USER_INPUT"
    assert waiting["updated_at"] == "2026-01-01T00:00:01.500000Z"
    assert answered["updated_at"] == "2026-01-01T00:00:02.500000Z"
    assert cancelled["updated_at"] == "2026-01-01T00:00:02.700000Z"


# -- history -------------------------------------------------------------------------------


async def test_history_lists_every_status_with_server_times(
    emu: Emulator, api: Api, clock: FakeClock
) -> None:
    """Every status of the run and its steps, steps before the run within an instant."""
    run = await api.start(await api.chain("one"))
    clock.advance(60)
    records = emu.history(uuid.UUID(run["id"]))
    assert all(isinstance(r, RecordedTransition) for r in records)
    assert [(r.step_name, r.status, r.clock) for r in records] == [
        (None, "NEW", 0.0),
        ("start", "FINISHED", 1.0),
        ("s1", "NEW", 1.0),
        (None, "RUNNING", 1.0),
        ("s1", "RUNNING", 1.5),
        ("s1", "FINISHED", 2.0),
        (None, "FINISHED", 2.0),
    ]
    assert records[-1].at == EPOCH + timedelta(seconds=2)
    assert {r.run_id for r in records} == {uuid.UUID(run["id"])}
    step_ids = {s["step"]["name"]: s["step"]["id"] for s in (await api.get(run))["steps"]}
    assert records[1].step_id == uuid.UUID(step_ids["start"])
    assert records[0].step_id is None


async def test_history_is_complete_without_any_read(
    emu: Emulator, api: Api, clock: FakeClock
) -> None:
    """Asking for the history brings unread runs up to date first, in creation order."""
    automation = await api.chain("one")
    first, second = await api.start(automation), await api.start(automation)
    clock.advance(60)
    records = emu.history()
    assert [r.run_id for r in records] == [uuid.UUID(first["id"])] * 7 + [
        uuid.UUID(second["id"])
    ] * 7
    assert records[-1].status == "FINISHED"


async def test_history_records_cancel_and_input(emu: Emulator, api: Api, clock: FakeClock) -> None:
    """A user's answer and a cancel show up with the instant they happened."""
    automation = await api.create_automation(
        api.step("start", "START"), api.step("ask", "INPUT", "name?"), api.step("s2")
    )
    run = await api.start(automation)
    clock.advance(1.5)
    base = f"/automations/{automation['id']}/sessions/{run['id']}"
    await api.send("POST", f"{base}/user-input", json={"user_input": "x"})
    clock.advance(0.25)
    await api.send("PATCH", f"{base}/cancel")
    assert [(r.step_name, r.status, r.clock) for r in emu.history(uuid.UUID(run["id"]))][-6:] == [
        (None, "WAITING_FOR_USER_INPUT", 1.5),
        ("ask", "FINISHED", 1.500001),  # a change gets a stamp 1 µs after the last one
        ("s2", "NEW", 1.500001),
        (None, "RUNNING", 1.500001),
        ("s2", "FAILED", 1.75),
        (None, "FAILED", 1.75),
    ]


async def test_history_endpoint_serves_one_run_or_all(
    emu: Emulator, api: Api, clock: FakeClock
) -> None:
    """``GET /_emulator/history`` answers JSON, filtered by ``run_id``; 404/422 for bad ids."""
    automation = await api.chain("one")
    run, other = await api.start(automation), await api.start(automation)
    clock.advance(60)
    async with aiohttp.ClientSession(emu.url) as anonymous:
        async with anonymous.get("/_emulator/history", params={"run_id": run["id"]}) as resp:
            one = (await resp.json())["transitions"]
        async with anonymous.get("/_emulator/history") as resp:
            every = (await resp.json())["transitions"]
        async with anonymous.get("/_emulator/history", params={"run_id": "nope"}) as resp:
            assert resp.status == 422
        async with anonymous.get(
            "/_emulator/history", params={"run_id": str(uuid.uuid4())}
        ) as resp:
            assert resp.status == 404
    assert one[-1] == {
        "run_id": run["id"],
        "step_id": None,
        "step_name": None,
        "status": "FINISHED",
        "at": "2026-01-01T00:00:02Z",
        "clock": 2.0,
    }
    assert [t["step_name"] for t in one][:3] == [None, "start", "s1"]
    assert len(every) == 14
    assert {t["run_id"] for t in every} == {run["id"], other["id"]}
    assert datetime.fromisoformat(one[0]["at"]) == EPOCH


async def test_history_of_an_unknown_run_is_a_key_error(emu: Emulator) -> None:
    """Asking for a run the emulator never made raises KeyError naming it."""
    missing = uuid.uuid4()
    with pytest.raises(KeyError, match=str(missing)):
        emu.history(missing)


# -- options -------------------------------------------------------------------------------


def test_command_line_takes_distributions_and_the_updated_at_switch() -> None:
    """``--step-duration uniform:1:4`` and ``--no-updated-at-on-steps`` reach the options."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--step-duration", "uniform:1:4", "--no-updated-at-on-steps"])
    assert args.step_duration == StepDurations.uniform(1, 4)
    assert args.updated_at_on_steps is False
    assert parser.parse_args(["--step-duration", "3"]).step_duration == StepDurations.fixed(3)


def test_command_line_rejects_a_bad_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed ``--step-duration`` is a usage error that shows the accepted forms."""
    with pytest.raises(SystemExit) as exc:
        emulator_main(["--step-duration", "uniform:4:1"])
    assert exc.value.code == 2
    assert "low <= high" in capsys.readouterr().err


def test_emulator_rejects_a_step_duration_it_cannot_honour() -> None:
    """A negative or infinite step_duration is refused when the emulator is made."""
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="step_duration"):
            Emulator(step_duration=bad)
    assert Emulator(step_duration=2).step_duration == StepDurations.fixed(2)
