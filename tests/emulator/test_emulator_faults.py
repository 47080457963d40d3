"""Fault injection: each kind observable, off by default, reproducible by seed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from automation_sdk.emulator import Emulator, Faults
from automation_sdk.testing import FakeClock

MISSING_ID = "00000000-0000-4000-8000-000000000000"


async def test_faults_are_off_by_default(api: Any, emu: Emulator) -> None:
    """Without faults every answer is the real one and nothing is recorded as a fault."""
    assert not emu.faults.enabled
    for _ in range(20):
        status, _, _ = await api.send("GET", f"/automations/{MISSING_ID}/")
        assert status == 404
    assert all(r.faults == () for r in emu.requests)


async def test_error_faults_answer_5xx_json_text_or_html(api: Any, emu: Emulator) -> None:
    """``error_rate`` answers 500 (JSON or text), 502 (HTML page) or 503 (with Retry-After)."""
    emu.faults = Faults(error_rate=1.0, retry_after=2)
    kinds = set()
    for _ in range(40):
        async with api.http.get(f"/automations/{MISSING_ID}/") as resp:
            await resp.read()
            kinds.add((resp.status, resp.content_type, resp.headers.get("Retry-After")))
    assert kinds == {
        (500, "application/json", None),
        (500, "text/plain", None),
        (502, "text/html", None),
        (503, "application/json", "2"),
    }
    assert all(r.faults == ("error",) for r in emu.requests)


async def test_rate_limit_fault_answers_429_with_retry_after(api: Any, emu: Emulator) -> None:
    """``rate_limit_rate`` answers 429 ``Too Many Requests`` with ``Retry-After``."""
    emu.faults = Faults(rate_limit_rate=1.0, retry_after=0.5)
    status, body, headers = await api.send("GET", f"/automations/{MISSING_ID}/")
    assert (status, body) == (429, {"detail": "Too Many Requests"})
    assert headers["Retry-After"] == "0.5"
    assert emu.requests[-1] == ("GET", f"/automations/{MISSING_ID}/", 429, ("rate_limit",))


async def test_drop_fault_closes_the_connection_after_handling(api: Any, emu: Emulator) -> None:
    """``drop_rate`` handles the request, then closes the connection without an answer."""
    emu.faults = Faults(drop_rate=1.0, methods={"post"})
    assert emu.faults.methods == frozenset({"POST"})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.chain("one")
    assert emu.automation_count == 1
    assert emu.requests[-1] == ("POST", "/automations/", None, ("drop",))


async def test_slow_fault_sleeps_on_the_emulator_clock(
    api: Any, emu: Emulator, clock: FakeClock
) -> None:
    """``slow_rate`` sleeps ``slow_seconds`` on the emulator's clock before answering."""
    run = await api.start(await api.chain("one"))
    emu.faults = Faults(slow_rate=1.0, slow_seconds=3.0)
    body = await api.get(run)
    assert clock.sleeps == [3.0]
    assert clock.monotonic() == 3.0
    assert body["status"] == "FINISHED"  # the answer reflects the time after the sleep
    assert emu.requests[-1].faults == ("slow",)


async def test_slow_combines_with_another_fault(api: Any, emu: Emulator, clock: FakeClock) -> None:
    """A slow answer can also be an error."""
    emu.faults = Faults(slow_rate=1.0, slow_seconds=1.0, error_rate=1.0)
    async with api.http.get(f"/automations/{MISSING_ID}/") as resp:
        assert resp.status >= 500
    assert emu.requests[-1].faults == ("slow", "error")


async def test_stale_fault_replays_an_older_snapshot(
    api: Any, emu: Emulator, clock: FakeClock
) -> None:
    """``stale_rate`` answers a session GET with an older snapshot served before."""
    run = await api.start(await api.chain("one", "two"))
    served = [run]
    for _ in range(3):
        clock.advance(0.5)
        served.append(await api.get(run))
    emu.faults = Faults(stale_rate=1.0)
    clock.advance(0.5)
    stale = await api.get(run)
    assert stale in served
    assert emu.requests[-1].faults == ("stale",)
    emu.faults = Faults()
    fresh = await api.get(run)
    assert fresh not in served
    assert datetime.fromisoformat(fresh["updated_at"]) > datetime.fromisoformat(stale["updated_at"])


async def test_stale_needs_an_older_snapshot(api: Any, emu: Emulator, clock: FakeClock) -> None:
    """A session never served in an older state is answered fresh, with no fault recorded."""
    run = await api.start(await api.chain("one"))
    emu.faults = Faults(stale_rate=1.0)
    assert await api.get(run) == run
    assert emu.requests[-1].faults == ()
    clock.advance(1.0)
    assert await api.get(run) == run  # the snapshot served just above was remembered
    assert emu.requests[-1].faults == ("stale",)


async def test_truncate_fault_cuts_the_json_with_a_matching_length(api: Any, emu: Emulator) -> None:
    """``truncate_rate`` sends 200 with half a JSON body and a Content-Length that matches it."""
    run = await api.start(await api.chain("one"))
    emu.faults = Faults(truncate_rate=1.0)
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/"
    async with api.http.get(path) as resp:
        raw = await resp.read()
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == len(raw)
    assert 0 < len(raw) < len(json.dumps(run, separators=(",", ":")))
    with pytest.raises(json.JSONDecodeError, match=r"line \d+"):
        json.loads(raw)
    assert emu.requests[-1].faults == ("truncate",)


async def test_truncate_spares_error_answers(api: Any, emu: Emulator) -> None:
    """Only 200 answers are truncated."""
    emu.faults = Faults(truncate_rate=1.0)
    status, body, _ = await api.send("GET", f"/automations/{MISSING_ID}/")
    assert status == 404
    assert isinstance(body, dict)


async def test_faults_apply_only_to_their_methods(api: Any, emu: Emulator) -> None:
    """With the default ``methods`` (GET), creates are never faulted."""
    emu.faults = Faults(error_rate=1.0)
    automation = await api.chain("one")
    await api.start(automation)
    assert [r.faults for r in emu.requests] == [(), ()]


async def _fault_trace(seed: int) -> list[tuple[int | None, tuple[str, ...]]]:
    faults = Faults(
        error_rate=0.2, rate_limit_rate=0.2, stale_rate=0.2, truncate_rate=0.2, slow_rate=0.3
    )
    clock = FakeClock()
    async with (
        Emulator(token="t", seed=seed, clock=clock, step_duration=1.0) as emu,
        aiohttp.ClientSession(emu.url, headers={"Authorization": "Bearer t"}) as http,
    ):
        steps = [{"name": "start", "step_type": "START"}, {"name": "a", "step_type": "LLM"}]
        body = {"name": "x", "current_version": {"steps": steps}}
        async with http.post("/automations/", json=body) as resp:
            automation = await resp.json()
        async with http.post(f"/automations/{automation['id']}/sessions/", json={}) as resp:
            run = await resp.json()
        emu.faults = faults
        for _ in range(30):
            clock.advance(0.25)
            async with http.get(f"/automations/{automation['id']}/sessions/{run['id']}/") as resp:
                await resp.read()
        return [(r.status, r.faults) for r in emu.requests]


async def test_same_seed_same_faults() -> None:
    """The same seed and the same requests give the same faults; another seed differs."""
    first, second, other = await _fault_trace(7), await _fault_trace(7), await _fault_trace(8)
    assert first == second
    assert first != other
    kinds = {kind for _, faults in first for kind in faults}
    assert kinds == {"error", "rate_limit", "stale", "truncate", "slow"}


async def test_same_seed_same_ids() -> None:
    """A seeded emulator makes the same server ids every time."""
    ids = []
    for _ in range(2):
        async with (
            Emulator(token="t", seed=3) as emu,
            aiohttp.ClientSession(emu.url, headers={"Authorization": "Bearer t"}) as http,
        ):
            body = {"name": "x", "current_version": {"steps": []}}
            async with http.post("/automations/", json=body) as resp:
                ids.append((await resp.json())["id"])
    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"stale_rate": float("nan")},
        {"error_rate": 0.6, "truncate_rate": 0.6},
        {"slow_seconds": -1},
        {"retry_after": -2},
    ],
)
def test_faults_validate_their_values(kwargs: dict[str, float]) -> None:
    """Rates outside 0..1, exclusive rates summing above 1 and negative seconds are refused."""
    with pytest.raises(ValueError, match="Faults"):
        Faults(**kwargs)


def test_faults_are_immutable() -> None:
    """A Faults value cannot be changed; replace it with a new one."""
    faults = Faults(error_rate=0.1)
    with pytest.raises(AttributeError):
        faults.error_rate = 0.2  # type: ignore[misc]
    assert faults.enabled
    assert faults.applies_to("get")
    assert not faults.applies_to("POST")
