"""The HTTP face of the emulator: routes, authentication, errors and faults.

One catch-all aiohttp handler dispatches on its own route table, so that every
answer has FastAPI's shape and order of checks:

1. no route for the path: 307 to the path with the trailing slash toggled
   when that one exists (Starlette's ``redirect_slashes``), else 404
   ``{"detail": "Not Found"}``;
2. a route but not for this method: 405 ``{"detail": "Method Not Allowed"}``
   with ``Allow``;
3. 401 without a valid ``Authorization: Bearer <token>`` or ``Api-key``
   header, or with a ``Current-Org-Id`` other than the emulator's;
4. 422 for a malformed UUID in the path or a bad body;
5. 404 for an unknown automation or session; 409 for a state conflict.

Faults are drawn before all that (see :mod:`._faults`).
"""

from __future__ import annotations

import hmac
import json
import random
import re
import uuid
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from aiohttp import web
from attrs import evolve, field, frozen

from .. import _paths
from .._clock import Clock
from . import _validate
from ._engine import AutomationRecord, Conflict, Engine, RunRecord
from ._faults import NO_FAULT, Faults, draw, error_page, retry_after_header
from ._validate import ValidationFailed

__all__ = ["Api", "RecordedRequest"]

_SNAPSHOTS_KEPT: Final = 64
NO_ROUTE: Final = "(no route)"
"""The template counted for a path that matches no route."""


class RecordedRequest(NamedTuple):
    """One request the emulator received, as logged in :attr:`Emulator.requests`."""

    method: str
    """The HTTP method."""
    path: str
    """The URL path (no query string)."""
    status: int | None
    """The status answered, or None when the connection was dropped."""
    faults: tuple[str, ...] = ()
    """The faults applied: ``"error"``, ``"rate_limit"``, ``"drop"``, ``"stale"``,
    ``"truncate"``, ``"slow"``."""


@frozen(kw_only=True)
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(factory=dict)
    run_id: uuid.UUID | None = None
    """Set when the body is one session: the snapshot can be replayed as stale."""
    stamp: int = 0
    """The run's ``updated`` stamp when ``run_id`` is set."""
    stale_ok: bool = False
    """Whether a stale snapshot may replace this answer (GET of one session)."""


def _dump(value: Any) -> bytes:
    # FastAPI's JSONResponse rendering.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json(status: int, value: Any, **kwargs: Any) -> _Answer:
    return _Answer(status=status, body=_dump(value), **kwargs)


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> _Answer:
    return _json(status, {"detail": detail}, headers=headers or {})


class _NotFound(Exception):
    pass


_Handler = Callable[[dict[str, str], bytes, str | None], _Answer]


class _Route(NamedTuple):
    template: str
    pattern: re.Pattern[str]
    handlers: dict[str, _Handler]


def _compile(template: str) -> re.Pattern[str]:
    # Matched with fullmatch: "$" would also match before a trailing newline.
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))


class Api:
    """The request handler: routes, auth, validation, faults and the request log.

    Args:
        engine: The state and its rules.
        token: The one accepted API token.
        faults: The faults to inject (:attr:`faults` can be replaced later).
        rng: Draws the faults.
        clock: Slow answers sleep on it.
    """

    def __init__(
        self, *, engine: Engine, token: str, faults: Faults, rng: random.Random, clock: Clock
    ) -> None:
        self.engine = engine
        self.token = token
        self.faults = faults
        self.requests: list[RecordedRequest] = []
        self.counts: dict[str, int] = {}
        """Requests received per ``"METHOD /path/{template}/"``, faulted ones included."""
        self._rng = rng
        self._clock = clock
        self._counter = 0
        self._snapshots: dict[uuid.UUID, dict[int, bytes]] = {}
        self._summaries: dict[uuid.UUID, tuple[int, bytes]] = {}
        # Every path the emulator serves: the SDK's own templates, so that a
        # correction to an inferred path in _paths.py moves both sides at once.
        table: dict[str, dict[str, _Handler]] = {
            _paths.AUTOMATIONS: {"POST": self._create_automation},
            _paths.AUTOMATION: {"GET": self._get_automation},
            _paths.RUNS: {"POST": self._create_run, "GET": self._list_runs},
            _paths.RUN: {"GET": self._get_run},
            _paths.RUN_CANCEL: {"PATCH": self._cancel},
            _paths.RUN_USER_INPUT: {"POST": self._user_input},
        }
        self._routes = [_Route(path, _compile(path), handlers) for path, handlers in table.items()]

    # -- the entry point ---------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request (aiohttp handler for every path and method)."""
        method, path = request.method, request.path
        matched = self._match(path)
        key = f"{method} {matched[0].template if matched is not None else NO_ROUTE}"
        self.counts[key] = self.counts.get(key, 0) + 1
        faults = self.faults
        fault = draw(faults, self._rng) if faults.applies_to(method) else NO_FAULT
        applied: list[str] = []
        if fault.slow:
            applied.append("slow")
            await self._clock.sleep(faults.slow_seconds)
        if fault.kind == "error":
            applied.append("error")
            status, content_type, body, headers = error_page(fault.variant, faults.retry_after)
            answer = _Answer(status=status, body=body, content_type=content_type, headers=headers)
        elif fault.kind == "rate_limit":
            applied.append("rate_limit")
            answer = _detail(429, "Too Many Requests", retry_after_header(faults.retry_after))
        else:
            raw = await request.read()
            answer = self._route(request, raw)
            if fault.kind == "drop":
                applied.append("drop")
                self.requests.append(RecordedRequest(method, path, None, tuple(applied)))
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=answer.status)
            older = None
            if fault.kind == "stale" and answer.stale_ok:
                older = self._older_snapshot(answer, fault.variant)
            if older is not None:
                applied.append("stale")
                answer = evolve(answer, body=older)
            elif answer.run_id is not None and answer.status < 300:
                self._remember(answer)
            if fault.kind == "truncate" and answer.status == 200 and len(answer.body) > 1:
                applied.append("truncate")
                cut = 1 + int(fault.variant * (len(answer.body) - 1))
                answer = evolve(answer, body=answer.body[:cut])
        self.requests.append(RecordedRequest(method, path, answer.status, tuple(applied)))
        return self._response(answer)

    def _response(self, answer: _Answer) -> web.Response:
        self._counter += 1
        headers = {"x-request-id": f"emu-{self._counter:06d}", **answer.headers}
        if answer.status == 307:
            return web.Response(status=307, headers=headers)
        return web.Response(
            status=answer.status,
            body=answer.body,
            content_type=answer.content_type,
            headers=headers,
        )

    def _remember(self, answer: _Answer) -> None:
        assert answer.run_id is not None
        kept = self._snapshots.setdefault(answer.run_id, {})
        kept[answer.stamp] = answer.body
        while len(kept) > _SNAPSHOTS_KEPT:
            del kept[min(kept)]

    def _older_snapshot(self, answer: _Answer, variant: float) -> bytes | None:
        assert answer.run_id is not None
        kept = self._snapshots.get(answer.run_id, {})
        older = [body for stamp, body in sorted(kept.items()) if stamp < answer.stamp]
        if not older:
            return None
        return older[int(variant * len(older))]

    # -- routing, auth, errors ----------------------------------------------

    def _match(self, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is not None:
                return route, found.groupdict()
        return None

    def _route(self, request: web.Request, raw: bytes) -> _Answer:
        path = request.path
        matched = self._match(path)
        if matched is None:
            other = path[:-1] if path.endswith("/") else path + "/"
            if path != "/" and self._match(other) is not None:
                location = request.url.with_path(other).with_query(request.url.query)
                return _Answer(status=307, headers={"Location": str(location)})
            return _detail(404, "Not Found")
        route, params = matched
        handlers = dict(route.handlers)
        if "GET" in handlers:
            handlers["HEAD"] = handlers["GET"]
        handler = handlers.get(request.method)
        if handler is None:
            return _detail(405, "Method Not Allowed", {"Allow": ", ".join(sorted(handlers))})
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        try:
            return handler(params, raw, request.headers.get("Content-Type"))
        except ValidationFailed as exc:
            return _json(422, {"detail": exc.problems})
        except _NotFound as exc:
            return _detail(404, str(exc))
        except Conflict as exc:
            return _detail(409, str(exc))

    def _authenticate(self, request: web.Request) -> _Answer | None:
        challenge = {"WWW-Authenticate": "Bearer"}
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else ""
        token = token or request.headers.get("Api-key", "").strip()
        if not token:
            return _detail(401, "Not authenticated", challenge)
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return _detail(401, "Invalid API key", challenge)
        org = request.headers.get("Current-Org-Id")
        if org is not None and org != self.engine.organisation_id:
            return _detail(
                401,
                f"The API key is not valid for organisation {org!r} "
                f"(the emulator's organisation is {self.engine.organisation_id!r})",
            )
        return None

    # -- lookups -------------------------------------------------------------

    def _automation(self, params: dict[str, str]) -> AutomationRecord:
        automation_id = _validate.path_ids(params)["automation_id"]
        automation = self.engine.automations.get(automation_id)
        if automation is None:
            raise _NotFound(f"Automation {automation_id} not found")
        return automation

    def _run(self, params: dict[str, str]) -> RunRecord:
        session_id = _validate.path_ids(params)["session_id"]
        automation = self._automation(params)
        run = automation.runs.get(session_id)
        if run is None:
            raise _NotFound(f"Session {session_id} of automation {automation.id} not found")
        self.engine.advance(run)
        return run

    def _session(self, status: int, run: RunRecord, *, stale_ok: bool = False) -> _Answer:
        return _json(
            status,
            self.engine.run_json(run),
            run_id=run.id,
            stamp=run.updated,
            stale_ok=stale_ok,
        )

    # -- endpoints -----------------------------------------------------------

    def _create_automation(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        spec = _validate.automation_create(_validate.parse_body(raw, ctype))
        automation = self.engine.create_automation(spec)
        return _json(201, self.engine.automation_json(automation, sessions=False))

    def _get_automation(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        automation = self._automation(params)
        engine = self.engine
        for run in automation.runs.values():
            engine.advance(run)
        # The same bytes as dumping automation_json(sessions=True), with each
        # summary's JSON kept until the run's updated_at moves: 2.2 ms instead
        # of 14 ms for 2,000 runs.
        head = _dump(engine.automation_json(automation, sessions=False))
        sessions = b",".join([self._summary(run) for run in automation.runs.values()])
        return _Answer(status=200, body=head[:-1] + b',"sessions":[' + sessions + b"]}")

    def _summary(self, run: RunRecord) -> bytes:
        cached = self._summaries.get(run.id)
        if cached is None or cached[0] != run.shown:
            cached = (run.shown, _dump(self.engine.summary_json(run)))
            self._summaries[run.id] = cached
        return cached[1]

    def _create_run(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        _validate.path_ids(params)
        inputs = _validate.session_create(_validate.parse_body(raw, ctype))
        run = self.engine.create_run(self._automation(params), inputs)
        return self._session(201, run)

    def _list_runs(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        automation = self._automation(params)
        for run in automation.runs.values():
            self.engine.advance(run)
        return _json(200, [self.engine.run_json(run) for run in automation.runs.values()])

    def _get_run(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        return self._session(200, self._run(params), stale_ok=True)

    def _cancel(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        run = self._run(params)
        self.engine.cancel(run)
        return self._session(200, run)

    def _user_input(self, params: dict[str, str], raw: bytes, ctype: str | None) -> _Answer:
        _validate.path_ids(params)
        text = _validate.user_input(_validate.parse_body(raw, ctype))
        run = self._run(params)
        self.engine.submit_input(run, text)
        return self._session(200, run)
