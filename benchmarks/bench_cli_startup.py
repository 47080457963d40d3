"""What ``automation-sdk --help`` and ``--version`` cost to start, against bare Python.

Each command runs as a fresh process (``python -m automation_sdk ...``), R times
in turn with the baselines measured in the same run: ``python -c pass`` (the
interpreter alone) and ``import automation_sdk.emulator`` plus the client (what
the command line imported for ``--version`` before its imports were made lazy).
Prints the median and the spread (min..max) of the wall time of each, and the
ratio of each median to the interpreter's. With ``--cold``, no bytecode cache is
read or written (a first run after installing, or a read-only install).

Run it with ``python benchmarks/bench_cli_startup.py [--repeats 15] [--cold]``.
Nothing is contacted: the commands print and exit.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "automation-sdk --version": ["-m", "automation_sdk", "--version"],
    "automation-sdk --help": ["-m", "automation_sdk", "--help"],
    "runs watch --help": ["-m", "automation_sdk", "runs", "watch", "--help"],
    "import the whole SDK": [
        "-c",
        "import automation_sdk, automation_sdk.emulator; "
        "automation_sdk.AutomationClient; automation_sdk.emulator.Emulator",
    ],
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(repeats: int, *, cold: bool) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each command, run ``repeats`` times in turn (so that drift
    in the machine's load hits all alike)."""
    env = dict(os.environ)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="no-pycache-")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():  # one warm-up each, not counted
        subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True)
    for _ in range(repeats):
        for name, argv in COMMANDS.items():
            start, start_cpu = time.perf_counter(), _cpu()
            subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu() - start_cpu)
    return times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cold", action="store_true", help="no bytecode cache")
    args = parser.parse_args()
    times, cpu = measure(args.repeats, cold=args.cold)
    print(f"{args.repeats} runs each{', no bytecode cache' if args.cold else ''}")
    # CPU time (user + system) is what the command costs; wall time adds the machine's load.
    for title, table in (("CPU time", cpu), ("wall time", times)):
        base = statistics.median(table["python -c pass"])
        print(f"\n{title:<28} {'median':>8} {'min..max':>17} {'x python':>9}")
        for name, values in table.items():
            median = statistics.median(values)
            spread = f"{min(values) * 1000:.0f}..{max(values) * 1000:.0f} ms"
            print(f"{name:<28} {median * 1000:6.1f} ms {spread:>17} {median / base:8.2f}x")


if __name__ == "__main__":
    main()
