"""The :class:`Emulator`: an aiohttp server bound to 127.0.0.1, started and stopped."""

from __future__ import annotations

import math
import random
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from aiohttp import web

from .._clock import Clock, SystemClock
from ._admin import RecordedTransition, admin_routes, history
from ._app import Api, RecordedRequest
from ._defaults import DEFAULT_ORGANISATION_ID, DEFAULT_STEP_DURATION, DEFAULT_TOKEN
from ._durations import StepDurations
from ._engine import Engine
from ._faults import Faults

__all__ = [
    "DEFAULT_ORGANISATION_ID",
    "DEFAULT_STEP_DURATION",
    "DEFAULT_TOKEN",
    "Emulator",
]


def _id_maker(seed: int | None) -> Callable[[], uuid.UUID]:
    if seed is None:
        return uuid.uuid4
    rng = random.Random(f"automation-sdk-emulator-ids:{seed}")
    return lambda: uuid.UUID(int=rng.getrandbits(128), version=4)


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class Emulator:
    """A local, in-memory Automation API server, faithful to the contract.

    Use it as an async context manager (or :meth:`start` / :meth:`aclose`)::

        async with Emulator(token="test", clock=FakeClock()) as emu:
            client = AutomationClient("test", base_url=emu.url)

    Runs advance lazily on the emulator's clock: each request that reads or
    touches a run first applies every transition due by ``clock.monotonic()``,
    so a :class:`~automation_sdk.testing.FakeClock` makes it deterministic.

    Args:
        token: The one API token accepted (``Authorization: Bearer <token>``
            or ``Api-key: <token>``).
        host: The address to listen on.
        port: The port; 0 picks a free one (read it back from :attr:`url`).
        step_duration: Seconds each step takes, and a run's NEW -> RUNNING
            delay; or a :class:`StepDurations` to draw them from a distribution.
        seed: Seeds the fault draws, the step durations drawn and the server's
            ids; None for random ones.
        clock: Where time comes from; the real clock by default.
        faults: The faults to inject; none by default.
        organisation_id: The organisation of every automation.
        epoch: The wall time the clock's first reading maps to (``created_at``
            and ``updated_at`` are ``epoch`` plus elapsed clock time); now by default.
        updated_at_on_steps: Whether a run's ``updated_at`` (in its summary and
            its snapshot) moves when only one of its steps changes, as by
            default; with False it moves only when the run's own status
            changes. The contract leaves this open: test both.

    Besides the API, it serves ``GET /_emulator/stats`` (:attr:`request_counts`
    and the clock) and ``GET /_emulator/history`` (:meth:`history`), without
    authentication; these are not counted.

    Raises:
        ValueError: an empty token, a negative step duration or a bad port.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        step_duration: float | StepDurations = DEFAULT_STEP_DURATION,
        seed: int | None = None,
        clock: Clock | None = None,
        faults: Faults | None = None,
        organisation_id: str = DEFAULT_ORGANISATION_ID,
        epoch: datetime | None = None,
        updated_at_on_steps: bool = True,
    ) -> None:
        if not token or token != token.strip():
            raise ValueError(
                f"Emulator token must be a non-empty string without spaces, got {token!r}"
            )
        if not isinstance(step_duration, StepDurations):
            if not (step_duration >= 0 and math.isfinite(step_duration)):
                raise ValueError(
                    f"Emulator step_duration must be finite and >= 0 seconds, got {step_duration!r}"
                )
            step_duration = StepDurations.fixed(step_duration)
        if not 0 <= port <= 65535:
            raise ValueError(f"Emulator port must be from 0 to 65535, got {port!r}")
        self._host = host
        self._port = port
        self._clock: Clock = clock if clock is not None else SystemClock()
        start = epoch if epoch is not None else datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._engine = Engine(
            clock=self._clock,
            durations=step_duration,
            rng=random.Random(
                None if seed is None else f"automation-sdk-emulator-durations:{seed}"
            ),
            epoch=start.astimezone(UTC),
            organisation_id=organisation_id,
            new_id=_id_maker(seed),
            updated_at_on_steps=updated_at_on_steps,
        )
        self._api = Api(
            engine=self._engine,
            token=token,
            faults=faults if faults is not None else Faults(),
            rng=random.Random(seed),
            clock=self._clock,
        )
        self._durations = step_duration
        self._runner: web.AppRunner | None = None
        self._closed = False
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (once started).

        Raises:
            RuntimeError: the emulator is not running.
        """
        if self._url is None:
            raise RuntimeError("the Emulator is not running: use `async with` or await start()")
        return self._url

    @property
    def token(self) -> str:
        """The API token the emulator accepts."""
        return self._api.token

    @property
    def clock(self) -> Clock:
        """The clock runs advance on."""
        return self._clock

    @property
    def faults(self) -> Faults:
        """The faults injected from now on; assign a new :class:`Faults` to change them."""
        return self._api.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._api.faults = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order, as ``(method, path, status, faults)``.

        The list is live: tests may ``clear()`` it between phases.
        """
        return self._api.requests

    @property
    def step_duration(self) -> StepDurations:
        """How long steps take (a fixed ``step_duration`` as :meth:`StepDurations.fixed`)."""
        return self._durations

    @property
    def updated_at_on_steps(self) -> bool:
        """Whether a step's change alone moves its run's ``updated_at``."""
        return self._engine.updated_at_on_steps

    @property
    def request_counts(self) -> dict[str, int]:
        """How many requests each route received, faulted ones included, by method and template.

        Keys look like ``"GET /automations/{automation_id}/sessions/{session_id}/"``;
        a path matching no route counts as ``"GET (no route)"``. A copy: it
        does not change afterwards. Served as ``requests`` by ``GET /_emulator/stats``.
        """
        return dict(sorted(self._api.counts.items()))

    def history(self, run_id: uuid.UUID | None = None) -> list[RecordedTransition]:
        """Every status a run and its steps took, with the server's time, in order.

        Runs are first brought up to date, so that the history is complete up
        to now. One entry per change: the run's creation (``NEW``), each step
        when reached and at each status change, the run at each status change;
        within one instant the steps come before the run, as a watch delivers
        them. Served as JSON by ``GET /_emulator/history[?run_id=ID]``.

        Args:
            run_id: One run's history; all runs', run by run, when None.

        Raises:
            KeyError: no run has this id.
        """
        return history(self._engine, run_id)

    @property
    def automation_count(self) -> int:
        """How many automations exist."""
        return len(self._engine.automations)

    @property
    def run_count(self) -> int:
        """How many runs (automation sessions) exist, over all automations."""
        return sum(len(a.runs) for a in self._engine.automations.values())

    async def start(self) -> None:
        """Start listening; does nothing when already running.

        Raises:
            RuntimeError: the emulator was closed (make a new one instead).
            OSError: the address cannot be bound (e.g. the port is in use).
        """
        if self._closed:
            raise RuntimeError("this Emulator was closed; make a new one")
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_routes(admin_routes(self._api))
        # Every path, newlines included (an encoded %0A): "." would not match them, and
        # aiohttp's own text/plain 404 would skip the token check and the request log.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._api.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            sock = _bind(self._host, self._port)
        except BaseException:
            await runner.cleanup()
            raise
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{port}"

    async def aclose(self) -> None:
        """Stop listening and close every connection; safe to call twice."""
        self._closed = True
        runner, self._runner = self._runner, None
        self._url = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = self._url or "not running"
        return f"<Emulator {where} automations={self.automation_count} runs={self.run_count}>"
