"""Every code example in README.md and docs/ runs, against a local emulator, so none can rot.

How each fenced block is run:

- ``python``: executed as a script (``__name__ == "__main__"``) in a worker
  thread, so that its ``asyncio.run(main())`` gets a fresh event loop while
  the test's loop serves the emulator; ``AUTOMATION_API_TOKEN`` and
  ``AUTOMATION_BASE_URL`` point at that emulator, and nothing in the block is
  rewritten. A block that defines ``test_`` functions is a pytest module: it is
  run by ``pytest.main()`` in this process, with warnings as errors. Every
  Python block must also pass ``mypy --strict``, as a user's copy would.
- ``bash`` (in docs/ only; README's are the install and CI commands, which CI
  itself runs): run by ``bash -euo pipefail`` in a temporary directory, with
  the same environment and this interpreter's scripts first on ``PATH``. The
  ``automation-sdk`` it finds first is a small shim that has this process run
  ``automation_sdk._cli.main(argv)``, with the shim's stdin, working directory
  and environment, and hands back its output and exit code: a fresh
  interpreter per command cost about 0.3 s. The console script itself is
  tested in tests/test_cli.py and tests/test_package.py.
- a block right after an ``<!-- not-run: reason -->`` comment is reported as
  skipped, with the reason; other languages (``console``, ``json``, ``text``)
  are output or data, not code.

Time is virtual: the emulator, and every client and emulator the blocks make
without a ``clock=`` (the CLI's ``demo`` too), share one :class:`FakeClock`, so
a poll interval, a backoff or a ``timeout=2`` costs no real time. Blocks run
one at a time, which is what a FakeClock needs.

The emulator accepts the token ``"..."``: README's example passes that
placeholder explicitly, and it overrides the environment variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import os
import re
import signal
import sys
import textwrap
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest
from attrs import frozen

import automation_sdk._client
import automation_sdk.emulator._emulator
from automation_sdk import AutomationClient
from automation_sdk._cli import main as cli_main
from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock

pytestmark = pytest.mark.usefixtures("one_cli_parser")  # main() in-process: one parser

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "..."
STEP_DURATION = 0.0  # runs end as soon as they are read: examples wait on nothing but polls
BLOCK_TIMEOUT = 30.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)[^\n]*$")
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.+?)\s*-->")


@frozen
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        """``file:line`` of the block's first code line, relative to the repository."""
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, with the not-run marker that precedes each, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening["indent"], opening["fence"], opening["lang"]
        j = i + 1
        while j < len(lines) and not (
            lines[j].startswith(indent)
            and lines[j].strip().startswith(fence)
            and not lines[j].strip().strip("`")
        ):
            j += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : j]
        ]
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = _NOT_RUN.search(previous)
        found.append(
            Block(
                path=path,
                line=i + 2,
                lang=lang.lower(),
                code=textwrap.dedent("\n".join(body)) + "\n",
                not_run=marker["reason"] if marker else None,
            )
        )
        i = j + 1
    return found


def _sources() -> list[Path]:
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *docs]


def _collect() -> list[object]:
    params: list[object] = []
    for path in _sources():
        for block in blocks_of(path):
            runnable = block.lang == "python" or (block.lang == "bash" and path.parent != ROOT)
            if not runnable:
                continue
            marks = [pytest.mark.skip(reason=f"not-run: {block.not_run}")] if block.not_run else []
            params.append(pytest.param(block, id=block.where, marks=marks))
    return params


BLOCKS = _collect()


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One FakeClock that every client and emulator made without a ``clock=`` uses."""
    clock = FakeClock()
    # The blocks are run as written, so the default clock is swapped where it is chosen.
    monkeypatch.setattr(automation_sdk._client, "SystemClock", lambda: clock)
    monkeypatch.setattr(automation_sdk.emulator._emulator, "SystemClock", lambda: clock)
    return clock


@pytest.fixture
async def emulator(
    monkeypatch: pytest.MonkeyPatch, virtual_time: FakeClock
) -> AsyncIterator[Emulator]:
    """An emulator on the shared virtual clock; the environment points at it."""
    async with Emulator(
        token=TOKEN, step_duration=STEP_DURATION, seed=7, clock=virtual_time
    ) as emu:
        monkeypatch.setenv("AUTOMATION_API_TOKEN", TOKEN)
        monkeypatch.setenv("AUTOMATION_BASE_URL", emu.url)
        monkeypatch.delenv("AUTOMATION_ORG_ID", raising=False)
        yield emu


# -- the command line, in-process -------------------------------------------------------------

_SHIM = r"""#!/usr/bin/env bash
# automation-sdk, run by the test process: send cwd, stdin's path, argv and the environment;
# get back the exit code and what the command wrote (head -c reads no more than it is told).
exec 3<>/dev/tcp/127.0.0.1/{port}
{{ printf '%s\0' "$PWD" "/proc/$$/fd/0" "$#" "$@"; env -0; printf '\1END\0'; }} >&3
read -r code out_size err_size <&3
head -c "$out_size" <&3
head -c "$err_size" <&3 >&2
exit "$code"
"""


class _LazyInput(io.TextIOBase):
    """The shim's stdin, opened only if the command reads it (opening a pipe can block)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._file: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._file is None:
            self._file = open(self._path, encoding="utf-8")  # noqa: SIM115 - closed in close()
        return self._file

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> str:
        return self._open().read(size)

    def readline(self, size: int | None = -1) -> str:
        return self._open().readline(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


@contextlib.contextmanager
def _as_process(cwd: str, environ: dict[str, str]) -> Iterator[None]:
    """Run the body with ``cwd`` and ``environ`` as the process's, then put them back."""
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _cli_in_process(fields: list[str]) -> tuple[int, bytes, bytes]:
    """Run ``main(argv)`` as the shim's process would; return its exit code, stdout, stderr."""
    cwd, stdin_path, argc = fields[:3]
    argv = fields[3 : 3 + int(argc)]
    environ = dict(item.split("=", 1) for item in fields[3 + int(argc) :] if "=" in item)
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    with _LazyInput(stdin_path) as stdin, _as_process(cwd, environ):
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:
            traceback.print_exc(file=stderr)
            code = 70
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
    return code, stdout.getvalue().encode(), stderr.getvalue().encode()


@pytest.fixture
async def cli_shim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    """A directory holding an ``automation-sdk`` that runs the command line in this process."""
    lock = asyncio.Lock()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readuntil(b"\x01END\x00")
        fields = data.decode().split("\x00")[:-2]
        async with lock:  # one command at a time: they share sys.stdout, os.environ, cwd
            code, out, err = await asyncio.to_thread(_cli_in_process, fields)
        writer.write(f"{code} {len(out)} {len(err)}\n".encode() + out + err)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "automation-sdk"
    shim.write_text(_SHIM.format(port=port), encoding="utf-8")
    shim.chmod(0o755)
    try:
        yield bin_dir
    finally:
        server.close()
        await server.wait_closed()


def _exec_script(block: Block) -> None:
    code = compile(block.code, block.where, "exec")
    # An example may configure logging (as the configuration page shows): undo it after.
    root, sdk = logging.getLogger(), logging.getLogger("automation_sdk")
    saved = (root.level, root.handlers[:], sdk.level, sdk.handlers[:])
    try:
        exec(code, {"__name__": "__main__", "__file__": str(block.path)})
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        sdk.setLevel(saved[2])
        sdk.handlers[:] = saved[3]


def _pytest_in_process(block: Block, tmp_path: Path) -> None:
    """Run a block of tests with pytest, in this process (a subprocess cost a second)."""
    module = f"test_example_{abs(hash(block.where)):x}"  # unique: modules stay imported
    (tmp_path / f"{module}.py").write_text(block.code, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    output = io.StringIO()
    argv = ["-q", "-p", "no:cacheprovider", "-p", "no:faulthandler", "--capture=no"]
    argv += ["--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)]
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = pytest.main(argv)
    finally:
        sys.modules.pop(module, None)
    sys.stdout.write(output.getvalue())
    assert code == 0, f"{block.where}: pytest exited {code}:\n{output.getvalue()}"


async def _run_process(block: Block, cwd: Path, *argv: str, path: tuple[Path, ...] = ()) -> None:
    env = dict(os.environ)
    first = [*map(str, path), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # so that a timeout can end the block's children too
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), BLOCK_TIMEOUT)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT:g}s")
    text = output.decode(errors="replace")
    sys.stdout.write(text)
    assert process.returncode == 0, f"{block.where} exited {process.returncode}:\n{text}"


def test_examples_were_found() -> None:
    """README and every guide page hold examples, and each page is found."""
    pages = {p.name for p in _sources()}
    assert {"README.md", "quickstart.md", "watching.md", "testing.md", "cli.md"} <= pages
    assert len(BLOCKS) >= 20


async def test_examples_run_on_virtual_time(emulator: Emulator, virtual_time: FakeClock) -> None:
    """A client or emulator made without ``clock=``, as in the examples, gets the FakeClock."""
    async with AutomationClient() as client, Emulator(token=TOKEN) as other:
        assert client.clock is virtual_time
        assert other.clock is virtual_time
    assert emulator.clock is virtual_time


def test_examples_type_check(tmp_path: Path) -> None:
    """Every Python example passes ``mypy --strict``, as a user's code that copies it must."""
    from mypy import api as mypy_api

    files = []
    for param in BLOCKS:
        block = param.values[0]  # type: ignore[attr-defined]
        if block.lang != "python" or block.not_run:
            continue
        module = re.sub(r"\W", "_", block.where)  # docs/watching.md:176 -> docs_watching_md_176
        path = tmp_path / f"{module}.py"
        path.write_text(block.code, encoding="utf-8")
        files.append(str(path))
    assert len(files) >= 20
    # The project's cache, which `mypy --strict automation_sdk` fills: 0.3 s warm, 4 s cold.
    cache = ROOT / ".mypy_cache"
    # mypy tunes the process for itself and leaves it so: it raises the recursion limit, sets
    # the garbage collector's thresholds to (200000, 30, 30) and unfreezes what was frozen
    # (conftest's pytest_collection_finish). The tests run after this one on the same worker
    # get the process back as it was.
    limit, thresholds, frozen = sys.getrecursionlimit(), gc.get_threshold(), gc.get_freeze_count()
    try:
        out, err, code = mypy_api.run(
            ["--strict", "--no-error-summary", "--cache-dir", str(cache), *files]
        )
    finally:
        sys.setrecursionlimit(limit)
        gc.set_threshold(*thresholds)
        if frozen:
            gc.collect()
            gc.freeze()
    assert code == 0, out.replace(str(tmp_path) + os.sep, "") + err


@pytest.mark.parametrize("block", BLOCKS)
async def test_example_runs(
    block: Block, emulator: Emulator, cli_shim: Path, tmp_path: Path
) -> None:
    """The example runs to its end without an error, against the emulator."""
    if block.lang == "bash":
        await _run_process(
            block, tmp_path, "bash", "-euo", "pipefail", "-c", block.code, path=(cli_shim,)
        )
    elif re.search(r"^(async )?def test_", block.code, re.MULTILINE):
        await asyncio.wait_for(
            asyncio.to_thread(_pytest_in_process, block, tmp_path), BLOCK_TIMEOUT
        )
    else:
        await asyncio.wait_for(asyncio.to_thread(_exec_script, block), BLOCK_TIMEOUT)
