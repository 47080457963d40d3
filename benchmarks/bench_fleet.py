"""Watching a fleet of runs: four ways, side by side, against the emulator in another process.

For N = 200, 1,000 and 2,000 runs spread over several automations (START + 3
steps; every phase draws ``uniform(4.5, 8)`` seconds, so a run lasts ~25 s),
each strategy follows every run from its creation to its end:

(a) ``naive``: a fixed loop per run, ``client.runs.get()`` then ``asyncio.sleep(1)``;
(b) ``watch``: ``client.runs.watch()`` per run, every event consumed;
(c) ``monitor``: one ``client.runs.monitor()``, every run added, every event consumed;
(d) ``waits``: one monitor and ``monitor.wait()`` per run (the web-app case).

Per scenario it prints the median and the spread (min-max) over the repeats of:
requests per run (the emulator's own per-route counter; the POSTs creating runs
excluded), p50/p95/p99 detection latency (from the run's end on the server's
clock to the moment the client learnt it; both processes read the same
``CLOCK_MONOTONIC``, and the offset is measured anyway with the round trip of
``/_emulator/stats``), event-loop lag p99 and max (a task sleeping 10 ms),
the longest full garbage collection, client CPU % of one core, peak RSS,
connection waits (requests that queued for one of aiohttp's 100 connections),
and ratios against (a) and (b). For (b) and (c) it checks every run's events
against the emulator's history: no transition duplicated, none out of order,
no step or end missed (statuses that came and went between two polls are
counted as "collapsed": a poller cannot see them, and that is not a miss).

A second part measures the RSS each strategy keeps per watched 50-step run (all
50 steps reached: the run waits for input at the last one), and ``--tuning``
adds N=2,000 watches with a bigger connection pool, with ``gc.freeze()`` and
with raised GC thresholds.

Each scenario gets a fresh emulator process and a fresh client process
(``--worker``), so peak RSS and CPU are the client's alone. Scenarios of one
repeat are interleaved so that a change of machine load hits every strategy.

Run: ``python benchmarks/bench_fleet.py`` (about 30 minutes on 2 cores, 38 with
``--tuning``),
``--quick`` (N=200, runs ~5 s, one repeat: about 1 minute), or pick with
``--sizes 200,1000 --repeats 3 --scale 0.5 --strategies naive,watch --tuning``.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from automation_sdk import (
    AutomationClient,
    EdgeSpec,
    RunStatus,
    RunTransition,
    StepSpec,
    StepTransition,
)

TOKEN = "bench-token"
STRATEGIES = ("naive", "watch", "monitor", "waits")
LABELS = {
    "naive": "(a) naive 1 s",
    "watch": "(b) watch()",
    "monitor": "(c) monitor",
    "waits": "(d) waits",
}
CREATE_CONCURRENCY = 20
LAG_PERIOD = 0.01
TERMINAL = {RunStatus.FINISHED, RunStatus.FAILED}


# -- the client side (one process per scenario) -------------------------------------------


class Probe:
    """What the worker samples while it watches: loop lag, full GC pauses, connection waits."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self.queued = 0
        self.queue_peak = 0
        self._queue = 0
        self._gc_started = 0.0
        self._stop = asyncio.Event()

    async def sample_lag(self) -> None:
        """Sleep 10 ms again and again; record how late each wake-up is."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(LAG_PERIOD)
            self.lags.append(max(0.0, loop.time() - before - LAG_PERIOD))

    def stop(self) -> None:
        """End the lag sampler."""
        self._stop.set()

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook: time the full (generation 2) collections."""
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def trace(self) -> aiohttp.TraceConfig:
        """Count the requests that had to wait for a free connection."""
        config = aiohttp.TraceConfig()

        async def queued(*_: object) -> None:
            self.queued += 1
            self._queue += 1
            self.queue_peak = max(self.queue_peak, self._queue)

        async def served(*_: object) -> None:
            self._queue -= 1

        config.on_connection_queued_start.append(queued)
        config.on_connection_queued_end.append(served)
        return config


async def admin(http: aiohttp.ClientSession, url: str, path: str) -> Any:
    """GET an emulator admin document."""
    async with http.get(f"{url}/_emulator/{path}") as resp:
        resp.raise_for_status()
        return await resp.json()


async def clock_offset(http: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(server clock - client monotonic, round trip) of the tightest of 5 probes."""
    best = (0.0, float("inf"))
    for _ in range(5):
        sent = time.monotonic()
        stats = await admin(http, url, "stats")
        back = time.monotonic()
        if back - sent < best[1]:
            best = (stats["clock"] - (sent + back) / 2, back - sent)
    return best


def automation_spec(steps: int, *, ask_last: bool = False) -> dict[str, Any]:
    """START then ``steps`` LLM steps (the last one an INPUT step with ``ask_last``)."""
    names = ["start"] + [f"step{i}" for i in range(1, steps + 1)]
    kinds = ["START"] + ["LLM"] * steps
    if ask_last:
        kinds[-1] = "INPUT"
    text = "Summarise the ticket ${INPUTS.ticket} for the on-call engineer, briefly. " * 3
    return {
        "name": "fleet benchmark",
        "steps": [
            StepSpec(name=n, step_type=k, prompt_template={"type": "text", "text": text})
            for n, k in zip(names, kinds, strict=True)
        ],
        "edges": [EdgeSpec(source=a, target=b) for a, b in itertools.pairwise(names)],
    }


class Fleet:
    """The runs of one scenario and what the client saw of them."""

    def __init__(self) -> None:
        self.ended: dict[uuid.UUID, float] = {}
        self.events: dict[uuid.UUID, list[tuple[str | None, str, str | None]]] = defaultdict(list)
        self.all_ended = asyncio.Event()
        self.expected = 0
        # The first follow task that raised: the scenario stops at once and says what it was,
        # instead of waiting out its deadline for runs that nobody follows any more.
        self.failure: BaseException | None = None

    def follow_ended(self, task: asyncio.Task[Any]) -> None:
        """Done callback of a follow task: keep the first exception, and stop the wait."""
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            self.all_ended.set()

    def end(self, run_id: uuid.UUID) -> None:
        """Record that the client learnt of the run's end, now."""
        self.ended.setdefault(run_id, time.monotonic())
        if len(self.ended) >= self.expected:
            self.all_ended.set()

    def record(self, event: StepTransition | RunTransition) -> None:
        """Keep an event as (step id or None, status, previous status)."""
        previous = None if event.previous is None else event.previous.value
        if isinstance(event, StepTransition):
            key: str | None = str(event.step_id)
        else:
            key = None
        self.events[event.run_id].append((key, event.status.value, previous))
        if isinstance(event, RunTransition) and event.status in TERMINAL:
            self.end(event.run_id)


async def follow_naive(
    client: AutomationClient, fleet: Fleet, aid: uuid.UUID, rid: uuid.UUID
) -> None:
    """(a): GET, then sleep one second, until the run ended."""
    while True:
        run = await client.runs.get(aid, rid)
        if run.status in TERMINAL:
            fleet.end(rid)
            return
        await asyncio.sleep(1.0)


async def follow_watch(
    client: AutomationClient, fleet: Fleet, aid: uuid.UUID, rid: uuid.UUID
) -> None:
    """(b): one watch() per run, with its default cadence."""
    async with client.runs.watch(aid, rid) as watch:
        async for event in watch:
            fleet.record(event)


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One scenario: create the runs, follow them all to their end, return the figures."""
    if args.gc == "threshold":
        gc.set_threshold(50_000, 50, 100)
    probe = Probe()
    connector = aiohttp.TCPConnector(limit=args.limit)
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(connector=connector, trace_configs=[probe.trace()]) as session,
        aiohttp.ClientSession(timeout=timeout) as plain,
        AutomationClient(TOKEN, base_url=args.url, session=session) as client,
    ):
        automations = []
        spec = automation_spec(args.steps, ask_last=args.memory)
        for _ in range(args.automations):
            automation = await client.automations.create(**spec)
            automations.append(automation.id)
        if args.strategy in ("monitor", "waits") and not hasattr(client.runs, "monitor"):
            return {"available": False}
        offset, rtt = await clock_offset(plain, args.url)
        before = (await admin(plain, args.url, "stats"))["requests"]
        gc.callbacks.append(probe.on_gc)
        fleet = Fleet()
        fleet.expected = args.runs
        rss_base = current_rss()
        started_wall, usage0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        lag_task = asyncio.create_task(probe.sample_lag())
        tasks: set[asyncio.Task[Any]] = set()
        stack = contextlib.AsyncExitStack()
        monitor: Any = None
        if args.strategy in ("monitor", "waits"):
            monitor = await stack.enter_async_context(client.runs.monitor())
        try:
            consumer = None
            all_added = asyncio.Event()
            if args.strategy == "monitor":

                async def consume() -> None:
                    while True:
                        # The stream stops when no added run is left: that
                        # happens before the first add, and may happen between
                        # two adds; iterate again while more runs are coming.
                        async for event in monitor:
                            fleet.record(event)
                        if all_added.is_set():
                            return
                        await asyncio.sleep(0.05)

                consumer = asyncio.create_task(consume())
            creating = asyncio.Semaphore(CREATE_CONCURRENCY)
            created: list[tuple[uuid.UUID, uuid.UUID]] = []

            async def create(index: int) -> None:
                aid = automations[index % len(automations)]
                async with creating:
                    run = await client.runs.create(aid, inputs={"ticket": f"T-{index}"})
                created.append((aid, run.id))
                task: Coroutine[Any, Any, None] | None = None
                if args.strategy == "naive":
                    task = follow_naive(client, fleet, aid, run.id)
                elif args.strategy == "watch":
                    task = follow_watch(client, fleet, aid, run.id)
                elif args.strategy == "monitor":
                    monitor.add(aid, run.id)
                else:

                    async def wait_one() -> None:
                        await monitor.wait(aid, run.id, raise_on_failure=False)
                        fleet.end(run.id)

                    task = wait_one()
                if task is not None:
                    t = asyncio.create_task(task)
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                    t.add_done_callback(fleet.follow_ended)

            await asyncio.gather(*(create(i) for i in range(args.runs)))
            all_added.set()
            if args.gc == "freeze":
                # Once every run is followed: what exists now lives to the end.
                gc.freeze()
            if args.memory:
                await asyncio.sleep(args.settle)
                gc.collect()
                rss_kept = current_rss() - rss_base
                result: dict[str, Any] = {
                    "available": True,
                    "rss_per_run_kib": rss_kept / args.runs / 1024,
                }
                return result
            waiting = [asyncio.create_task(fleet.all_ended.wait())]
            if consumer is not None:
                waiting.append(consumer)
            done, _ = await asyncio.wait(
                waiting, timeout=args.deadline, return_when="FIRST_COMPLETED"
            )
            waiting[0].cancel()
            if fleet.failure is not None:
                raise RuntimeError(
                    f"following a run failed after {len(fleet.ended)} of {args.runs} runs ended: "
                    f"{type(fleet.failure).__name__}: {fleet.failure}"
                ) from fleet.failure
            if consumer is not None and consumer in done and not fleet.all_ended.is_set():
                consumer.result()  # raises what stopped the consumer
                raise RuntimeError(
                    f"the monitor's stream ended after {len(fleet.ended)} of {args.runs} runs ended"
                )
            if not fleet.all_ended.is_set():
                raise RuntimeError(
                    f"only {len(fleet.ended)} of {args.runs} runs were seen ending "
                    f"within {args.deadline:g} s"
                )
            elapsed = time.monotonic() - started_wall
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            if consumer is not None:
                consumer.cancel()
        finally:
            probe.stop()
            await lag_task
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stack.aclose()
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(probe.on_gc)
        after = (await admin(plain, args.url, "stats"))["requests"]
        history = (await admin(plain, args.url, "history"))["transitions"]
    gets = sum(n - before.get(k, 0) for k, n in after.items() if k.startswith("GET "))
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "available": True,
        "requests_per_run": gets / args.runs,
        "latencies": latencies(history, fleet.ended, offset),
        "lag_p99_ms": percentile(probe.lags, 99) * 1000,
        "lag_max_ms": max(probe.lags, default=0.0) * 1000,
        "gc_max_ms": max(probe.gc_pauses, default=0.0) * 1000,
        "cpu_percent": cpu / elapsed * 100,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "queued": probe.queued,
        "queue_peak": probe.queue_peak,
        "offset_ms": offset * 1000,
        "rtt_ms": rtt * 1000,
        "check": (
            check(history, fleet.events, {str(rid) for _, rid in created})
            if args.strategy in ("watch", "monitor")
            else None
        ),
        "seconds": elapsed,
    }


def current_rss() -> int:
    """This process's resident set now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def latencies(
    history: list[dict[str, Any]], ended: dict[uuid.UUID, float], offset: float
) -> list[float]:
    """Seconds from each run's end on the server to the client learning it."""
    server_end: dict[str, float] = {}
    for t in history:
        if t["step_id"] is None and t["status"] in ("FINISHED", "FAILED"):
            server_end[t["run_id"]] = t["clock"]
    return [
        seen + offset - server_end[str(rid)]
        for rid, seen in ended.items()
        if str(rid) in server_end
    ]


def check(
    history: list[dict[str, Any]],
    events: dict[uuid.UUID, list[tuple[str | None, str, str | None]]],
    followed: set[str],
) -> dict[str, int]:
    """Compare each run's events with its server history: duplicates, misses, disorder."""
    truth: dict[str, dict[str | None, list[str]]] = defaultdict(lambda: defaultdict(list))
    for t in history:
        if t["run_id"] in followed:
            truth[t["run_id"]][t["step_id"]].append(t["status"])
    duplicated = missed = disordered = collapsed = delivered = 0
    for run_id, by_key in truth.items():
        seen: dict[str | None, list[tuple[str, str | None]]] = defaultdict(list)
        for key, status, previous in events.get(uuid.UUID(run_id), []):
            seen[key].append((status, previous))
        for key, statuses in by_key.items():
            got = seen.get(key, [])
            delivered += len(got)
            got_statuses = [s for s, _ in got]
            duplicated += len(got_statuses) - len(set(got_statuses))
            duplicated += sum(1 for s, p in got if s == p)
            if not got_statuses or got_statuses[-1] != statuses[-1]:
                missed += 1
            # In order: what was delivered is a subsequence of what happened.
            position = 0
            for s in got_statuses:
                while position < len(statuses) and statuses[position] != s:
                    position += 1
                if position == len(statuses):
                    disordered += 1
                    break
                position += 1
            collapsed += max(0, len(statuses) - len(set(got_statuses)))
    return {
        "delivered": delivered,
        "duplicated": duplicated,
        "missed": missed,
        "disordered": disordered,
        "collapsed": collapsed,
    }


# -- the orchestrator --------------------------------------------------------------------


class EmulatorProcess:
    """``python -m automation_sdk.emulator`` on a free port of 127.0.0.1, in its own process."""

    def __init__(self, durations: str, seed: int) -> None:
        command = [
            sys.executable, "-m", "automation_sdk.emulator", "--port", "0", "--token", TOKEN,
            "--step-duration", durations, "--seed", str(seed),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.close()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]

    def close(self) -> None:
        """Stop it (Ctrl-C) and wait."""
        self.process.send_signal(2)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def scenario(
    strategy: str,
    runs: int,
    args: argparse.Namespace,
    *,
    seed: int,
    extra: list[str] | None = None,
    memory: bool = False,
) -> dict[str, Any]:
    """Run one scenario in fresh processes; return the worker's figures."""
    if memory:
        durations, steps = "0.01", 50
    else:
        lo, hi = 4.5 * args.scale, 8.0 * args.scale
        durations, steps = f"uniform:{lo:g}:{hi:g}", 3
    emulator = EmulatorProcess(durations, seed)
    try:
        command = [
            sys.executable, __file__, "--worker", strategy, "--url", emulator.url,
            "--runs", str(runs), "--automations", str(args.automations), "--steps", str(steps),
        ]  # fmt: skip
        if memory:
            command += ["--memory", "--settle", str(args.settle)]
        command += extra or []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        emulator.close()
    if done.returncode != 0:
        raise RuntimeError(f"{strategy} N={runs} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float], fmt: str) -> str:
    """``median (min..max)``."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}..{format(max(values), fmt)})"


METRICS: list[tuple[str, Callable[[dict[str, Any]], float], str]] = [
    ("requests per run", lambda r: r["requests_per_run"], ".2f"),
    ("latency p50 (s)", lambda r: percentile(r["latencies"], 50), ".2f"),
    ("latency p95 (s)", lambda r: percentile(r["latencies"], 95), ".2f"),
    ("latency p99 (s)", lambda r: percentile(r["latencies"], 99), ".2f"),
    ("loop lag p99 (ms)", lambda r: r["lag_p99_ms"], ".1f"),
    ("loop lag max (ms)", lambda r: r["lag_max_ms"], ".0f"),
    ("full GC max (ms)", lambda r: r["gc_max_ms"], ".0f"),
    ("client CPU (% core)", lambda r: r["cpu_percent"], ".1f"),
    ("peak RSS (MiB)", lambda r: r["peak_rss_mib"], ".0f"),
    ("connection waits", lambda r: r["queued"], ".0f"),
    ("waiting at once, max", lambda r: r["queue_peak"], ".0f"),
]
TUNING_METRICS = {
    "latency p95 (s)",
    "loop lag p99 (ms)",
    "loop lag max (ms)",
    "full GC max (ms)",
    "client CPU (% core)",
    "connection waits",
    "waiting at once, max",
}
RATIOS = [("requests", 0), ("latency p95", 2), ("client CPU", 7)]


def print_table(runs: int, results: dict[str, list[dict[str, Any]]], strategies: list[str]) -> None:
    """One block per N: a metric per line, a strategy per column."""
    width = 26
    print(f"\nN = {runs} runs ({len(next(iter(results.values())))} repeats; median (min..max))")
    print(" " * 22 + "".join(f"{LABELS[s]:>{width}}" for s in strategies))
    available = {s: [r for r in results[s] if r.get("available")] for s in strategies}
    for name, get, fmt in METRICS:
        cells = []
        for s in strategies:
            cells.append(
                spread([get(r) for r in available[s]], fmt) if available[s] else "not available"
            )
        print(f"{name:<22}" + "".join(f"{c:>{width}}" for c in cells))
    medians = {
        s: [
            statistics.median([METRICS[i][1](r) for r in available[s]]) for i in range(len(METRICS))
        ]
        for s in strategies
        if available[s]
    }
    for base in ("naive", "watch"):
        if base not in medians:
            continue
        for label, index in RATIOS:
            cells = []
            for s in strategies:
                if s not in medians or medians[base][index] == 0:
                    cells.append("-")
                else:
                    cells.append(f"{medians[s][index] / medians[base][index]:.2f}x")
            print(
                f"{label + ' vs ' + LABELS[base][:3]:<22}" + "".join(f"{c:>{width}}" for c in cells)
            )
    for s in strategies:
        checks = [r["check"] for r in available[s] if r.get("check")]
        if checks:
            total = {k: sum(c[k] for c in checks) for k in checks[0]}
            print(
                f"  {LABELS[s]} events vs history, all repeats: {total['delivered']} delivered, "
                f"{total['duplicated']} duplicated, {total['missed']} missed, "
                f"{total['disordered']} out of order, {total['collapsed']} collapsed between polls"
            )
    offsets = [r["offset_ms"] for s in strategies for r in available[s]]
    if offsets:
        print(
            f"  clock offset server-client: {spread(offsets, '.2f')} ms (subtracted from latencies)"
        )


async def emulator_cost(url: str, runs: int, repeats: int) -> dict[str, float]:
    """Median time and size of a GET of an automation listing ``runs`` runs, and of one run."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        AutomationClient(TOKEN, base_url=url, session=http) as client,
    ):
        automation = await client.automations.create(**automation_spec(3))
        creating = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(index: int) -> uuid.UUID:
            async with creating:
                run = await client.runs.create(automation.id, inputs={"ticket": f"T-{index}"})
                return run.id

        run_ids = await asyncio.gather(*(create(i) for i in range(runs)))
        figures: dict[str, float] = {}
        for name, path in (
            ("automation", f"/automations/{automation.id}/"),
            ("run", f"/automations/{automation.id}/sessions/{run_ids[runs // 2]}/"),
        ):
            times, size = [], 0
            for _ in range(repeats):
                start = time.perf_counter()
                async with http.get(url + path) as resp:
                    size = len(await resp.read())
                times.append(time.perf_counter() - start)
            figures[f"{name}_ms"] = statistics.median(times) * 1000
            figures[f"{name}_spread_ms"] = (max(times) - min(times)) * 1000
            figures[f"{name}_bytes"] = size
        return figures


def orchestrate(args: argparse.Namespace) -> None:
    """Every scenario, then the tables."""
    strategies = [s.strip() for s in args.strategies.split(",")]
    sizes = [int(n) for n in args.sizes.split(",")]
    print(
        f"bench_fleet: sizes {sizes}, {args.repeats} repeats, {args.automations} automations, "
        f"START + 3 steps, each phase uniform({4.5 * args.scale:g}, {8.0 * args.scale:g}) s, "
        f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    began = time.monotonic()
    emulator = EmulatorProcess("uniform:4:8", seed=1)
    try:
        cost = asyncio.run(emulator_cost(emulator.url, max(sizes), repeats=31))
    finally:
        emulator.close()
    print(
        f"\nThe emulator, in its own process: GET of an automation listing {max(sizes)} runs "
        f"{cost['automation_ms']:.2f} ms (spread {cost['automation_spread_ms']:.2f}), "
        f"{cost['automation_bytes'] / 1024:.0f} KiB; GET of one run {cost['run_ms']:.2f} ms "
        f"(spread {cost['run_spread_ms']:.2f}), {cost['run_bytes']:.0f} B; "
        f"the list costs {cost['automation_ms'] / cost['run_ms']:.0f} GETs of a run "
        f"(median of 31 each, client time included)",
        flush=True,
    )
    results: dict[int, dict[str, list[dict[str, Any]]]] = {n: defaultdict(list) for n in sizes}
    for repeat in range(args.repeats):
        for runs in sizes:
            for strategy in strategies:
                result = scenario(strategy, runs, args, seed=repeat + 1)
                results[runs][strategy].append(result)
                took = f"{result['seconds']:.0f} s" if result.get("available") else "not available"
                print(
                    f"  repeat {repeat + 1} N={runs} {strategy}: {took}",
                    file=sys.stderr,
                    flush=True,
                )
    for runs in sizes:
        print_table(runs, results[runs], strategies)
    if args.memory_runs:
        print(f"\nRSS kept per watched 50-step run ({args.memory_runs} runs waiting at step 50)")
        for strategy in strategies:
            values = []
            for repeat in range(args.repeats):
                r = scenario(strategy, args.memory_runs, args, seed=repeat + 1, memory=True)
                if r.get("available"):
                    values.append(r["rss_per_run_kib"])
            text = spread(values, ".1f") + " KiB" if values else "not available"
            print(f"  {LABELS[strategy]:<16}{text}")
    if args.tuning:
        runs = max(sizes)
        print(f"\nTuning, N = {runs}, (b) watch(), {args.repeats} repeats, median (min..max):")
        variants = [
            ("defaults", []),
            ("TCPConnector(limit=0)", ["--limit", "0"]),
            ("gc.freeze() after adds", ["--gc", "freeze"]),
            ("threshold 50000,50,100", ["--gc", "threshold"]),
        ]
        print(" " * 22 + "".join(f"{label:>24}" for label, _ in variants))
        tuned: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for repeat in range(args.repeats):
            for label, extra in variants:
                r = scenario("watch", runs, args, seed=repeat + 1, extra=extra)
                tuned[label].append(r)
                print(f"  tuning {repeat + 1} {label}: {r['seconds']:.0f} s", file=sys.stderr)
        shown = [m for m in METRICS if m[0] in TUNING_METRICS]
        for name, get, fmt in shown:
            cells = [spread([get(r) for r in tuned[label]], fmt) for label, _ in variants]
            print(f"{name:<22}" + "".join(f"{c:>24}" for c in cells))
    print(f"\ntotal {time.monotonic() - began:.0f} s, load average now {os.getloadavg()[0]:.2f}")


def main() -> None:
    """Parse the options; run the orchestrator, or one worker when called with --worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,2000", help="N values (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the step durations")
    parser.add_argument("--automations", type=int, default=4)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--memory-runs", type=int, default=400, help="0 skips the RSS part")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before reading RSS")
    parser.add_argument("--tuning", action="store_true", help="also pool and GC variants")
    parser.add_argument("--quick", action="store_true", help="N=200, runs ~5 s, one repeat")
    # Worker mode (one scenario, started by the orchestrator).
    parser.add_argument("--worker", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "threshold"),
        default="default",
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.worker:
        args.strategy = args.worker
        print(json.dumps(asyncio.run(worker(args))), flush=True)
        return
    if args.quick:
        args.sizes, args.scale, args.repeats, args.memory_runs = "200", 0.2, 1, 100
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    orchestrate(args)


if __name__ == "__main__":
    main()
