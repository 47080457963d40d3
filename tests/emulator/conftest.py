"""Fixtures for the emulator's tests: an emulator on a fake clock and a plain HTTP client."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock

TOKEN = "emu-token"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Api:
    """A thin helper over a plain aiohttp session to the emulator."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    @staticmethod
    def step(name: str, step_type: str = "LLM", text: str = "") -> dict[str, Any]:
        """A StepCreate body with a text template and a fresh id."""
        return {
            "id": str(uuid.uuid4()),
            "name": name,
            "step_type": step_type,
            "prompt_template": {"type": "text", "text": text},
        }

    async def create_automation(
        self, *steps: dict[str, Any], edges: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """Create an automation; edges name steps, and default to a chain in order."""
        ids = {s["name"]: s["id"] for s in steps}
        pairs = edges if edges is not None else list(zip(ids, list(ids)[1:], strict=False))
        body = {
            "name": "demo",
            "description": "a test automation",
            "current_version": {
                "steps": list(steps),
                "step_transitions": [
                    {"source_step_id": ids[a], "target_step_id": ids[b], "label": f"{a}->{b}"}
                    for a, b in pairs
                ],
            },
        }
        async with self.http.post("/automations/", json=body) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json())

    async def chain(self, *texts: str) -> dict[str, Any]:
        """Create START -> LLM steps named s1, s2, ... with the given templates."""
        steps = [self.step("start", "START")]
        steps += [self.step(f"s{i}", "LLM", text) for i, text in enumerate(texts, 1)]
        return await self.create_automation(*steps)

    async def start(self, automation: dict[str, Any], **inputs: Any) -> dict[str, Any]:
        """Create a run of ``automation`` with ``inputs``."""
        path = f"/automations/{automation['id']}/sessions/"
        async with self.http.post(path, json={"inputs": inputs}) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json())

    async def get(self, run: dict[str, Any]) -> dict[str, Any]:
        """Read a run again."""
        path = f"/automations/{run['automation_id']}/sessions/{run['id']}/"
        async with self.http.get(path) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def send(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any, Mapping[str, str]]:
        """Send a request; return status, decoded JSON (or text) and headers."""
        async with self.http.request(method, path, allow_redirects=False, **kwargs) as resp:
            text = await resp.text()
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = text
            return resp.status, body, resp.headers


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on the fake clock, one-second steps, seeded."""
    async with Emulator(token=TOKEN, clock=clock, step_duration=1.0, seed=1, epoch=EPOCH) as e:
        yield e


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session to the emulator, authenticated."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(emu.url, headers=headers) as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession) -> Api:
    """The request helper."""
    return Api(http)


OpenEmulator = Callable[..., Awaitable[tuple[Emulator, Api]]]


@pytest.fixture
async def open_emulator(clock: FakeClock) -> AsyncIterator[OpenEmulator]:
    """Opens emulators with other options (the fake clock by default), closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_(**options: Any) -> tuple[Emulator, Api]:
            options.setdefault("clock", clock)
            emu = await stack.enter_async_context(Emulator(token=TOKEN, epoch=EPOCH, **options))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            http = await stack.enter_async_context(aiohttp.ClientSession(emu.url, headers=headers))
            return emu, Api(http)

        yield open_
