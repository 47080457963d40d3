"""OpenTelemetry spans, checked with the SDK's in-memory exporter: requests, retries, watches."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aioresponses import aioresponses
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from automation_sdk import (
    AutomationClient,
    NotFoundError,
    RetryPolicy,
    RunFailedError,
    StepSpec,
    TransportError,
    WaitTimeoutError,
    _otel,
)
from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json, run_step_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
CANCEL_URL = RUN_URL + "cancel"
ROUTE = "/automations/{automation_id}/sessions/{session_id}/"
GET_RUN = f"GET {ROUTE}"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where the spans of the traced client end, once ended."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A tracer provider of the application's, exporting at once to ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
async def traced(clock: FakeClock, provider: TracerProvider) -> AsyncIterator[AutomationClient]:
    """A client on the fake clock whose spans go to ``provider``."""
    async with AutomationClient(
        TOKEN,
        base_url=BASE_URL,
        clock=clock,
        retry=RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False),
        tracer_provider=provider,
    ) as client:
        yield client


def only(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_request_is_a_client_span_after_the_http_conventions(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A GET is one CLIENT span named by method and path template, with the HTTP attributes."""
    mock.get(RUN_URL, payload=run_json())
    await traced.runs.get(AUTOMATION_ID, RUN_ID)
    [span] = exporter.get_finished_spans()
    assert span.name == GET_RUN
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": RUN_URL,
        "url.template": ROUTE,
        "server.address": "api.test",
        "server.port": 443,
        "http.response.status_code": 200,
    }
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "automation_sdk"


async def test_retries_are_events_of_the_one_span_with_a_resend_count(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A request retried twice is one span with two retry events and resend count 2."""
    mock.get(RUN_URL, status=503)
    mock.get(RUN_URL, status=429, headers={"Retry-After": "2"})
    mock.get(RUN_URL, payload=run_json())
    await traced.runs.get(AUTOMATION_ID, RUN_ID)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["http.request.resend_count"] == 2
    assert span.attributes["http.response.status_code"] == 200
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "automation_sdk.retry",
            {
                "http.request.resend_count": 1,
                "automation_sdk.retry.wait": 0.5,
                "error.type": "503",
                "http.response.status_code": 503,
            },
        ),
        (
            "automation_sdk.retry",
            {
                "http.request.resend_count": 2,
                "automation_sdk.retry.wait": 2.0,
                "error.type": "429",
                "http.response.status_code": 429,
            },
        ),
    ]


async def test_an_error_status_sets_error_type_and_the_span_status(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A 404 ends the span in ERROR with error.type "404", the error recorded without the token."""
    mock.get(RUN_URL, status=404, payload={"detail": f"no run for {TOKEN}"})
    with pytest.raises(NotFoundError):
        await traced.runs.get(AUTOMATION_ID, RUN_ID)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "404"
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code == StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    assert TOKEN not in repr(dict(event.attributes or {}))


async def test_no_answer_is_an_error_type_without_a_status(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A connection that fails on every try: error.type is the SDK's error class, no status."""
    mock.get(RUN_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(TransportError):
        await traced.runs.get(AUTOMATION_ID, RUN_ID)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "TransportError"
    assert span.attributes["http.request.resend_count"] == 3
    assert "http.response.status_code" not in span.attributes


async def test_a_request_inside_an_application_span_is_its_child(
    traced: AutomationClient,
    mock: aioresponses,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    """The SDK's span joins the trace the application has open."""
    mock.get(RUN_URL, payload=run_json())
    with provider.get_tracer("app").start_as_current_span("handler") as parent:
        await traced.runs.get(AUTOMATION_ID, RUN_ID)
    [child] = only(exporter, GET_RUN)
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


async def test_a_wait_is_one_span_parent_of_its_polls_with_an_event_per_transition(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """wait() makes a "watch run" span: its polls are children, transitions are events."""
    mock.get(RUN_URL, payload=run_json("RUNNING", [run_step_json(status="RUNNING")]))
    mock.get(RUN_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]))
    await traced.runs.wait(AUTOMATION_ID, RUN_ID)
    [watch] = only(exporter, "watch run")
    polls = only(exporter, GET_RUN)
    assert len(polls) == 2
    assert all(p.parent is not None and p.parent.span_id == watch.context.span_id for p in polls)
    assert watch.kind == SpanKind.INTERNAL
    assert watch.attributes is not None
    assert watch.attributes["automation_sdk.run_id"] == RUN_ID
    assert watch.attributes["automation_sdk.automation_id"] == AUTOMATION_ID
    assert watch.attributes["automation_sdk.run.status"] == "FINISHED"
    assert watch.status.status_code == StatusCode.UNSET
    assert [(e.name, dict(e.attributes or {})) for e in watch.events] == [
        (
            "automation_sdk.step.transition",
            {"automation_sdk.step.name": "start", "automation_sdk.step.status": "RUNNING"},
        ),
        ("automation_sdk.run.transition", {"automation_sdk.run.status": "RUNNING"}),
        (
            "automation_sdk.step.transition",
            {
                "automation_sdk.step.name": "start",
                "automation_sdk.step.status": "FINISHED",
                "automation_sdk.step.previous_status": "RUNNING",
            },
        ),
        (
            "automation_sdk.run.transition",
            {
                "automation_sdk.run.status": "FINISHED",
                "automation_sdk.run.previous_status": "RUNNING",
            },
        ),
    ]


async def test_a_failed_run_ends_its_watch_span_in_error(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A run that ends FAILED marks the watch span ERROR, with its final status."""
    mock.get(RUN_URL, payload=run_json("FAILED", [run_step_json(status="FAILED")], error="boom"))
    with pytest.raises(RunFailedError):
        await traced.runs.wait(AUTOMATION_ID, RUN_ID)
    [watch] = only(exporter, "watch run")
    assert watch.attributes is not None
    assert watch.attributes["automation_sdk.run.status"] == "FAILED"
    assert watch.status.status_code == StatusCode.ERROR


async def test_a_watch_that_times_out_ends_its_span_with_the_error(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """A timeout ends the watch span with error.type WaitTimeoutError; no span is left open."""
    mock.get(RUN_URL, payload=run_json("RUNNING"), repeat=True)
    with pytest.raises(WaitTimeoutError):
        await traced.runs.wait(AUTOMATION_ID, RUN_ID, timeout=5)
    [watch] = only(exporter, "watch run")
    assert watch.attributes is not None
    assert watch.attributes["error.type"] == "WaitTimeoutError"
    assert watch.status.status_code == StatusCode.ERROR


async def test_a_watch_left_early_ends_its_span_without_error(
    traced: AutomationClient, mock: aioresponses, exporter: InMemorySpanExporter
) -> None:
    """Breaking out of ``async with ... watch`` ends the span, status unset, last status kept."""
    mock.get(RUN_URL, payload=run_json("RUNNING"), repeat=True)
    async with traced.runs.watch(AUTOMATION_ID, RUN_ID) as watch:
        async for _ in watch:
            break
    [span] = only(exporter, "watch run")
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert "error.type" not in span.attributes


async def test_without_opentelemetry_the_client_works_and_makes_no_span(
    mock: aioresponses,
    clock: FakeClock,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When opentelemetry-api cannot be imported, requests and watches run untraced."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # any import of it now fails
    monkeypatch.setattr(_otel, "_trace", _otel._NOT_LOOKED_UP)
    mock.get(RUN_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]))
    mock.get(RUN_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]))
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, clock=clock, tracer_provider=provider
    ) as client:
        assert client._transport.observer.tracing is None
        await client.runs.get(AUTOMATION_ID, RUN_ID)
        await client.runs.wait(AUTOMATION_ID, RUN_ID)
    assert exporter.get_finished_spans() == ()


def test_importing_the_sdk_and_asking_for_help_import_no_opentelemetry() -> None:
    """``import automation_sdk`` and ``automation-sdk --help`` leave opentelemetry unimported."""
    code = (
        "import sys, contextlib, io\n"
        "import automation_sdk\n"
        "assert 'opentelemetry' not in sys.modules, 'imported with the package'\n"
        "from automation_sdk._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert 'opentelemetry' not in sys.modules, 'imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_global_provider_is_the_default() -> None:
    """Without tracer_provider=, spans go to the provider the application set globally."""
    code = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from automation_sdk import AutomationClient, RetryPolicy, TransportError

async def main():
    # A port nobody listens on: the request fails at once, its span is still made.
    once = RetryPolicy(attempts=1)
    async with AutomationClient("t", base_url="http://127.0.0.1:9", retry=once) as c:
        try:
            await c.automations.get("5b7c1a52-6d1e-4c4e-9c8e-2f0a3a1b7d10")
        except TransportError:
            pass

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
asyncio.run(main())
[span] = exporter.get_finished_spans()
assert span.name == "GET /automations/{automation_id}/", span.name
assert span.attributes["error.type"] == "TransportError", dict(span.attributes)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_no_span_is_made_before_a_provider_is_set(
    mock: aioresponses, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the API installed but no provider set or given, no span is started at all."""
    mock.get(RUN_URL, payload=run_json())
    async with AutomationClient(TOKEN, base_url=BASE_URL, clock=clock) as client:
        tracing = client._transport.observer.tracing
        assert tracing is not None
        assert not tracing.live()  # this process never sets a global provider

        def refuse(*args: object) -> None:
            raise AssertionError("a span was started with no provider set")

        monkeypatch.setattr(_otel.Tracing, "request", refuse)
        await client.runs.get(AUTOMATION_ID, RUN_ID)


async def test_a_monitors_polls_are_spans(
    clock: FakeClock, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A RunMonitor's summary polls and detail fetches each make a request span."""
    async with (
        Emulator(token=TOKEN, clock=clock, step_duration=2.0, seed=3) as emu,
        AutomationClient(TOKEN, base_url=emu.url, clock=clock, tracer_provider=provider) as client,
    ):
        automation = await client.automations.create(name="one", steps=[StepSpec("start", "START")])
        run = await client.runs.create(automation.id)
        async with client.runs.monitor(strategy="summary") as monitor:
            monitor.add(automation.id, run.id)
            [event async for event in monitor]
    assert only(exporter, "GET /automations/{automation_id}/")
    assert only(exporter, GET_RUN)
