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
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    Timeout,
    TransportError,
)
from automation_sdk._transport import DeadlineExceeded
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json, wait_after

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
    policy = RetryPolicy(wait_initial=1.0, wait_max=8.0)
    waits = [wait_after(policy, 3) for _ in range(200)]
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
    """Each try is logged at DEBUG, each retry at INFO with the wait chosen; never the token."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    path = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("DEBUG", f"GET {path} -> 503 in 0.0 ms (try 1)") in messages
    assert ("INFO", f"GET {path} answered 503; try 2 of 4 in 0.50s (backoff)") in messages
    assert ("DEBUG", f"GET {path} -> 200 in 0.0 ms (try 2)") in messages
    assert all(TOKEN not in m for _, m in messages)


async def test_a_first_try_that_succeeds_builds_no_retry_machinery(
    client: AutomationClient, mock: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request answered at once never builds tenacity's retrying object."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the retry machinery was built for a request that succeeded")

    monkeypatch.setattr("automation_sdk._transport.AsyncRetrying", refuse)
    mock.get(RUN_URL, payload=run_json())
    run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(run.id) == RUN_ID


async def test_the_error_after_retries_says_how_many_tries_in_how_long(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """When every try failed, the message ends with the tries, the time and the budget."""
    mock.get(RUN_URL, exception=TimeoutError(), repeat=True)
    with pytest.raises(RequestTimeoutError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert str(info.value).endswith("Gave up after 4 tries in 3.5s.")


async def test_the_retry_budget_bounds_tries_and_waits(mock: aioresponses) -> None:
    """RetryPolicy(timeout=2) starts no wait past 2s, and clips the last try to what is left."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=4, wait_initial=0.5, jitter=False, timeout=2.0)
    mock.get(RUN_URL, exception=TimeoutError(), repeat=True)
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, clock=clock, retry=policy, timeout=1.0
    ) as c:
        with pytest.raises(RequestTimeoutError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [0.5, 1.0]  # a third wait of 2s would end at 3.5s
    totals = [call.kwargs["timeout"].total for call in mock.requests[("GET", URL(RUN_URL))]]
    assert totals == [1.0, 1.0, 0.5]
    assert str(info.value).endswith(
        "Gave up after 3 tries in 1.5s: the retry budget of 2s (RetryPolicy timeout) was used up."
    )


async def test_a_budget_that_is_not_reached_is_named_in_the_message(mock: aioresponses) -> None:
    """Attempts used up within the budget: the message gives the budget it stayed under."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=2, wait_initial=0.5, jitter=False, timeout=60)
    mock.get(RUN_URL, status=503, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as c:
        with pytest.raises(ServerError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(info.value).endswith("Gave up after 2 tries in 0.5s.")


async def test_a_retry_after_longer_than_the_budget_is_not_waited_for(
    mock: aioresponses,
) -> None:
    """A Retry-After that would end past the budget raises the 429 at once."""
    clock = FakeClock()
    policy = RetryPolicy(timeout=5.0)
    mock.get(RUN_URL, status=429, headers={"Retry-After": "10"}, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as c:
        with pytest.raises(RateLimitError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == []
    assert "retry budget of 5s" in str(info.value)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_a_bad_retry_budget_is_refused(value: object) -> None:
    """RetryPolicy(timeout=...) takes None or a finite number of seconds above 0."""
    with pytest.raises(ConfigurationError, match=r"RetryPolicy\.timeout"):
        RetryPolicy(timeout=value)  # type: ignore[arg-type]


async def test_a_read_timeout_is_named_in_the_message(mock: aioresponses) -> None:
    """Timeout(read=...) reaches aiohttp as the socket read limit and names itself when hit."""
    timeout = Timeout(connect=2.0, read=5.0)
    mock.get(RUN_URL, exception=aiohttp.SocketTimeoutError(), repeat=True)
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, clock=FakeClock(), timeout=timeout, retry=RetryPolicy(attempts=1)
    ) as c:
        with pytest.raises(RequestTimeoutError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    (call,) = mock.requests[("GET", URL(RUN_URL))]
    sent = call.kwargs["timeout"]
    assert (sent.sock_connect, sent.sock_read, sent.total) == (2.0, 5.0, None)
    assert "received nothing for 5s (the read timeout)" in str(info.value)


class LateClock(FakeClock):
    """A clock whose sleeps end late, as a busy machine's do."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        self.advance(0.6)


async def test_a_wait_that_ends_late_sends_no_try_past_the_budget(mock: aioresponses) -> None:
    """A wait that overran the budget ends the call without another try."""
    clock = LateClock()
    policy = RetryPolicy(attempts=4, wait_initial=0.5, jitter=False, timeout=1.0)
    mock.get(RUN_URL, status=503, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as c:
        with pytest.raises(ServerError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert count(mock, "GET", RUN_URL) == 1
    assert str(info.value).endswith(
        "Gave up after 1 try in 1.1s: the retry budget of 1s (RetryPolicy timeout) was used up."
    )


async def test_a_wait_that_ends_late_past_a_deadline_is_a_deadline(mock: aioresponses) -> None:
    """Past the caller's deadline, the session layer says so, carrying the last failure."""
    clock = LateClock()
    policy = RetryPolicy(attempts=4, wait_initial=0.5, jitter=False)
    mock.get(RUN_URL, status=503, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=policy) as c:
        with pytest.raises(DeadlineExceeded) as info:
            await c._transport.request(
                "GET", RUN_URL.removeprefix(BASE_URL), idempotent=True, deadline=1.0
            )
    assert isinstance(info.value.last, ServerError)
    assert count(mock, "GET", RUN_URL) == 1
