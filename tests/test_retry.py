"""Which requests are retried, how long the client waits, and what it says."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from automation_sdk import (
    AutomationClient,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from automation_sdk._retry import backoff
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
RUNS_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/"


def count(mock: aioresponses, method: str, url: str) -> int:
    """How many requests ``method url`` were sent."""
    return len(mock.requests.get((method, URL(url)), []))


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 502, "body": "<html>bad gateway</html>", "content_type": "text/html"},
        {"status": 503},
        {"status": 408},
        {"status": 429},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
        {"exception": aiohttp.ClientPayloadError("body cut short")},
        {"body": '{"id": "9a1f', "content_type": "application/json"},
    ],
)
async def test_get_is_retried_with_exponential_backoff(
    client: AutomationClient, mock: aioresponses, clock: FakeClock, failure: dict[str, object]
) -> None:
    """A GET that fails for a passing reason is tried again after 0.5s, then 1s."""
    mock.get(RUN_URL, **failure)  # type: ignore[arg-type]
    mock.get(RUN_URL, **failure)  # type: ignore[arg-type]
    mock.get(RUN_URL, payload=run_json())
    run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(run.id) == RUN_ID
    assert clock.sleeps == [0.5, 1.0]
    assert count(mock, "GET", RUN_URL) == 3


async def test_retries_give_up_after_attempts(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """After ``attempts`` tries the last error is raised; waits grow up to wait_max."""
    mock.get(RUN_URL, status=503, repeat=True)
    with pytest.raises(ServerError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.status_code == 503
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert count(mock, "GET", RUN_URL) == 4


async def test_wait_max_caps_the_backoff(mock: aioresponses) -> None:
    """The exponential wait never exceeds wait_max."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=6, wait_initial=1.0, wait_max=3.0, jitter=False)
    mock.get(RUN_URL, status=500, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as c:
        with pytest.raises(ServerError):
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_jitter_spreads_waits_over_half_to_all_of_the_base() -> None:
    """With jitter, each wait lies between 50% and 100% of the exponential value."""
    import random

    rng = random.Random(7)
    policy = RetryPolicy(wait_initial=1.0, wait_max=8.0)
    waits = [backoff(policy, 3, None, rng) for _ in range(200)]
    assert all(2.0 <= w <= 4.0 for w in waits)
    assert max(waits) - min(waits) > 1.0


async def test_attempts_one_turns_retries_off(mock: aioresponses, clock: FakeClock) -> None:
    """RetryPolicy(attempts=1) sends one request and raises its error."""
    mock.get(RUN_URL, status=503, repeat=True)
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, clock=clock, retry=RetryPolicy(attempts=1)
    ) as c:
        with pytest.raises(ServerError):
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert count(mock, "GET", RUN_URL) == 1
    assert clock.sleeps == []


async def test_not_found_is_not_retried(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A 404 will not change on a retry: raised after one request."""
    mock.get(RUN_URL, status=404, payload={"detail": "Session not found"}, repeat=True)
    with pytest.raises(NotFoundError):
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert count(mock, "GET", RUN_URL) == 1


async def test_wrong_shape_is_not_retried(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Valid JSON of the wrong shape will not get better: raised after one request."""
    mock.get(RUN_URL, payload={"id": RUN_ID}, repeat=True)
    with pytest.raises(ResponseValidationError):
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert count(mock, "GET", RUN_URL) == 1


async def test_retry_after_seconds_is_honoured_above_wait_max(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Retry-After: 10 is waited for exactly, though wait_max is 4."""
    mock.get(RUN_URL, status=429, headers={"Retry-After": "10"})
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [10.0]


async def test_retry_after_http_date_is_honoured(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """Retry-After as an HTTP date waits until that moment."""
    when = datetime.now(UTC) + timedelta(seconds=30)
    mock.get(RUN_URL, status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    (slept,) = clock.sleeps
    assert 27.0 <= slept <= 30.0


async def test_retry_after_beyond_the_cap_raises_at_once(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A Retry-After above max_retry_after is not waited for: the error carries it."""
    mock.get(RUN_URL, status=429, headers={"Retry-After": "3600"}, repeat=True)
    with pytest.raises(RateLimitError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.retry_after == 3600.0
    assert "Retry-After: 3.6e+03s" in str(info.value)
    assert clock.sleeps == []
    assert count(mock, "GET", RUN_URL) == 1


async def test_unparseable_retry_after_falls_back_to_backoff(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A Retry-After that is neither seconds nor a date is ignored."""
    mock.get(RUN_URL, status=503, headers={"Retry-After": "soon"})
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [0.5]


async def test_cancel_is_retried_like_a_get(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """The cancel PATCH is idempotent, so a 5xx is retried."""
    mock.patch(RUN_URL + "cancel", status=502)
    mock.patch(RUN_URL + "cancel", payload=run_json("FAILED"))
    await client.runs.cancel(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [0.5]


async def test_post_is_not_retried_on_5xx(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A POST answered 5xx may have acted: raised at once, saying so."""
    mock.post(RUNS_URL, status=500, repeat=True)
    with pytest.raises(ServerError) as info:
        await client.runs.create(AUTOMATION_ID, inputs={})
    assert info.value.may_have_taken_effect
    assert "may have taken effect" in str(info.value)
    assert count(mock, "POST", RUNS_URL) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("exception", "cls"),
    [
        (TimeoutError(), RequestTimeoutError),
        (aiohttp.ServerDisconnectedError(), TransportError),
    ],
)
async def test_post_is_not_retried_when_it_may_have_arrived(
    client: AutomationClient, mock: aioresponses, exception: Exception, cls: type[Exception]
) -> None:
    """A POST whose answer timed out or was cut off is not sent twice."""
    mock.post(RUNS_URL + "", exception=exception, repeat=True)
    with pytest.raises(cls) as info:
        await client.runs.create(AUTOMATION_ID, inputs={})
    assert "may have taken effect" in str(info.value)
    assert count(mock, "POST", RUNS_URL) == 1


async def test_post_is_retried_on_429(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A 429 means the server did not act: the POST is sent again after Retry-After."""
    mock.post(RUNS_URL, status=429, headers={"Retry-After": "2"})
    mock.post(RUNS_URL, payload=run_json("NEW", steps=[]))
    await client.runs.create(AUTOMATION_ID, inputs={})
    assert clock.sleeps == [2.0]
    assert count(mock, "POST", RUNS_URL) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_post_is_retried_when_the_connection_is_refused(clock: FakeClock) -> None:
    """A refused connection never reached the server, so even a POST is retried."""
    policy = RetryPolicy(attempts=3, wait_initial=0.5, jitter=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    async with AutomationClient(TOKEN, base_url=url, clock=clock, retry=policy) as c:
        with pytest.raises(TransportError) as info:
            await c.runs.create(AUTOMATION_ID, inputs={})
    assert clock.sleeps == [0.5, 1.0]
    assert not info.value.may_have_taken_effect
    assert "could not connect" in str(info.value)
    assert info.value.method == "POST"


async def test_each_retry_is_logged_without_the_token(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Each try is logged at DEBUG with method, path, status and wait; never the token."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    path = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
    messages = [r.getMessage() for r in caplog.records]
    assert f"GET {path} -> 503" in messages
    assert f"GET {path} failed (status 503); try 2 of 4 in 0.50s" in messages
    assert f"GET {path} -> 200" in messages
    assert all(TOKEN not in m for m in messages)
