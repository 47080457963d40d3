"""A server that echoes the token: it appears in no message, attribute, repr or log line."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from aioresponses import aioresponses

from automation_sdk import (
    AuthenticationError,
    AutomationClient,
    AutomationError,
    ResponseValidationError,
    RetryPolicy,
    RunFailedError,
    ServerError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from automation_sdk._redact import Redactor
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, run_json, run_step_json

# The characters JSON and URLs like to escape.
SECRET = "sk_live/Q3+xY/9z+Ab7/Kp"
RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
CANCEL_URL = RUN_URL + "cancel"
RUNS_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/"

SPELLINGS = {
    "plain": SECRET,
    "slash escaped": SECRET.replace("/", "\\/"),
    "slash as \\u002f": SECRET.replace("/", "\\u002f"),
    "slash as \\u002F": SECRET.replace("/", "\\u002F"),
    "every char as \\uXXXX": "".join(f"\\u{ord(c):04x}" for c in SECRET),
}


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[AutomationClient]:
    """A client holding SECRET, on the fake clock."""
    policy = RetryPolicy(attempts=2, wait_initial=0.5, jitter=False)
    async with AutomationClient(SECRET, base_url=BASE_URL, clock=clock, retry=policy) as c:
        yield c


def leaks(*texts: object) -> list[str]:
    """The texts in which the token, any spelling of it, or a long prefix of it shows."""
    found = []
    for text in texts:
        shown = text if isinstance(text, str) else repr(text)
        pieces = [*SPELLINGS.values(), SECRET[:8], quote(SECRET, safe=""), quote(SECRET)]
        if any(p in shown for p in pieces):
            found.append(shown)
    return found


def surfaces(exc: AutomationError) -> list[object]:
    """Every text of an error a user can see."""
    texts: list[object] = [str(exc), repr(exc), exc.args]
    for name in ("body", "detail", "problems", "headers", "request_id", "errors", "checkpoint"):
        texts.append(getattr(exc, name, None))
    return texts


@pytest.mark.parametrize("spelling", list(SPELLINGS))
async def test_a_token_echoed_in_a_json_body_is_redacted_however_escaped(
    client: AutomationClient, mock: aioresponses, spelling: str
) -> None:
    """The token echoed in a 401's JSON, plain or escaped, is in no message, .body or .detail."""
    raw = '{"detail": "invalid token ' + SPELLINGS[spelling] + '", "seen": ["Bearer '
    raw += SPELLINGS[spelling] + '"]}'
    mock.get(RUN_URL, status=401, body=raw, content_type="application/json")
    with pytest.raises(AuthenticationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert leaks(*surfaces(exc)) == []
    assert exc.detail == "invalid token [redacted]"
    assert exc.body == {"detail": "invalid token [redacted]", "seen": ["Bearer [redacted]"]}


async def test_a_token_echoed_in_headers_is_redacted(
    client: AutomationClient, mock: aioresponses
) -> None:
    """The token in x-request-id and WWW-Authenticate is kept out of .headers and .request_id."""
    headers = {
        "x-request-id": SECRET,
        "WWW-Authenticate": f'Bearer error="invalid_token", token="{SECRET}"',
    }
    mock.get(RUN_URL, status=401, payload={"detail": "no"}, headers=headers)
    with pytest.raises(AuthenticationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert leaks(*surfaces(exc)) == []
    assert exc.request_id == "[redacted]"
    assert exc.headers["WWW-Authenticate"] == 'Bearer error="invalid_token", token="[redacted]"'


@pytest.mark.parametrize("status", [200, 403])
@pytest.mark.parametrize("before_cut", [1, 4, 10, len(SECRET) - 1])
async def test_a_token_straddling_the_excerpt_cut_leaves_no_prefix(
    client: AutomationClient, mock: aioresponses, status: int, before_cut: int
) -> None:
    """A body that is not JSON is redacted before it is cut, so no piece of the token remains."""
    text = "x" * (300 - before_cut) + SECRET + "y" * 500
    mock.get(RUN_URL, status=status, body=text, content_type="text/plain", repeat=True)
    with pytest.raises(AutomationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert leaks(*surfaces(exc)) == []
    assert SECRET[:4] not in str(getattr(exc, "body", ""))


@pytest.mark.parametrize("offset", [0, 60, 75, 290])
async def test_a_token_in_a_body_that_is_not_json_is_redacted(
    client: AutomationClient, mock: aioresponses, offset: int
) -> None:
    """A 200 that is not JSON quotes its start and keeps an excerpt: neither shows the token."""
    text = "z" * offset + "token=" + SECRET.replace("/", "%2F").replace("+", "%2B") + " " + SECRET
    mock.get(RUN_URL, body=text + " " * 400, content_type="text/plain", repeat=True)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert leaks(*surfaces(info.value)) == []


@pytest.mark.parametrize("padding", [0, 20, 40, 45])
async def test_validation_problems_quoting_the_token_are_redacted(
    client: AutomationClient, mock: aioresponses, padding: int
) -> None:
    """A problem that quotes a server value holding the token shows it redacted, even cut short."""
    body = run_json(steps=[run_step_json(error=None)])
    body["id"] = "Bearer " + "p" * padding + SECRET
    mock.get(RUN_URL, payload=body)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert any(p.startswith("id: expected a UUID, got 'Bearer ") for p in exc.problems)
    assert leaks(*surfaces(exc)) == []


async def test_a_422_detail_quoting_the_token_is_redacted(
    client: AutomationClient, mock: aioresponses
) -> None:
    """Each parsed 422 entry (.errors) and the message are redacted."""
    detail = [
        {"loc": ["body", SECRET], "msg": f"bad value {SECRET}", "type": "x"},
        "Bearer " + SECRET,
        {"nested": [SECRET.replace("/", "\\/")]},
    ]
    mock.post(RUNS_URL, status=422, payload={"detail": detail})
    with pytest.raises(UnprocessableEntityError) as info:
        await client.runs.create(AUTOMATION_ID, inputs={})
    exc = info.value
    assert leaks(*surfaces(exc)) == []
    assert exc.errors[0].loc == ("body", "[redacted]")
    assert exc.errors[0].msg == "bad value [redacted]"


async def test_a_watch_ending_on_an_echo_keeps_the_token_out(
    client: AutomationClient, mock: aioresponses
) -> None:
    """An error ending a watch is redacted like any other, its checkpoint attached."""
    mock.get(RUN_URL, payload=run_json("RUNNING"))
    mock.get(RUN_URL, status=401, body='{"detail": "' + SPELLINGS["slash escaped"] + '"}')
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    with pytest.raises(AuthenticationError) as info:
        async for _ in watch:
            pass
    assert info.value.checkpoint is not None
    assert leaks(*surfaces(info.value)) == []


async def test_a_validation_error_in_a_watch_is_redacted(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A poll whose answer quotes the token in a bad field raises it redacted."""
    body = run_json()
    body["updated_at"] = SECRET
    mock.get(RUN_URL, payload=body)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert leaks(*surfaces(info.value)) == []


async def test_a_failed_run_echoing_the_token_is_redacted_in_the_message(
    client: AutomationClient, mock: aioresponses
) -> None:
    """RunFailedError's message quotes the step's error: the token in it is redacted."""
    step = run_step_json(status="FAILED", error=f"auth failed with {SECRET}")
    mock.get(RUN_URL, payload=run_json("FAILED", [step], error=f"bad {SECRET}"))
    with pytest.raises(RunFailedError) as info:
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert leaks(str(info.value), repr(info.value)) == []
    assert "auth failed with [redacted]" in str(info.value)


async def test_logs_never_show_an_echoed_token(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries, a failed cancel and the errors behind them log nothing of the token."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    echo = {"x-request-id": SECRET, "Retry-After": "20"}
    mock.get(RUN_URL, payload=run_json("RUNNING"))
    mock.get(RUN_URL, status=503, body='{"detail": "' + SECRET + '"}', headers=echo, repeat=True)
    escaped = '{"detail": "' + SPELLINGS["slash as \\u002f"] + '"}'
    mock.patch(CANCEL_URL, status=500, body=escaped, repeat=True)
    with pytest.raises(WaitTimeoutError):
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=10, cancel_on_timeout=True)
    assert any("cancelling the run failed" in r.getMessage() for r in caplog.records)
    assert leaks(caplog.text, *(r.getMessage() for r in caplog.records)) == []


async def test_a_server_error_echo_via_retries_is_redacted(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A 5xx echoing the token in every place, retried, ends redacted."""
    body = '{"detail": "' + SPELLINGS["every char as \\uXXXX"] + '"}'
    mock.get(RUN_URL, status=503, body=body, headers={"request-id": SECRET}, repeat=True)
    with pytest.raises(ServerError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert leaks(*surfaces(info.value)) == []


@pytest.mark.parametrize(
    ("token", "text", "expected"),
    [
        ("abc", "x abc y", "x [redacted] y"),
        ("a.b*c", "a.b*c axbxc", "[redacted] axbxc"),
        ("sk_live/x+y", json.dumps({"t": "sk_live/x+y"}), '{"t": "[redacted]"}'),
        ("sk_live/x+y", "got 'sk_live/x...", "got '[redacted]..."),
        ("sk_live/x+y", "got 'sk_l...", "got 'sk_l..."),
        ("sk_live/x+y", "SK_LIVE/X+Y", "SK_LIVE/X+Y"),
        ("", "anything", "anything"),
    ],
)
def test_redactor_finds_the_token_and_only_it(token: str, text: str, expected: str) -> None:
    """The token is matched literally (regex characters are not patterns), cut prefixes too."""
    assert Redactor(token).text(text) == expected
