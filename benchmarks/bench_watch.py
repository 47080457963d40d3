"""What one watched run costs: CPU per poll and memory per RunWatch.

Three parts, all bounded in count and time, all stopping by themselves:

0. **One changed snapshot**, on a stubbed transport: a watch of a 50-step run
   polled while one step after the other finishes (each answer changes one
   step and the run's ``updated_at``, as a server does). Reports the client's
   CPU per changed snapshot, JSON decoding included, beside ``json.loads`` of
   the same bodies measured in the same run, and their ratio (median and spread
   over the repeats); then the memory per watched 50-step run.
1. **The poller alone**, on a stubbed transport (no network): N watches of a
   run with S steps, each polled P times. Reports the CPU per poll when the
   answer did not change (the common case: a fast path skips structuring),
   when it did (structuring plus events), the JSON decoding that a real
   transport adds to both, and the memory each watch keeps.
2. **End to end**, against a local aiohttp server on 127.0.0.1: N concurrent
   watches through one client for a few seconds. Reports polls per second and
   CPU per poll, client and server together (they share this process).

Run it with ``python benchmarks/bench_watch.py [--watches 1000] [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from automation_sdk import AutomationClient, RetryPolicy, Run, RunWatch
from automation_sdk._convert import structure
from automation_sdk._observe import Observer
from automation_sdk._tracker import RunTracker
from automation_sdk._transport import Response
from automation_sdk.testing import FakeClock

AUTOMATION_ID = uuid.UUID("5b7c1a52-6d1e-4c4e-9c8e-2f0a3a1b7d10")


def stamp_of(version: int) -> str:
    """The server time of ``version``: one second each."""
    return f"2026-11-29T{10 + version // 3600:02d}:{version // 60 % 60:02d}:{version % 60:02d}Z"


def run_json(run_id: uuid.UUID, steps: int, version: int) -> dict[str, Any]:
    """A run with ``steps`` steps; each ``version`` finishes one more step (then starts over).

    A step's ``updated_at`` is the time of its own last change, the run's the
    time of the version, as a server stamps them.
    """
    stamp = stamp_of(version)
    done = version % (steps + 1)
    cycle = version - done  # the version at which every step (re)started RUNNING
    return {
        "id": str(run_id),
        "automation_id": str(AUTOMATION_ID),
        "inputs": {"ticket": "T-1", "priority": "high"},
        "error": None,
        "status": "RUNNING",
        "created_at": "2026-11-29T10:00:00Z",
        "updated_at": stamp,
        "steps": [
            {
                "id": str(uuid.uuid5(run_id, str(i))),
                "status": "FINISHED" if i < done else "RUNNING",
                "prompt": {"type": "text", "text": f"Prompt of step {i}, rendered " * 4},
                "result": f"result {i}" if i < done else None,
                "error": None,
                "step": {
                    "id": str(uuid.UUID(int=i + 1, version=4)),
                    "name": f"step{i}",
                    "step_type": "LLM",
                    "prompt_template": {"type": "text", "text": "Prompt of step ${INPUTS.x}"},
                    "created_at": "2026-11-29T09:00:00Z",
                    "updated_at": "2026-11-29T09:00:00Z",
                },
                "created_at": "2026-11-29T10:00:00Z",
                "updated_at": stamp_of(cycle + i + 1 if i < done else cycle),
            }
            for i in range(steps)
        ],
        "steps_count": steps,
        "current_step": None,
    }


class StubTransport:
    """Stands for the session layer: answers each GET with a freshly decoded body."""

    base_url = "http://stub"

    def __init__(self, bodies: dict[str, Callable[[], bytes]]) -> None:
        self.clock = FakeClock()
        self.bodies = bodies
        self.retry = RetryPolicy()
        # The outlets of a client with no hooks, no DEBUG log and no tracer: the usual case.
        self.observer = Observer(None, base_url=self.base_url, redact=self.redact, tracing=None)

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        """Decode the body as aiohttp would hand it over."""
        return Response(200, {}, json.loads(self.bodies[path]()), None)

    def redact(self, text: str) -> str:
        """Nothing to hide here."""
        return text

    def scrub(self, exc: BaseException) -> BaseException:
        """Nothing to hide here either."""
        return exc


def cpu_per_call(total_seconds: float, calls: int) -> str:
    """Microseconds per call."""
    return f"{total_seconds / calls * 1e6:8.1f} µs"


def spread(values: list[float]) -> str:
    """Median and the min-max spread around it, in µs."""
    return (
        f"{statistics.median(values) * 1e6:8.1f} µs "
        f"({min(values) * 1e6:.1f}-{max(values) * 1e6:.1f})"
    )


async def bench_snapshot(steps: int, repeats: int, runs: int) -> None:
    """Part 0: CPU per changed snapshot against json.loads of its body; memory per run.

    Two ways of following a run, measured in the same run of the script: a
    ``RunWatch`` (it keeps the last snapshot, its public ``run``) and the
    ``RunTracker`` a monitor drives (``keep_snapshot=False``: a key per step
    entry, only the changed entries built), fed the same decoded bodies.
    """
    run_id = uuid.uuid4()
    path = f"/automations/{AUTOMATION_ID}/sessions/{run_id}/"
    version = 0
    bodies = [json.dumps(run_json(run_id, steps, v)).encode() for v in range(steps + 1)]
    transport = StubTransport({path: lambda: bodies[version]})
    ours: dict[str, list[float]] = {"watch": [], "monitor": []}
    loads: list[float] = []
    for _ in range(repeats):
        watch = RunWatch(transport, AUTOMATION_ID, run_id)  # type: ignore[arg-type]
        version = 0
        await watch._poll()  # the first snapshot: every step is new
        watch._pending = []
        gc.collect()
        start = time.process_time()
        for version in range(1, steps + 1):  # noqa: B007 - read by the transport's lambda
            await watch._poll()
            watch._pending = []
        ours["watch"].append((time.process_time() - start) / steps)

        tracker = RunTracker(AUTOMATION_ID, run_id, keep_snapshot=False)
        tracker.accept(json.loads(bodies[0]), status=200, method="GET", url=path)
        gc.collect()
        start = time.process_time()
        for body in bodies[1:]:
            for event in tracker.accept(json.loads(body), status=200, method="GET", url=path):
                tracker.deliver(event)
        ours["monitor"].append((time.process_time() - start) / steps)

        start = time.process_time()
        for body in bodies[1:]:
            json.loads(body)
        loads.append((time.process_time() - start) / steps)
    size = sum(len(b) for b in bodies[1:]) / steps
    print(f"one changed snapshot: {steps} steps, {size / 1000:.0f} KB body, {repeats} repeats")
    print(f"  {'json.loads of the same body, same run':<58}{spread(loads)}")
    for name, label in (("watch", "RunWatch"), ("monitor", "a monitor's tracker")):
        ratios = [o / d for o, d in zip(ours[name], loads, strict=True)]
        print(f"  {f'{label}: client CPU per changed snapshot (decoding included)':<58}"
              f"{spread(ours[name])}")  # fmt: skip
        print(
            f"  {f'{label}: ratio to json.loads':<58}"
            f"{statistics.median(ratios):8.2f} x ({min(ratios):.2f}-{max(ratios):.2f})"
        )

    # Memory: runs of one automation version, each followed to the middle of its steps.
    run_ids = [uuid.uuid4() for _ in range(runs)]
    texts = {rid: json.dumps(run_json(rid, steps, steps // 2)).encode() for rid in run_ids}
    paths = {
        f"/automations/{AUTOMATION_ID}/sessions/{rid}/": (lambda t=texts[rid]: t) for rid in run_ids
    }
    many = StubTransport(paths)

    async def follow_watch(rid: uuid.UUID) -> object:
        watch = RunWatch(many, AUTOMATION_ID, rid)  # type: ignore[arg-type]
        await watch._poll()
        while watch._pending:
            await anext(watch)
        return watch

    async def follow_tracker(rid: uuid.UUID) -> object:
        tracker = RunTracker(AUTOMATION_ID, rid, keep_snapshot=False)
        for event in tracker.accept(json.loads(texts[rid]), status=200, method="GET", url="/"):
            tracker.deliver(event)
        return tracker

    for label, follow in (("RunWatch", follow_watch), ("a monitor's tracker", follow_tracker)):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.take_snapshot()
        kept = [await follow(rid) for rid in run_ids]
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        per_run = sum(s.size_diff for s in after.compare_to(base, "filename")) / runs
        what = f"{label}: memory per followed {steps}-step run ({runs} runs)"
        print(f"  {what:<58}{per_run / 1024:8.1f} KiB")
        del kept


async def bench_poller(watches: int, steps: int, polls: int) -> None:
    """Part 1: the poller alone on a stubbed transport."""
    run_ids = [uuid.uuid4() for _ in range(watches)]
    versions = dict.fromkeys(run_ids, 0)
    texts: dict[tuple[uuid.UUID, int], bytes] = {}

    def body_of(run_id: uuid.UUID) -> Callable[[], bytes]:
        def body() -> bytes:
            key = (run_id, versions[run_id])
            if key not in texts:
                texts[key] = json.dumps(run_json(run_id, steps, key[1])).encode()
            return texts[key]

        return body

    paths = {f"/automations/{AUTOMATION_ID}/sessions/{rid}/": body_of(rid) for rid in run_ids}
    transport = StubTransport(paths)

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    all_watches = [
        RunWatch(transport, AUTOMATION_ID, rid, interval=1.0)  # type: ignore[arg-type]
        for rid in run_ids
    ]
    # The first poll of each: the snapshot is kept, its events delivered.
    for watch in all_watches:
        for _ in range(steps + 1):
            await anext(watch)
    texts.clear()
    gc.collect()
    after = tracemalloc.take_snapshot()
    per_watch = sum(s.size_diff for s in after.compare_to(base, "filename")) / watches
    runs = [structure(json.loads(json.dumps(run_json(r, steps, 0))), Run) for r in run_ids]
    gc.collect()
    with_runs = tracemalloc.take_snapshot()
    per_run = sum(s.size_diff for s in with_runs.compare_to(after, "filename")) / watches
    checkpoint_size = sum(len(w.checkpoint()) for w in all_watches) / watches
    del runs
    tracemalloc.stop()

    # Unchanged answers: each poll decodes and compares, and yields nothing.
    # A watch only polls when asked for an event, so drive its poll step directly.
    unchanged_polls = watches * polls
    start = time.process_time()
    for _ in range(polls):
        for watch in all_watches:
            await watch._poll()
    unchanged = time.process_time() - start

    # Changed answers: every poll moves the run on by one version.
    changed_polls = watches * polls
    start = time.process_time()
    for _ in range(polls):
        for rid in run_ids:
            versions[rid] += 1
        for watch in all_watches:
            await watch._poll()
            watch._pending = []
    changed = time.process_time() - start

    decode_text = json.dumps(run_json(run_ids[0], steps, 1)).encode()
    start = time.process_time()
    for _ in range(unchanged_polls):
        json.loads(decode_text)
    decode = time.process_time() - start

    rows = [
        ("unchanged answer (fast path), JSON decoding included", unchanged, unchanged_polls),
        ("changed answer (structuring + events), decoding included", changed, changed_polls),
        ("of which the JSON decoding of one answer", decode, unchanged_polls),
    ]
    print(f"poller alone: {watches} watches x {polls} polls, {steps} steps per run")
    for label, seconds, calls in rows:
        print(f"  {label:<58}{cpu_per_call(seconds, calls)} CPU per poll")
    print(f"  {'memory per RunWatch, its last Run included':<58}{per_watch / 1024:8.1f} KiB")
    print(f"  {'of which the Run snapshot itself':<58}{per_run / 1024:8.1f} KiB")
    print(f"  {'checkpoint size':<58}{checkpoint_size:8.0f} bytes")


async def bench_server(watches: int, steps: int, seconds: float) -> None:
    """Part 2: N concurrent watches against a local aiohttp server, for ``seconds``."""
    polls = 0
    started = time.monotonic()

    async def handler(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        run_id = uuid.UUID(request.match_info["run_id"])
        # Each run moves on every ~3 seconds, so that the cadence resets now and then.
        version = int((time.monotonic() - started) / 3.0) + run_id.int % 3
        return web.json_response(run_json(run_id, steps, version))

    app = web.Application()
    app.router.add_get("/automations/{aid}/sessions/{run_id}/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    events = 0
    try:
        async with AutomationClient("bench-token", base_url=f"http://{host}:{port}") as client:

            async def follow(run_id: uuid.UUID) -> None:
                nonlocal events
                async for _ in client.runs.watch(
                    AUTOMATION_ID, run_id, interval=0.5, max_interval=2.0
                ):
                    events += 1

            cpu = time.process_time()
            wall = time.monotonic()
            tasks = [asyncio.create_task(follow(uuid.uuid4())) for _ in range(watches)]
            await asyncio.sleep(seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            cpu = time.process_time() - cpu
            wall = time.monotonic() - wall
            # The server shares this loop: its keep-alive handlers are not the client's.
            leftover = sum(
                1
                for task in asyncio.all_tasks()
                if task is not asyncio.current_task()
                and not task.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
            )
    finally:
        await runner.cleanup()
    print(f"end to end: {watches} concurrent watches on 127.0.0.1 for {wall:.1f}s")
    print(f"  {'polls':<58}{polls:8d} ({polls / wall:.0f}/s), {events} events")
    print(f"  {'client and server together':<58}{cpu_per_call(cpu, polls)} CPU per poll")
    print(f"  {'client tasks left after cancelling every watch':<58}{leftover:8d}")


def main() -> None:
    """Parse the bounds and run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--polls", type=int, default=10, help="polls per watch in part 1")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of part 2")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of part 0 (>= 3)")
    args = parser.parse_args()
    asyncio.run(bench_snapshot(50, max(3, args.repeats), 200))
    asyncio.run(bench_poller(args.watches, args.steps, args.polls))
    asyncio.run(bench_server(args.watches, args.steps, min(args.seconds, 30.0)))


if __name__ == "__main__":
    main()
