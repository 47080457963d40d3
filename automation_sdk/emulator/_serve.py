"""Running the emulator on its own: ``python -m automation_sdk.emulator``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import _argtypes
from ._defaults import DEFAULT_STEP_DURATION, DEFAULT_TOKEN

if TYPE_CHECKING:
    from ._durations import StepDurations
    from ._emulator import Emulator
    from ._faults import Faults

# The server (aiohttp.web) and asyncio are imported when serving, not when building
# the options: `automation-sdk --help` stays fast.

__all__ = ["add_arguments", "banner", "main", "run_from_args", "run_server", "serve"]


def _mask(token: str) -> str:
    """``token`` as a banner or a log may show it: its first two characters, if that
    leaves at least six hidden, then ``***``."""
    return (token[:2] if len(token) >= 8 else "") + "***"


def banner(emulator: Emulator) -> str:
    """The line printed when the emulator is listening; the token is masked."""
    return f"Automation API emulator listening on {emulator.url} (token: {_mask(emulator.token)})"


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str = DEFAULT_TOKEN,
    step_duration: float | StepDurations = DEFAULT_STEP_DURATION,
    seed: int | None = None,
    faults: Faults | None = None,
    ready: Callable[[Emulator], object] | None = None,
    updated_at_on_steps: bool = True,
) -> None:
    """Serve the emulator until the task is cancelled.

    Args:
        host: The address to listen on.
        port: The port (0 picks a free one).
        token: The API token accepted.
        step_duration: Seconds each step of a run takes, or a :class:`StepDurations`.
        seed: Seeds faults, step durations and ids; None for random ones.
        faults: The faults to inject; none by default.
        ready: Called with the running :class:`Emulator` once it listens;
            by default the :func:`banner` is printed to stdout.
        updated_at_on_steps: Whether a step's change alone moves its run's
            ``updated_at`` (see :class:`Emulator`).

    Raises:
        OSError: the address cannot be bound.
    """
    import asyncio

    from ._emulator import Emulator

    async with Emulator(
        host=host,
        port=port,
        token=token,
        step_duration=step_duration,
        seed=seed,
        faults=faults,
        updated_at_on_steps=updated_at_on_steps,
    ) as emulator:
        if ready is None:
            print(banner(emulator), flush=True)
        else:
            ready(emulator)
        await asyncio.Event().wait()


def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str = DEFAULT_TOKEN,
    step_duration: float | StepDurations = DEFAULT_STEP_DURATION,
    seed: int | None = None,
    faults: Faults | None = None,
    updated_at_on_steps: bool = True,
) -> None:
    """Serve the emulator in a new event loop until Ctrl-C, then return quietly.

    Takes the arguments of :func:`serve` (the banner is printed to stdout).

    Raises:
        OSError: the address cannot be bound.
    """
    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                host=host,
                port=port,
                token=token,
                step_duration=step_duration,
                seed=seed,
                faults=faults,
                updated_at_on_steps=updated_at_on_steps,
            )
        )
    print("Automation API emulator stopped.", flush=True)


_RATES = (
    ("error_rate", "answer 500/502/503 to this fraction of requests"),
    ("rate_limit_rate", "answer 429 with Retry-After to this fraction"),
    ("drop_rate", "close the connection without answering for this fraction"),
    ("slow_rate", "delay this fraction by --slow-seconds"),
    ("stale_rate", "answer an older snapshot of a session to this fraction of its GETs"),
    ("truncate_rate", "cut the JSON body of this fraction of 200 answers"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options (``--port``, ``--token``, faults...) to ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_argtypes.port,
        default=8080,
        help="port, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help="API token to accept (default: %(default)s)"
    )
    parser.add_argument(
        "--step-duration",
        type=_durations,
        default=str(DEFAULT_STEP_DURATION),  # argparse applies the type: read lazily
        metavar="SECONDS",
        help="seconds each step of a run takes, or a distribution: uniform:LOW:HIGH "
        "or exponential:MEAN, drawn per step, reproducible with --seed (default: %(default)s)",
    )
    parser.add_argument(
        "--updated-at-on-steps",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="whether a step's change alone moves its run's updated_at; "
        "--no-updated-at-on-steps moves it only on run status changes (default: on)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for faults and ids (reproducible)"
    )
    faults = parser.add_argument_group("fault injection (all off by default)")
    for name, text in _RATES:
        flag = "--" + name.replace("_", "-")
        faults.add_argument(
            flag, type=_argtypes.rate, default=0.0, metavar="RATE", help=f"{text} (0..1)"
        )
    faults.add_argument(
        "--slow-seconds",
        type=_argtypes.duration,
        default=5.0,
        metavar="SECONDS",
        help="delay of a slow answer (default: %(default)s)",
    )
    faults.add_argument(
        "--retry-after",
        type=_argtypes.duration,
        default=1.0,
        metavar="SECONDS",
        help="Retry-After sent with 429/503 (default: %(default)s)",
    )
    faults.add_argument(
        "--fault-methods",
        default="GET",
        metavar="METHODS",
        help="comma-separated HTTP methods faults apply to (default: %(default)s)",
    )


def _durations(text: str) -> StepDurations:
    from ._durations import StepDurations

    try:
        return StepDurations.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _faults_from(args: argparse.Namespace) -> Faults:
    from ._faults import Faults

    return Faults(
        **{name: getattr(args, name) for name, _ in _RATES},
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
        methods=frozenset(m.strip() for m in args.fault_methods.split(",") if m.strip()),
    )


def run_from_args(args: argparse.Namespace, *, prog: str = "automation-sdk") -> int:
    """Run :func:`run_server` with options parsed by :func:`add_arguments`; return an exit code.

    The exit code is 0 after Ctrl-C, or 3 when the address cannot be bound (the
    port is in use, the host is not local), said in one line on stderr that
    starts with ``prog``.

    Raises:
        ValueError: a fault rate or a duration is out of range.
    """
    faults = _faults_from(args)
    try:
        run_server(
            host=args.host,
            port=args.port,
            token=args.token,
            step_duration=args.step_duration,
            seed=args.seed,
            faults=faults,
            updated_at_on_steps=args.updated_at_on_steps,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"{prog}: error: cannot listen on {args.host}:{args.port}: {reason}; "
            "choose another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m automation_sdk.emulator`` command; returns an exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m automation_sdk.emulator",
        description="Serve a local, in-memory emulator of the Automation API.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        _faults_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run_from_args(args, prog=parser.prog)
