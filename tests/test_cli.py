"""The ``automation-sdk`` command line, through its entry point, against the emulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from automation_sdk import Run, RunStatus, RunTransition, __version__, event_from_json
from automation_sdk._cli import main
from automation_sdk.emulator import Emulator

pytestmark = pytest.mark.usefixtures("one_cli_parser")  # main() in-process: one parser

CLI_TOKEN = "cli-SECRET-token"


class _EmulatorThread:
    """An emulator serving from its own loop in a thread, so that ``main`` can run its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator = Emulator(token=CLI_TOKEN, step_duration=0.004, seed=5)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Emulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result(10)
        return self.emulator

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A running emulator, with the CLI's environment pointing at it."""
    with _EmulatorThread() as emu:
        monkeypatch.setenv("AUTOMATION_API_TOKEN", CLI_TOKEN)
        monkeypatch.setenv("AUTOMATION_BASE_URL", emu.url)
        monkeypatch.delenv("AUTOMATION_ORG_ID", raising=False)
        yield emu


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in-process; return (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits (usage, --help, --version)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def spec_file(tmp_path: Path, *, input_step: bool = False, fail: bool = False) -> str:
    """Write an automation spec and return its path."""
    text = "Summarise ${INPUTS.ticket}" if not fail else "Use ${INPUTS.missing}"
    steps = [
        {"name": "start", "step_type": "START"},
        {
            "name": "summarise",
            "step_type": "LLM",
            "prompt_template": {"type": "text", "text": text},
        },
    ]
    edges = [{"source": "start", "target": "summarise"}]
    if input_step:
        steps.append(
            {
                "name": "approve",
                "step_type": "INPUT",
                "prompt_template": {"type": "text", "text": "OK?"},
            }
        )
        edges.append({"source": "summarise", "target": "approve"})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "triage", "steps": steps, "edges": edges}))
    return str(path)


def create(capsys: pytest.CaptureFixture[str], tmp_path: Path, **kw: bool) -> str:
    """Create an automation through the CLI and return its id."""
    code, out, _ = cli(
        capsys, "automations", "create", "--file", spec_file(tmp_path, **kw), "--json"
    )
    assert code == 0
    return str(json.loads(out)["id"])


def start(capsys: pytest.CaptureFixture[str], automation_id: str) -> str:
    """Start a run through the CLI and return its id."""
    code, out, _ = cli(capsys, "runs", "start", automation_id, "--input", "ticket=T-9", "--json")
    assert code == 0
    return str(json.loads(out)["id"])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    code, out, _ = cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"automation-sdk {__version__}"


def test_automations_create_and_get(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """create prints the automation; get --json prints it as the API does, with sessions."""
    code, out, err = cli(capsys, "automations", "create", "--file", spec_file(tmp_path))
    assert code == 0, err
    assert "'triage'" in out and "start -> summarise" in out
    automation_id = out.split()[1]
    code, out, _ = cli(capsys, "automations", "get", automation_id, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["id"] == automation_id
    assert data["sessions"] == []
    assert [s["name"] for s in data["current_version"]["steps"]] == ["start", "summarise"]


def test_runs_start_list_get(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """start sends --input pairs; list and get show the run."""
    automation_id = create(capsys, tmp_path)
    code, out, _ = cli(capsys, "runs", "start", automation_id, "--input", "ticket=T-9")
    assert code == 0
    assert "inputs: ticket=T-9" in out and "automation-sdk runs watch" in out
    run_id = out.split()[1]
    code, out, _ = cli(capsys, "runs", "list", automation_id, "--json")
    assert [r["id"] for r in json.loads(out)] == [run_id]
    code, out, _ = cli(capsys, "runs", "get", automation_id, run_id, "--json")
    assert json.loads(out)["inputs"] == {"ticket": "T-9"}
    assert Run.from_json(out).id == uuid.UUID(run_id)
    code, out, _ = cli(capsys, "runs", "list", automation_id)
    assert code == 0 and run_id in out


def test_runs_watch_prints_ndjson_until_finished(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without a terminal, watch prints one JSON event per line and exits 0 on FINISHED."""
    automation_id = create(capsys, tmp_path)
    run_id = start(capsys, automation_id)
    code, out, err = cli(capsys, "runs", "watch", automation_id, run_id, "--interval", "0.002")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["type"] in ("run_transition", "step_transition")
    assert events[-1]["type"] == "run_transition"
    assert events[-1]["status"] == "FINISHED"
    steps = [e for e in events if e["type"] == "step_transition" and e["status"] == "FINISHED"]
    assert [e["step_name"] for e in steps] == ["start", "summarise"]
    assert steps[-1]["step"]["result"].endswith("Summarise T-9")
    parsed = [event_from_json(line) for line in out.splitlines()]
    assert [e.to_dict() for e in parsed] == events
    assert isinstance(parsed[-1], RunTransition) and parsed[-1].run.status is RunStatus.FINISHED


def test_runs_wait_exit_codes(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """wait exits 0 when the run finishes and 1 when it fails, printing the final run."""
    good = create(capsys, tmp_path)
    run_id = start(capsys, good)
    code, out, _ = cli(capsys, "runs", "wait", good, run_id, "--interval", "0.002", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "FINISHED"
    bad = create(capsys, tmp_path, fail=True)
    run_id = start(capsys, bad)
    code, out, _ = cli(capsys, "runs", "wait", bad, run_id, "--interval", "0.002")
    assert code == 1
    assert "FAILED" in out and "INPUTS.missing" in out


def test_watch_of_failing_run_exits_1(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """watch exits 1 after the run's FAILED event."""
    automation_id = create(capsys, tmp_path, fail=True)
    run_id = start(capsys, automation_id)
    code, out, _ = cli(
        capsys, "runs", "watch", automation_id, run_id, "--interval", "0.002", "--json"
    )
    assert code == 1
    assert json.loads(out.splitlines()[-1])["status"] == "FAILED"


def test_input_and_cancel(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A waiting run is answered with `runs input`; `runs cancel` ends a run FAILED."""
    automation_id = create(capsys, tmp_path, input_step=True)
    run_id = start(capsys, automation_id)
    code, out, _ = cli(
        capsys, "runs", "wait", automation_id, run_id, "--timeout", "0.05", "--interval", "0.002"
    )
    assert code == 4
    code, out, _ = cli(capsys, "runs", "get", automation_id, run_id)
    assert "WAITING_FOR_USER_INPUT" in out and "waiting for input: OK?" in out
    code, out, _ = cli(capsys, "runs", "input", automation_id, run_id, "yes", "--json")
    assert code == 0
    approve = [s for s in json.loads(out)["steps"] if s["step"]["name"] == "approve"]
    assert approve[0]["result"] == "yes"
    other = start(capsys, automation_id)
    code, out, _ = cli(capsys, "runs", "cancel", automation_id, other, "--json")
    assert code == 0
    assert json.loads(out)["status"] == "FAILED"


def test_timeout_exits_4_with_one_line(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A watch that passes --timeout exits 4 with one line on stderr."""
    automation_id = create(capsys, tmp_path, input_step=True)
    run_id = start(capsys, automation_id)
    code, _, err = cli(
        capsys,
        "runs",
        "watch",
        automation_id,
        run_id,
        "--timeout",
        "0.05",
        "--interval",
        "0.002",
        "--json",
    )
    assert code == 4
    assert err.count("\n") == 1 and err.startswith("automation-sdk: error:")


def test_api_errors_exit_3_without_traceback_or_token(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A 404 and a 401 exit 3 with one line naming the request, never the token."""
    automation_id = create(capsys, tmp_path)
    code, _, err = cli(capsys, "runs", "get", automation_id, "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a")
    assert code == 3
    assert "answered 404" in err and "Traceback" not in err and err.count("\n") == 1
    code, _, err = cli(capsys, "automations", "get", automation_id, "--token", "wrong-token")
    assert code == 3
    assert "answered 401" in err and "wrong-token" not in err and CLI_TOKEN not in err


def test_network_error_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No server at the base URL: exit 3 with a one-line connection error."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AUTOMATION_API_TOKEN", CLI_TOKEN)
    code, _, err = cli(
        capsys,
        "automations",
        "get",
        "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--retries",
        "1",
    )
    assert code == 3
    assert "could not connect" in err and "Traceback" not in err


@pytest.mark.parametrize(("flags", "expected"), [((), 0), (("--no-proxy-env",), 3)])
def test_the_cli_follows_the_proxy_variables(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    flags: tuple[str, ...],
    expected: int,
) -> None:
    """HTTP_PROXY carries the CLI's requests (the emulator stands in for the proxy) unless
    --no-proxy-env, when they go to the base URL, where nothing listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    automation_id = create(capsys, tmp_path)
    monkeypatch.setenv("HTTP_PROXY", emulator.url)
    code, _, err = cli(
        capsys,
        "runs",
        "list",
        automation_id,
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--retries",
        "1",
        *flags,
    )
    assert code == expected, err
    if expected == 3:
        assert "could not connect" in err


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "get", "not-a-uuid", "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a"),
        ("runs", "start", "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a", "--input", "novalue"),
        ("runs", "start", "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a", "--inputs-json", "[1]"),
        ("automations", "create", "--file", "/nonexistent/spec.json"),
        ("runs", "frobnicate"),
        (),
    ],
)
def test_bad_usage_exits_2(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """Malformed ids, inputs, files and subcommands exit 2 without a traceback."""
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert "error" in err and "Traceback" not in err


def test_invalid_spec_file_exits_2(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A spec without steps, or not JSON, is a usage error naming the problem."""
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x"}')
    code, _, err = cli(capsys, "automations", "create", "--file", str(path))
    assert code == 2 and "steps: the field is missing" in err
    path.write_text(
        '{"name": "x", "steps": [{"name": "start", "step_type": "START"}, {"name": 3}]}'
    )
    code, _, err = cli(capsys, "automations", "create", "--file", str(path))
    assert code == 2 and "steps[1].name: expected a string, got int 3" in err
    assert "steps[1].step_type: the field is missing" in err
    path.write_text("{not json")
    code, _, err = cli(capsys, "automations", "create", "--file", str(path))
    assert code == 2 and "not JSON" in err


def _spec_with(tmp_path: Path, **keys: object) -> str:
    spec = {
        "name": "x",
        "steps": [{"name": "start", "step_type": "START"}, {"name": "b", "step_type": "LLM"}],
        **keys,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_spec_file_edges_and_deprecated_transitions(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A spec's "edges" creates the edges; "transitions" still does, with a warning on stderr."""
    edge = [{"source": "start", "target": "b", "label": "go"}]
    code, out, err = cli(
        capsys, "automations", "create", "--file", _spec_with(tmp_path, edges=edge)
    )
    assert code == 0 and err == ""
    assert "start -> b  [go]" in out
    code, out, err = cli(
        capsys, "automations", "create", "--file", _spec_with(tmp_path, transitions=edge)
    )
    assert code == 0 and "start -> b  [go]" in out
    assert err.startswith("automation-sdk: warning: the spec file")
    assert '"transitions" is deprecated; rename it "edges"' in err
    both = _spec_with(tmp_path, edges=edge, transitions=edge)
    code, _, err = cli(capsys, "automations", "create", "--file", both)
    assert code == 2 and 'both "edges" and "transitions"' in err


def test_missing_token_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No token anywhere: exit 2 saying how to give one."""
    monkeypatch.delenv("AUTOMATION_API_TOKEN", raising=False)
    code, _, err = cli(capsys, "runs", "list", "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a")
    assert code == 2 and "AUTOMATION_API_TOKEN" in err


def test_demo_runs_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo needs nothing: it starts an emulator, runs the sample and prints results."""
    code, out, err = cli(capsys, "demo", "--step-duration", "0.004")
    assert code == 0, err
    assert "Started the built-in emulator at http://127.0.0.1:" in out
    assert "FINISHED" in out
    results = out.split("Results:")[1]
    assert "research: [LLM] List three facts about Acme Rockets." in results
    assert "pitch: [LLM] Write a one-line pitch to [LLM] Describe" in results


def test_demo_json_is_ndjson(capsys: pytest.CaptureFixture[str]) -> None:
    """demo --json prints only NDJSON events, ending with the run's FINISHED."""
    code, out, _ = cli(capsys, "demo", "--step-duration", "0.004", "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["type"] == "run_transition" and events[-1]["status"] == "FINISHED"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_on_a_terminal_shows_live_progress(
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, watch draws a table of steps with status and elapsed time."""
    automation_id = create(capsys, tmp_path)
    run_id = start(capsys, automation_id)
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    code = main(["runs", "watch", automation_id, run_id, "--interval", "0.002"])
    assert code == 0
    text = screen.getvalue()
    assert "summarise" in text and "FINISHED" in text and "elapsed" in text


def _default_sigint() -> None:
    """In the child: SIGINT raises KeyboardInterrupt even when the test runner was started in
    the background of a shell, which leaves SIGINT ignored for every process it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_console_script_and_emulator_subcommand(tmp_path: Path) -> None:
    """The installed `automation-sdk emulator` serves until interrupted, then exits 0; its
    banner shows the token masked."""
    exe = Path(sys.executable).with_name("automation-sdk")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automation_sdk"]
    proc = subprocess.Popen(
        [*cmd, "emulator", "--port", "0", "--token", "T1-emulator-secret"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in banner and "(token: T1***)" in banner
        assert "emulator-secret" not in banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)  # a bound for a loaded machine, not a wait
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave it running for later tests to trip over
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_watch_checkpoint_file_resumes_without_repeating(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--checkpoint: a timed-out watch run again delivers only what is new, then exits 0."""
    automation_id = create(capsys, tmp_path, input_step=True)
    run_id = start(capsys, automation_id)
    checkpoint = tmp_path / "watch.json"
    argv = ("runs", "watch", automation_id, run_id, "--interval", "0.002", "--json")
    code, out, err = cli(capsys, *argv, "--timeout", "0.05", "--checkpoint", str(checkpoint))
    assert code == 4
    assert f"it resumes from {checkpoint}" in err and "client.runs" not in err
    first = [json.loads(line) for line in out.splitlines()]
    assert json.loads(checkpoint.read_text())["run_status"] == "WAITING_FOR_USER_INPUT"
    cli(capsys, "runs", "input", automation_id, run_id, "yes")
    code, out, _ = cli(capsys, *argv, "--checkpoint", str(checkpoint))
    assert code == 0
    second = [json.loads(line) for line in out.splitlines()]
    seen = {(e["type"], e.get("step_name"), e["status"]) for e in first}
    assert not seen & {(e["type"], e.get("step_name"), e["status"]) for e in second}
    assert second[0]["previous"] == "WAITING_FOR_USER_INPUT"
    assert second[-1]["status"] == "FINISHED"
    code, out, _ = cli(capsys, *argv, "--checkpoint", str(checkpoint))
    assert (code, out) == (0, "")
