"""How the command line shows runs: text lines, NDJSON events, and live progress.

Live progress uses rich (the ``cli`` extra) when it is installed; without it,
a terminal gets one plain line per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from ._events import RunTransition, StepTransition
from ._models import JSONValue, Run, RunStep

__all__ = ["Progress", "make_progress", "run_lines"]

_STYLE = {
    "NEW": "dim",
    "RUNNING": "cyan",
    "WAITING_FOR_USER_INPUT": "yellow",
    "FINISHED": "green",
    "FAILED": "bold red",
}
_RESULT_WIDTH = 60
_LINE_RESULT_WIDTH = 100


def prompt_text(prompt: Mapping[str, JSONValue]) -> str:
    """The human text of a rendered prompt: its ``text`` key, else its other keys."""
    text = prompt.get("text")
    if isinstance(text, str):
        return text
    return ", ".join(f"{k}={v}" for k, v in prompt.items() if k != "type")


def _elapsed(step: RunStep, now: datetime) -> float:
    end = step.updated_at if step.status.is_terminal else now
    return max(0.0, (end - step.created_at).total_seconds())


def _short(text: str | None, width: int = _RESULT_WIDTH) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run_lines(run: Run) -> list[str]:
    """A run as text: a header line, then a line per step."""
    lines = [f"run {run.id}  {run.status.value}  (automation {run.automation_id})"]
    if run.inputs:
        lines.append(
            "  inputs: " + ", ".join(f"{k}={_json_text(v)}" for k, v in run.inputs.items())
        )
    now = datetime.now(UTC)
    for step in run.steps:
        line = f"  {step.step.name:<16} {step.status.value:<22} {_elapsed(step, now):6.1f}s"
        if step.result:
            line += f"  {_short(step.result)}"
        if step.error:
            line += f"  error: {_short(step.error)}"
        lines.append(line)
    if run.error:
        lines.append(f"  error: {run.error}")
    waiting = run.current_step
    if run.status.value == "WAITING_FOR_USER_INPUT" and waiting is not None:
        lines.append(f"  waiting for input: {prompt_text(waiting.prompt)}")
        lines.append(f"  answer: automation-sdk runs input {run.automation_id} {run.id} TEXT")
    return lines


def _json_text(value: JSONValue) -> str:
    return value if isinstance(value, str) else repr(value)


class Progress(Protocol):
    """Shows a watch's events as they come."""

    def update(self, event: StepTransition | RunTransition, run: Run | None) -> None:
        """Take one event and the snapshot it came from."""

    def finish(self, run: Run) -> None:
        """Show the final state."""

    def close(self) -> None:
        """Stop drawing (idempotent)."""


class _LineProgress:
    """A line per event: for pipes (the demo), and for terminals without rich."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def update(self, event: StepTransition | RunTransition, run: Run | None) -> None:
        if isinstance(event, StepTransition):
            line = f"  {event.step_name:<16} {event.status.value}"
            if event.status.is_terminal and event.step.result:
                line += f"  {_short(event.step.result, _LINE_RESULT_WIDTH)}"
            if event.step.error:
                line += f"  error: {_short(event.step.error)}"
        else:
            line = f"run {event.run_id}  {event.status.value}"
            current = event.run.current_step
            if event.status.value == "WAITING_FOR_USER_INPUT" and current is not None:
                line += f"\n  waiting for input: {prompt_text(current.prompt)}"
                line += (
                    f"\n  answer: automation-sdk runs input {event.run.automation_id} "
                    f"{event.run_id} TEXT"
                )
            if event.run.error:
                line += f": {event.run.error}"
        self._out.write(line + "\n")
        self._out.flush()

    def finish(self, run: Run) -> None:
        pass

    def close(self) -> None:
        pass


class _RichProgress:
    """A live table redrawn as events come, with elapsed times ticking."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self._run: Run | None = None
        self._live = Live(
            self,
            console=Console(file=out),
            refresh_per_second=4,
            transient=False,
        )
        self._live.start()
        self._closed = False

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        run = self._run
        if run is None:
            return Text("waiting for the first snapshot…", style="dim")
        now = datetime.now(UTC)
        header = Text.assemble(
            ("run ", "bold"),
            (str(run.id), ""),
            ("  ", ""),
            (run.status.value, _STYLE.get(run.status.value, "magenta")),
        )
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("step")
        table.add_column("status")
        table.add_column("elapsed", justify="right")
        table.add_column("result")
        for step in run.steps:
            status = step.status.value
            table.add_row(
                step.step.name,
                Text(status, style=_STYLE.get(status, "magenta")),
                f"{_elapsed(step, now):.1f}s",
                _short(step.error or step.result),
            )
        parts: list[Any] = [header, table]
        if run.error:
            parts.append(Text(f"error: {run.error}", style="bold red"))
        current = run.current_step
        if run.status.value == "WAITING_FOR_USER_INPUT" and current is not None:
            parts.append(Text(f"waiting for input: {prompt_text(current.prompt)}", style="yellow"))
            parts.append(
                Text(
                    f"answer: automation-sdk runs input {run.automation_id} {run.id} TEXT",
                    style="dim",
                )
            )
        return Group(*parts)

    def update(self, event: StepTransition | RunTransition, run: Run | None) -> None:
        self._run = event.run if isinstance(event, RunTransition) else run
        self._live.refresh()

    def finish(self, run: Run) -> None:
        self._run = run
        self._live.refresh()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._live.stop()


def make_progress(out: IO[str], *, live: bool) -> Progress:
    """Progress on ``out``: a live rich table if ``live`` and rich is installed, else lines."""
    if not live:
        return _LineProgress(out)
    try:
        import rich  # noqa: F401
    except ImportError:
        return _LineProgress(out)
    return _RichProgress(out)
