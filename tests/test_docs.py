"""Every code example in README.md and docs/ runs, against a local emulator, so none can rot.

How each fenced block is run:

- ``python``: executed as a script (``__name__ == "__main__"``) in a worker
  thread, so that its ``asyncio.run(main())`` gets a fresh event loop while
  the test's loop serves the emulator; ``AUTOMATION_API_TOKEN`` and
  ``AUTOMATION_BASE_URL`` point at that emulator, and nothing in the block is
  rewritten. A block that defines ``test_`` functions is a pytest module: it is
  run by pytest in a subprocess, with warnings as errors.
- ``bash`` (in docs/ only; README's are the install and CI commands, which CI
  itself runs): run by ``bash -euo pipefail`` in a temporary directory, with
  the same environment and this interpreter's scripts first on ``PATH``.
- a block right after an ``<!-- not-run: reason -->`` comment is reported as
  skipped, with the reason; other languages (``console``, ``json``, ``text``)
  are output or data, not code.

The emulator accepts the token ``"..."``: README's example passes that
placeholder explicitly, and it overrides the environment variable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from attrs import frozen

from automation_sdk.emulator import Emulator

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
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    """An emulator on the real clock with fast steps; the environment points at it."""
    async with Emulator(token=TOKEN, step_duration=STEP_DURATION, seed=7) as emu:
        monkeypatch.setenv("AUTOMATION_API_TOKEN", TOKEN)
        monkeypatch.setenv("AUTOMATION_BASE_URL", emu.url)
        monkeypatch.delenv("AUTOMATION_ORG_ID", raising=False)
        yield emu


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


async def _run_process(block: Block, cwd: Path, *argv: str) -> None:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
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


@pytest.mark.parametrize("block", BLOCKS)
async def test_example_runs(block: Block, emulator: Emulator, tmp_path: Path) -> None:
    """The example runs to its end without an error, against the emulator."""
    if block.lang == "bash":
        await _run_process(block, tmp_path, "bash", "-euo", "pipefail", "-c", block.code)
    elif re.search(r"^(async )?def test_", block.code, re.MULTILINE):
        (tmp_path / "test_example.py").write_text(block.code, encoding="utf-8")
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n",
            encoding="utf-8",
        )
        await _run_process(
            block, tmp_path, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"
        )
    else:
        await asyncio.wait_for(asyncio.to_thread(_exec_script, block), BLOCK_TIMEOUT)
