"""The command line against hostile input: every failure one line on stderr with its exit code.

Exit 2 is bad usage (the command line, a file or an option), 3 the API or the network,
4 a timeout. Nothing here may print a traceback or the token. Servers are the emulator
or aioresponses mocks on 127.0.0.1; the CLI runs in-process through ``main``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from automation_sdk import __version__
from automation_sdk._cli import main
from payloads import AUTOMATION_ID, RUN_ID, run_json, run_step_json

pytestmark = pytest.mark.usefixtures("one_cli_parser")  # main() in-process: one parser

BASE = "http://127.0.0.1:9"  # never contacted: aioresponses answers
SECRET = "tok-hostile/+SECRET-7"
ANY_URL = re.compile(r"^http://127\.0\.0\.1:9/.*$")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in-process; return (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, code: int, expected: int) -> None:
    """One line starting with the program's prefix, the expected code, no traceback or token."""
    assert code == expected, err
    lines = [line for line in err.splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    assert lines[0].startswith("automation-sdk"), err
    assert ": error: " in lines[0], err
    assert "Traceback" not in err
    assert "SECRET" not in err


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment pointing at the (mocked) API with the hostile token."""
    monkeypatch.setenv("AUTOMATION_API_TOKEN", SECRET)
    monkeypatch.setenv("AUTOMATION_BASE_URL", BASE)


def spec(tmp_path: Path, content: str | bytes) -> str:
    """A spec file holding ``content``; its path."""
    path = tmp_path / "spec.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


DEEP = "[" * 30_000 + "]" * 30_000
GET = ("runs", "get", AUTOMATION_ID, RUN_ID)

# -- bad usage: exit 2 ------------------------------------------------------------------------

USAGE = {
    "request-timeout inf": (*GET, "--request-timeout", "inf"),
    "request-timeout nan": (*GET, "--request-timeout", "nan"),
    "request-timeout 0": (*GET, "--request-timeout", "0"),
    "request-timeout -1": (*GET, "--request-timeout", "-1"),
    "request-timeout 1e999": (*GET, "--request-timeout", "1e999"),
    "global request-timeout inf": ("--request-timeout", "inf", *GET),
    "retries 0": (*GET, "--retries", "0"),
    "global retries 0": ("--retries", "0", *GET),
    "retries 2.5": (*GET, "--retries", "2.5"),
    "watch timeout nan": ("runs", "watch", AUTOMATION_ID, RUN_ID, "--timeout", "nan"),
    "wait interval inf": ("runs", "wait", AUTOMATION_ID, RUN_ID, "--interval", "inf"),
    "wait max-interval -inf": ("runs", "wait", AUTOMATION_ID, RUN_ID, "--max-interval", "-inf"),
    "inputs-json 30k deep": ("runs", "start", AUTOMATION_ID, "--inputs-json", DEEP),
    "inputs-json object 30k deep": (
        "runs",
        "start",
        AUTOMATION_ID,
        "--inputs-json",
        '{"a": ' + DEEP + "}",
    ),
    "inputs-json NaN": ("runs", "start", AUTOMATION_ID, "--inputs-json", '{"x": NaN}'),
    "inputs-json Infinity": ("runs", "start", AUTOMATION_ID, "--inputs-json", '{"x": -Infinity}'),
    "inputs-json huge int": (
        "runs",
        "start",
        AUTOMATION_ID,
        "--inputs-json",
        '{"x": ' + "9" * 5000 + "}",
    ),
    "inputs-json a string": ("runs", "start", AUTOMATION_ID, "--inputs-json", '"abc"'),
    "demo step-duration nan": ("demo", "--step-duration", "nan"),
    "demo step-duration inf": ("demo", "--step-duration", "inf"),
    "demo step-duration -1": ("demo", "--step-duration", "-1"),
    "demo timeout 0": ("demo", "--timeout", "0"),
    "emulator step-duration inf": ("emulator", "--step-duration", "inf"),
    "emulator port 70000": ("emulator", "--port", "70000"),
    "emulator error-rate nan": ("emulator", "--error-rate", "nan"),
    "emulator slow-seconds inf": ("emulator", "--slow-seconds", "inf"),
    "no subcommand": (),
    "unknown action": ("runs", "frobnicate"),
}


@pytest.mark.parametrize("argv", USAGE.values(), ids=USAGE.keys())
def test_bad_options_are_usage_errors(
    api: None, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """Impossible option values exit 2 with one line naming the problem, nothing sent."""
    code, out, err = cli(capsys, *argv)
    assert_one_line(err, code, 2)
    assert out == ""


SPECS: dict[str, str | bytes] = {
    "not UTF-8": b'{"name": "caf\xe9", "steps": []}',
    "UTF-16": '{"name": "x", "steps": []}'.encode("utf-16"),
    "not JSON": "{not json",
    "NaN": '{"name": "x", "steps": [], "n": NaN}',
    "nested 30k deep": '{"name": "x", "steps": ' + DEEP + "}",
    "an array": "[1]",
    "name a number": '{"name": 5, "steps": []}',
    "name missing": '{"steps": []}',
    "steps missing": '{"name": "x"}',
    "description a number": '{"name": "x", "description": 5, "steps": []}',
    "steps a string": '{"name": "x", "steps": "abc"}',
    "step a string": '{"name": "x", "steps": ["abc"]}',
    "step name null": '{"name": "x", "steps": [{"name": null, "step_type": "LLM"}]}',
    "step_type a number": '{"name": "x", "steps": [{"name": "s", "step_type": 5}]}',
    "prompt_template a string": (
        '{"name": "x", "steps": [{"name": "s", "step_type": "LLM", '
        '"prompt_template": "Summarise ${INPUTS.ticket}"}]}'
    ),
    "prompt_template null": (
        '{"name": "x", "steps": [{"name": "s", "step_type": "LLM", "prompt_template": null}]}'
    ),
    "step id a number": '{"name": "x", "steps": [{"name": "s", "step_type": "LLM", "id": 5}]}',
    "transitions a string": '{"name": "x", "steps": [], "transitions": "ab"}',
    "transition a number": '{"name": "x", "steps": [], "transitions": [5]}',
    "transition source a number": (
        '{"name": "x", "steps": [], "transitions": [{"source": 5, "target": "b"}]}'
    ),
    "transition label a list": (
        '{"name": "x", "steps": [], "transitions": [{"source": "a", "target": "b", "label": []}]}'
    ),
}


@pytest.mark.parametrize("content", SPECS.values(), ids=SPECS.keys())
def test_bad_spec_files_are_usage_errors(
    api: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | bytes
) -> None:
    """A spec file that is not UTF-8, not JSON, or has a wrong type anywhere exits 2."""
    code, _, err = cli(capsys, "automations", "create", "--file", spec(tmp_path, content))
    assert_one_line(err, code, 2)
    assert "spec file" in err


def test_a_spec_error_says_where_and_shows_the_right_form(
    api: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The message names the field's place and, for a prompt, the form it takes."""
    path = spec(tmp_path, SPECS["prompt_template a string"])
    _, _, err = cli(capsys, "automations", "create", "--file", path)
    assert "steps[0].prompt_template: expected a JSON object, got str" in err
    assert 'a prompt_template is an object like {"type": "text", "text": "..."}' in err
    _, _, err = cli(capsys, "automations", "create", "--file", spec(tmp_path, SPECS["not UTF-8"]))
    assert "is not UTF-8 text" in err


def test_checkpoint_in_a_missing_folder_is_refused_before_watching(
    api: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--checkpoint in a folder that does not exist exits 2 before any request."""
    path = tmp_path / "missing" / "watch.json"
    code, out, err = cli(capsys, "runs", "watch", AUTOMATION_ID, RUN_ID, "--checkpoint", str(path))
    assert_one_line(err, code, 2)
    assert f"the folder {path.parent} does not exist" in err and out == ""


CHECKPOINTS: dict[str, bytes] = {
    "not UTF-8": b'{"v": 1, "run_status": "\xff"}',
    "nested 30k deep": DEEP.encode(),
    "NaN": b'{"v": NaN}',
    "not JSON": b"{checkpoint",
    "not a checkpoint": b'{"hello": "world"}',
}


@pytest.mark.parametrize("content", CHECKPOINTS.values(), ids=CHECKPOINTS.keys())
def test_bad_checkpoint_files_are_usage_errors(
    api: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    """A checkpoint file that is not UTF-8, not JSON, too deep or not a checkpoint exits 2."""
    path = tmp_path / "watch.json"
    path.write_bytes(content)
    code, _, err = cli(capsys, "runs", "watch", AUTOMATION_ID, RUN_ID, "--checkpoint", str(path))
    assert_one_line(err, code, 2)


def test_checkpoint_that_cannot_be_written_is_a_usage_error(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A checkpoint path that turns out unwritable after the first event exits 2, one line."""
    mock.get(ANY_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]), repeat=True)
    path = tmp_path / "watch.json"
    path.mkdir()  # a folder where the file should be: reading it fails first
    code, _, err = cli(capsys, "runs", "watch", AUTOMATION_ID, RUN_ID, "--checkpoint", str(path))
    assert_one_line(err, code, 2)
    assert "checkpoint" in err


def test_a_checkpoint_write_failing_mid_watch_is_one_line(
    api: None,
    mock: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Losing the checkpoint's folder after the first event exits 2 with one line."""
    mock.get(ANY_URL, payload=run_json("FINISHED", [run_step_json(status="FINISHED")]), repeat=True)
    path = tmp_path / "watch.json"

    def vanish(src: object, dst: object) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "replace", vanish)
    code, out, err = cli(
        capsys, "runs", "watch", AUTOMATION_ID, RUN_ID, "--json", "--checkpoint", str(path)
    )
    assert_one_line(err, code, 2)
    assert f"cannot write the checkpoint {path}" in err
    assert json.loads(out.splitlines()[0])["type"] in ("run_transition", "step_transition")


# -- hostile servers: exit 3, or valid output -------------------------------------------------

DEEP_BODY = "[" * 20_000 + "]" * 20_000  # 40 KB: past 3.13's decoder too; aioresponses feeds 64 KB

HOSTILE_ANSWERS = {
    "runs get, 200": (GET, 200),
    "runs get --json, 200": ((*GET, "--json"), 200),
    "runs list, 200": (("runs", "list", AUTOMATION_ID), 200),
    "automations get, 200": (("automations", "get", AUTOMATION_ID), 200),
    "runs get, 404": (GET, 404),
    "runs get, 500": ((*GET, "--retries", "1"), 500),
    "runs wait, 200": (("runs", "wait", AUTOMATION_ID, RUN_ID), 200),
    "runs watch, 200": (("runs", "watch", AUTOMATION_ID, RUN_ID), 200),
}


@pytest.mark.parametrize(("argv", "status"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_deeply_nested_answer_is_an_api_error(
    api: None,
    mock: Any,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    status: int,
) -> None:
    """JSON nested 20k deep from the server exits 3 with one line, never RecursionError."""
    mock.get(ANY_URL, status=status, body=DEEP_BODY, content_type="application/json", repeat=True)
    code, out, err = cli(capsys, *argv)
    assert_one_line(err, code, 3)
    assert out == ""


def test_an_echoed_unstripped_token_never_reaches_stderr(
    mock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--token with spaces around it: the server's echo of the token is still redacted."""
    monkeypatch.setenv("AUTOMATION_BASE_URL", BASE)
    mock.get(
        ANY_URL,
        status=401,
        payload={"detail": f"invalid token {SECRET} (Bearer {SECRET})"},
        repeat=True,
    )
    code, _, err = cli(capsys, "--token", f"  {SECRET} ", *GET)
    assert_one_line(err, code, 3)
    assert "answered 401" in err


def test_json_output_never_prints_nan(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN and infinities from the server print as null: every --json line is JSON."""
    body = json.dumps(run_json(inputs={"x": float("nan"), "y": [float("inf"), 1.5]}))
    assert "NaN" in body
    mock.get(ANY_URL, body=body, content_type="application/json", repeat=True)
    code, out, err = cli(capsys, *GET, "--json")
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    assert json.loads(out, parse_constant=pytest.fail)["inputs"] == {"x": None, "y": [None, 1.5]}


def test_json_output_of_a_lone_surrogate_is_valid_json(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A string holding a lone surrogate prints as a \\u escape, in JSON and as text."""
    body = json.dumps(run_json(inputs={"x": "a\ud800b"}))
    mock.get(ANY_URL, body=body, content_type="application/json", repeat=True)
    code, out, err = cli(capsys, *GET, "--json")
    assert code == 0, err
    assert "\\ud800" in out
    assert json.loads(out)["inputs"] == {"x": "a\ud800b"}
    code, out, err = cli(capsys, *GET)
    assert code == 0, err
    assert "x=a\\ud800b" in out


def test_json_output_to_a_stream_that_cannot_encode_is_escaped(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ASCII-only stdout gets \\u escapes rather than UnicodeEncodeError."""
    import io

    body = json.dumps(run_json(inputs={"x": "caf\u00e9 \U0001f600"}))
    mock.get(ANY_URL, body=body, content_type="application/json", repeat=True)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    code = main([*GET, "--json"])
    stream.flush()
    assert code == 0
    assert json.loads(raw.getvalue())["inputs"] == {"x": "caf\u00e9 \U0001f600"}


def test_a_server_message_with_newlines_stays_on_one_line(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control characters in a server's error are escaped: stderr keeps one line."""
    mock.get(ANY_URL, status=409, payload={"detail": "line one\nline two\x1b[31m red"}, repeat=True)
    code, _, err = cli(capsys, *GET)
    assert_one_line(err, code, 3)
    assert "\x1b" not in err


# -- the emulator and the demo ------------------------------------------------------------------


def test_a_port_in_use_is_one_line_with_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """`emulator --port N` when N is taken exits 3 with the usual prefix."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = cli(capsys, "emulator", "--port", str(port))
    assert_one_line(err, code, 3)
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "Traceback" not in out


def test_a_demo_that_times_out_is_one_line_with_exit_4(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A demo whose run outlasts --timeout exits 4 (a timeout) with one line."""
    code, _, err = cli(capsys, "demo", "--step-duration", "30", "--timeout", "0.01", "--json")
    assert_one_line(err, code, 4)
    assert "did not end within 0.01s" in err


# -- options before the subcommand, help and version --------------------------------------------


def test_global_options_before_the_subcommand(
    mock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--token, --base-url, --json and the rest work before the subcommand as after it."""
    monkeypatch.delenv("AUTOMATION_API_TOKEN", raising=False)
    mock.get(ANY_URL, payload=run_json(), repeat=True)
    code, out, err = cli(capsys, "--token", SECRET, "--base-url", BASE, "--json", *GET)
    assert code == 0, err
    assert json.loads(out)["id"] == RUN_ID
    code, out, err = cli(capsys, "--token", SECRET, *GET, "--base-url", BASE, "--retries", "2")
    assert code == 0, err
    assert out.startswith(f"run {RUN_ID}")
    request = next(iter(mock.requests.values()))[0]
    assert request.kwargs["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_an_option_after_the_subcommand_wins(
    mock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given on both sides, the option after the subcommand is the one used."""
    mock.get(ANY_URL, payload=run_json(), repeat=True)
    code, _, err = cli(
        capsys, "--token", "before-token", "--base-url", BASE, *GET, "--token", SECRET
    )
    assert code == 0, err
    request = next(iter(mock.requests.values()))[0]
    assert request.kwargs["headers"]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("argv", "defaults"),
    [
        (("runs", "get", "--help"), ("default: 30", "default: 5", "AUTOMATION_API_TOKEN")),
        (("runs", "watch", "--help"), ("default: 1)", "default: 15)", "default: wait until")),
        (("demo", "--help"), ("default: 0.4", "default: Acme Rockets", "default: 30 plus")),
        (("emulator", "--help"), ("default: 8080", "default: test-token", "default: 0.5")),
        (("--help",), ("default: 30", "default: 5")),
    ],
)
def test_help_shows_the_defaults(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], defaults: tuple[str, ...]
) -> None:
    """Every --help names the default of each option."""
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    flat = " ".join(out.split())
    for default in defaults:
        assert default in flat, default
    assert "SUPPRESS" not in out


_PROBE = """
import sys
from automation_sdk._cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("aiohttp", "cattrs", "tenacity", "asyncio", "yarl", "multidict")
    or m in ("automation_sdk._client", "automation_sdk.emulator._emulator")
)
print(" ".join(heavy) or "-", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("runs", "watch", "--help")])
def test_help_and_version_import_no_sdk_and_no_server(argv: tuple[str, ...]) -> None:
    """--help and --version import neither aiohttp, cattrs, asyncio nor the SDK's client."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    assert proc.stderr.strip().splitlines()[-1] == "-", proc.stderr
    if argv == ("--version",):
        assert proc.stdout.strip() == f"automation-sdk {__version__}"


def test_a_server_error_not_retried_names_the_option_not_the_policy(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 500 after --retries 1 says --retries allowed one try, and names no Python argument."""
    mock.get(ANY_URL, status=500, payload={"detail": "boom"}, repeat=True)
    code, _, err = cli(capsys, *GET, "--retries", "1")
    assert_one_line(err, code, 3)
    assert "it was not retried (--retries 1 allows a single try)" in err
    assert "retry policy" not in err.lower()
    assert "was retried" not in err


def test_a_server_error_retried_in_vain_names_the_option(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 on every try says --retries was used up, and how many tries there were."""
    monkeypatch.setattr("automation_sdk._clock.SystemClock.sleep", _no_sleep)
    mock.get(ANY_URL, status=500, payload={"detail": "boom"}, repeat=True)
    code, _, err = cli(capsys, *GET, "--retries", "2")
    assert_one_line(err, code, 3)
    assert "on every try --retries allows" in err
    assert "Gave up after 2 tries" in err


def test_a_request_timeout_names_the_option(
    api: None, mock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A request that timed out points at --request-timeout, not at the client's arguments."""
    mock.get(ANY_URL, exception=TimeoutError(), repeat=True)
    code, _, err = cli(capsys, *GET, "--retries", "1")
    assert_one_line(err, code, 3)
    assert "raise --request-timeout" in err
    assert "client's timeout" not in err


def test_every_python_phrase_the_cli_rewrites_is_still_said_by_the_sdk() -> None:
    """Each piece of advice the command line rewrites still stands in the SDK's source."""
    from automation_sdk import _cli

    source = "".join(
        " ".join(p.read_text(encoding="utf-8").split())
        for p in Path(_cli.__file__).parent.glob("*.py")
        if p.name != "_cli.py"
    )
    for python, _ in _cli._CLI_ADVICE:
        assert " ".join(python.split()) in source.replace('" "', ""), python


async def _no_sleep(self: object, seconds: float) -> None:
    """A clock sleep that returns at once."""
