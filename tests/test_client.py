"""The client's configuration, lifecycle and secrecy of the token."""

from __future__ import annotations

import gc
import logging

import aiohttp
import pytest
from aioresponses import aioresponses

import automation_sdk
from automation_sdk import (
    AuthenticationError,
    AutomationClient,
    ClientClosedError,
    ConfigurationError,
    RetryPolicy,
)
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"


def test_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token argument and no environment variable: ConfigurationError naming both."""
    monkeypatch.delenv("AUTOMATION_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="AUTOMATION_API_TOKEN"):
        AutomationClient()
    with pytest.raises(ValueError, match="no API token"):
        AutomationClient("   ")


def test_environment_supplies_token_base_url_and_org(monkeypatch: pytest.MonkeyPatch) -> None:
    """token, base_url and org_id fall back to their environment variables."""
    monkeypatch.setenv("AUTOMATION_API_TOKEN", "env-token")
    monkeypatch.setenv("AUTOMATION_BASE_URL", "http://127.0.0.1:9999/")
    monkeypatch.setenv("AUTOMATION_ORG_ID", "org_env")
    client = AutomationClient()
    assert client.base_url == "http://127.0.0.1:9999"
    assert client._transport._headers["Current-Org-Id"] == "org_env"
    assert client._transport._headers["Authorization"] == "Bearer env-token"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AUTOMATION_BASE_URL the public service is used."""
    monkeypatch.delenv("AUTOMATION_BASE_URL", raising=False)
    assert AutomationClient("t").base_url == "https://api.truestate.io"


@pytest.mark.parametrize("url", ["api.truestate.io", "ftp://x", "http://"])
def test_bad_base_url_is_refused(url: str) -> None:
    """A base URL that is not http(s)://host is refused at construction."""
    with pytest.raises(ConfigurationError, match=r"base_url .* must be an http:// or https://"):
        AutomationClient("t", base_url=url)


def test_bad_timeout_and_retry_are_refused() -> None:
    """A non-positive timeout or zero attempts cannot work and are refused."""
    with pytest.raises(ConfigurationError, match="timeout"):
        AutomationClient("t", timeout=0)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


async def test_closed_client_refuses_requests_and_cannot_reopen(mock: aioresponses) -> None:
    """After aclose (called twice, harmlessly), a request raises ClientClosedError."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    async with client:
        pass
    await client.aclose()
    assert client.is_closed
    with pytest.raises(ClientClosedError, match="closed"):
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    with pytest.raises(RuntimeError):
        async with client:
            pass


async def test_borrowed_session_is_never_closed(mock: aioresponses) -> None:
    """A ClientSession passed in is used for requests and left open."""
    mock.get(RUN_URL, payload=run_json())
    async with aiohttp.ClientSession() as session:
        async with AutomationClient(TOKEN, base_url=BASE_URL, session=session) as client:
            await client.runs.get(AUTOMATION_ID, RUN_ID)
        assert not session.closed


async def test_owned_session_is_closed_by_aclose() -> None:
    """The client's own session is created on entry and closed on exit."""
    async with AutomationClient(TOKEN, base_url=BASE_URL) as client:
        session = client._transport.session
        assert session is not None and not session.closed
    assert session.closed


async def test_unclosed_client_warns() -> None:
    """A client that opened its session and was dropped unclosed warns with ResourceWarning."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    await client._transport.open()
    session = client._transport.session
    with pytest.warns(ResourceWarning, match="never closed"):  # noqa: PT031
        del client
        gc.collect()
    assert session is not None
    await session.close()


def test_client_never_opened_does_not_warn() -> None:
    """Constructing a client without using it holds nothing and warns nothing."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)
    del client
    gc.collect()


async def test_token_appears_in_no_repr_message_or_log(
    mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """The token is redacted even when the server echoes it back in an error."""
    caplog.set_level(logging.DEBUG)
    mock.get(RUN_URL, status=401, payload={"detail": f"invalid token {TOKEN}"})
    async with AutomationClient(TOKEN, base_url=BASE_URL) as client:
        assert TOKEN not in repr(client)
        with pytest.raises(AuthenticationError) as info:
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    for text in (str(exc), repr(exc), str(exc.detail), str(exc.body), caplog.text):
        assert TOKEN not in text
    assert "[redacted]" in str(exc)


def test_public_names_are_sorted_and_exported() -> None:
    """__all__ is sorted and every name in it exists, errors included."""
    names = automation_sdk.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(automation_sdk, name), name
    for name in automation_sdk.errors.__all__:
        assert name in names, name
