"""What the emulator tells about itself, outside the API: request counts and run histories.

Served under ``/_emulator/`` (a prefix the API never uses), without
authentication, faults or logging, so that reading them changes nothing a
client of the API can see:

- ``GET /_emulator/stats``: ``{"requests": {"GET /automations/{automation_id}/": 3, ...},
  "automations": 1, "runs": 2000, "clock": 1234.5, "now": "2026-...Z"}``;
  ``clock`` is the emulator's clock reading (``time.monotonic()`` on the real
  clock), ``now`` the wall time the API would stamp;
- ``GET /_emulator/history[?run_id=ID]``: ``{"transitions": [...]}``, one object per
  status taken by a run or one of its steps (see :class:`RecordedTransition`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from aiohttp import web

from ._app import Api
from ._engine import Engine, RunRecord

__all__ = ["ADMIN_PREFIX", "RecordedTransition", "admin_routes", "history", "stats"]

ADMIN_PREFIX: Final = "/_emulator"


class RecordedTransition(NamedTuple):
    """One status a run or one of its steps took, as :meth:`Emulator.history` lists it."""

    run_id: uuid.UUID
    """The run."""
    step_id: uuid.UUID | None
    """The step *definition's* id (as ``StepTransition.step_id``), None for the run itself."""
    step_name: str | None
    """The step's name, None for the run itself."""
    status: str
    """The status taken (the raw API value, e.g. ``"RUNNING"``)."""
    at: datetime
    """The server's time of the change (UTC), as ``updated_at`` would show it."""
    clock: float
    """The same instant on the emulator's clock (``clock.monotonic()`` seconds)."""


def _records(engine: Engine, run: RunRecord) -> list[RecordedTransition]:
    engine.advance(run)
    out = []
    for stamp, index, status in run.history:
        step = run.plan[index] if index >= 0 else None
        out.append(
            RecordedTransition(
                run_id=run.id,
                step_id=None if step is None else step.id,
                step_name=None if step is None else step.name,
                status=status,
                at=engine.epoch + timedelta(microseconds=stamp),
                clock=engine.clock_of(stamp),
            )
        )
    return out


def history(engine: Engine, run_id: uuid.UUID | None = None) -> list[RecordedTransition]:
    """Every transition of one run, or of all runs (run by run, in creation order)."""
    out: list[RecordedTransition] = []
    for automation in engine.automations.values():
        if run_id is not None:
            run = automation.runs.get(run_id)
            if run is not None:
                return _records(engine, run)
            continue
        for run in automation.runs.values():
            out.extend(_records(engine, run))
    if run_id is not None:
        raise KeyError(f"the emulator has no run {run_id}")
    return out


def stats(api: Api) -> dict[str, Any]:
    """The ``/_emulator/stats`` document."""
    engine = api.engine
    now = engine.now()
    return {
        "requests": dict(sorted(api.counts.items())),
        "automations": len(engine.automations),
        "runs": sum(len(a.runs) for a in engine.automations.values()),
        "clock": engine.clock_of(now),
        "now": engine.wall(now),
    }


def _transition_json(record: RecordedTransition) -> dict[str, Any]:
    return {
        "run_id": str(record.run_id),
        "step_id": None if record.step_id is None else str(record.step_id),
        "step_name": record.step_name,
        "status": record.status,
        "at": record.at.isoformat().replace("+00:00", "Z"),
        "clock": record.clock,
    }


def _answer(status: int, value: Any) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), content_type="application/json"
    )


def admin_routes(api: Api) -> list[web.RouteDef]:
    """The ``/_emulator/`` routes, to register before the API's catch-all route."""

    async def get_stats(request: web.Request) -> web.Response:
        return _answer(200, stats(api))

    async def get_history(request: web.Request) -> web.Response:
        run_id: uuid.UUID | None = None
        if "run_id" in request.query:
            try:
                run_id = uuid.UUID(request.query["run_id"])
            except ValueError:
                return _answer(422, {"detail": "run_id must be a UUID"})
        try:
            records = history(api.engine, run_id)
        except KeyError as exc:
            return _answer(404, {"detail": exc.args[0]})
        return _answer(200, {"transitions": [_transition_json(r) for r in records]})

    return [
        web.get(f"{ADMIN_PREFIX}/stats", get_stats),
        web.get(f"{ADMIN_PREFIX}/history", get_history),
    ]
