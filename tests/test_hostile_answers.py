"""Hostile server answers: every one ends in a typed error, bounded in memory and time."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from automation_sdk import (
    APIStatusError,
    AutomationClient,
    AutomationError,
    ConfigurationError,
    InvalidArgumentError,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
    Run,
    ServerError,
    StepSpec,
    TransportError,
    WaitTimeoutError,
    errors,
)
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, automation_json, run_json
from servers import serve

AUTOMATIONS_URL = f"{BASE_URL}/automations/"
AUTOMATION_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/"
RUNS_URL = f"{AUTOMATION_URL}sessions/"
RUN_URL = f"{RUNS_URL}{RUN_ID}/"
CANCEL_URL = RUN_URL + "cancel"
INPUT_URL = RUN_URL + "user-input"

# 40 kB, deeper than the decoder follows: Python 3.11 stops near 1,000 levels, 3.13 near 10,000.
DEEP_ARRAY = "[" * 20_000 + "]" * 20_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000  # under aioresponses' 128 KiB
BIG_INT = json.dumps(run_json(steps_count=0)).replace(
    '"steps_count": 0', '"steps_count": ' + "9" * 5000
)
LIMIT = 64 * 1024

Call = Callable[[AutomationClient], Awaitable[object]]

# Every call of the API, with the request it sends.
CALLS: dict[str, tuple[str, str, Call]] = {
    "automations.create": (
        "POST",
        AUTOMATIONS_URL,
        lambda c: c.automations.create(name="x", steps=[StepSpec("start", "START")]),
    ),
    "automations.get": ("GET", AUTOMATION_URL, lambda c: c.automations.get(AUTOMATION_ID)),
    "runs.create": ("POST", RUNS_URL, lambda c: c.runs.create(AUTOMATION_ID)),
    "runs.list": ("GET", RUNS_URL, lambda c: c.runs.list(AUTOMATION_ID)),
    "runs.get": ("GET", RUN_URL, lambda c: c.runs.get(AUTOMATION_ID, RUN_ID)),
    "runs.cancel": ("PATCH", CANCEL_URL, lambda c: c.runs.cancel(AUTOMATION_ID, RUN_ID)),
    "runs.submit_input": (
        "POST",
        INPUT_URL,
        lambda c: c.runs.submit_input(AUTOMATION_ID, RUN_ID, "yes"),
    ),
    "runs.wait": ("GET", RUN_URL, lambda c: c.runs.wait(AUTOMATION_ID, RUN_ID, timeout=60)),
}


def sent(mock: aioresponses, method: str, url: str) -> int:
    """How many ``method url`` requests were sent."""
    return len(mock.requests.get((method, URL(url)), []))


# -- JSON nested too deep ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize("name", list(CALLS))
async def test_json_nested_too_deep_is_a_validation_error_from_every_call(
    client: AutomationClient, mock: aioresponses, name: str, body: str
) -> None:
    """JSON nested deeper than the decoder follows is a ResponseValidationError, not retried."""
    method, url, call = CALLS[name]
    mock.add(url, method, status=200, body=body, content_type="application/json", repeat=True)
    with pytest.raises(ResponseValidationError) as info:
        await call(client)
    assert "nested deeper than the decoder can follow" in str(info.value)
    assert info.value.not_json is False
    assert sent(mock, method, url) == 1


async def test_json_nested_too_deep_ends_a_watch_with_its_checkpoint(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A watch whose poll answers deep JSON raises the typed error with a checkpoint to resume."""
    mock.get(RUN_URL, payload=run_json("RUNNING"))
    mock.get(RUN_URL, body=DEEP_ARRAY, content_type="application/json")
    watch = client.runs.watch(AUTOMATION_ID, RUN_ID)
    with pytest.raises(ResponseValidationError) as info:
        async for _ in watch:
            pass
    assert info.value.checkpoint == watch.checkpoint()
    assert '"run_status":"RUNNING"' in info.value.checkpoint


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 429, 500, 503])
@pytest.mark.parametrize("body", [DEEP_ARRAY, '{"detail": ' + DEEP_ARRAY + "}", BIG_INT])
async def test_hostile_error_bodies_still_give_the_status_error(
    client: AutomationClient, mock: aioresponses, status: int, body: str
) -> None:
    """An error answer whose body cannot be decoded still raises its status class."""
    mock.get(RUN_URL, status=status, body=body, content_type="application/json", repeat=True)
    with pytest.raises(APIStatusError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.status_code == status
    assert str(info.value).startswith(f"GET {RUN_URL} answered {status}")


@pytest.mark.parametrize("depth", [500, 900, 990, 1000, 5000])
async def test_json_nested_near_the_limit_is_a_run_or_a_typed_error(
    client: AutomationClient, mock: aioresponses, depth: int
) -> None:
    """Whatever depth a run's inputs have, the answer is a Run or a ResponseValidationError."""
    text = json.dumps(run_json()).replace('{"ticket": "T-1"}', "[" * depth + "]" * depth)
    mock.get(RUN_URL, body=text, content_type="application/json")
    mock.get(RUN_URL, status=422, body='{"detail": ' + "[" * depth + "]" * depth + "}")
    with contextlib.suppress(ResponseValidationError):
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    with pytest.raises(APIStatusError):
        await client.runs.get(AUTOMATION_ID, RUN_ID)


@pytest.mark.parametrize("depth", [990, 1000, 100_000])
def test_checkpoint_nested_too_deep_is_an_invalid_argument(depth: int) -> None:
    """A checkpoint nested deeper than Python reads is an InvalidArgumentError."""
    head = '{"format": "automation_sdk.run_watch", "version": 1, "steps": '
    with pytest.raises(InvalidArgumentError, match="checkpoint"):
        AutomationClient(TOKEN, base_url=BASE_URL).runs.watch(
            AUTOMATION_ID, RUN_ID, resume_from=head + "[" * depth + "]" * depth + "}"
        )


# -- BOM and integers too long -----------------------------------------------------------------


async def test_json_with_a_byte_order_mark_is_accepted(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A UTF-8 BOM before valid JSON is skipped: the answer is used, not retried."""
    body = b"\xef\xbb\xbf" + json.dumps(run_json("FINISHED")).encode()
    mock.get(RUN_URL, body=body, content_type="application/json")
    run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert run.status.value == "FINISHED"


async def test_an_integer_too_long_for_python_is_a_validation_error_not_retried(
    client: AutomationClient, mock: aioresponses
) -> None:
    """An integer of 5,000 digits is a ResponseValidationError naming it, sent once."""
    mock.get(RUN_URL, body=BIG_INT, content_type="application/json", repeat=True)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert "integer of more than 4300 digits" in str(info.value)
    assert info.value.not_json is False
    assert sent(mock, "GET", RUN_URL) == 1


async def test_a_body_that_is_not_json_is_still_retried(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A body cut short is not JSON: retried on a GET, with not_json set on the last error."""
    mock.get(RUN_URL, body='{"id": "9a1f', content_type="application/json", repeat=True)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.not_json is True
    assert sent(mock, "GET", RUN_URL) == 4


# -- max_response_bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "5", None])
def test_max_response_bytes_must_be_a_positive_integer(value: Any) -> None:
    """A limit that is not a positive int is refused when the client is built."""
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        AutomationClient(TOKEN, base_url=BASE_URL, max_response_bytes=value)


def _limited(base_url: str, clock: FakeClock, limit: int = LIMIT) -> AutomationClient:
    return AutomationClient(
        TOKEN, base_url=base_url, clock=clock, timeout=10, max_response_bytes=limit
    )


async def test_a_body_over_the_limit_is_refused_and_not_retried(clock: FakeClock) -> None:
    """A 100 kB body over a 64 kB limit raises ResponseTooLargeError naming it, once."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b" " * 100_000, content_type="application/json")

    async with serve(handler) as url, _limited(url, clock) as client:
        with pytest.raises(ResponseTooLargeError) as info:
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert exc.limit == LIMIT
    assert "max_response_bytes=65536" in str(exc)
    assert isinstance(exc, ResponseValidationError)
    assert len(seen) == 1


async def test_a_body_at_the_limit_is_read(clock: FakeClock) -> None:
    """A body of exactly max_response_bytes is accepted."""
    body = json.dumps(run_json("FINISHED")).encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with serve(handler) as url, _limited(url, clock, len(body)) as client:
        run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert isinstance(run, Run)


async def test_an_endless_body_is_cut_at_the_limit(clock: FakeClock) -> None:
    """A body that never ends is read up to the limit only: no hang, no growing memory."""
    written = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal written
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        while True:  # ends when the client goes away
            await resp.write(b" " * 16384)
            written += 16384

    async with serve(handler) as url, _limited(url, clock) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert written > LIMIT


async def test_a_gzip_bomb_is_cut_at_the_limit_after_decompression(clock: FakeClock) -> None:
    """8 MiB of JSON sent as 8 kB of gzip stops at the limit as it inflates, not after."""
    inflated = b"[" + b"0," * (4 * 1024 * 1024) + b"0]"
    bomb = gzip.compress(inflated, compresslevel=9)
    assert len(bomb) < LIMIT < len(inflated)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serve(handler) as url, _limited(url, clock) as client:
        with pytest.raises(ResponseTooLargeError) as info:
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.limit == LIMIT
    assert len(seen) == 1


async def test_a_compressed_answer_under_the_limit_is_decoded(clock: FakeClock) -> None:
    """Compression itself is fine: a gzip answer under the limit gives its Run."""
    body = gzip.compress(json.dumps(run_json("FINISHED")).encode())

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serve(handler) as url, _limited(url, clock) as client:
        run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert run.status.value == "FINISHED"


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("999999999", 60.0), ("Fri, 31 Dec 9999 23:59:59 GMT", 60.0), ("45", 45.0)],
)
async def test_retry_after_on_a_successful_poll_is_clipped_and_logged(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    header: str,
    expected: float,
) -> None:
    """A successful poll's Retry-After waits at most max_retry_after, and a clip is logged."""
    mock.get(RUN_URL, payload=run_json("RUNNING"), headers={"Retry-After": header})
    mock.get(RUN_URL, payload=run_json("FINISHED", updated_at="2026-11-29T10:00:01Z"))
    with caplog.at_level(logging.WARNING, logger="automation_sdk"):
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert clock.sleeps == [expected]
    clipped = [r for r in caplog.records if "max_retry_after" in r.getMessage()]
    assert len(clipped) == (1 if expected == 60.0 else 0)


async def test_a_503_asking_for_more_than_the_time_left_says_so(
    client: AutomationClient, mock: aioresponses, clock: FakeClock
) -> None:
    """A 503 whose Retry-After overshoots the deadline says so, with the wait and the time left."""
    mock.get(RUN_URL, status=503, headers={"Retry-After": "50"}, payload={"detail": "busy"})
    with pytest.raises(WaitTimeoutError) as info:
        await client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=30)
    message = str(info.value)
    assert "asked to be polled again in 50s (Retry-After), more than the 30s left" in message
    assert "did not end within" not in message
    assert clock.monotonic() == 0.0  # raised at once, without waiting for nothing
    assert isinstance(info.value.__cause__, ServerError)


# -- the whole catalogue -----------------------------------------------------------------------

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"

# (name, status, body, headers): answers to GET run that a hostile or broken server could send.
HOSTILE: list[tuple[str, int, str | bytes, dict[str, str]]] = [
    ("deep array", 200, DEEP_ARRAY, {}),
    ("deep object", 200, DEEP_OBJECT, {}),
    ("integer of 5000 digits", 200, BIG_INT, {}),
    ("html page", 200, HTML, {"Content-Type": "text/html"}),
    ("empty body", 200, "", {}),
    ("cut short", 200, json.dumps(run_json())[:100], {}),
    ("invalid utf-8", 200, b"\xff\xfe\xfa{", {}),
    ("null", 200, "null", {}),
    ("a string", 200, '"run"', {}),
    ("an array", 200, "[1, 2]", {}),
    ("NaN status", 200, json.dumps(run_json()).replace('"RUNNING"', "NaN"), {}),
    ("id a number", 200, json.dumps(run_json()).replace(f'"{RUN_ID}"', "12", 1), {}),
    ("steps an object", 200, json.dumps({**run_json(), "steps": {"a": 1}}), {}),
    ("timestamp garbage", 200, json.dumps(run_json(updated_at="yesterday")), {}),
    ("503 retry-after 1e9", 503, '{"detail": "x"}', {"Retry-After": "999999999"}),
    ("503 retry-after nan", 503, '{"detail": "x"}', {"Retry-After": "nan"}),
    ("429 retry-after date 9999", 429, "{}", {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}),
    ("500 deep detail", 500, '{"detail": ' + DEEP_ARRAY + "}", {}),
    ("422 detail of junk", 422, '{"detail": [1, null, "x", {"loc": 5, "msg": []}]}', {}),
    ("404 html", 404, HTML, {"Content-Type": "text/html"}),
    ("401 big int", 401, BIG_INT, {}),
    ("418 empty", 418, "", {}),
]


@pytest.mark.parametrize(
    ("status", "body", "headers"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
@pytest.mark.parametrize("how", ["get", "wait"])
async def test_every_hostile_answer_is_a_typed_error(
    client: AutomationClient,
    mock: aioresponses,
    status: int,
    body: str | bytes,
    headers: dict[str, str],
    how: str,
) -> None:
    """Each hostile answer, to a call or to a watch, raises an AutomationError of the SDK."""
    mock.get(RUN_URL, status=status, body=body, headers=headers, repeat=True)
    if how == "get":
        call = client.runs.get(AUTOMATION_ID, RUN_ID)
    else:
        call = client.runs.wait(AUTOMATION_ID, RUN_ID, timeout=600)
    with pytest.raises(AutomationError) as info:
        await call
    assert type(info.value).__module__ == errors.__name__
    assert isinstance(info.value, APIStatusError | ResponseValidationError | TransportError)
    if how == "wait":
        assert info.value.checkpoint is not None


async def test_a_redirect_loop_is_a_transport_error(clock: FakeClock) -> None:
    """A server redirecting to itself forever gives a TransportError after a few hops."""
    hops = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hops
        hops += 1
        raise web.HTTPFound(request.path)

    async with serve(handler) as url, _limited(url, clock) as client:
        with pytest.raises(TransportError, match="TooManyRedirects"):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert hops <= 4 * 4  # at most 4 hops per try, 4 tries


WIRE_FAULTS = {
    "corrupt gzip": (b"\x1f\x8b\x08\x00garbage" * 10, {"Content-Encoding": "gzip"}),
    "plain body declared gzip": (b'{"id": 1}', {"Content-Encoding": "gzip"}),
    "corrupt deflate": (b"xx" * 100, {"Content-Encoding": "deflate"}),
    "gzip cut short": (
        gzip.compress(json.dumps(run_json()).encode())[:40],
        {"Content-Encoding": "gzip"},
    ),
    "shorter than its Content-Length": (b'{"id": 1}', {"Content-Length": "100"}),
}


@pytest.mark.parametrize("fault", list(WIRE_FAULTS))
async def test_a_body_broken_on_the_wire_is_a_typed_error(clock: FakeClock, fault: str) -> None:
    """A body that cannot be decompressed or is shorter than announced is a typed error."""
    body, headers = WIRE_FAULTS[fault]

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(body)
        if "Content-Length" in headers:
            assert request.transport is not None
            request.transport.close()  # hang up before the announced length
        return resp

    async with serve(handler) as url, _limited(url, clock) as client:
        with pytest.raises((TransportError, ResponseValidationError)):
            await client.runs.get(AUTOMATION_ID, RUN_ID)


async def test_retries_off_keep_a_hostile_answer_to_one_request(mock: aioresponses) -> None:
    """With retries off, a hostile answer costs one request and still a typed error."""
    mock.get(RUN_URL, status=200, body=DEEP_ARRAY, repeat=True)
    async with AutomationClient(TOKEN, base_url=BASE_URL, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(ResponseValidationError):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert sent(mock, "GET", RUN_URL) == 1


async def test_an_automation_answer_nested_too_deep_is_typed(
    client: AutomationClient, mock: aioresponses
) -> None:
    """An automation whose prompt is nested too deep is a ResponseValidationError."""
    text = json.dumps(automation_json()).replace(
        '{"type": "text", "text": ""}', "[" * 1000 + "]" * 1000, 1
    )
    mock.get(AUTOMATION_URL, body=text, content_type="application/json")
    with pytest.raises(ResponseValidationError):
        await client.automations.get(AUTOMATION_ID)
