"""Fork the kill test's emulator and workers from one process that imported what they run.

``python _forkserver.py``, with docs/examples on ``PYTHONPATH`` and the workers'
environment (docs/examples/arq_worker.py reads it when imported), imports the
emulator (tests/_held_emulator.py), arq and docs/examples/arq_worker.py
(tests/_arq_test_worker.py) once, prints ``ready``, then reads one command a
line on stdin, a JSON object:

    {"run": "emulator", "log": LOG, "env": {...}, "args": [TOKEN, STEP_DURATION, SEED]}
    {"run": "worker", "log": LOG, "env": {...}, "args": [JOB_TIMEOUT, GRACE, POLL_DELAY]}

For each it forks a child in a session of its own (its own process group, as
``subprocess.Popen(start_new_session=True)`` gives), with stdin from /dev/null,
stdout and stderr to ``LOG`` and ``env`` added to its environment, which runs
what ``python _held_emulator.py`` or ``python _arq_test_worker.py`` would run;
it prints the child's pid. It reaps its children as they end, and ends when
its stdin closes.

Why: each of those Python processes spends ~0.3 s of CPU importing aiohttp,
redis, arq and the SDK before it serves, and the kill test started four on a
machine whose cores run the rest of the suite meanwhile. Forked, they start at
once, with the same code, in processes of their own: each one is SIGKILLed,
polls, claims and publishes as a worker started by ``arq`` would, and names
itself by its own pid (docs/examples/arq_worker.py reads it when used).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import traceback
from typing import Any

import _arq_test_worker
import _held_emulator


def _reap(signum: int, frame: object) -> None:
    """Collect every child that ended, so that none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(command: dict[str, Any]) -> int:
    """In the forked child: run the command; its exit status."""
    kind, args = command["run"], command["args"]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.environ.update(command["env"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    out = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(devnull)
    os.close(out)
    if kind == "emulator":
        token, step_duration, seed = args
        asyncio.run(_held_emulator.main(token, float(step_duration), int(seed)))
    elif kind == "worker":
        job_timeout, grace, poll_delay = map(float, args)
        _arq_test_worker.run(job_timeout, grace, poll_delay)
    else:
        print(f"unknown command {kind!r}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    signal.signal(signal.SIGCHLD, _reap)
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(command)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
