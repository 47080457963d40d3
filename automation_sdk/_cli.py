"""The ``automation-sdk`` command line: every call of the SDK, plus the emulator and a demo.

Exit codes: 0 success (for ``runs watch``/``runs wait``: the run FINISHED),
1 the run FAILED, 2 bad usage, 3 an API or network error, 4 a timeout.
Errors are one line on stderr, never a traceback and never the token.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, NoReturn

from . import _paths
from ._client import AutomationClient
from ._convert import unstructure
from ._events import RunTransition
from ._models import Automation, EdgeSpec, JSONValue, Run, RunStatus, StepSpec
from ._progress import event_json, make_progress, run_lines
from ._retry import RetryPolicy
from ._version import __version__
from .errors import (
    AutomationError,
    ConfigurationError,
    InvalidArgumentError,
    RunFailedError,
    WaitTimeoutError,
)

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_RUN_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_API: Final = 3
EXIT_TIMEOUT: Final = 4


class _UsageError(Exception):
    """Bad usage found after parsing (a bad spec file, a bad --input)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- arguments ------------------------------------------------------------------------------


def _common() -> _Parser:
    """Options every API subcommand takes."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--token", help=f"API token (default: ${_paths.ENV_TOKEN}); prefer the variable"
    )
    group.add_argument(
        "--base-url", help=f"API root URL (default: ${_paths.ENV_BASE_URL} or the public service)"
    )
    group.add_argument("--org-id", help=f"organisation id (default: ${_paths.ENV_ORG_ID})")
    group.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds one request may take (default: %(default)s)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=5,
        metavar="N",
        help="tries per request, the first included; 1 turns retries off (default: %(default)s)",
    )
    group.add_argument(
        "--no-proxy-env",
        action="store_true",
        help="ignore $HTTP_PROXY, $HTTPS_PROXY and $NO_PROXY (followed by default)",
    )
    common.add_argument(
        "--json", action="store_true", help="print machine-readable JSON (NDJSON for watch)"
    )
    return common


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("automation_id", help="the automation's id (a UUID)")
    parser.add_argument("run_id", help="the run's id (a UUID)")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="give up after this long"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="first poll interval"
    )
    parser.add_argument(
        "--max-interval", type=float, default=15.0, metavar="SECONDS", help="longest poll interval"
    )
    parser.add_argument(
        "--cancel-on-timeout", action="store_true", help="cancel the run when the timeout passes"
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole ``automation-sdk`` argument parser."""
    common = _common()
    parser = _Parser(
        prog="automation-sdk",
        description="Drive the Automation API from the command line.",
        epilog="Exit codes: 0 ok / run finished, 1 run failed, 2 bad usage, "
        "3 API or network error, 4 timeout.",
    )
    parser.add_argument("--version", action="version", version=f"automation-sdk {__version__}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    automations = top.add_parser("automations", help="create and read automations")
    a_sub = automations.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = a_sub.add_parser(
        "create", parents=[common], help="create an automation from a JSON spec file"
    )
    create.add_argument(
        "--file",
        required=True,
        help='spec file ("-" for stdin): {"name", "description", "steps": [{"name", '
        '"step_type", "prompt_template", "id"?}], "transitions": [{"source", "target", '
        '"label"?}]}',
    )
    get_a = a_sub.add_parser("get", parents=[common], help="show an automation and its runs")
    get_a.add_argument("automation_id", help="the automation's id (a UUID)")

    runs = top.add_parser("runs", help="start, read, watch, answer and cancel runs")
    r_sub = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = r_sub.add_parser("start", parents=[common], help="start a run")
    start.add_argument("automation_id", help="the automation's id (a UUID)")
    start.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input (a string); repeat for more",
    )
    start.add_argument(
        "--inputs-json", metavar="JSON", help="inputs as a JSON object (merged under --input)"
    )
    list_r = r_sub.add_parser("list", parents=[common], help="list an automation's runs")
    list_r.add_argument("automation_id", help="the automation's id (a UUID)")
    for name, text in (("get", "show a run and its steps"), ("cancel", "cancel a run")):
        sub = r_sub.add_parser(name, parents=[common], help=text)
        sub.add_argument("automation_id", help="the automation's id (a UUID)")
        sub.add_argument("run_id", help="the run's id (a UUID)")
    watch = r_sub.add_parser(
        "watch", parents=[common], help="show a run's progress live until it ends"
    )
    _watch_options(watch)
    watch.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="resume from FILE if it exists, and keep it updated after every event, so that "
        "running the command again (after a timeout, a crash, Ctrl-C) repeats no event",
    )
    wait = r_sub.add_parser("wait", parents=[common], help="wait quietly for a run to end")
    _watch_options(wait)
    answer = r_sub.add_parser("input", parents=[common], help="answer a run waiting for input")
    answer.add_argument("automation_id", help="the automation's id (a UUID)")
    answer.add_argument("run_id", help="the run's id (a UUID)")
    answer.add_argument("text", help="the answer")

    from .emulator import add_arguments as emulator_arguments

    emulator = top.add_parser("emulator", help="serve a local emulator of the API")
    emulator_arguments(emulator)

    demo = top.add_parser(
        "demo", help="run a sample automation on a built-in emulator and watch it live"
    )
    demo.add_argument(
        "--step-duration",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="how long each step takes (default: %(default)s)",
    )
    demo.add_argument("--company", default="Acme Rockets", help="the demo run's input")
    demo.add_argument("--json", action="store_true", help="print NDJSON events instead")
    return parser


# -- output ----------------------------------------------------------------------------------


def _print_json(data: object, out: IO[str]) -> None:
    out.write(json.dumps(data, ensure_ascii=False) + "\n")
    out.flush()


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


def _load_spec(path: str) -> tuple[str, str, list[StepSpec], list[EdgeSpec]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot read the spec file {path}: {exc.strerror or exc}") from None
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise _UsageError(f"the spec file {path} is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise _UsageError(f"the spec file {path} must hold a JSON object")
    try:
        name = spec["name"]
        steps = [
            StepSpec(
                name=s["name"],
                step_type=s["step_type"],
                prompt_template=s.get("prompt_template", {}),
                id=s.get("id"),
            )
            for s in spec["steps"]
        ]
        edges = [
            EdgeSpec(source=e["source"], target=e["target"], label=e.get("label", ""))
            for e in spec.get("transitions", [])
        ]
        description = spec.get("description", "")
    except (KeyError, TypeError, AttributeError) as exc:
        what = f"the field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise _UsageError(f"the spec file {path} is not a valid spec: {what}") from None
    if not isinstance(name, str) or not isinstance(description, str):
        raise _UsageError(f"the spec file {path}: name and description must be strings")
    return name, description, steps, edges


def _inputs(pairs: Sequence[str], raw: str | None) -> dict[str, JSONValue]:
    inputs: dict[str, JSONValue] = {}
    if raw is not None:
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise _UsageError(f"--inputs-json is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise _UsageError("--inputs-json must be a JSON object")
        inputs.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"--input takes KEY=VALUE, got {pair!r}")
        inputs[key] = value
    return inputs


# -- commands --------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> AutomationClient:
    return AutomationClient(
        args.token,
        base_url=args.base_url,
        org_id=args.org_id,
        timeout=args.request_timeout,
        retry=RetryPolicy(attempts=max(1, args.retries)),
        trust_env=not args.no_proxy_env,
    )


async def _run_command(args: argparse.Namespace, out: IO[str]) -> int:
    if args.command == "automations" and args.action == "create":
        spec = _load_spec(args.file)  # before the client: a bad file is a usage error
    async with _client(args) as client:
        if args.command == "automations":
            if args.action == "create":
                name, description, steps, edges = spec
                automation = await client.automations.create(
                    name=name, description=description, steps=steps, transitions=edges
                )
            else:
                automation = await client.automations.get(args.automation_id)
            if args.json:
                _print_json(unstructure(automation), out)
            else:
                out.write("\n".join(_automation_lines(automation)) + "\n")
            return EXIT_OK

        action = args.action
        if action == "list":
            runs = await client.runs.list(args.automation_id)
            if args.json:
                _print_json([unstructure(r) for r in runs], out)
            else:
                for r in runs:
                    out.write(f"{r.id}  {r.status.value:<22}  {r.created_at.isoformat()}\n")
                if not runs:
                    out.write("no runs\n")
            return EXIT_OK
        if action in ("watch", "wait"):
            return await _watch(client, args, out)

        run: Run
        if action == "start":
            run = await client.runs.create(
                args.automation_id, inputs=_inputs(args.input, args.inputs_json)
            )
        elif action == "get":
            run = await client.runs.get(args.automation_id, args.run_id)
        elif action == "cancel":
            run = await client.runs.cancel(args.automation_id, args.run_id)
        else:
            run = await client.runs.submit_input(args.automation_id, args.run_id, args.text)
        if args.json:
            _print_json(unstructure(run), out)
        else:
            out.write("\n".join(run_lines(run)) + "\n")
            if action == "start":
                out.write(f"watch it: automation-sdk runs watch {run.automation_id} {run.id}\n")
        return EXIT_OK


async def _watch(client: AutomationClient, args: argparse.Namespace, out: IO[str]) -> int:
    options: dict[str, Any] = {
        "interval": args.interval,
        "max_interval": args.max_interval,
        "timeout": args.timeout,
        "cancel_on_timeout": args.cancel_on_timeout,
    }
    if args.action == "wait":
        run = await client.runs.wait(
            args.automation_id, args.run_id, raise_on_failure=False, **options
        )
        if args.json:
            _print_json(unstructure(run), out)
        else:
            out.write("\n".join(run_lines(run)) + "\n")
        return EXIT_OK if run.status is RunStatus.FINISHED else EXIT_RUN_FAILED
    live = not args.json and out.isatty()
    if args.checkpoint:
        options["resume_from"] = _read_checkpoint(args.checkpoint)
    return await _follow(
        client,
        args.automation_id,
        args.run_id,
        options,
        out,
        live=live,
        checkpoint_file=args.checkpoint,
    )


def _read_checkpoint(path: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _UsageError(f"cannot read the checkpoint {path}: {exc.strerror or exc}") from None
    return text if text.strip() else None


def _write_checkpoint(path: str, checkpoint: str) -> None:
    # Write then rename, so that a crash mid-write never leaves half a checkpoint.
    tmp = Path(path + ".tmp")
    tmp.write_text(checkpoint, encoding="utf-8")
    os.replace(tmp, path)


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
    progress = make_progress(out, live=live) if live or plain else None
    final: RunStatus | None = None
    try:
        async with client.runs.watch(automation_id, run_id, **options) as watch:
            async for event in watch:
                if progress is not None:
                    progress.update(event, watch.run)
                else:
                    _print_json(event_json(event), out)
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


_DEMO_STEPS: Final = (
    ("start", "START", ""),
    ("research", "LLM", "List three facts about ${INPUTS.company}."),
    ("audience", "LLM", "Describe the ideal customer of ${INPUTS.company}."),
    ("pitch", "LLM", "Write a one-line pitch to ${audience.result} using: ${research.result}"),
)


async def _demo(args: argparse.Namespace, out: IO[str]) -> int:
    from .emulator import DEFAULT_ORGANISATION_ID, Emulator

    token = "demo-token"
    async with Emulator(token=token, step_duration=args.step_duration, seed=1) as emulator:
        if not args.json:
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
                transitions=edges,
            )
            run = await client.runs.create(automation.id, inputs={"company": args.company})
            if not args.json:
                out.write(f"Created automation {automation.id} with {len(steps)} steps\n")
                out.write(f"Started run {run.id} with inputs {{'company': {args.company!r}}}\n")
            interval = max(0.05, min(1.0, args.step_duration / 2))
            options = {"interval": interval, "max_interval": max(interval, 2.0), "timeout": 300.0}
            live = not args.json and out.isatty()
            code = await _follow(
                client,
                str(automation.id),
                str(run.id),
                options,
                out,
                live=live,
                plain=not args.json and not live,
            )
            if not args.json:
                final = await client.runs.get(automation.id, run.id)
                out.write("\nResults:\n")
                for step in final.steps:
                    if step.step.name != "start":
                        out.write(f"  {step.step.name}: {step.result}\n")
    return code


# -- entry point -----------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"automation-sdk: error: {message}\n")
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.command == "emulator":
        from .emulator import run_from_args

        try:
            return run_from_args(args)
        except ValueError as exc:
            return _fail(str(exc), EXIT_USAGE)
    runner: Callable[[], Awaitable[int]]
    if args.command == "demo":
        if args.step_duration < 0:
            return _fail("--step-duration must be >= 0", EXIT_USAGE)
        runner = lambda: _demo(args, out)  # noqa: E731
    else:
        runner = lambda: _run_command(args, out)  # noqa: E731
    token = args.token if getattr(args, "token", None) else os.environ.get(_paths.ENV_TOKEN, "")
    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (ConfigurationError, InvalidArgumentError) as exc:
        return _fail(_scrub(str(exc), token), EXIT_USAGE)
    except WaitTimeoutError as exc:
        status = exc.run.status.value if exc.run is not None else "not seen yet"
        again = "run the same command again to keep watching"
        if getattr(args, "checkpoint", None):
            again += f" (it resumes from {args.checkpoint})"
        elif args.command == "runs" and args.action == "watch":
            again += " (add --checkpoint FILE to resume without repeating events)"
        return _fail(
            f"run {args.run_id} did not end within --timeout {args.timeout:g}s "
            f"(last status: {status}); {again}",
            EXIT_TIMEOUT,
        )
    except RunFailedError as exc:
        return _fail(_scrub(str(exc), token), EXIT_RUN_FAILED)
    except AutomationError as exc:
        return _fail(_scrub(str(exc), token), EXIT_API)
    except BrokenPipeError:
        return EXIT_OK


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "[redacted]") if token else text
