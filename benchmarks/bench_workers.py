"""How many runs one arq worker process follows before its event loop lags.

The setup of docs/distributed.md (docs/examples/arq_worker.py): one
``follow_run`` job per run, each watching its run and publishing to Redis.
This script runs a real ``redis-server`` (no persistence) and the emulator in
their own processes, and one arq worker *in this process*, beside a probe
that sleeps 10 ms again and again and records how late it wakes: the event
loop's lag, which every job of the worker shares.

For each N of a ramp (50, 100, 200, ...) it starts N runs whose steps last
10 minutes, queues their N jobs, waits until every job has claimed its run,
then measures the lag for ``--seconds``. Every watch polls once a second
(``FOLLOW_INTERVAL`` = ``FOLLOW_MAX_INTERVAL`` = 1): a run whose steps keep
changing, the busiest case. The baseline is the same worker following no run.
Each N is measured ``--repeats`` times; the median p99 and the spread are
printed, and the ramp stops at the first N whose median p99 passes 50 ms (or
at ``--max-runs``, or when ``--budget`` seconds are spent); the middle of the
last doubling is then measured too.

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

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "arq_worker.py"
TOKEN = "bench-token"
LIMIT = 0.050  # seconds of p99 lag
PROBE = 0.010


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


async def measure(example: ModuleType, automation_id: str, runs: int, seconds: float) -> float:
    """Follow ``runs`` fresh runs with one in-process worker; return the loop's p99 lag."""
    from arq import create_pool
    from arq.worker import Worker, get_kwargs

    from automation_sdk import AutomationClient

    redis = await create_pool(example.WorkerSettings.redis_settings)
    await redis.flushall()
    run_ids = []
    async with AutomationClient() as client:
        for _ in range(runs):
            run = await client.runs.create(automation_id)
            await example.enqueue_follow(redis, automation_id, run.id)
            run_ids.append(run.id)
    settings = {**get_kwargs(example.WorkerSettings), "max_jobs": max(10, 2 * runs)}
    worker = Worker(**settings, handle_signals=False)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.async_run())
    try:
        deadline = time.monotonic() + 60 + runs / 20
        while run_ids:
            async with redis.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.hexists(example.watch_key(run_id), "token")
                claimed = await pipe.execute()
            if all(claimed):
                break
            if time.monotonic() > deadline or task.done():
                raise SystemExit(f"the worker did not start {runs} jobs in time")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a full poll interval, so that every watch is in its cadence
        return await lag_p99(seconds)
    finally:
        # Let a poll that is starting jobs finish before the worker is cancelled.
        worker.allow_pick_jobs = False
        await asyncio.sleep(2 * worker.poll_delay_s)
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def ramp(args: argparse.Namespace, example: ModuleType) -> None:
    from automation_sdk import AutomationClient, EdgeSpec, StepSpec

    async with AutomationClient() as client:
        automation = await client.automations.create(
            name="bench",
            steps=[StepSpec("start", "START")]
            + [StepSpec(f"s{i}", "LLM", {"type": "text", "text": f"part {i}"}) for i in range(3)],
            edges=[EdgeSpec("start", "s0"), EdgeSpec("s0", "s1"), EdgeSpec("s1", "s2")],
        )
    automation_id = str(automation.id)
    began = time.monotonic()

    async def repeated(runs: int) -> list[float]:
        return [
            await measure(example, automation_id, runs, args.seconds) for _ in range(args.repeats)
        ]

    base = await repeated(0)
    baseline = statistics.median(base)
    print(f"{'runs/worker':>11}  {'lag p99 (median)':>16}  {'spread':>17}  {'x baseline':>10}")
    print(
        f"{0:>11}  {baseline * 1000:>13.1f} ms  "
        f"{min(base) * 1000:>6.1f}-{max(base) * 1000:<6.1f} ms  {1.0:>10.1f}"
    )

    def line(runs: int, figures: list[float]) -> None:
        p99 = statistics.median(figures)
        print(
            f"{runs:>11}  {p99 * 1000:>13.1f} ms  "
            f"{min(figures) * 1000:>6.1f}-{max(figures) * 1000:<6.1f} ms  "
            f"{p99 / baseline:>10.1f}",
            flush=True,
        )

    # Double N until the limit is passed, then try the middle of the last step once more.
    runs, sustained, passed = args.start, 0, 0
    while runs <= args.max_runs:
        figures = await repeated(runs)
        line(runs, figures)
        if statistics.median(figures) > LIMIT:
            passed = runs
            break
        sustained = runs
        if time.monotonic() - began > args.budget:
            print(f"(stopped: the {args.budget:g}s budget is spent)")
            break
        runs *= 2
    if passed and sustained and time.monotonic() - began <= args.budget:
        middle = (sustained + passed) // 2
        figures = await repeated(middle)
        line(middle, figures)
        if statistics.median(figures) <= LIMIT:
            sustained = middle
    print(
        f"job per run, polling each run every second: one worker process sustains "
        f"{sustained or 'fewer than ' + str(args.start)} runs with event-loop lag p99 <= "
        f"{LIMIT * 1000:g} ms (median of {args.repeats}, {args.seconds:g}s each)"
    )


def main() -> None:
    """Start redis-server and the emulator, ramp the runs of one worker, print the lag."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=50, help="first N of the ramp")
    parser.add_argument("--max-runs", type=int, default=3200, help="last N of the ramp")
    parser.add_argument("--seconds", type=float, default=5.0, help="lag sampled per measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds before stopping")
    args = parser.parse_args()
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
        asyncio.run(ramp(args, load_example()))
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
