"""client.with_options(): a client with other settings on the same HTTP session."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses
from yarl import URL

from automation_sdk import (
    AutomationClient,
    ClientClosedError,
    ConfigurationError,
    RetryPolicy,
    ServerError,
    Timeout,
)
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"


def sent(mock: aioresponses) -> list[dict[str, object]]:
    """The keyword arguments of each request sent to RUN_URL."""
    return [call.kwargs for call in mock.requests.get(("GET", URL(RUN_URL)), [])]


async def test_named_options_replace_and_the_rest_is_shared(mock: aioresponses) -> None:
    """The derived client sends the parent's headers plus its own, with its own timeout."""
    mock.get(RUN_URL, payload=run_json(), repeat=True)
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, headers={"X-Team": "support", "X-Env": "prod"}, timeout=30
    ) as client:
        fast = client.with_options(timeout=2, headers={"X-Env": "canary", "X-Call": "create"})
        await fast.runs.get(AUTOMATION_ID, RUN_ID)
        await client.runs.get(AUTOMATION_ID, RUN_ID)
        assert fast.base_url == client.base_url and fast.clock is client.clock
        assert fast.retry is client.retry
        assert fast.timeout == Timeout(total=2)
        assert client._transport.session is fast._transport.session
    derived, parent = sent(mock)
    assert derived["headers"]["X-Team"] == "support"  # type: ignore[index]
    assert derived["headers"]["X-Env"] == "canary"  # type: ignore[index]
    assert derived["headers"]["X-Call"] == "create"  # type: ignore[index]
    assert derived["headers"]["Authorization"] == f"Bearer {TOKEN}"  # type: ignore[index]
    assert derived["timeout"].total == 2  # type: ignore[attr-defined]
    assert parent["headers"]["X-Env"] == "prod"  # type: ignore[index]
    assert "X-Call" not in parent["headers"]  # type: ignore[operator]
    assert parent["timeout"].total == 30  # type: ignore[attr-defined]


async def test_a_fail_fast_call_does_not_change_the_parents_retries(
    mock: aioresponses,
) -> None:
    """with_options(retry=RetryPolicy(attempts=1)) tries once; the parent still retries."""
    clock = FakeClock()
    mock.get(RUN_URL, status=503, repeat=True)
    policy = RetryPolicy(attempts=3, jitter=False)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.with_options(retry=RetryPolicy(attempts=1)).runs.get(AUTOMATION_ID, RUN_ID)
        assert len(sent(mock)) == 1
        with pytest.raises(ServerError):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert len(sent(mock)) == 4
    assert clock.sleeps == [0.5, 1.0]


async def test_closing_the_derived_client_leaves_the_session_open(mock: aioresponses) -> None:
    """aclose() on a derived client closes only it: the parent keeps working."""
    mock.get(RUN_URL, payload=run_json(), repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL) as client:
        async with client.with_options(timeout=5) as derived:
            await derived.runs.get(AUTOMATION_ID, RUN_ID)
        assert derived.is_closed
        session = client._transport.session
        assert session is not None and not session.closed
        await client.runs.get(AUTOMATION_ID, RUN_ID)
        with pytest.raises(ClientClosedError, match="is closed"):
            await derived.runs.get(AUTOMATION_ID, RUN_ID)
    assert session.closed


async def test_a_derived_client_fails_once_the_parent_is_closed(mock: aioresponses) -> None:
    """After the parent's aclose(), the derived client raises ClientClosedError naming why."""
    mock.get(RUN_URL, payload=run_json(), repeat=True)
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    derived = client.with_options(retry=RetryPolicy(attempts=1))
    await derived.runs.get(AUTOMATION_ID, RUN_ID)  # opens the shared session
    await client.aclose()
    assert derived.is_closed
    with pytest.raises(ClientClosedError, match=r"with_options\(\) from a client that is now"):
        await derived.runs.get(AUTOMATION_ID, RUN_ID)
    session = client._transport.session
    assert session is not None and session.closed


async def test_with_options_on_a_closed_client_is_refused() -> None:
    """A closed client cannot be derived from."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    await client.aclose()
    with pytest.raises(ClientClosedError, match="closed AutomationClient"):
        client.with_options(timeout=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"timeout": 0}, "timeout must be"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"headers": {"Content-Length": "1"}}, "set by the client"),
    ],
)
def test_bad_options_are_refused_like_the_constructors(
    options: dict[str, object], match: str
) -> None:
    """with_options checks its values as AutomationClient(...) does."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    with pytest.raises(ConfigurationError, match=match):
        client.with_options(**options)  # type: ignore[arg-type]
