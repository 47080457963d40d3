"""What logs, hooks and traces cost a request, and what they cost when nobody listens.

Every row times ``Transport.request`` for a GET answered at once, with the send
itself stubbed (``Transport._once`` returns a ready answer with an
``x-request-id``), so that what is left is the SDK's own work per request and
the network's noise cannot hide a difference. Rows, all in the same run:

- ``stripped``: the observation points made inert (no tracing check, a
  try's end never observed): the floor the others are compared with;
- ``off``: the default for a user without the ``otel`` extra: no hooks,
  logging off (the ``automation_sdk`` logger at WARNING), OpenTelemetry not
  importable (blocked in ``sys.modules`` while the client is built);
- ``hooks``: ``on_request`` and ``on_retry`` that count;
- ``log info``: ``AUTOMATION_LOG=info``'s level (a successful try logs nothing
  at INFO: only the level check is paid);
- ``log debug``: every try formatted by a handler writing to memory;
- ``otel, no provider``: ``opentelemetry-api`` installed, nothing configured
  (its no-op spans);
- ``otel, recording``: the SDK's ``TracerProvider`` with a span processor
  that drops the spans (the cost of building real spans, not of exporting);
- ``everything``: hooks, DEBUG logs and recording spans together.

Each figure is the median over the repeats (min-max in brackets), in µs per
request, and its ratio to ``stripped`` measured in the same repeat.
Run: ``python benchmarks/bench_observe.py [--repeats 5] [--number 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from automation_sdk import AutomationClient, Hooks, RequestRecord, RetryPolicy, RetryRecord, _otel
from automation_sdk._observe import Observer
from automation_sdk._transport import Response, Transport

BASE = "http://127.0.0.1:9"  # never contacted: the send is stubbed
AUTOMATION_ID = "5b7c1a52-6d1e-4c4e-9c8e-2f0a3a1b7d10"
RUN_ID = "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a"
PATH = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
READY = Response(
    status=200, headers={"X-Request-Id": "req-1"}, data={"status": "RUNNING"}, retry_after=None
)
LOGGER = logging.getLogger("automation_sdk")


class Inert(Observer):
    """An observer that never observes a try's end, without even a logger check."""

    __slots__ = ()

    def listening(self) -> bool:
        return False


async def answered(*args: object) -> Response:
    """The stubbed send: a ready answer."""
    return READY


def stub(client: AutomationClient) -> Transport:
    transport = client._transport
    transport._once = answered  # type: ignore[method-assign]
    return transport


async def timed(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """Seconds per call of ``fn``, over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - start) / number


def show(name: str, seconds: list[float], baseline: list[float]) -> None:
    ratios = [s / b for s, b in zip(seconds, baseline, strict=True)]
    print(
        f"{name:22} {statistics.median(seconds) * 1e6:7.2f} µs "
        f"({min(seconds) * 1e6:.2f}-{max(seconds) * 1e6:.2f})   "
        f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"
    )


async def main(repeats: int, number: int) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    counts = {"requests": 0, "retries": 0}

    def count_request(record: RequestRecord) -> None:
        counts["requests"] += 1

    def count_retry(record: RetryRecord) -> None:
        counts["retries"] += 1

    hooks = Hooks(on_request=count_request, on_retry=count_retry)
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(Drop()))
    policy = RetryPolicy()

    # Every row but the otel ones: OpenTelemetry cannot be imported while the client is built,
    # as for a user without the extra.
    def built(*, otel: bool, **options: object) -> AutomationClient:
        saved = sys.modules.get("opentelemetry")
        if not otel:
            sys.modules["opentelemetry"] = None  # type: ignore[assignment]
        _otel._trace = _otel._NOT_LOOKED_UP
        try:
            return AutomationClient("tok", base_url=BASE, retry=policy, **options)  # type: ignore[arg-type]
        finally:
            if saved is not None:
                sys.modules["opentelemetry"] = saved
            _otel._trace = _otel._NOT_LOOKED_UP

    clients = {
        "stripped": built(otel=False),
        "off": built(otel=False),
        "hooks": built(otel=False, hooks=hooks),
        "log info": built(otel=False),
        "log debug": built(otel=False),
        "otel, no provider": built(otel=True),
        "otel, recording": built(otel=True, tracer_provider=recording),
        "everything": built(otel=True, hooks=hooks, tracer_provider=recording),
    }
    assert clients["off"]._transport.observer.tracing is None
    assert clients["otel, no provider"]._transport.observer.tracing is not None
    levels = {"log info": logging.INFO, "log debug": logging.DEBUG, "everything": logging.DEBUG}
    sink = logging.StreamHandler(io.StringIO())
    sink.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOGGER.addHandler(sink)
    LOGGER.propagate = False

    # The floor: the request path with its observation points made inert.
    bare = stub(clients["stripped"])
    stripped_request = bare._request
    bare.observer = Inert(None, base_url=BASE, redact=str, tracing=None)

    def make(t: Transport, floor: bool) -> Callable[[], Awaitable[object]]:
        async def call() -> object:
            if floor:
                return await stripped_request("GET", PATH, idempotent=True)
            return await t.request("GET", PATH, idempotent=True)

        return call

    calls: dict[str, Callable[[], Awaitable[object]]] = {}
    for name, client in clients.items():
        transport = stub(client)
        await transport.open()
        calls[name] = make(transport, name == "stripped")

    results: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for name, call in calls.items():  # warm up
            LOGGER.setLevel(levels.get(name, logging.WARNING))
            await timed(call, 1000)
        for _ in range(repeats):
            # Interleaved, so that a slow moment of the machine hits all rows alike.
            for name, call in calls.items():
                LOGGER.setLevel(levels.get(name, logging.WARNING))
                results[name].append(await timed(call, number))
    finally:
        LOGGER.setLevel(logging.NOTSET)
        LOGGER.removeHandler(sink)
        LOGGER.propagate = True
        for client in clients.values():
            await client.aclose()
        recording.shutdown()
    print(f"{repeats} repeats of {number} GETs, the send stubbed; median (min-max)")
    print(f"{'':22} {'per request':>11}   {'ratio to stripped'}")
    for name in clients:
        show(name, results[name], results["stripped"])
    cost = [o - s for o, s in zip(results["off"], results["stripped"], strict=True)]
    print(
        f"off - stripped: {statistics.median(cost) * 1e9:.0f} ns per request "
        f"({min(cost) * 1e9:.0f} to {max(cost) * 1e9:.0f})"
    )
    local = await local_request(repeats, max(100, number // 30))
    print(
        f"for scale, a real GET to an aiohttp server on 127.0.0.1 (off): "
        f"{statistics.median(local) * 1e6:.0f} µs ({min(local) * 1e6:.0f}-{max(local) * 1e6:.0f})"
    )


async def local_request(repeats: int, number: int) -> list[float]:
    """Seconds per GET through the client to a local server, nothing listening."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "RUNNING"}', content_type="application/json")

    app = web.Application()
    app.router.add_get(PATH, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    seconds = []
    try:
        async with AutomationClient("tok", base_url=f"http://{host}:{port}") as client:
            transport = client._transport

            async def call() -> object:
                return await transport.request("GET", PATH, idempotent=True)

            await timed(call, 100)
            for _ in range(repeats):
                seconds.append(await timed(call, number))
    finally:
        await runner.cleanup()
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(main(args.repeats, args.number))
