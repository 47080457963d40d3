"""Starting and stopping the emulator, in process and as ``python -m automation_sdk.emulator``."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

import automation_sdk.emulator as emulator_pkg
from automation_sdk.emulator import (
    Emulator,
    Faults,
    StepDurations,
    add_arguments,
    banner,
    main,
    serve,
)

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_documented() -> None:
    """``__all__`` is sorted and every public object has a docstring."""
    names = emulator_pkg.__all__
    assert list(names) == sorted(names)
    for name in names:
        obj = getattr(emulator_pkg, name)
        if callable(obj):
            assert obj.__doc__, name


async def test_url_needs_a_running_emulator() -> None:
    """``url`` raises before start and after close."""
    emu = Emulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.url
    await emu.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
    await emu.aclose()
    with pytest.raises(RuntimeError):
        _ = emu.url


async def test_start_and_aclose_are_idempotent() -> None:
    """A second start is a no-op, aclose can be called twice, a closed emulator cannot restart."""
    emu = Emulator()
    await emu.start()
    url = emu.url
    await emu.start()
    assert emu.url == url
    await emu.aclose()
    await emu.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await emu.start()


async def test_closed_emulator_refuses_connections() -> None:
    """After aclose the port no longer answers."""
    async with Emulator() as emu:
        url = emu.url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/automations/")


async def test_busy_port_raises_oserror() -> None:
    """Starting on a port already in use raises OSError and leaks nothing."""
    async with Emulator() as first:
        port = int(first.url.rsplit(":", 1)[1])
        second = Emulator(port=port)
        with pytest.raises(OSError, match=r"[Aa]ddress"):
            await second.start()


@pytest.mark.parametrize(
    "kwargs",
    [{"token": ""}, {"token": " spaced "}, {"step_duration": -1.0}, {"port": 70000}],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    """An empty token, a negative step duration or an impossible port raise ValueError."""
    with pytest.raises(ValueError, match="Emulator"):
        Emulator(**kwargs)  # type: ignore[arg-type]


async def test_serve_runs_until_cancelled() -> None:
    """``serve`` listens, calls ``ready`` with the emulator, and stops when cancelled."""
    started: asyncio.Future[Emulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(port=0, token="T", ready=started.set_result))
    emu = await asyncio.wait_for(started, 5)
    assert banner(emu) == f"Automation API emulator listening on {emu.url} (token: ***)"
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.url + "/automations/x/", headers={"Authorization": "Bearer T"}) as resp,
    ):
        assert resp.status == 422
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_add_arguments_builds_faults_options() -> None:
    """The CLI options parse ports, tokens and fault rates."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--port", "9000", "--token", "T", "--drop-rate", "0.1", "--fault-methods", "GET,POST"]
    )
    assert (args.port, args.token, args.drop_rate, args.fault_methods) == (
        9000,
        "T",
        0.1,
        "GET,POST",
    )
    assert args.step_duration == StepDurations.fixed(0.5)
    assert args.updated_at_on_steps is True


def test_main_rejects_bad_fault_rates(capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` exits with a usage error naming the option for an impossible rate."""
    with pytest.raises(SystemExit) as exc:
        main(["--error-rate", "2"])
    assert exc.value.code == 2
    assert "argument --error-rate: expected a rate from 0 to 1" in capsys.readouterr().err


async def test_module_serves_and_stops_cleanly_on_ctrl_c() -> None:
    """``python -m automation_sdk.emulator`` prints its URL, answers, and exits 0 on SIGINT."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "automation_sdk.emulator",
        "--port",
        "0",
        "--token",
        "T",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        # A runner started in a shell's background leaves SIGINT ignored for its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+) \(token: \*\*\*\)", line)
        assert found, line
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                found.group(1) + "/automations/", headers={"Authorization": "Bearer T"}
            ) as resp,
        ):
            assert resp.status == 405
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert b"stopped" in out


def test_faults_reach_the_emulator() -> None:
    """Faults given to the emulator are the ones it reports."""
    faults = Faults(stale_rate=0.5)
    assert Emulator(faults=faults).faults is faults
