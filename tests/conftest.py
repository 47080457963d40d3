"""Shared fixtures: a fake clock, a client wired to it, and aioresponses' aiohttp shim."""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncIterator

import aiohttp
import aioresponses.core
import pytest

from automation_sdk import AutomationClient, RetryPolicy
from automation_sdk.testing import FakeClock
from payloads import BASE_URL, TOKEN


def _patch_aioresponses() -> None:
    """aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` that aiohttp
    3.14 requires; its mocked answers never write, so a writer reporting 0 bytes is enough."""
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    if "stream_writer" not in params:
        return

    class CompatClientResponse(aiohttp.ClientResponse):
        def __init__(self, method: str, url: object, **kwargs: object) -> None:
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)  # type: ignore[arg-type]

    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]


_patch_aioresponses()


_SDK_VARIABLES = (
    "AUTOMATION_API_TOKEN",
    "AUTOMATION_BASE_URL",
    "AUTOMATION_ORG_ID",
    "AUTOMATION_LOG",
)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's AUTOMATION_* or proxy variables (unless they set one)."""
    for name in _SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def clock() -> FakeClock:
    """A virtual clock: sleeps return at once."""
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[AutomationClient]:
    """A client of ``BASE_URL`` on the fake clock, with retries without jitter."""
    async with AutomationClient(
        TOKEN,
        base_url=BASE_URL,
        clock=clock,
        retry=RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False),
    ) as c:
        yield c


@pytest.fixture
def mock() -> types.GeneratorType:  # type: ignore[type-arg]
    """An aioresponses mock; requests to anything not registered fail."""
    with aioresponses.aioresponses() as m:
        yield m
