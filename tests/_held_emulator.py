"""The emulator in its own process, on a clock that only the test moves.

``python _held_emulator.py TOKEN STEP_DURATION SEED`` serves the emulator
(``automation_sdk.emulator.Emulator``) on a :class:`~automation_sdk.testing.FakeClock`,
and beside it, on another port of 127.0.0.1, ``POST /advance?seconds=S``, which
moves that clock forward and answers the new reading. It prints
``listening on URL`` and ``clock on URL``, then serves until killed.

A run's states then last until the test moves the clock, however slow the
processes watching them are: tests/test_distributed.py waits until every
worker has published a state before it lets the next one come.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import web

from automation_sdk.emulator import Emulator
from automation_sdk.testing import FakeClock


async def main(token: str, step_duration: float, seed: int) -> None:
    clock = FakeClock()

    async def advance(request: web.Request) -> web.Response:
        clock.advance(float(request.query["seconds"]))
        return web.json_response({"clock": clock.monotonic()})

    app = web.Application()
    app.router.add_post("/advance", advance)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    port = sock.getsockname()[1]
    try:
        async with Emulator(
            token=token, step_duration=step_duration, seed=seed, clock=clock
        ) as emulator:
            print(f"listening on {emulator.url}", flush=True)
            print(f"clock on http://127.0.0.1:{port}", flush=True)
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
