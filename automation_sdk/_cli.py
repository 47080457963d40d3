"""The ``automation-sdk`` command line: every call of the SDK, plus the emulator and a demo.

Exit codes: 0 success (for ``runs watch``/``runs wait``: the run FINISHED),
1 the run FAILED, 2 bad usage, 3 an API or network error, 4 a timeout.
Errors are one line on stderr, never a traceback and never the token.

Each subcommand has its own handler (``set_defaults(handler=...)``); the API
subcommands share one error path, :func:`_api`, which reads only the options
they all take. Everything beyond argparse is imported by the handler that
needs it, so that ``--help`` and ``--version`` import neither aiohttp nor the
emulator's server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

from . import _argtypes, _paths

if TYPE_CHECKING:
    from ._client import AutomationClient
    from ._models import Automation, EdgeSpec, JSONValue, StepSpec

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_RUN_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_API: Final = 3
EXIT_TIMEOUT: Final = 4
EXIT_INTERRUPTED: Final = 130

REQUEST_TIMEOUT: Final = 30.0
RETRIES: Final = 5
INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 15.0
DEMO_STEP_DURATION: Final = 0.4

_Handler = Callable[[argparse.Namespace, IO[str]], int]


class _UsageError(Exception):
    """Bad usage found after parsing (a bad spec file, a bad --input)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)}\n")


class _Version(argparse.Action):
    """``--version``, reading the package metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from ._version import __version__

        sys.stdout.write(f"automation-sdk {__version__}\n")
        sys.stdout.flush()
        parser.exit(EXIT_OK)


# -- arguments ------------------------------------------------------------------------------


def _connection(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options of every API subcommand, accepted before the subcommand and after it.

    The copy after the subcommand has no default of its own (``SUPPRESS``), so that
    it does not overwrite a value given before the subcommand.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection (before or after the subcommand)")
    group.add_argument(
        "--token",
        default=default(None),
        help=f"API token (default: ${_paths.ENV_TOKEN}); prefer the variable",
    )
    group.add_argument(
        "--base-url",
        default=default(None),
        help=f"API root URL (default: ${_paths.ENV_BASE_URL}, else {_paths.DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--org-id", default=default(None), help=f"organisation id (default: ${_paths.ENV_ORG_ID})"
    )
    group.add_argument(
        "--request-timeout",
        type=_argtypes.seconds,
        default=default(REQUEST_TIMEOUT),
        metavar="SECONDS",
        help=f"seconds one request may take (default: {REQUEST_TIMEOUT:g})",
    )
    group.add_argument(
        "--retries",
        type=_argtypes.count,
        default=default(RETRIES),
        metavar="N",
        help=f"tries per request, the first included; 1 turns retries off (default: {RETRIES})",
    )
    group.add_argument(
        "--no-proxy-env",
        action="store_true",
        default=default(False),
        help="ignore $HTTP_PROXY, $HTTPS_PROXY and $NO_PROXY (default: follow them)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print machine-readable JSON (NDJSON for watch) (default: text)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log each retry and its wait on stderr; -vv every request and poll too",
    )


def _api_parser(
    sub: argparse._SubParsersAction[_Parser], name: str, text: str, handler: _Handler
) -> _Parser:
    parser = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    _connection(parser, top=False)
    parser.set_defaults(handler=handler)
    return parser


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("automation_id", help="the automation's id (a UUID)")
    parser.add_argument("run_id", help="the run's id (a UUID)")
    parser.add_argument(
        "--timeout",
        type=_argtypes.seconds,
        default=None,
        metavar="SECONDS",
        help="give up after this long (default: wait until the run ends)",
    )
    parser.add_argument(
        "--interval",
        type=_argtypes.seconds,
        default=INTERVAL,
        metavar="SECONDS",
        help=f"first poll interval (default: {INTERVAL:g})",
    )
    parser.add_argument(
        "--max-interval",
        type=_argtypes.seconds,
        default=MAX_INTERVAL,
        metavar="SECONDS",
        help=f"longest poll interval (default: {MAX_INTERVAL:g})",
    )
    parser.add_argument(
        "--cancel-on-timeout",
        action="store_true",
        help="cancel the run when the timeout passes (default: leave it running)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole ``automation-sdk`` argument parser."""
    parser = _Parser(
        prog="automation-sdk",
        description="Drive the Automation API from the command line.",
        epilog="Exit codes: 0 ok / run finished, 1 run failed, 2 bad usage, "
        "3 API or network error, 4 timeout.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    _connection(parser, top=True)
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    automations = top.add_parser("automations", help="create and read automations")
    a_sub = automations.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _api_parser(
        a_sub, "create", "create an automation from a JSON spec file", _api(_automations_create)
    )
    create.add_argument(
        "--file",
        required=True,
        help='spec file ("-" for stdin): {"name", "description", "steps": [{"name", '
        '"step_type", "prompt_template"?, "id"?}], "edges"?: [{"source", "target", '
        '"label"?}]} ("transitions" is the deprecated name of "edges")',
    )
    get_a = _api_parser(a_sub, "get", "show an automation and its runs", _api(_automations_get))
    get_a.add_argument("automation_id", help="the automation's id (a UUID)")

    runs = top.add_parser("runs", help="start, read, watch, answer and cancel runs")
    r_sub = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = _api_parser(r_sub, "start", "start a run", _api(_runs_start))
    start.add_argument("automation_id", help="the automation's id (a UUID)")
    start.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input (a string); repeat for more (default: none)",
    )
    start.add_argument(
        "--inputs-json",
        metavar="JSON",
        help="inputs as a JSON object, merged under --input (default: none)",
    )
    list_r = _api_parser(r_sub, "list", "list an automation's runs", _api(_runs_list))
    list_r.add_argument("automation_id", help="the automation's id (a UUID)")
    for name, text, handler in (
        ("get", "show a run and its steps", _runs_get),
        ("cancel", "cancel a run", _runs_cancel),
    ):
        sub = _api_parser(r_sub, name, text, _api(handler))
        sub.add_argument("automation_id", help="the automation's id (a UUID)")
        sub.add_argument("run_id", help="the run's id (a UUID)")
    watch = _api_parser(
        r_sub, "watch", "show a run's progress live until it ends", _api(_runs_watch)
    )
    _watch_options(watch)
    watch.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="resume from FILE if it exists, and keep it updated after every event, so that "
        "running the command again (after a timeout, a crash, Ctrl-C) repeats no event "
        "(default: none)",
    )
    wait = _api_parser(r_sub, "wait", "wait quietly for a run to end", _api(_runs_wait))
    _watch_options(wait)
    answer = _api_parser(r_sub, "input", "answer a run waiting for input", _api(_runs_input))
    answer.add_argument("automation_id", help="the automation's id (a UUID)")
    answer.add_argument("run_id", help="the run's id (a UUID)")
    answer.add_argument("text", help="the answer")

    from .emulator._serve import add_arguments as emulator_arguments

    emulator = top.add_parser("emulator", help="serve a local emulator of the API")
    emulator_arguments(emulator)
    emulator.set_defaults(handler=_emulator)

    demo = top.add_parser(
        "demo", help="run a sample automation on a built-in emulator and watch it live"
    )
    demo.add_argument(
        "--step-duration",
        type=_argtypes.duration,
        default=DEMO_STEP_DURATION,
        metavar="SECONDS",
        help="how long each step takes (default: %(default)s)",
    )
    demo.add_argument(
        "--timeout",
        type=_argtypes.seconds,
        default=None,
        metavar="SECONDS",
        help="give up after this long (default: 30 plus 20 step durations)",
    )
    demo.add_argument(
        "--company", default="Acme Rockets", help="the demo run's input (default: %(default)s)"
    )
    demo.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print NDJSON events instead (default: text)",
    )
    demo.set_defaults(handler=_demo)
    return parser


# -- input -----------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str, what: str) -> object:
    """Strict JSON (no NaN or Infinity) from the user; a usage error otherwise."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _UsageError(f"{what} is nested too deeply to read") from None
    except ValueError as exc:
        raise _UsageError(f"{what} is not JSON: {exc}") from None


def _read_text(path: str, what: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _UsageError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise _UsageError(f"cannot read {what}: {exc.strerror or exc}") from None


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _load_spec(path: str) -> tuple[str, str, list[StepSpec], list[EdgeSpec]]:
    from ._convert import StructureFailed, structure
    from ._spec_file import SpecFile
    from .errors import InvalidArgumentError

    what = f"the spec file {path}"
    data = _parse_json(_read_text(path, what), what)
    if not isinstance(data, dict):
        raise _UsageError(f"{what} must hold a JSON object, got {_kind(data)}")
    try:
        spec = structure(data, SpecFile)
    except StructureFailed as exc:
        problems = "; ".join(
            p.replace(": required field missing", ": the field is missing") for p in exc.problems
        )
        if "prompt_template" in problems:
            problems += '; a prompt_template is an object like {"type": "text", "text": "..."}'
        raise _UsageError(f"{what} is not a valid spec: {problems}") from None
    except (InvalidArgumentError, ValueError, TypeError, RecursionError) as exc:
        raise _UsageError(f"{what} is not a valid spec: {exc}") from None
    edges = spec.edges
    if spec.transitions is not None:
        if edges is not None:
            raise _UsageError(f'{what} has both "edges" and "transitions"; keep "edges" only')
        _warn(f'{what}: "transitions" is deprecated; rename it "edges"')
        edges = spec.transitions
    return spec.name, spec.description, list(spec.steps), list(edges or ())


def _inputs(pairs: Sequence[str], raw: str | None) -> dict[str, JSONValue]:
    inputs: dict[str, JSONValue] = {}
    if raw is not None:
        loaded = _parse_json(raw, "--inputs-json")
        if not isinstance(loaded, dict):
            raise _UsageError(f"--inputs-json must be a JSON object, got {_kind(loaded)}")
        inputs.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"--input takes KEY=VALUE, got {pair!r}")
        inputs[key] = value
    return inputs


# -- output ----------------------------------------------------------------------------------


def _finite(data: object) -> object:
    """``data`` with NaN and infinities replaced by null, as JavaScript's JSON.stringify does."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def _print_json(data: object, out: IO[str]) -> None:
    """Print one JSON document on one line: always valid JSON, whatever the server sent."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity: JSON has no such numbers
        data = _finite(data)
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    try:
        text.encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        # A lone surrogate, or a character the output cannot carry: \u escapes are JSON too.
        text = json.dumps(data, ensure_ascii=True, allow_nan=False)
    out.write(text + "\n")
    out.flush()


def _json_data(value: Any) -> object:
    """The JSON form of a model or an event: its ``to_dict()``."""
    return value.to_dict()


def _automation_lines(automation: Automation) -> list[str]:
    lines = [f"automation {automation.id}  {automation.name!r}"]
    if automation.description:
        lines.append(f"  {automation.description}")
    version = automation.current_version
    if version is not None:
        names = {step.id: step.name for step in version.steps}
        lines.append(
            "  steps: " + ", ".join(f"{s.name} ({s.step_type.value})" for s in version.steps)
        )
        for edge in version.step_transitions:
            src = names.get(edge.source_step_id, str(edge.source_step_id))
            dst = names.get(edge.target_step_id, str(edge.target_step_id))
            lines.append(f"  {src} -> {dst}" + (f"  [{edge.label}]" if edge.label else ""))
    for summary in automation.runs:
        lines.append(f"  run {summary.id}  {summary.status.value}")
    return lines


def _print_automation(automation: Automation, args: argparse.Namespace, out: IO[str]) -> int:
    if args.json:
        _print_json(_json_data(automation), out)
    else:
        out.write("\n".join(_automation_lines(automation)) + "\n")
    return EXIT_OK


def _print_run(run: object, args: argparse.Namespace, out: IO[str], *, hint: bool = False) -> int:
    from ._models import Run
    from ._progress import run_lines

    assert isinstance(run, Run)
    if args.json:
        _print_json(_json_data(run), out)
    else:
        out.write("\n".join(run_lines(run)) + "\n")
        if hint:
            out.write(f"watch it: automation-sdk runs watch {run.automation_id} {run.id}\n")
    return EXIT_OK


# -- the API subcommands ---------------------------------------------------------------------


def _client(args: argparse.Namespace) -> AutomationClient:
    from ._client import AutomationClient
    from ._retry import RetryPolicy

    if args.verbose:
        import logging

        from ._observe import install_handler

        install_handler(logging.INFO if args.verbose == 1 else logging.DEBUG)

    return AutomationClient(
        args.token,
        base_url=args.base_url,
        org_id=args.org_id,
        timeout=args.request_timeout,
        retry=RetryPolicy(attempts=args.retries),
        trust_env=not args.no_proxy_env,
    )


def _api(command: Callable[[argparse.Namespace, IO[str]], Coroutine[Any, Any, int]]) -> _Handler:
    """The handler of an API subcommand: run ``command``, and turn each error into one line.

    Reads only the options every API subcommand takes (the token, to keep it out).
    """

    def handler(args: argparse.Namespace, out: IO[str]) -> int:
        import asyncio

        from .errors import (
            AutomationError,
            ConfigurationError,
            InvalidArgumentError,
            RunFailedError,
        )

        secrets = _secrets(args.token, os.environ.get(_paths.ENV_TOKEN))
        try:
            return asyncio.run(command(args, out))
        except _UsageError as exc:
            return _fail(str(exc), EXIT_USAGE, secrets)
        except (ConfigurationError, InvalidArgumentError) as exc:
            return _fail(str(exc), EXIT_USAGE, secrets)
        except RunFailedError as exc:
            return _fail(str(exc), EXIT_RUN_FAILED, secrets)
        except AutomationError as exc:
            return _fail(_cli_advice(str(exc)), EXIT_API, secrets)
        except RecursionError:
            # Only an answer of the API can get here: the command line's own JSON
            # (spec files, --inputs-json, checkpoints) is read with this caught.
            return _fail(
                "an answer of the API is nested too deeply to read; "
                "check --base-url points at the Automation API",
                EXIT_API,
                secrets,
            )

    return handler


async def _automations_create(args: argparse.Namespace, out: IO[str]) -> int:
    name, description, steps, edges = _load_spec(args.file)  # before the client: usage first
    async with _client(args) as client:
        automation = await client.automations.create(
            name=name, description=description, steps=steps, edges=edges
        )
    return _print_automation(automation, args, out)


async def _automations_get(args: argparse.Namespace, out: IO[str]) -> int:
    async with _client(args) as client:
        automation = await client.automations.get(args.automation_id)
    return _print_automation(automation, args, out)


async def _runs_start(args: argparse.Namespace, out: IO[str]) -> int:
    inputs = _inputs(args.input, args.inputs_json)
    async with _client(args) as client:
        run = await client.runs.create(args.automation_id, inputs=inputs)
    return _print_run(run, args, out, hint=True)


async def _runs_list(args: argparse.Namespace, out: IO[str]) -> int:
    async with _client(args) as client:
        runs = await client.runs.list(args.automation_id)
    if args.json:
        _print_json([_json_data(r) for r in runs], out)
    else:
        for r in runs:
            out.write(f"{r.id}  {r.status.value:<22}  {r.created_at.isoformat()}\n")
        if not runs:
            out.write("no runs\n")
    return EXIT_OK


async def _runs_get(args: argparse.Namespace, out: IO[str]) -> int:
    async with _client(args) as client:
        run = await client.runs.get(args.automation_id, args.run_id)
    return _print_run(run, args, out)


async def _runs_cancel(args: argparse.Namespace, out: IO[str]) -> int:
    async with _client(args) as client:
        run = await client.runs.cancel(args.automation_id, args.run_id)
    return _print_run(run, args, out)


async def _runs_input(args: argparse.Namespace, out: IO[str]) -> int:
    async with _client(args) as client:
        run = await client.runs.submit_input(args.automation_id, args.run_id, args.text)
    return _print_run(run, args, out)


def _watch_options_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "interval": args.interval,
        "max_interval": args.max_interval,
        "timeout": args.timeout,
        "cancel_on_timeout": args.cancel_on_timeout,
    }


def _timed_out(args: argparse.Namespace, exc: Exception, again: str) -> int:
    run = getattr(exc, "run", None)
    status = run.status.value if run is not None else "not seen yet"
    return _fail(
        f"run {args.run_id} did not end within --timeout {args.timeout:g}s "
        f"(last status: {status}); {again}",
        EXIT_TIMEOUT,
    )


async def _runs_wait(args: argparse.Namespace, out: IO[str]) -> int:
    from ._models import RunStatus
    from .errors import WaitTimeoutError

    async with _client(args) as client:
        try:
            run = await client.runs.wait(
                args.automation_id, args.run_id, raise_on_failure=False, **_watch_options_of(args)
            )
        except WaitTimeoutError as exc:
            return _timed_out(args, exc, "run the same command again to keep waiting")
    _print_run(run, args, out)
    return EXIT_OK if run.status is RunStatus.FINISHED else EXIT_RUN_FAILED


async def _runs_watch(args: argparse.Namespace, out: IO[str]) -> int:
    from .errors import WaitTimeoutError

    options = _watch_options_of(args)
    if args.checkpoint:
        options["resume_from"] = _read_checkpoint(args.checkpoint)
    async with _client(args) as client:
        try:
            return await _follow(
                client,
                args.automation_id,
                args.run_id,
                options,
                out,
                live=not args.json and out.isatty(),
                checkpoint_file=args.checkpoint,
            )
        except WaitTimeoutError as exc:
            again = "run the same command again to keep watching"
            if args.checkpoint:
                again += f" (it resumes from {args.checkpoint})"
            else:
                again += " (add --checkpoint FILE to resume without repeating events)"
            return _timed_out(args, exc, again)


def _read_checkpoint(path: str) -> str | None:
    """The checkpoint in ``path``, None when there is none yet; checked before any request."""
    what = f"the checkpoint {path}"
    folder = Path(path).parent
    if not folder.is_dir():
        raise _UsageError(f"cannot keep {what}: the folder {folder} does not exist")
    if not Path(path).exists():
        return None
    text = _read_text(path, what)
    if not text.strip():
        return None
    _parse_json(text, what)  # the SDK checks the rest; this catches what it cannot read
    return text


def _write_checkpoint(path: str, checkpoint: str) -> None:
    # Write then rename, so that a crash mid-write never leaves half a checkpoint.
    tmp = Path(path + ".tmp")
    try:
        tmp.write_text(checkpoint, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise _UsageError(f"cannot write the checkpoint {path}: {exc.strerror or exc}") from None


async def _follow(
    client: AutomationClient,
    automation_id: str,
    run_id: str,
    options: Mapping[str, Any],
    out: IO[str],
    *,
    live: bool,
    plain: bool = False,
    checkpoint_file: str | None = None,
) -> int:
    """Watch a run to its end: live progress, plain lines, or NDJSON; return the exit code."""
    from ._events import RunTransition
    from ._models import RunStatus
    from ._progress import make_progress

    progress = make_progress(out, live=live) if live or plain else None
    final: RunStatus | None = None
    try:
        async with client.runs.watch(automation_id, run_id, **options) as watch:
            async for event in watch:
                if progress is not None:
                    progress.update(event, watch.run)
                else:
                    _print_json(_json_data(event), out)
                if isinstance(event, RunTransition):
                    final = event.status
                if checkpoint_file:
                    _write_checkpoint(checkpoint_file, watch.checkpoint())
            if final is None:
                # Resumed from a checkpoint that had already delivered the end.
                delivered = json.loads(watch.checkpoint()).get("run_status")
                final = RunStatus(delivered) if isinstance(delivered, str) else None
            if progress is not None and watch.run is not None:
                progress.finish(watch.run)
    finally:
        if progress is not None:
            progress.close()
    return EXIT_OK if final is RunStatus.FINISHED else EXIT_RUN_FAILED


# -- emulator and demo -----------------------------------------------------------------------


def _emulator(args: argparse.Namespace, out: IO[str]) -> int:
    from .emulator._serve import run_from_args

    try:
        return run_from_args(args, prog="automation-sdk")
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)


_DEMO_STEPS: Final = (
    ("start", "START", ""),
    ("research", "LLM", "List three facts about ${INPUTS.company}."),
    ("audience", "LLM", "Describe the ideal customer of ${INPUTS.company}."),
    ("pitch", "LLM", "Write a one-line pitch to ${audience.result} using: ${research.result}"),
)


def _demo(args: argparse.Namespace, out: IO[str]) -> int:
    import asyncio

    from .errors import AutomationError, WaitTimeoutError

    timeout = args.timeout if args.timeout is not None else 30.0 + 20 * args.step_duration
    try:
        return asyncio.run(_demo_run(args, out, timeout))
    except WaitTimeoutError as exc:
        status = exc.run.status.value if exc.run is not None else "not seen yet"
        return _fail(
            f"the demo run did not end within {timeout:g}s (last status: {status}); "
            "give it a longer --timeout or a shorter --step-duration",
            EXIT_TIMEOUT,
        )
    except AutomationError as exc:
        return _fail(str(exc), EXIT_API)
    except OSError as exc:
        return _fail(f"cannot start the built-in emulator: {exc.strerror or exc}", EXIT_API)


async def _demo_run(args: argparse.Namespace, out: IO[str], timeout: float) -> int:
    import itertools

    from ._client import AutomationClient
    from ._models import EdgeSpec, StepSpec
    from .emulator import DEFAULT_ORGANISATION_ID, Emulator

    as_json = getattr(args, "json", False)
    token = "demo-token"
    async with Emulator(token=token, step_duration=args.step_duration, seed=1) as emulator:
        if not as_json:
            out.write(f"Started the built-in emulator at {emulator.url}\n")
        # Everything explicit: a user's AUTOMATION_* variables must not leak into the demo.
        async with AutomationClient(
            token, base_url=emulator.url, org_id=DEFAULT_ORGANISATION_ID
        ) as client:
            steps = [
                StepSpec(name=name, step_type=kind, prompt_template={"type": "text", "text": text})
                for name, kind, text in _DEMO_STEPS
            ]
            edges = [EdgeSpec(source=a[0], target=b[0]) for a, b in itertools.pairwise(_DEMO_STEPS)]
            automation = await client.automations.create(
                name="demo-pitch",
                description="Research a company and write a pitch",
                steps=steps,
                edges=edges,
            )
            run = await client.runs.create(automation.id, inputs={"company": args.company})
            if not as_json:
                out.write(f"Created automation {automation.id} with {len(steps)} steps\n")
                out.write(f"Started run {run.id} with inputs {{'company': {args.company!r}}}\n")
            interval = max(0.05, min(1.0, args.step_duration / 2))
            options = {"interval": interval, "max_interval": max(interval, 2.0), "timeout": timeout}
            live = not as_json and out.isatty()
            code = await _follow(
                client,
                str(automation.id),
                str(run.id),
                options,
                out,
                live=live,
                plain=not as_json and not live,
            )
            if not as_json:
                final = await client.runs.get(automation.id, run.id)
                out.write("\nResults:\n")
                for step in final.steps:
                    if step.step.name != "start":
                        out.write(f"  {step.step.name}: {step.result}\n")
    return code


# -- entry point -----------------------------------------------------------------------------


def _secrets(*tokens: str | None) -> list[str]:
    """Every form of the token that could show: as given, and stripped as the SDK uses it."""
    found = {form for token in tokens if token for form in (token, token.strip()) if form}
    return sorted(found, key=len, reverse=True)


def _one_line(text: str) -> str:
    """``text`` on one line: control characters (newlines, escapes) shown as ``\\n``, ``\\x1b``."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def _warn(message: str) -> None:
    sys.stderr.write(f"automation-sdk: warning: {_one_line(message)}\n")
    sys.stderr.flush()


# The SDK's advice names Python arguments; a command-line user has options instead.
_CLI_ADVICE: Final = (
    ("raise the client's timeout", "raise --request-timeout"),
    ("(the retry policy allows a single try)", "(--retries 1 allows a single try)"),
    ("on every try the retry policy allows", "on every try --retries allows"),
    ("the retry policy's max_retry_after", "the longest Retry-After the command line waits for"),
    (
        "If the API really sends answers that large, raise "
        "AutomationClient(max_response_bytes=...)",
        "The command line reads no larger answer",
    ),
)


def _cli_advice(message: str) -> str:
    """``message`` with advice about Python arguments said in the command line's terms."""
    for python, cli in _CLI_ADVICE:
        message = message.replace(python, cli)
    return message


def _fail(message: str, code: int, secrets: Sequence[str] = ()) -> int:
    for secret in secrets:
        message = message.replace(secret, "[redacted]")
    sys.stderr.write(f"automation-sdk: error: {_one_line(message)}\n")
    sys.stderr.flush()
    return code


def _tolerant(out: IO[str]) -> None:
    """Let text output carry what the terminal cannot show (``\\udc80``) instead of failing."""
    reconfigure = getattr(out, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):  # a stream that cannot change
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    out = sys.stdout
    _tolerant(out)
    handler: _Handler = args.handler
    try:
        return handler(args, out)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        return EXIT_OK
