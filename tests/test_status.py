"""Status errors built without a server: their class, their fields and advice that fits."""

from __future__ import annotations

import json

import pytest
from aioresponses import aioresponses

from automation_sdk import (
    AutomationClient,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from automation_sdk._status import status_error
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN

URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
POLICY = RetryPolicy(attempts=5)


def build(
    status: int,
    body: object,
    *,
    method: str = "GET",
    base_url: str = BASE_URL,
    tries: int = 5,
    policy: RetryPolicy = POLICY,
    retry_after: float | None = None,
) -> str:
    """The message of the error for ``status`` with a JSON (or raw string) ``body``."""
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    exc = status_error(
        method,
        base_url + URL.removeprefix(BASE_URL),
        status,
        {},
        raw,
        retry_after=retry_after,
        base_url=base_url,
        tries=tries,
        policy=policy,
        idempotent=method != "POST",
        redact=str,
    )
    return str(exc)


def test_a_404_for_a_missing_object_says_to_check_the_ids() -> None:
    """A 404 whose detail names the missing object advises checking the ids."""
    message = build(404, {"detail": f"Session {RUN_ID} not found"})
    assert "Check the automation and run ids" in message
    assert "base URL" not in message


@pytest.mark.parametrize(
    "body", [{"detail": "Not Found"}, "<html><h1>404 Not Found</h1></html>", ""]
)
def test_a_404_for_an_unknown_route_says_to_check_the_base_url(body: object) -> None:
    """FastAPI's generic "Not Found", an HTML page or no body point at the base URL, not the ids."""
    message = build(404, body)
    assert "no such route" in message
    assert "check the ids" not in message.lower()
    assert "Check the automation and run ids" not in message


@pytest.mark.parametrize("suffix", ["/v1", "/api/v2/", "/API"])
def test_a_404_under_a_versioned_base_url_names_the_suffix(suffix: str) -> None:
    """A base URL ending in /v1 (or /api) is named as the likely cause, whatever the body says."""
    message = build(404, {"detail": "Not Found"}, base_url=BASE_URL + suffix.rstrip("/"))
    assert f"ends in '/{suffix.rstrip('/').rsplit('/', 1)[-1]}'" in message
    assert "Check the automation and run ids" not in message


def test_a_500_with_retries_off_does_not_say_it_was_retried() -> None:
    """With one attempt allowed, a 5xx says it was not retried."""
    message = build(500, {"detail": "boom"}, tries=1, policy=RetryPolicy(attempts=1))
    assert "it was not retried (the retry policy allows a single try)" in message
    assert "was retried as" not in message


def test_a_500_after_every_try_counts_them() -> None:
    """A 5xx on the last allowed try says how many tries were made."""
    assert "it failed on every try the retry policy allows" in build(500, {"detail": "x"})


def test_a_5xx_asking_for_too_long_a_wait_says_why_it_was_not_retried() -> None:
    """A Retry-After beyond max_retry_after is named as the reason for not retrying."""
    message = build(503, {}, tries=1, retry_after=600.0)
    assert "asked to wait 600s, longer than the retry policy's max_retry_after (60s)" in message


def test_a_post_500_says_it_may_have_taken_effect() -> None:
    """A POST's 5xx warns that the request may have taken effect, and says nothing of retries."""
    message = build(500, {}, method="POST", tries=1)
    assert "may have taken effect" in message
    assert "retried" not in message


def test_a_429_counts_the_tries() -> None:
    """A 429 after every try says so and to slow down."""
    message = build(429, {"detail": "slow down"})
    assert "Too many requests (it failed on every try the retry policy allows)" in message


async def test_advice_follows_the_policy_of_the_request(
    mock: aioresponses, clock: FakeClock
) -> None:
    """Through the client: a GET's 500 with retries off, and a 404 under /v1."""
    mock.get(URL, status=500, payload={"detail": "boom"})
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, clock=clock, retry=RetryPolicy(attempts=1)
    ) as client:
        with pytest.raises(ServerError, match="it was not retried"):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    versioned = f"{BASE_URL}/v1"
    mock.get(versioned + URL.removeprefix(BASE_URL), status=404, payload={"detail": "Not Found"})
    async with AutomationClient(TOKEN, base_url=versioned, clock=clock) as client:
        with pytest.raises(NotFoundError, match="ends in '/v1'"):
            await client.runs.get(AUTOMATION_ID, RUN_ID)


async def test_a_rate_limit_keeps_its_retry_after(mock: aioresponses, clock: FakeClock) -> None:
    """The Retry-After header is read whatever its case, and kept on the error."""
    mock.get(URL, status=429, payload={}, headers={"retry-after": "120"})
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock) as client:
        with pytest.raises(RateLimitError) as info:
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.retry_after == 120.0
