"""Logs and hooks: what the client tells about each try, retry, poll, snapshot and transition."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses

from automation_sdk import (
    AutomationClient,
    ConfigurationError,
    EdgeSpec,
    Hooks,
    NotFoundError,
    RequestRecord,
    RetryPolicy,
    RetryRecord,
    RunStatus,
    RunTransition,
    ServerError,
    StepSpec,
    StepTransition,
    _observe,
)
from automation_sdk._cli import main
from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json, run_step_json
from servers import serve

RUN_PATH = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
RUN_URL = BASE_URL + RUN_PATH
ROUTE = "/automations/{automation_id}/sessions/{session_id}/"
RETRY = RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False)


def hooked(clock: FakeClock, hooks: Hooks) -> AutomationClient:
    """A client of ``BASE_URL`` on the fake clock with ``hooks``."""
    return AutomationClient(TOKEN, base_url=BASE_URL, clock=clock, retry=RETRY, hooks=hooks)


def sdk_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    """The records of the SDK's logger at exactly ``level``."""
    return [r for r in caplog.records if r.name == "automation_sdk" and r.levelno == level]


@pytest.fixture
def stderr_handler() -> Iterator[None]:
    """Undo whatever AUTOMATION_LOG or -v installs on the SDK's logger."""
    sdk = logging.getLogger("automation_sdk")
    saved = (sdk.level, sdk.handlers[:], _observe._handler, _observe._env_read)
    _observe._handler, _observe._env_read = None, False
    yield
    sdk.setLevel(saved[0])
    sdk.handlers[:] = saved[1]
    _observe._handler, _observe._env_read = saved[2], saved[3]


# -- logs -----------------------------------------------------------------------------------


async def test_each_try_is_a_debug_record_with_structured_fields(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """A try's record carries method, url, path, route, status, time, try, request and run ids."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    mock.get(RUN_URL, payload=run_json(), headers={"X-Request-Id": "req-42"})
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    [record] = sdk_records(caplog, logging.DEBUG)
    assert record.getMessage() == f"GET {RUN_PATH} -> 200 in 0.0 ms (try 1, request id req-42)"
    fields = {name: getattr(record, name) for name in _observe.EXTRA_FIELDS}
    assert fields == {
        "method": "GET",
        "url": RUN_URL,
        "path": RUN_PATH,
        "route": ROUTE,
        "status": 200,
        "elapsed_ms": 0.0,
        "attempt": 1,
        "request_id": "req-42",
        "run_id": RUN_ID,
        "automation_id": AUTOMATION_ID,
    }


async def test_a_retry_is_an_info_record_saying_what_happened_and_the_wait(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each retry is logged at INFO: the failure, the next try, the wait and why that wait."""
    caplog.set_level(logging.INFO, logger="automation_sdk")
    mock.get(RUN_URL, status=503, headers={"X-Request-Id": "req-1"})
    mock.get(RUN_URL, status=429, headers={"Retry-After": "3"})
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    records = sdk_records(caplog, logging.INFO)
    assert [r.getMessage() for r in records] == [
        f"GET {RUN_PATH} answered 503; try 2 of 4 in 0.50s (backoff)",
        f"GET {RUN_PATH} answered 429, Retry-After 3s; try 3 of 4 in 3.00s (as the server asked)",
    ]
    assert [(r.attempt, r.status, r.request_id) for r in records] == [  # type: ignore[attr-defined]
        (1, 503, "req-1"),
        (2, 429, None),
    ]
    assert clock.sleeps == [0.5, 3.0]


async def test_polls_snapshots_and_transitions_are_logged(
    client: AutomationClient,
    mock: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A watch logs each poll and snapshot at DEBUG and each transition at INFO, with run ids."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    running = run_json("RUNNING", [run_step_json(status="RUNNING")])
    mock.get(RUN_URL, payload=running)
    mock.get(RUN_URL, payload=running)
    mock.get(RUN_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]))
    await client.runs.wait(AUTOMATION_ID, RUN_ID)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("snapshot accepted" in m for m in messages) == 2
    assert sum("snapshot unchanged" in m for m in messages) == 1
    assert sum(m.startswith(f"watch of run {RUN_ID}: polled (200)") for m in messages) == 3
    infos = sdk_records(caplog, logging.INFO)
    assert [r.getMessage() for r in infos] == [
        f"run {RUN_ID}: step 'start' (none) -> RUNNING",
        f"run {RUN_ID}: run (none) -> RUNNING",
        f"run {RUN_ID}: step 'start' RUNNING -> FINISHED",
        f"run {RUN_ID}: run RUNNING -> FINISHED",
    ]
    for record in caplog.records:
        if "watch of run" in record.getMessage() or record in infos:
            assert record.run_id == RUN_ID  # type: ignore[attr-defined]
            assert record.automation_id == AUTOMATION_ID  # type: ignore[attr-defined]


async def test_no_record_names_the_token(
    client: AutomationClient, mock: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """A server echoing the token in its request id header is redacted in the record."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    mock.get(RUN_URL, status=503, headers={"X-Request-Id": f"id-{TOKEN}"})
    mock.get(RUN_URL, payload=run_json(), headers={"X-Request-Id": f"id-{TOKEN}"})
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert len(caplog.records) == 3
    for record in caplog.records:
        shown = record.getMessage() + repr(vars(record))
        assert TOKEN not in shown
    assert caplog.records[-1].request_id == "id-[redacted]"  # type: ignore[attr-defined]


async def test_nothing_is_built_when_nobody_listens(
    client: AutomationClient,
    mock: aioresponses,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With logging off and no hooks, a try's end is not even timed or observed."""
    caplog.set_level(logging.WARNING, logger="automation_sdk")

    def refuse(*args: object) -> None:
        raise AssertionError("a try was observed with nobody listening")

    monkeypatch.setattr(_observe.Observer, "tried", refuse)
    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)


def test_automation_log_installs_a_stderr_handler_once(
    stderr_handler: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AUTOMATION_LOG=info shows the SDK's INFO records on stderr, from the first client on."""
    monkeypatch.setenv("AUTOMATION_LOG", "info")
    sdk = logging.getLogger("automation_sdk")
    before = len(sdk.handlers)
    AutomationClient(TOKEN, base_url=BASE_URL)
    AutomationClient(TOKEN, base_url=BASE_URL)
    assert len(sdk.handlers) == before + 1
    assert sdk.level == logging.INFO
    sdk.debug("not shown")
    sdk.info("shown")
    err = capsys.readouterr().err
    assert "INFO automation_sdk: shown" in err
    assert "not shown" not in err


def test_an_unknown_automation_log_value_warns_and_installs_nothing(
    stderr_handler: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUTOMATION_LOG=verbose says which values it takes instead of silently doing nothing."""
    monkeypatch.setenv("AUTOMATION_LOG", "verbose")
    sdk = logging.getLogger("automation_sdk")
    before = sdk.handlers[:]
    with pytest.warns(UserWarning, match="AUTOMATION_LOG='verbose' is not one of debug, info"):
        AutomationClient(TOKEN, base_url=BASE_URL)
    assert sdk.handlers == before


# -- hooks ----------------------------------------------------------------------------------


async def test_hooks_get_a_record_per_try_and_per_retry(
    mock: aioresponses, clock: FakeClock
) -> None:
    """on_request sees every try (first and retries) and on_retry every wait chosen."""
    tries: list[RequestRecord] = []
    retries: list[RetryRecord] = []
    mock.get(RUN_URL, status=503, headers={"X-Request-Id": "req-1"})
    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, payload=run_json(), headers={"X-Request-Id": "req-3"})
    async with hooked(clock, Hooks(on_request=tries.append, on_retry=retries.append)) as client:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert [(t.attempt, t.status, t.error_type, t.request_id) for t in tries] == [
        (1, 503, "ServerError", "req-1"),
        (2, 503, "ServerError", None),
        (3, 200, None, "req-3"),
    ]
    assert {(t.method, t.url, t.path, t.route) for t in tries} == {
        ("GET", RUN_URL, RUN_PATH, ROUTE)
    }
    assert isinstance(tries[0].error, ServerError)
    assert [(r.attempt, r.attempts, r.wait, r.status, r.error_type) for r in retries] == [
        (1, 4, 0.5, 503, "ServerError"),
        (2, 4, 1.0, 503, "ServerError"),
    ]
    assert [r.wait for r in retries] == clock.sleeps


async def test_a_try_that_gets_no_answer_has_no_status(
    mock: aioresponses, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost connection is a record without a status; its retry line names aiohttp's error."""
    caplog.set_level(logging.INFO, logger="automation_sdk")
    tries: list[RequestRecord] = []
    mock.get(RUN_URL, exception=aiohttp.ServerDisconnectedError())
    mock.get(RUN_URL, status=404, payload={"detail": "no such run"})
    async with hooked(clock, Hooks(on_request=tries.append)) as client:
        with pytest.raises(NotFoundError):
            await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert [(t.status, t.error_type) for t in tries] == [
        (None, "TransportError"),
        (404, "NotFoundError"),
    ]
    [retry] = sdk_records(caplog, logging.INFO)
    assert retry.getMessage() == (
        f"GET {RUN_PATH} failed with TransportError (ServerDisconnectedError); "
        "try 2 of 4 in 0.50s (backoff)"
    )


async def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
    mock: aioresponses, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken metrics hook never breaks a request: it is logged at WARNING instead."""

    def broken(record: object) -> None:
        raise RuntimeError("metrics backend down")

    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, payload=run_json())
    async with hooked(clock, Hooks(on_request=broken, on_retry=broken)) as client:
        run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(run.id) == RUN_ID
    warnings = sdk_records(caplog, logging.WARNING)
    assert [w.getMessage().split(" hook")[0] for w in warnings] == [
        "the on_request",
        "the on_retry",
        "the on_request",
    ]
    assert all(w.exc_info and "metrics backend down" in str(w.exc_info[1]) for w in warnings)


async def test_on_transition_sees_each_delivered_event_of_a_wait(
    mock: aioresponses, clock: FakeClock
) -> None:
    """runs.wait() hands every transition to on_transition, in delivery order."""
    seen: list[StepTransition | RunTransition] = []
    mock.get(RUN_URL, payload=run_json("RUNNING", [run_step_json(status="RUNNING")]))
    mock.get(RUN_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]))
    async with hooked(clock, Hooks(on_transition=seen.append)) as client:
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert [type(e).__name__ for e in seen] == [
        "StepTransition",
        "RunTransition",
        "StepTransition",
        "RunTransition",
    ]
    last = seen[-1]
    assert isinstance(last, RunTransition)
    assert last.status == RunStatus.FINISHED


async def test_a_derived_client_keeps_the_hooks(mock: aioresponses, clock: FakeClock) -> None:
    """with_options() shares the parent's hooks."""
    tries: list[RequestRecord] = []
    mock.get(RUN_URL, payload=run_json())
    async with hooked(clock, Hooks(on_request=tries.append)) as client:
        await client.with_options(timeout=5).runs.get(AUTOMATION_ID, RUN_ID)
    assert len(tries) == 1


def test_hooks_refuse_what_cannot_be_called() -> None:
    """A hook that is not callable, or hooks= that is not a Hooks, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"Hooks\.on_retry must be a function"):
        Hooks(on_retry=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="hooks must be a Hooks"):
        AutomationClient(TOKEN, base_url=BASE_URL, hooks=print)  # type: ignore[arg-type]


# -- the command line -----------------------------------------------------------------------


@contextlib.contextmanager
def busy_server() -> Iterator[str]:
    """A server on 127.0.0.1, in its own thread, answering 429 with ``Retry-After: 0``."""

    async def busy(request: web.Request) -> web.Response:
        return web.json_response({"detail": "busy"}, status=429, headers={"Retry-After": "0"})

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = serve(busy)
    url = asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize(("flags", "retry_lines"), [((), 0), (("-v",), 2)])
def test_the_command_line_shows_its_retries_with_v(
    stderr_handler: None,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    retry_lines: int,
) -> None:
    """`runs get -v` against a failing server says each retry and its wait; without -v, not."""
    with busy_server() as url:
        argv = ["runs", "get", AUTOMATION_ID, RUN_ID, "--base-url", url, "--retries", "3"]
        code = main([*argv, "--token", TOKEN, *flags])
    err = capsys.readouterr().err
    assert code == 3
    shown = [line for line in err.splitlines() if "INFO automation_sdk: GET" in line]
    assert len(shown) == retry_lines
    assert all("answered 429, Retry-After 0s; try" in line for line in shown)
    assert TOKEN not in err


# -- the monitor ----------------------------------------------------------------------------


async def test_a_monitor_logs_its_polls_and_hands_its_transitions_to_the_hook(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A RunMonitor's summary polls are DEBUG records; each event it yields goes to the hook."""
    caplog.set_level(logging.DEBUG, logger="automation_sdk")
    seen: list[StepTransition | RunTransition] = []
    hooks = Hooks(on_transition=seen.append)
    async with (
        Emulator(token=TOKEN, clock=clock, step_duration=2.0, seed=3) as emu,
        AutomationClient(TOKEN, base_url=emu.url, clock=clock, hooks=hooks) as client,
    ):
        automation = await client.automations.create(
            name="two",
            steps=[
                StepSpec("start", "START"),
                StepSpec("write", "LLM", {"type": "text", "text": "hi"}),
            ],
            edges=[EdgeSpec("start", "write")],
        )
        runs = [await client.runs.create(automation.id) for _ in range(2)]
        async with client.runs.monitor(strategy="summary") as monitor:
            for run in runs:
                monitor.add(automation.id, run.id)
            streamed = [event async for event in monitor]
    assert len(streamed) >= 6  # per run: two steps and the run, at least once each
    assert seen == streamed
    polls = [r for r in caplog.records if "summary polled (200)" in r.getMessage()]
    assert polls
    assert all(r.automation_id == str(automation.id) for r in polls)  # type: ignore[attr-defined]
