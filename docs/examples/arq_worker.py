"""Follow runs on arq workers: every transition into a Redis stream, once, across crashes.

A complete worker, enqueuer and reader (see docs/distributed.md, "Many workers")::

    arq arq_worker.WorkerSettings                # a worker; start as many as you like
    python arq_worker.py follow AUTOMATION_ID RUN_ID   # enqueue the job that follows a run
    python arq_worker.py show RUN_ID             # print a run's progress as it is published

Configuration, from the environment: ``REDIS_URL`` (default ``redis://127.0.0.1:6379``),
``AUTOMATION_API_TOKEN`` and ``AUTOMATION_BASE_URL`` (read by the client), and
``FOLLOW_SEGMENT``, ``FOLLOW_INTERVAL``, ``FOLLOW_MAX_INTERVAL`` (seconds).

Redis keys, per run:

- ``automation_sdk:run:<run_id>:events``: a stream, one entry per transition,
  in the order the watch delivered them;
- ``automation_sdk:run:<run_id>:watch``: a hash with the watch's ``checkpoint``,
  the fencing ``token`` of the job that owns the watch, and that job's ``worker``.

A transition is appended to the stream and the checkpoint saved by one Lua
script, which Redis runs atomically: a crash leaves either both or neither,
so a resumed watch neither repeats nor skips an event.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final

from arq import Retry, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import retry_key_prefix
from arq.jobs import Job
from redis.asyncio import Redis

from automation_sdk import (
    AutomationClient,
    RateLimitError,
    RunTransition,
    ServerError,
    StepTransition,
    TransportError,
    WaitTimeoutError,
)

logger = logging.getLogger("arq_worker")

REDIS_URL: Final = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
SEGMENT: Final = float(os.environ.get("FOLLOW_SEGMENT", "60"))
"""A job watches for at most this long, then re-queues itself and resumes from Redis."""
INTERVAL: Final = float(os.environ.get("FOLLOW_INTERVAL", "1.0"))
MAX_INTERVAL: Final = float(os.environ.get("FOLLOW_MAX_INTERVAL", "15.0"))
RETENTION: Final = int(timedelta(days=7).total_seconds())
"""How long a run's stream and watch state stay in Redis after the run ended."""
JOB_EXPIRES: Final = timedelta(days=7)
"""A follow job not finished by then is dropped by arq ("job expired"): the longest run followed."""

_TERMINAL: Final = frozenset({"FINISHED", "FAILED"})


def _worker() -> str:
    """This worker: its host and process id, read when used, so that workers forked from one
    parent (a process manager that imports this module first) each have their own."""
    return f"{socket.gethostname()}:{os.getpid()}"


def events_key(run_id: uuid.UUID | str) -> str:
    """The stream of a run's transitions."""
    return f"automation_sdk:run:{run_id}:events"


def watch_key(run_id: uuid.UUID | str) -> str:
    """The hash holding a run's checkpoint and the token of the job that owns its watch."""
    return f"automation_sdk:run:{run_id}:watch"


def job_id(run_id: uuid.UUID | str) -> str:
    """One job per run: enqueueing a run that is already followed does nothing."""
    return f"follow_run:{run_id}"


# --8<-- [start:job]
# KEYS[1] the watch hash; ARGV[1] the worker. Returns {token, checkpoint or ""}.
_CLAIM: Final = """
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'worker', ARGV[1])
return {token, redis.call('HGET', KEYS[1], 'checkpoint') or ''}
"""

# KEYS[1] the watch hash, KEYS[2] the stream; ARGV: token, checkpoint, retention (0 to keep),
# then the entry's field/value pairs. Returns the entry id, or false if another job took over.
_PUBLISH: Final = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[2])
if ARGV[3] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return id
"""


async def claim(redis: Redis, run_id: uuid.UUID | str) -> tuple[str, str | None]:
    """Take the run's watch over: a new fencing token, and the checkpoint stored so far."""
    claimed = redis.register_script(_CLAIM)
    token, checkpoint = await claimed(keys=[watch_key(run_id)], args=[_worker()])
    return str(token), _text(checkpoint) or None


def entry(event: StepTransition | RunTransition) -> dict[str, str]:
    """A transition as the fields of a stream entry (strings; "" for none)."""
    fields = {"run_id": str(event.run_id)}
    if isinstance(event, StepTransition):
        fields |= {
            "kind": "step",
            "step_id": str(event.step_id),
            "step_name": event.step_name,
            "step_type": event.step_type.value,
            "result": event.step.result or "",
            "error": event.step.error or "",
        }
    else:
        fields |= {"kind": "run", "error": event.run.error or ""}
    fields |= {
        "previous": "" if event.previous is None else event.previous.value,
        "status": event.status.value,
        "observed_at": event.observed_at.isoformat(),
        "worker": _worker(),
    }
    return fields


async def publish(
    redis: Redis,
    token: str,
    event: StepTransition | RunTransition,
    checkpoint: str,
) -> bool:
    """Append the event to the run's stream and store the checkpoint, atomically.

    Returns False, and writes nothing, when another job has claimed the run since.
    """
    ends = isinstance(event, RunTransition) and event.status.value in _TERMINAL
    pairs = [part for item in entry(event).items() for part in item]
    keys = [watch_key(event.run_id), events_key(event.run_id)]
    retention = str(RETENTION if ends else 0)
    script = redis.register_script(_PUBLISH)
    written = await script(keys=keys, args=[token, checkpoint, retention, *pairs])
    return written is not None


async def follow_run(ctx: dict[str, Any], automation_id: str, run_id: str) -> str:
    """The arq job: watch one run for up to ``SEGMENT`` seconds, publishing every transition."""
    redis: ArqRedis = ctx["redis"]
    client: AutomationClient = ctx["client"]
    token, checkpoint = await claim(redis, run_id)
    watch = client.runs.watch(
        automation_id,
        run_id,
        interval=INTERVAL,
        max_interval=max(INTERVAL, MAX_INTERVAL),
        timeout=SEGMENT,
        resume_from=checkpoint,
    )
    published = 0
    try:
        async with watch:
            async for event in watch:
                if not await publish(redis, token, event, watch.checkpoint()):
                    logger.warning("run %s: another job took the watch over; stopping", run_id)
                    return f"run {run_id}: taken over by another job"
                published += 1
    except WaitTimeoutError:
        # The segment is over, the run is not: queue this job again at once; any worker
        # resumes from the checkpoint in Redis. A clean segment is not a failed try, so
        # arq's try counter is reset, and max_tries counts crashes in a row only.
        await redis.delete(retry_key_prefix + ctx["job_id"])
        raise Retry(defer=0) from None
    except (TransportError, ServerError, RateLimitError) as exc:
        # The API is unreachable or overloaded beyond the client's own retries: try later.
        logger.warning("run %s: %s; retrying the job", run_id, exc)
        raise Retry(defer=5 * ctx["job_try"]) from exc
    if watch.run is None:
        # A watch resumed from the checkpoint of a run that ended yields nothing, and polls
        # nothing: every transition is already in the stream.
        logger.info("run %s had already ended; nothing to publish", run_id)
        return f"run {run_id} had already ended; nothing published"
    return f"run {run_id} ended {watch.run.status.value}; {published} transitions published"
    # --8<-- [end:job]


async def startup(ctx: dict[str, Any]) -> None:
    """One client per worker process, shared by all its jobs (and their connection pool)."""
    ctx["client"] = AutomationClient()


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the worker's client."""
    await ctx["client"].aclose()


# --8<-- [start:settings]
class WorkerSettings:
    """``arq arq_worker.WorkerSettings``: how a crashed worker's runs get followed again."""

    functions = (follow_run,)
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    # arq keeps a job's "in progress" key for job_timeout + 10 s after it starts; a
    # SIGKILLed worker never deletes it, so that is how long its runs wait for another
    # worker. A segment is SEGMENT seconds, plus the margin for its last writes.
    job_timeout = 2 * SEGMENT
    # Crashes in a row before a job is given up (a clean segment resets the count).
    max_tries = 5
    # One job per run, each mostly asleep between polls: many fit in one worker.
    max_jobs = 1000
    # How soon a re-queued segment is picked up.
    poll_delay = 0.25
    # No result is kept, so a run's job id is free again as soon as its job ends: enqueued
    # again after a failure (max_tries, abort), it resumes from the checkpoint; after the
    # run's end, it finds the run ended and publishes nothing. The stream is the result.
    keep_result = 0
    # Every worker sets "arq:queue:health-check" this often; `arq --check` reads it.
    health_check_interval = 10
    # job.abort() stops following a run; enqueueing it again resumes from the checkpoint.
    allow_abort_jobs = True
    # --8<-- [end:settings]


# --8<-- [start:enqueue]
async def enqueue_follow(
    redis: ArqRedis, automation_id: uuid.UUID | str, run_id: uuid.UUID | str
) -> Job | None:
    """Queue the job that follows a run; None if the run is already being followed."""
    return await redis.enqueue_job(
        "follow_run",
        str(automation_id),
        str(run_id),
        _job_id=job_id(run_id),
        _expires=JOB_EXPIRES,
    )
    # --8<-- [end:enqueue]


# --8<-- [start:consumer]
async def progress(
    redis: Redis, run_id: uuid.UUID | str, *, after: str = "0", block: float = 30.0
) -> AsyncIterator[dict[str, str]]:
    """Yield a run's transitions as published, from the stream entry ``after``, to its end.

    Each reader keeps its own position (the last entry id), so any number of
    readers can follow one run. Raises TimeoutError if nothing new arrives
    within ``block`` seconds.
    """
    while True:
        reply = await redis.xread({events_key(run_id): after}, block=int(block * 1000), count=100)
        if not reply:
            raise TimeoutError(f"no transition of run {run_id} within {block:g}s")
        for _stream, entries in reply:
            for entry_id, raw in entries:
                after = _text(entry_id) or after
                fields = {_text(k) or "": _text(v) or "" for k, v in raw.items()}
                yield fields
                if fields["kind"] == "run" and fields["status"] in _TERMINAL:
                    return


def describe(fields: dict[str, str]) -> str:
    """One line for a user: ``step draft: NEW -> RUNNING``."""
    what = f"step {fields['step_name']}" if fields["kind"] == "step" else "run"
    return f"{what}: {fields['previous'] or 'None'} -> {fields['status']}"
    # --8<-- [end:consumer]


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


async def _main() -> None:
    parser = argparse.ArgumentParser(description="Follow runs on arq workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    follow = commands.add_parser("follow", help="enqueue the job that follows a run")
    follow.add_argument("automation_id")
    follow.add_argument("run_id")
    show = commands.add_parser("show", help="print a run's progress until it ends")
    show.add_argument("run_id")
    args = parser.parse_args()
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    try:
        if args.command == "follow":
            job = await enqueue_follow(redis, args.automation_id, args.run_id)
            print("queued" if job else "already followed", job_id(args.run_id))
        else:
            async for fields in progress(redis, args.run_id):
                print(describe(fields), flush=True)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(_main())
