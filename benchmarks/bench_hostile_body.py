"""What a gzip bomb costs the client: peak memory with and without ``max_response_bytes``.

A local aiohttp server on 127.0.0.1 answers ``runs.get`` with a gzip body that
inflates to ``--inflated-mib`` MiB of JSON whitespace (a 512 MiB bomb is about
510 KiB on the wire). Each case runs in its own process, so that its peak RSS
(``ru_maxrss``) is its own:

- ``baseline``: an ordinary run answer (what any call costs);
- ``default limit``: the bomb, with the client's default ``max_response_bytes``;
- ``no limit``: the bomb, with ``max_response_bytes`` set beyond its size, which
  reads it whole, as the client did before the limit existed.

Each case is repeated (``--repeats``, at least 3); the median and the spread
(max - min) of the peak RSS are printed, with the ratio to the baseline.

Run it with ``python benchmarks/bench_hostile_body.py [--inflated-mib 512] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

from aiohttp import web

from automation_sdk import AutomationClient, AutomationError

AUTOMATION_ID = "5b7c1a52-6d1e-4c4e-9c8e-2f0a3a1b7d10"
RUN_ID = "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a"
TS = "2026-11-29T10:00:00Z"
RUN = {
    "id": RUN_ID,
    "automation_id": AUTOMATION_ID,
    "inputs": {},
    "error": None,
    "status": "RUNNING",
    "created_at": TS,
    "updated_at": TS,
    "steps": [],
}
CASES = {"baseline": None, "default limit": None, "no limit": 1 << 62}


def make_bomb(path: str, inflated_mib: int) -> int:
    """Write a gzip stream of ``inflated_mib`` MiB of spaces to ``path``; return its size."""
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    mib = b" " * (1 << 20)
    with open(path, "wb") as out:
        for _ in range(inflated_mib):
            out.write(gz.compress(mib))
        out.write(gz.flush())
    return os.path.getsize(path)


async def one(case: str, bomb: bytes) -> str:
    """Run one case in this process; return what the call ended with."""

    async def handler(request: web.Request) -> web.Response:
        if case == "baseline":
            return web.json_response(RUN)
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=bomb, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    limit = CASES[case]
    kwargs = {} if limit is None else {"max_response_bytes": limit}
    try:
        async with AutomationClient(
            "bench", base_url=f"http://{host}:{port}", timeout=120, **kwargs
        ) as client:
            try:
                await client.runs.get(AUTOMATION_ID, RUN_ID)
                outcome = "a Run"
            except AutomationError as exc:
                outcome = type(exc).__name__
    finally:
        await runner.cleanup()
    return outcome


def child(case: str, bomb_path: str) -> None:
    """The body of one measured process: prints JSON with the outcome and peak RSS."""
    with open(bomb_path, "rb") as f:
        bomb = f.read()
    start = time.perf_counter()
    outcome = asyncio.run(one(case, bomb))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"outcome": outcome, "peak_mib": peak_mib, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inflated-mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    repeats = max(3, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        bomb_path = os.path.join(tmp, "bomb.gz")
        size = make_bomb(bomb_path, args.inflated_mib)
        print(f"bomb: {size / 1024:.0f} KiB on the wire, {args.inflated_mib} MiB inflated")
        results: dict[str, list[dict[str, object]]] = {case: [] for case in CASES}
        for _ in range(repeats):
            for case in CASES:  # interleaved, so that a slow moment hits every case
                out = subprocess.run(
                    [sys.executable, __file__, "--child", case, bomb_path],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results[case].append(json.loads(out))
    base = statistics.median(float(r["peak_mib"]) for r in results["baseline"])  # type: ignore[arg-type]
    print(f"{'case':<14} {'outcome':<22} {'peak RSS MiB (median, spread)':<32} {'x baseline':>10}")
    for case, runs in results.items():
        peaks = [float(r["peak_mib"]) for r in runs]  # type: ignore[arg-type]
        median = statistics.median(peaks)
        outcome = ", ".join(sorted({str(r["outcome"]) for r in runs}))
        shown = f"{median:8.1f} ({max(peaks) - min(peaks):.1f})"
        print(f"{case:<14} {outcome:<22} {shown:<32} {median / base:10.2f}")


if __name__ == "__main__":
    main()
