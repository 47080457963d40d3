"""How many runs one arq worker process follows before its event loop lags.

Two setups, measured in the same run (``--setups job,monitor``):

- ``job``: the setup of docs/distributed.md (docs/examples/arq_worker.py), one
  ``follow_run`` job per run, each watching its run and publishing to Redis;
- ``monitor``: one ``client.runs.monitor()`` per worker process following all
  N runs: each run is claimed as the job claims it (``claim``: its fencing
  token and checkpoint), added with ``resume_from=`` that checkpoint, and each
  event goes through the example's ``publish`` (XADD and checkpoint in one Lua
  script), with ``monitor.checkpoint(run_id)``.

This script runs a real ``redis-server`` (no persistence) and the emulator in
their own processes, and the worker *in this process*, beside a probe that
sleeps 10 ms again and again and records how late it wakes: the event loop's
lag, which everything of the worker shares.

For each N of a ramp (50, 100, 200, ...) it starts N runs of a fresh
automation, whose steps last 10 minutes (nothing changes while measured),
follows them, waits until every run is followed (the job claimed it, or the
monitor published its first events), then measures the lag for ``--seconds``
and counts the API requests the emulator answered meanwhile
(``/_emulator/stats``) and the commands Redis ran (``INFO stats``), per run
and per second. The job's watches poll once a second (``FOLLOW_INTERVAL`` =
``FOLLOW_MAX_INTERVAL`` = 1); the monitor gets the same ``interval`` and
``max_interval``, and its default strategy. The baseline
is the same setup following no run. Each N is measured ``--repeats`` times; the
median p99 and the spread are printed, and the ramp stops at the first N whose
median p99 passes 50 ms (or at ``--max-runs``, or when its share of
``--budget`` is spent); the middle of the last doubling is then measured too.

Run it with ``python benchmarks/bench_workers.py [--seconds 5] [--repeats 3]``.
Everything listens on 127.0.0.1. On a shared machine, the figures move with the
load of the other processes: compare lines of one run, not runs of two days.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from automation_sdk import AutomationClient, EdgeSpec, StepSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "arq_worker.py"
TOKEN = "bench-token"
LIMIT = 0.050  # seconds of p99 lag
PROBE = 0.010

Figures = tuple[float, float, float]
"""One measure: the loop's p99 lag (s), API requests and Redis commands per run per second."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"{log.name} did not print {pattern!r}:\n{log.read_text(errors='replace')}")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arq_worker", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def lag_p99(seconds: float) -> float:
    """The 99th percentile of how late a 10 ms sleep wakes up, over ``seconds``."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        before = loop.time()
        await asyncio.sleep(PROBE)
        lags.append(loop.time() - before - PROBE)
    return statistics.quantiles(lags, n=100)[98]


async def requests_served() -> int:
    """How many API requests the emulator has answered so far (``/_emulator/stats``)."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{os.environ['AUTOMATION_BASE_URL']}/_emulator/stats") as response,
    ):
        counts = (await response.json())["requests"]
    return sum(int(count) for count in counts.values())


async def new_runs(client: AutomationClient, runs: int) -> tuple[str, list[str]]:
    """A fresh automation (so that its summary lists only these runs) and ``runs`` runs of it."""
    automation = await client.automations.create(
        name="bench",
        steps=[StepSpec("start", "START")]
        + [StepSpec(f"s{i}", "LLM", {"type": "text", "text": f"part {i}"}) for i in range(3)],
        edges=[EdgeSpec("start", "s0"), EdgeSpec("s0", "s1"), EdgeSpec("s1", "s2")],
    )
    run_ids = [str((await client.runs.create(automation.id)).id) for _ in range(runs)]
    return str(automation.id), run_ids


async def all_set(
    redis: Redis, keys: list[str], field: str, runs: int, task: asyncio.Task[None]
) -> None:
    """Wait until every hash of ``keys`` has ``field``: every run is followed."""
    deadline = time.monotonic() + 60 + runs / 20
    while keys:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hexists(key, field)
            found = await pipe.execute()
        if all(found):
            return
        if time.monotonic() > deadline or task.done():
            if task.done() and not task.cancelled() and task.exception():
                raise SystemExit(f"following {runs} runs failed: {task.exception()!r}")
            raise SystemExit(f"the worker did not follow {runs} runs in time")
        await asyncio.sleep(0.2)


async def redis_commands(redis: Redis) -> int:
    """How many commands ``redis-server`` has run so far (``INFO stats``)."""
    return int((await redis.info("stats"))["total_commands_processed"])


async def sample(redis: Redis, runs: int, seconds: float) -> Figures:
    """The loop's p99 lag over ``seconds``, and the API requests and Redis commands per run
    per second meanwhile."""
    await asyncio.sleep(1.0)  # a full poll interval, so that every run is in its cadence
    served0, commands0 = await requests_served(), await redis_commands(redis)
    began = time.monotonic()
    p99 = await lag_p99(seconds)
    elapsed = time.monotonic() - began
    served = await requests_served() - served0
    commands = await redis_commands(redis) - commands0
    if not runs:
        return p99, 0.0, 0.0
    return p99, served / runs / elapsed, commands / runs / elapsed


async def measure_jobs(example: ModuleType, runs: int, seconds: float) -> Figures:
    """Follow ``runs`` fresh runs, one arq job each, with one in-process worker."""
    from arq import create_pool
    from arq.worker import Worker, get_kwargs

    redis = await create_pool(example.WorkerSettings.redis_settings)
    await redis.flushall()
    async with AutomationClient() as client:
        automation_id, run_ids = await new_runs(client, runs)
    for run_id in run_ids:
        await example.enqueue_follow(redis, automation_id, run_id)
    settings = {**get_kwargs(example.WorkerSettings), "max_jobs": max(10, 2 * runs)}
    worker = Worker(**settings, handle_signals=False)  # type: ignore[arg-type]
    # A poll must end before the worker closes: cancelled midway, it leaves a Redis pipeline
    # open. With many runs, one poll takes seconds (arq checks every queued job in turn).
    polled = asyncio.Event()
    polled.set()
    poll = worker._poll_iteration

    async def poll_tracked() -> None:
        polled.clear()
        try:
            await poll()
        finally:
            polled.set()

    worker._poll_iteration = poll_tracked  # type: ignore[method-assign]
    task = asyncio.create_task(worker.async_run())
    try:
        keys = [example.watch_key(run_id) for run_id in run_ids]
        await all_set(redis, keys, "token", runs, task)
        return await sample(redis, runs, seconds)
    finally:
        worker.allow_pick_jobs = False  # the next poll starts nothing
        await polled.wait()
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def measure_monitor(example: ModuleType, runs: int, seconds: float) -> Figures:
    """Follow ``runs`` fresh runs with one RunMonitor, publishing as the example's job does.

    Each run is claimed as a job claims it (its fencing token), added to the
    monitor from the checkpoint in Redis, and every event goes through the
    example's ``publish``: XADD and checkpoint in one Lua script.
    """
    from arq import create_pool

    redis = await create_pool(example.WorkerSettings.redis_settings)
    await redis.flushall()
    async with AutomationClient() as client:
        automation_id, run_ids = await new_runs(client, runs)
        monitor = client.runs.monitor(
            interval=example.INTERVAL,
            max_interval=max(example.INTERVAL, example.MAX_INTERVAL),
            end_when_empty=False,
        )
        async with monitor:
            tokens: dict[str, str] = {}
            for run_id in run_ids:
                tokens[run_id], checkpoint = await example.claim(redis, run_id)
                monitor.add(automation_id, run_id, resume_from=checkpoint, events=True)

            async def publish_all() -> None:
                async for event in monitor:
                    run_id = str(event.run_id)
                    await example.publish(redis, tokens[run_id], event, monitor.checkpoint(run_id))

            task = asyncio.create_task(publish_all())
            try:
                keys = [example.watch_key(run_id) for run_id in run_ids]
                await all_set(redis, keys, "checkpoint", runs, task)
                return await sample(redis, runs, seconds)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await redis.aclose()


SETUPS = {
    "job": ("job per run (docs/examples/arq_worker.py)", measure_jobs),
    "monitor": ("one RunMonitor per worker, same publish", measure_monitor),
}


async def ramp(args: argparse.Namespace, example: ModuleType, setup: str, budget: float) -> str:
    """Double the runs of one setup until its median p99 passes the limit; return the verdict."""
    title, measure = SETUPS[setup]
    began = time.monotonic()

    async def repeated(runs: int) -> list[Figures]:
        return [await measure(example, runs, args.seconds) for _ in range(args.repeats)]

    base = await repeated(0)
    baseline = statistics.median(p99 for p99, _, _ in base)
    print(f"\n{setup}: {title}")
    print(
        f"{'runs/worker':>11}  {'lag p99 (median)':>16}  {'spread':>17}  {'x baseline':>10}  "
        f"{'req/run/s':>9}  {'redis/run/s':>11}"
    )

    def line(runs: int, figures: list[Figures]) -> float:
        lags = [p99 for p99, _, _ in figures]
        p99 = statistics.median(lags)
        if runs:
            rates = f"{statistics.median(r for _, r, _ in figures):>9.2f}  "
            rates += f"{statistics.median(c for _, _, c in figures):>11.1f}"
        else:
            rates = f"{'-':>9}  {'-':>11}"
        print(
            f"{runs:>11}  {p99 * 1000:>13.1f} ms  "
            f"{min(lags) * 1000:>6.1f}-{max(lags) * 1000:<6.1f} ms  "
            f"{p99 / baseline:>10.1f}  {rates}",
            flush=True,
        )
        return p99

    line(0, base)
    # Double N until the limit is passed, then try the middle of the last step once more.
    runs, sustained, passed = args.start, 0, 0
    while runs <= args.max_runs:
        if line(runs, await repeated(runs)) > LIMIT:
            passed = runs
            break
        sustained = runs
        if time.monotonic() - began > budget:
            print(f"(stopped: the {budget:g}s budget of this setup is spent)")
            break
        runs *= 2
    if passed and sustained and time.monotonic() - began <= budget:
        middle = (sustained + passed) // 2
        if line(middle, await repeated(middle)) <= LIMIT:
            sustained = middle
    limit = "" if passed else " (the limit was not reached)"
    return (
        f"{setup}: one worker process sustains "
        f"{sustained or 'fewer than ' + str(args.start)} runs{limit}"
    )


async def ramps(args: argparse.Namespace, example: ModuleType) -> None:
    """The ramp of each setup, one after the other, then their verdicts together."""
    verdicts = [
        await ramp(args, example, setup, args.budget / len(args.setups)) for setup in args.setups
    ]
    print(
        f"\nevery run polled (or its automation summarised) each second; event-loop lag p99 <= "
        f"{LIMIT * 1000:g} ms (median of {args.repeats}, {args.seconds:g}s each):"
    )
    for verdict in verdicts:
        print(f"  {verdict}")


def main() -> None:
    """Start redis-server and the emulator, ramp the runs of one worker, print the lag."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=50, help="first N of the ramp")
    parser.add_argument("--max-runs", type=int, default=3200, help="last N of the ramp")
    parser.add_argument("--seconds", type=float, default=5.0, help="lag sampled per measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=600.0, help="seconds in all, shared by the setups"
    )
    parser.add_argument(
        "--setups", default="job,monitor", help="comma-separated, among: " + ", ".join(SETUPS)
    )
    args = parser.parse_args()
    args.setups = [name.strip() for name in args.setups.split(",") if name.strip()]
    unknown = [name for name in args.setups if name not in SETUPS]
    if unknown or not args.setups:
        parser.error(f"--setups takes some of {', '.join(SETUPS)}, got {args.setups!r}")
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    logs = Path(tempfile.mkdtemp(prefix="bench_workers-"))
    port = free_port()
    emulator = [sys.executable, "-m", "automation_sdk.emulator", "--port", "0"]
    emulator += ["--token", TOKEN, "--step-duration", "600"]  # no run ends while measured
    processes = [
        start([server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""], logs / "redis"),
        start(emulator, logs / "emulator"),
    ]
    try:
        wait_for(logs / "redis", r"Ready to accept connections", processes[0])
        url = wait_for(logs / "emulator", r"(http://127\.0\.0\.1:\d+)", processes[1]).group(1)
        os.environ.update(
            REDIS_URL=f"redis://127.0.0.1:{port}",
            AUTOMATION_API_TOKEN=TOKEN,
            AUTOMATION_BASE_URL=url,
            FOLLOW_INTERVAL="1",
            FOLLOW_MAX_INTERVAL="1",
        )
        os.environ.pop("AUTOMATION_ORG_ID", None)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; emulator and redis-server")
        print("in their own processes, the worker and the lag probe in this one")
        asyncio.run(ramps(args, load_example()))
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
