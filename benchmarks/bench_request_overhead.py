"""What a request that succeeds at once pays for the retry machinery, before and after.

``Transport.request`` used to build tenacity's ``AsyncRetrying`` (with four
closures) for every request; now the first try runs on its own and the
retrying object is built only after a failure that may be retried. This
measures, in the same run and against a local aiohttp server on 127.0.0.1:

- ``bare aiohttp``: ``session.get`` and reading the body, the floor;
- ``request()``: the SDK's path today (one try, then retries only if needed);
- ``old loop``: the previous path, rebuilt here around the same single try
  (``AsyncRetrying`` with closures for stop, wait, retry and before_sleep,
  plus the try counting), so that the difference is the machinery alone;
- ``aiohttp trust_env=True``: a bare session that reads the proxy variables
  and ``~/.netrc`` on every request, which is why the client's own session
  looks the proxy up once instead (the client runs with ``trust_env=True``).

The network makes those figures noisy on a busy machine, so it also times
both paths with the send itself replaced by a coroutine that returns a ready
answer (``Transport._once`` stubbed): what is left is the SDK's own cost per
request, before and after.

Each figure is the median over the repeats (spread in brackets), in µs per
request. Run it with ``python benchmarks/bench_request_overhead.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from automation_sdk import AutomationClient, RetryPolicy
from automation_sdk._retry import retry_wait, should_retry
from automation_sdk._transport import Response, Transport

PATH = "/automations/x/sessions/"
BODY = b'{"id": "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a", "status": "RUNNING"}'


async def old_request(transport: Transport, method: str, path: str) -> Response:
    """The previous request(): AsyncRetrying with closures built for every request."""
    policy = transport.retry
    url = transport.base_url + path
    clock = transport.clock

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= policy.attempts

    wait = retry_wait(policy)

    def before_sleep(state: RetryCallState) -> None:
        pass

    retrying = AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(lambda exc: should_retry(exc, idempotent=True, policy=policy)),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    last: BaseException | None = None
    tries = 0
    async for attempt in retrying:
        with attempt:
            tries += 1
            try:
                return await transport._try(method, path, url, None, tries, policy, True, None)
            except Exception as exc:
                last = exc
                raise
    raise AssertionError(last)


async def timed(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """Seconds per call of ``fn``, over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - start) / number


async def handler(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def show(name: str, seconds: list[float], baseline: list[float] | None = None) -> None:
    line = (
        f"{name:34} {statistics.median(seconds) * 1e6:9.1f} µs "
        f"({min(seconds) * 1e6:.1f}-{max(seconds) * 1e6:.1f})"
    )
    if baseline is not None:
        ratios = [s / b for s, b in zip(seconds, baseline, strict=True)]
        line += f"   {statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"
    print(line)


async def main(repeats: int, number: int) -> None:
    app = web.Application()
    app.router.add_get(PATH, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[float]] = {
        k: [] for k in ("bare", "new", "old", "env", "m_new", "m_old")
    }
    try:
        async with (
            aiohttp.ClientSession() as session,
            aiohttp.ClientSession(trust_env=True) as env_session,
            AutomationClient("tok", base_url=base, retry=RetryPolicy()) as client,
        ):
            transport = client._transport

            async def bare() -> object:
                async with session.get(base + PATH, headers={"Accept": "application/json"}) as r:
                    return await r.read()

            async def bare_env() -> object:
                async with env_session.get(
                    base + PATH, headers={"Accept": "application/json"}
                ) as r:
                    return await r.read()

            async def new() -> object:
                return await transport.request("GET", PATH, idempotent=True)

            async def old() -> object:
                return await old_request(transport, "GET", PATH)

            for fn in (bare, bare_env, new, old):  # warm up connections and caches
                await timed(fn, 200)
            for _ in range(repeats):
                # Interleaved, so that a slow moment of the machine hits all alike.
                results["bare"].append(await timed(bare, number))
                results["new"].append(await timed(new, number))
                results["old"].append(await timed(old, number))
                results["env"].append(await timed(bare_env, number))

            ready = Response(status=200, headers={}, data={}, retry_after=None)

            async def answered(*args: object) -> Response:
                return ready

            transport._once = answered  # type: ignore[method-assign]
            for _ in range(repeats):
                results["m_new"].append(await timed(new, number * 10))
                results["m_old"].append(await timed(old, number * 10))
    finally:
        await runner.cleanup()
    print(f"{repeats} repeats of {number} GETs to a local server; median (min-max)")
    print(f"{'':34} {'per request':>12}   ratio to bare aiohttp")
    show("bare aiohttp", results["bare"])
    show("request() (first try alone)", results["new"], results["bare"])
    show("old loop (AsyncRetrying each time)", results["old"], results["bare"])
    show("aiohttp trust_env=True", results["env"], results["bare"])
    saved = [o - n for o, n in zip(results["old"], results["new"], strict=True)]
    print(
        f"saved per request: {statistics.median(saved) * 1e6:.1f} µs "
        f"({min(saved) * 1e6:.1f}-{max(saved) * 1e6:.1f})"
    )
    print("the SDK's own cost per request, the send stubbed (no network):")
    print(f"{'':34} {'per request':>12}   ratio to request()")
    show("request() (first try alone)", results["m_new"])
    show("old loop (AsyncRetrying each time)", results["m_old"], results["m_new"])
    saved = [o - n for o, n in zip(results["m_old"], results["m_new"], strict=True)]
    print(
        f"saved per request: {statistics.median(saved) * 1e6:.1f} µs "
        f"({min(saved) * 1e6:.1f}-{max(saved) * 1e6:.1f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--number", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.repeats, args.number))
