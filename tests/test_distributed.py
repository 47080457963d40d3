"""Watches on arq workers (docs/examples/arq_worker.py) against a real redis-server.

The tests marked ``redis`` start ``redis-server`` on a free port of 127.0.0.1,
without persistence. Without ``redis-server`` they skip, unless the ``CI``
variable is set: then they fail, since ``.ci/run`` installs it.

The kill test runs the whole thing as a user would: the emulator in its own
process, three arq worker processes, twenty runs, one worker SIGKILLed
mid-watch. The emulator runs on a clock that only the test moves
(tests/_held_emulator.py), once every worker has published the runs' current
state and every run's watch has been handed over to a new segment, so that no
state can pass unseen however busy the machine is. The test still takes real
time, because what it checks is what real processes, a real broker and real
timeouts do; every wait in it is a condition with a generous bound, and every
process it starts is killed, by process group, even when it fails.

The waits are the page's, made shorter, so that the test takes about 5 seconds,
not half a minute (the numbers are below the imports; docs/distributed.md, "What
the test shows", says why production's differ): quarter-second segments, polls
every 0.15 s, and workers running tests/_arq_test_worker.py, which poll the
queue every 0.1 s, give a segment 1 s before arq fails it, and take a SIGKILLed
worker's jobs over 1.25 s after they started (that job_timeout plus 0.25 s),
where plain arq waits job_timeout + 10 s. What happens is unchanged: a SIGKILL,
an in-progress key that Redis expires, arq starting the job again, another
worker resuming the watch from the checkpoint. Twenty runs (there were sixty)
leave the killed worker at least seven: it is the one holding the most. The
emulator and the workers are forked by tests/_forkserver.py, which imported what
they run once for all four.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import io
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from arq import Retry, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import retry_key_prefix
from arq.jobs import Job
from redis.asyncio import Redis

from automation_sdk import AutomationClient, EdgeSpec, Run, StepSpec, StepType
from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
TOKEN = "distributed-test"
RUNS = 20
WORKERS = 3
FORKSERVER = Path(__file__).resolve().parent / "_forkserver.py"
STEP_DURATION = 4.0  # on the emulator's held clock: a state lasts until the test moves it on
# The page's numbers, shortened so that the test takes seconds, not minutes (docs/distributed.md,
# "What the test shows"); the mechanism is the same.
POLL_INTERVAL = 0.15  # FOLLOW_INTERVAL: a state is published this long after the clock moves
SEGMENT = 0.25  # FOLLOW_SEGMENT: each state is handed over to a new segment this often
JOB_TIMEOUT = 1.0  # arq's hard limit on a segment; the page's is twice the segment
GRACE = 0.25  # a killed worker's jobs move on job_timeout + GRACE after they started, not + 10
POLL_DELAY = 0.1  # arq's poll_delay: how soon a re-queued segment is picked up
STARTUP = 120.0  # bounds, not durations: a busy machine starts Python processes slowly
PHASE = 120.0  # how long one step of the test may take before it fails, printing the logs


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arq_worker", EXAMPLES / "arq_worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


arq_worker = _load_example()


# -- processes -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forked:
    """A process that tests/_forkserver.py forked: what the tests use of a ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        """None while it runs; -1 once it ended (the fork server, its parent, reaped it)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return -1
        return None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"process {self.pid}", timeout)
            time.sleep(0.01)
        return code


Process = subprocess.Popen[bytes] | Forked


class Processes:
    """Processes started by a test, each in its own group, all killed at the end."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self.started: list[tuple[Process, Path]] = []
        self._server: subprocess.Popen[bytes] | None = None
        self._ready = False

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self._logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=EXAMPLES,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg ends it all
            )
        self.started.append((process, log))
        return process

    def start_forkserver(self, env: dict[str, str]) -> None:
        """Start tests/_forkserver.py with ``env``, which arq_worker.py reads at import."""
        log = self._logs / "forkserver.log"
        with log.open("wb") as err:
            self._server = subprocess.Popen(
                [sys.executable, str(FORKSERVER)],
                cwd=EXAMPLES,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.started.append((self._server, log))
        self._ready = False

    async def _answer(self) -> str:
        assert self._server is not None and self._server.stdout is not None
        return (await asyncio.to_thread(self._server.stdout.readline)).decode().strip()

    async def fork(
        self, name: str, run: str, args: list[object], env: dict[str, str] | None = None
    ) -> Forked:
        """A process the fork server forked, running ``run`` (see tests/_forkserver.py)."""
        assert self._server is not None and self._server.stdin is not None
        if not self._ready:  # it has imported everything
            ready = await asyncio.wait_for(self._answer(), STARTUP)
            assert ready == "ready", f"the fork server said {ready!r}\n{self.tails()}"
            self._ready = True
        log = self._logs / f"{name}.log"
        log.touch()
        command = {"run": run, "log": str(log), "env": env or {}, "args": [*map(str, args)]}
        self._server.stdin.write(json.dumps(command).encode() + b"\n")
        self._server.stdin.flush()
        process = Forked(int(await asyncio.wait_for(self._answer(), STARTUP)))
        self.started.append((process, log))
        return process

    @staticmethod
    def kill(process: Process) -> None:
        """SIGKILL the process's group, as an OOM killer or a lost machine would."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        # The fork server last: it collects the processes it forked as they end.
        forked = [process for process, _ in self.started if process is not self._server]
        for group in (forked, [self._server] if self._server is not None else []):
            for process in group:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            for process in group:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill(process)
        if self._server is not None:
            for pipe in (self._server.stdin, self._server.stdout):
                if pipe is not None:
                    pipe.close()

    def output(self) -> str:
        """Everything the processes printed."""
        return "".join(log.read_text(errors="replace") for _, log in self.started)

    def tails(self) -> str:
        parts = []
        for process, log in self.started:
            text = log.read_text(errors="replace")[-3000:]
            parts.append(f"--- {log.name} (pid {process.pid}, exit {process.poll()})\n{text}")
        return "\n".join(parts)


def _redis_server() -> str:
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail(
            "redis-server is not installed, and CI is set: .ci/run installs it with "
            "`apt-get install -y redis-server`; the Redis tests must run in CI"
        )
    pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh redis-server on a free port of 127.0.0.1, with no persistence."""
    server = _redis_server()
    port = _free_port()
    processes = Processes(tmp_path_factory.mktemp("redis"))
    try:
        process = processes.start(
            "redis",
            # no persistence: nothing is written to disk
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                *("--save", "", "--appendonly", "no"),
            ],
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start:\n{processes.tails()}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}"
    finally:
        processes.close()


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    """arq's Redis pool on the test server, emptied first."""
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    await redis.flushall()
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start processes; kill all of them (by process group) whatever happens."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.close()


async def _until(
    what: str,
    check: Callable[[], Awaitable[bool]],
    timeout: float,
    logs: Processes,
    detail: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s{detail()}\n{logs.tails()}")
        # Every 20 ms: the kill test waits here twice a phase, and each check is one
        # pipelined round trip to Redis; at 50 ms it took 0.35 s longer, for no less CPU.
        await asyncio.sleep(0.02)


async def _log_line(
    processes: Processes, process: Process, pattern: str, timeout: float
) -> re.Match[str]:
    """Wait until ``process`` (started by ``processes``) has printed ``pattern``."""
    log = next(log for started, log in processes.started if started is process)
    found: list[re.Match[str]] = []

    async def seen() -> bool:
        match = re.search(pattern, log.read_text(errors="replace"))
        found.extend([match] if match else [])
        return match is not None

    await _until(f"{log.name} printing {pattern!r}", seen, timeout, processes)
    return found[0]


# -- what the streams should hold ------------------------------------------------------------

Transition = tuple[str, str, str]
"""(``run`` or the step's name, previous status or "", status)."""


def expected_transitions(run: Run) -> list[Transition]:
    """Every transition of a linear run, as the emulator's timeline makes it, in watch order.

    The emulator (see the docstring of ``automation_sdk/emulator/_engine.py``)
    moves a run NEW -> RUNNING and finishes START at once, reaching the next
    step (NEW); an LLM step goes NEW -> RUNNING -> FINISHED; an input step
    NEW -> WAITING_FOR_USER_INPUT (and the run with it) -> FINISHED when
    answered, the run going back to RUNNING; the run FINISHES with its last
    step. Each state lasts half a step duration or more, so a watch polling
    every quarter second sees every one: the states are replayed here from the
    final snapshot's steps, and diffed the way a watch diffs snapshots (the
    steps in order, then the run).
    """
    steps = [s.step.name for s in run.steps]
    kinds = {s.step.name: s.step.step_type for s in run.steps}
    states: list[tuple[dict[str, str], str]] = [({}, "NEW")]

    def reach(statuses: dict[str, str], index: int) -> str:
        """Reach step ``index`` (START steps finish at once); return the run's status."""
        while index < len(steps) and kinds[steps[index]] is StepType.START:
            statuses[steps[index]] = "FINISHED"
            index += 1
        if index == len(steps):
            return "FINISHED"
        statuses[steps[index]] = "NEW"
        return "RUNNING"

    current: dict[str, str] = {}
    status = reach(current, 0)
    states.append((dict(current), status))
    for index, name in enumerate(steps):
        if kinds[name] is StepType.START:
            continue
        waits = kinds[name].value in ("INPUT", "USER_INPUT")
        middle = "WAITING_FOR_USER_INPUT" if waits else "RUNNING"
        current[name] = middle
        states.append((dict(current), middle if waits else "RUNNING"))
        current[name] = "FINISHED"
        status = reach(current, index + 1)
        states.append((dict(current), status))

    transitions: list[Transition] = []
    seen_steps: dict[str, str] = {}
    seen_run = ""
    for statuses, run_status in states:
        for name in steps:
            if name in statuses and statuses[name] != seen_steps.get(name):
                transitions.append((name, seen_steps.get(name, ""), statuses[name]))
                seen_steps[name] = statuses[name]
        if run_status != seen_run:
            transitions.append(("run", seen_run, run_status))
            seen_run = run_status
    assert seen_steps == {s.step.name: s.status.value for s in run.steps}, "final steps differ"
    assert seen_run == run.status.value, "final run status differs"
    return transitions


def _as_transition(fields: dict[str, str]) -> Transition:
    name = "run" if fields["kind"] == "run" else fields["step_name"]
    return (name, fields["previous"], fields["status"])


async def _history(http: aiohttp.ClientSession, url: str, run_id: object) -> list[Transition]:
    """The emulator's record of every status a run and its steps took, as transitions."""
    async with http.get(f"{url}/_emulator/history", params={"run_id": str(run_id)}) as reply:
        reply.raise_for_status()
        records = (await reply.json())["transitions"]
    seen: dict[str, str] = {}
    transitions = []
    for record in records:
        name = record["step_name"] or "run"
        transitions.append((name, seen.get(name, ""), record["status"]))
        seen[name] = record["status"]
    return transitions


async def _stream(redis: Redis, run_id: object) -> list[dict[str, str]]:
    entries = await redis.xrange(arq_worker.events_key(run_id))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


# -- the tests -----------------------------------------------------------------------------


def test_the_core_does_not_import_arq_or_redis() -> None:
    """Importing the SDK (and its emulator and testing helpers) loads neither arq nor redis."""
    code = (
        "import sys, automation_sdk, automation_sdk.emulator, automation_sdk.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('arq', 'redis')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.redis
async def test_a_job_publishes_each_transition_once_and_an_ended_run_nothing(
    arq_redis: ArqRedis,
) -> None:
    """follow_run publishes a run's transitions and checkpoint; run again, it publishes none."""
    async with (
        Emulator(token=TOKEN, step_duration=0.0, seed=3) as emu,
        AutomationClient(TOKEN, base_url=emu.url) as client,
    ):
        automation = await client.automations.create(
            name="two",
            steps=[
                StepSpec("start", "START"),
                StepSpec("go", "LLM", {"type": "text", "text": "x"}),
            ],
            edges=[EdgeSpec("start", "go")],
        )
        run = await client.runs.create(automation.id)
        ctx: dict[str, Any] = {"redis": arq_redis, "client": client, "job_id": "j", "job_try": 1}

        said = await arq_worker.follow_run(ctx, str(automation.id), str(run.id))
        stream = await _stream(arq_redis, run.id)
        requests = len(emu.requests)
        said_again = await arq_worker.follow_run(ctx, str(automation.id), str(run.id))

        assert said == f"run {run.id} ended FINISHED; {len(stream)} transitions published"
        assert [_as_transition(f) for f in stream] == [
            ("start", "", "FINISHED"),
            ("go", "", "FINISHED"),
            ("run", "", "FINISHED"),
        ]
        assert said_again == f"run {run.id} had already ended; nothing published"
        assert await _stream(arq_redis, run.id) == stream
        assert len(emu.requests) == requests, "a run known to have ended is not polled"
        stored = await arq_redis.hget(arq_worker.watch_key(run.id), "checkpoint")
        assert stored is not None and b'"run_status":"FINISHED"' in stored
        assert 0 < await arq_redis.ttl(arq_worker.events_key(run.id)) <= arq_worker.RETENTION


async def _example_command(redis_url: str, *argv: str) -> str:
    """Run ``python arq_worker.py ARGV...`` as the page shows it; return what it printed.

    The file runs as ``__main__``, with that ``sys.argv`` and ``REDIS_URL``, in a thread of
    this process (a fresh interpreter cost 0.4 s a command): its ``asyncio.run`` gets a loop
    of its own there.
    """

    def command() -> str:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            runpy.run_path(str(EXAMPLES / "arq_worker.py"), run_name="__main__")
        return printed.getvalue()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_url)
        patch.setattr(sys, "argv", ["arq_worker.py", *argv])
        return await asyncio.to_thread(command)


@pytest.mark.redis
async def test_the_reader_shows_a_runs_progress_to_its_end(
    arq_redis: ArqRedis, redis_url: str
) -> None:
    """progress() (XREAD BLOCK) yields each transition as published and stops at the end."""
    async with (
        Emulator(token=TOKEN, step_duration=0.0, seed=6) as emu,
        AutomationClient(TOKEN, base_url=emu.url) as client,
    ):
        automation = await client.automations.create(
            name="two",
            steps=[
                StepSpec("start", "START"),
                StepSpec("go", "LLM", {"type": "text", "text": "x"}),
            ],
            edges=[EdgeSpec("start", "go")],
        )
        run = await client.runs.create(automation.id)
        ctx: dict[str, Any] = {"redis": arq_redis, "client": client, "job_id": "j", "job_try": 1}

        async def read() -> list[str]:
            return [arq_worker.describe(f) async for f in arq_worker.progress(arq_redis, run.id)]

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)  # the reader is blocked in XREAD before anything is published
        await arq_worker.follow_run(ctx, str(automation.id), str(run.id))
        shown = await asyncio.wait_for(reader, 10)

    assert shown == [
        "step start: None -> FINISHED",
        "step go: None -> FINISHED",
        "run: None -> FINISHED",
    ]
    assert (await _example_command(redis_url, "show", str(run.id))).splitlines() == shown
    with pytest.raises(TimeoutError, match="no transition of run"):
        await anext(arq_worker.progress(arq_redis, "nothing-here", block=0.05))


@pytest.mark.redis
async def test_a_segment_ends_with_a_retry_and_the_next_resumes(
    arq_redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch that outlives its segment re-queues the job, resets its tries, and resumes."""
    monkeypatch.setattr(arq_worker, "SEGMENT", 30.0)
    clock = FakeClock()
    async with (
        Emulator(token=TOKEN, step_duration=1.0, seed=4, clock=clock) as emu,
        AutomationClient(TOKEN, base_url=emu.url, clock=clock) as client,
    ):
        automation = await client.automations.create(
            name="ask",
            steps=[
                StepSpec("start", "START"),
                StepSpec("ask", "INPUT", {"type": "text", "text": "ok?"}),
            ],
            edges=[EdgeSpec("start", "ask")],
        )
        run = await client.runs.create(automation.id)
        ctx: dict[str, Any] = {"redis": arq_redis, "client": client, "job_id": "j", "job_try": 2}
        await arq_redis.set(retry_key_prefix + "j", 2)

        with pytest.raises(Retry) as first:
            await arq_worker.follow_run(ctx, str(automation.id), str(run.id))
        after_first = [_as_transition(f) for f in await _stream(arq_redis, run.id)]
        with pytest.raises(Retry):
            await arq_worker.follow_run(ctx, str(automation.id), str(run.id))
        after_second = [_as_transition(f) for f in await _stream(arq_redis, run.id)]
        await client.runs.submit_input(automation.id, run.id, "yes")
        said = await arq_worker.follow_run(ctx, str(automation.id), str(run.id))
        after_third = [_as_transition(f) for f in await _stream(arq_redis, run.id)]

    assert first.value.defer_score == 0  # at once: any worker takes the next segment
    assert await arq_redis.get(retry_key_prefix + "j") is None
    assert [(name, status) for name, _, status in after_first[-2:]] == [
        ("ask", "WAITING_FOR_USER_INPUT"),
        ("run", "WAITING_FOR_USER_INPUT"),
    ]
    assert after_second == after_first
    assert after_third[len(after_first) :] == [
        ("ask", "WAITING_FOR_USER_INPUT", "FINISHED"),
        ("run", "WAITING_FOR_USER_INPUT", "FINISHED"),
    ]
    assert said.endswith("ended FINISHED; 2 transitions published")


@pytest.mark.redis
async def test_a_job_that_lost_its_claim_publishes_nothing(arq_redis: ArqRedis) -> None:
    """Once another job claimed the run, the first one's events are refused, checkpoint too."""
    async with (
        Emulator(token=TOKEN, step_duration=0.0, seed=5) as emu,
        AutomationClient(TOKEN, base_url=emu.url) as client,
    ):
        automation = await client.automations.create(name="one", steps=[StepSpec("start", "START")])
        run = await client.runs.create(automation.id)
        old_token, _ = await arq_worker.claim(arq_redis, run.id)
        new_token, checkpoint = await arq_worker.claim(arq_redis, run.id)
        async with client.runs.watch(automation.id, run.id) as watch:
            event = await anext(watch)
            refused = await arq_worker.publish(arq_redis, old_token, event, watch.checkpoint())
            stream_after_refusal = await _stream(arq_redis, run.id)
            accepted = await arq_worker.publish(arq_redis, new_token, event, watch.checkpoint())

    assert checkpoint is None
    assert (refused, stream_after_refusal) == (False, [])
    assert accepted is True
    assert [_as_transition(f) for f in await _stream(arq_redis, run.id)] == [
        ("start", "", "FINISHED")
    ]
    assert await arq_redis.hget(arq_worker.watch_key(run.id), "checkpoint") is not None


@pytest.mark.redis
async def test_a_job_taken_over_mid_watch_stops_without_publishing(
    arq_redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """follow_run stops, and says so, when another job claims its run while it watches."""
    publish = arq_worker.publish

    async def claimed_by_another_job_first(redis: Redis, token: str, *args: Any) -> bool:
        await arq_worker.claim(redis, args[0].run_id)
        return bool(await publish(redis, token, *args))

    monkeypatch.setattr(arq_worker, "publish", claimed_by_another_job_first)
    async with (
        Emulator(token=TOKEN, step_duration=0.0, seed=8) as emu,
        AutomationClient(TOKEN, base_url=emu.url) as client,
    ):
        automation = await client.automations.create(name="one", steps=[StepSpec("start", "START")])
        run = await client.runs.create(automation.id)
        ctx: dict[str, Any] = {"redis": arq_redis, "client": client, "job_id": "j", "job_try": 1}
        said = await arq_worker.follow_run(ctx, str(automation.id), str(run.id))

    assert said == f"run {run.id}: taken over by another job"
    assert await _stream(arq_redis, run.id) == []
    assert await arq_redis.hget(arq_worker.watch_key(run.id), "checkpoint") is None


@pytest.mark.redis
async def test_enqueueing_a_followed_run_again_does_nothing(arq_redis: ArqRedis) -> None:
    """One job per run: a second enqueue of the same run is refused while the first exists."""
    first = await arq_worker.enqueue_follow(arq_redis, "a", "r")
    second = await arq_worker.enqueue_follow(arq_redis, "a", "r")

    assert isinstance(first, Job)
    assert first.job_id == "follow_run:r"
    assert second is None
    assert 6 * 86400 < await arq_redis.ttl("arq:job:follow_run:r") <= 7 * 86400


@pytest.mark.redis
async def test_the_follow_command_queues_a_run_once(arq_redis: ArqRedis, redis_url: str) -> None:
    """``python arq_worker.py follow A R`` queues the run's job; a second time it says so."""
    first = await _example_command(redis_url, "follow", "a", "r2")
    second = await _example_command(redis_url, "follow", "a", "r2")

    assert first == "queued follow_run:r2\n"
    assert second == "already followed follow_run:r2\n"
    assert await arq_redis.zscore("arq:queue", "follow_run:r2") is not None


@pytest.mark.redis
async def test_a_sigkilled_worker_loses_and_repeats_no_event(
    arq_redis: ArqRedis, redis_url: str, processes: Processes
) -> None:
    """Twenty runs on three workers, one SIGKILLed mid-watch: every stream is the run's history."""
    began = time.monotonic()
    # The emulator and the workers are forked by one process that imported what they run
    # (tests/_forkserver.py): each is a process of its own, started at once.
    processes.start_forkserver(
        {
            **{k: v for k, v in os.environ.items() if k != "AUTOMATION_ORG_ID"},
            "PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(Path(__file__).parent)]),
            "REDIS_URL": redis_url,
            "AUTOMATION_API_TOKEN": TOKEN,
            "FOLLOW_SEGMENT": str(SEGMENT),
            "FOLLOW_INTERVAL": str(POLL_INTERVAL),
            "FOLLOW_MAX_INTERVAL": str(POLL_INTERVAL),
        }
    )
    emulator = await processes.fork("emulator", "emulator", [TOKEN, STEP_DURATION, 11])
    url, clock_url = [
        (await _log_line(processes, emulator, rf"{what} on (http://127\.0\.0\.1:\d+)", STARTUP))[1]
        for what in ("listening", "clock")
    ]
    # The workers start together: each is ready once arq logs that it polls the queue.
    workers = {}
    for n in range(WORKERS):
        worker = await processes.fork(
            f"worker{n}",
            "worker",
            [JOB_TIMEOUT, GRACE, POLL_DELAY],
            {"AUTOMATION_BASE_URL": url},
        )
        workers[worker.pid] = worker
    for worker in workers.values():
        await _log_line(processes, worker, r"Starting worker for 1 functions", STARTUP)

    async with (
        AutomationClient(TOKEN, base_url=url) as client,
        aiohttp.ClientSession() as http,
    ):
        automation = await client.automations.create(
            name="refund",
            steps=[
                StepSpec("start", "START"),
                StepSpec("draft", "LLM", {"type": "text", "text": "Draft ${INPUTS.order}"}),
                StepSpec("approve", "INPUT", {"type": "text", "text": "Send it?"}),
                StepSpec("send", "LLM", {"type": "text", "text": "Send: ${approve.result}"}),
            ],
            edges=[
                EdgeSpec("start", "draft"),
                EdgeSpec("draft", "approve"),
                EdgeSpec("approve", "send"),
            ],
        )
        runs = []
        for n in range(RUNS):
            run = await client.runs.create(automation.id, inputs={"order": f"#{n}"})
            assert await arq_worker.enqueue_follow(arq_redis, automation.id, run.id) is not None
            runs.append(run.id)

        async def read(run_id: object) -> list[dict[str, str]]:
            return [f async for f in arq_worker.progress(arq_redis, run_id, block=PHASE)]

        # What the page's reader shows, read live (XREAD BLOCK) across the kill.
        readers = [asyncio.create_task(read(run_id)) for run_id in runs]
        try:

            async def last_entries() -> list[Transition | None]:
                async with arq_redis.pipeline(transaction=False) as pipe:
                    for run_id in runs:
                        pipe.xrevrange(arq_worker.events_key(run_id), count=1)
                    replies = await pipe.execute()
                return [
                    _as_transition({k.decode(): v.decode() for k, v in reply[0][1].items()})
                    if reply
                    else None
                    for reply in replies
                ]

            async def owners() -> list[tuple[int, str]]:
                async with arq_redis.pipeline(transaction=False) as pipe:
                    for run_id in runs:
                        pipe.hmget(arq_worker.watch_key(run_id), ["token", "worker"])
                    replies = await pipe.execute()
                return [(int(token), worker.decode()) for token, worker in replies]

            async def claimed_again(what: str, before: list[tuple[int, str]]) -> None:
                """Wait until every run was claimed since ``before``: a new segment watches it."""

                async def all_moved_on() -> bool:
                    # Each job claims its run as each segment starts: once every token has moved
                    # past its value before, every run is watched by a job started since.
                    now = await owners()
                    return all(t > t0 for (t, _), (t0, _) in zip(now, before, strict=True))

                await _until(what, all_moved_on, PHASE, processes)

            async def published(last: Transition, *, handed_over: bool = True) -> None:
                """Wait until every run's stream ends with ``last``, then for a segment's end.

                Each run's job then re-queues itself and resumes, on whichever worker is
                free, from the checkpoint stored with ``last``: in every state, a watch is
                handed over, and must neither repeat nor skip a transition.
                """

                others: collections.Counter[Transition | None] = collections.Counter()

                async def everywhere() -> bool:
                    others.clear()
                    others.update(e for e in await last_entries() if e != last)
                    return not others

                def lagging() -> str:
                    return f"; the other streams end with {dict(others)}"

                await _until(f"every stream ending {last}", everywhere, PHASE, processes, lagging)
                if handed_over:
                    before = await owners()
                    await claimed_again(f"every run claimed again after {last}", before)

            async def advance(
                seconds: float, then: Transition, *, handed_over: bool = True
            ) -> None:
                """Let the emulator's runs move on by ``seconds``; wait until all published it."""
                async with http.post(f"{clock_url}/advance", params={"seconds": seconds}) as reply:
                    reply.raise_for_status()
                await published(then, handed_over=handed_over)

            # A state lasts until the clock moves, and the clock moves only once every run's
            # stream shows the state: however slow the workers, none can be missed.
            half = STEP_DURATION / 2
            await published(("run", "", "NEW"))
            await advance(STEP_DURATION, ("run", "NEW", "RUNNING"))
            await advance(half, ("draft", "NEW", "RUNNING"))
            await advance(half, ("approve", "", "NEW"))
            # Every run stops at its input step: whatever the workers do now, no state is missed.
            await advance(half, ("run", "RUNNING", "WAITING_FOR_USER_INPUT"))

            # The victim: the worker watching the most runs now (every worker polls its runs
            # while they wait, each segment ending in a claim by whichever worker is free).
            holding = collections.Counter([w for _, w in await owners()])
            victim_name = holding.most_common(1)[0][0]
            victim = workers[int(victim_name.rsplit(":", 1)[1])]
            Processes.kill(victim)
            killed_at = time.monotonic()
            # Read after the kill: the dead worker's claims can no longer change.
            victim_events = sum(
                [
                    f["worker"] == victim_name
                    for run_id in runs
                    for f in await _stream(arq_redis, run_id)
                ]
            )
            at_kill = await owners()
            victim_runs = {
                run_id for run_id, (_, w) in zip(runs, at_kill, strict=True) if w == victim_name
            }

            # Once every run was claimed since the kill, none is held by the dead worker (nor
            # picked by it and not yet claimed). arq's in-progress key of a killed job lasts
            # job_timeout + GRACE (1.25 s here, + 10 s in plain arq): that is how long its runs
            # wait.
            await claimed_again("every run claimed again after the kill", at_kill)
            taken_over_in = time.monotonic() - killed_at
            for run_id in runs:
                await client.runs.submit_input(automation.id, run_id, "yes")
            await published(("run", "WAITING_FOR_USER_INPUT", "RUNNING"))
            await advance(half, ("send", "NEW", "RUNNING"))
            await advance(half, ("run", "RUNNING", "FINISHED"), handed_over=False)
            finals = [await client.runs.get(automation.id, run_id) for run_id in runs]
            histories = [await _history(http, url, run_id) for run_id in runs]
            streams = {run_id: await _stream(arq_redis, run_id) for run_id in runs}
            shown = await asyncio.wait_for(asyncio.gather(*readers), PHASE)

            async def queue_empty() -> bool:
                return await arq_redis.zcard("arq:queue") == 0

            await _until("every job leaving the queue", queue_empty, PHASE, processes)
            claims = sum(t for t, _ in await owners())
        finally:
            for reader in readers:
                reader.cancel()

    lost = duplicated = 0
    for final, history in zip(finals, histories, strict=True):
        got = [_as_transition(f) for f in streams[final.id]]
        want = expected_transitions(final)
        counts = collections.Counter(got)
        duplicated += sum(c - 1 for c in counts.values())
        lost += sum((collections.Counter(history) - counts).values())
        assert got == history, f"run {final.id}:\n got {got}\nhistory {history}"
        assert got == want, f"run {final.id}:\n got {got}\nwant {want}"
    assert shown == [streams[run_id] for run_id in runs], "the reader showed every stream whole"
    events = sum(len(s) for s in streams.values())
    continued = {run_id for run_id in victim_runs if streams[run_id][-1]["worker"] != victim_name}
    print(
        f"\n{RUNS} jobs, {events} events ({victim_events} by the killed worker), 1 kill, "
        f"{len(victim_runs)} runs taken over in {taken_over_in:.1f}s, {claims} claims, "
        f"lost {lost}, duplicated {duplicated}; {time.monotonic() - began:.1f}s in all"
    )
    assert victim_events > 0, "the killed worker had published"
    assert len(victim_runs) >= RUNS // WORKERS, "the killed worker was mid-watch, with several runs"
    assert continued == victim_runs, "other workers finished every run the victim followed"
    # arq logs a failed job as "  1.23s ! <job id>:follow_run failed, ..."
    failures = [line for line in processes.output().splitlines() if re.search(r"s ! ", line)]
    assert failures == [], "no job failed"
    assert (lost, duplicated) == (0, 0)
