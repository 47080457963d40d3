"""The session layer: one aiohttp session, one request with retries, errors translated.

This is the only module that touches aiohttp's client: every aiohttp exception
is turned into an :mod:`automation_sdk.errors` class here, with
``raise ... from``. Retries run through tenacity with the client's clock, so
that tests never wait in real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Final

import aiohttp
from attrs import frozen
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from . import _paths
from ._clock import Clock
from ._retry import RetryPolicy, backoff, retry_after_of, should_retry
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    EventLoopMismatchError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseValidationError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
    ValidationDetail,
)

__all__ = ["DeadlineExceeded", "Response", "Transport"]

logger = logging.getLogger("automation_sdk")

_EXCERPT: Final = 300
_REDACTED: Final = "[redacted]"
_STATUS_CLASSES: Final[Mapping[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
_ADVICE: Final[Mapping[int, str]] = {
    400: "Check the request's arguments.",
    401: "Check the API token (AUTOMATION_API_TOKEN) and the organisation id.",
    403: "The token is valid but may not do this; check its organisation and rights.",
    404: "Check the automation and run ids, and that they belong to this organisation.",
    409: "The object is not in a state that allows this (a run that already ended?).",
    422: "The server rejected the body; see .errors for each field.",
    429: "Too many requests; slow down or raise RetryPolicy.max_retry_after.",
}


@frozen
class Response:
    """A successful answer: its status, headers and decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    data: object
    retry_after: float | None
    size: int = 0
    """The body's length in bytes, as received (the monitor weighs its polling plans by it)."""


class DeadlineExceeded(Exception):
    """The caller's deadline left no time for another try; ``last`` is what failed before."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__("the deadline was reached")
        self.last = last


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


class Transport:
    """Sends requests to one base URL with one token, one session and one retry policy."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        org_id: str | None,
        timeout: float,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None,
        headers: Mapping[str, str] | None,
        clock: Clock,
        user_agent: str,
    ) -> None:
        # Every argument was checked by automation_sdk._config (the client calls it).
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.retry = retry
        self.clock = clock
        self._token = token
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._rng = random.Random()
        merged = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        merged.setdefault(_paths.HEADER_USER_AGENT, user_agent)
        merged[_paths.HEADER_ACCEPT] = "application/json"
        merged[_paths.HEADER_AUTHORIZATION] = f"Bearer {token}"
        if org_id:
            merged[_paths.HEADER_ORG_ID] = org_id
        self._headers = merged

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        """The session, after checking that it can still be used from this loop."""
        if self._closed:
            raise ClientClosedError(
                "this AutomationClient is closed; create a new one (a closed client cannot reopen)"
            )
        # aiohttp binds a session to the loop it first runs on; another loop gets
        # "Event loop is closed" or a hang from deep inside aiohttp, so check first.
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            state = "now closed" if self._loop.is_closed() else "still running"
            raise EventLoopMismatchError(
                "this AutomationClient was first used on another event loop (one that is "
                f"{state}), and its HTTP session works on that loop only. Create one client "
                "per event loop, inside it: e.g. 'async with AutomationClient() as client:' "
                "inside the coroutine you pass to asyncio.run() (or inside each Celery task), "
                "not at module level"
            )
        if self._session is None:
            # Created on first use, so it binds to the loop that uses it.
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            if self._owns_session:
                raise ClientClosedError(
                    "this AutomationClient's HTTP session was closed; create a new client"
                )
            raise ClientClosedError(
                "the aiohttp session this AutomationClient borrows (session=...) was closed by "
                "its owner; keep it open while the client is in use, or let the client own "
                "its session (omit session=)"
            )
        return self._session

    def _closed_during(self, method: str, url: str) -> ClientClosedError | None:
        """The error for a try that failed because the client was closed meanwhile, if so."""
        session = self._session
        if not self._closed and (session is None or not session.closed):
            return None
        whom = "client was closed (aclose())" if self._closed else "borrowed session was closed"
        return ClientClosedError(
            f"{method} {url} was cut short: the {whom} while it was in flight. "
            "Close the client only after its requests and watches are done (or cancel "
            "them first)" + ("; the request may have taken effect" if method == "POST" else "")
        )

    async def open(self) -> None:
        """Create the owned session now (inside the running loop)."""
        self._get_session()

    async def aclose(self) -> None:
        """Close the owned session; a borrowed one is left open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    def warn_if_unclosed(self, owner: object) -> None:
        """Warn when an owned session was opened and never closed (called from ``__del__``)."""
        session = self._session
        if self._owns_session and not self._closed and session is not None and not session.closed:
            warnings.warn(
                f"{owner!r} was never closed; use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=3,
            )

    # -- requests ----------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the token replaced."""
        return text.replace(self._token, _REDACTED) if self._token else text

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        idempotent: bool,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send one request, retrying as the policy allows, and return the decoded answer.

        Args:
            method: The HTTP method.
            path: The path, from :mod:`automation_sdk._paths`.
            json_body: The JSON body, if any.
            idempotent: Whether a retry is safe even if the server acted on the request.
            deadline: A reading of the client's clock after which no try may
                still be running and no wait may end; each try's timeout is
                clipped to it. When no time is left, :class:`DeadlineExceeded`.
            retry: Overrides the client's policy for this request.

        Raises:
            APIStatusError: the server answered with an error status.
            TransportError: no usable answer.
            ResponseValidationError: the answer was not JSON.
            DeadlineExceeded: only when ``deadline`` is given.
        """
        policy = retry or self.retry
        self._get_session()  # a closed client or a wrong loop fails before any try
        url = self.base_url + path

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= policy.attempts:
                return True
            return deadline is not None and (
                self.clock.monotonic() + state.upcoming_sleep >= deadline
            )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = retry_after_of(exc) if exc else None
            return backoff(policy, state.attempt_number, after, self._rng)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.debug(
                "%s %s failed (%s); try %d of %d in %.2fs",
                method,
                path,
                _describe(exc),
                state.attempt_number + 1,
                policy.attempts,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(
                lambda exc: should_retry(exc, idempotent=idempotent, policy=policy)
            ),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        last: BaseException | None = None
        tries = 0
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    timeout = self.timeout
                    if deadline is not None:
                        timeout = min(timeout, deadline - self.clock.monotonic())
                        if timeout <= 0:
                            raise DeadlineExceeded(last)
                    try:
                        return await self._once(
                            self._get_session(), method, path, url, json_body, timeout
                        )
                    except Exception as exc:
                        last = exc
                        closed = self._closed_during(method, url)
                        if closed is not None:
                            raise closed from exc
                        raise
        except (APIStatusError, TransportError, ResponseValidationError) as exc:
            if (
                deadline is not None
                and should_retry(exc, idempotent=idempotent, policy=policy)
                and tries < policy.attempts
            ):
                # Retries were cut short by the deadline, not exhausted.
                raise DeadlineExceeded(exc) from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        url: str,
        json_body: object,
        timeout: float,
    ) -> Response:
        where = f"{method} {url}"
        try:
            async with session.request(
                method,
                url,
                json=json_body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                max_redirects=3,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                headers = {k: v for k, v in resp.headers.items()}
                content_type = resp.content_type
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # The connection was never made: the server cannot have seen the request.
            raise TransportError(
                f"{where} could not connect ({type(exc).__name__}: {self.redact(str(exc))}); "
                "check the base URL and the network",
                method=method,
                url=url,
            ) from exc
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"{where} got no complete answer within {timeout:.3g}s; "
                + _maybe_applied(method)
                + "raise the client's timeout if the server is just slow",
                method=method,
                url=url,
                may_have_taken_effect=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"{where} failed before a complete answer ({type(exc).__name__}: "
                f"{self.redact(str(exc))}); " + _maybe_applied(method) + "try again later",
                method=method,
                url=url,
                may_have_taken_effect=True,
            ) from exc
        logger.debug("%s %s -> %d", method, path, status)
        retry_after = parse_retry_after(headers.get(_paths.HEADER_RETRY_AFTER))
        if status >= 400:
            raise self._status_error(method, url, status, headers, raw, retry_after)
        return Response(
            status=status,
            headers=headers,
            data=self._decode(method, url, status, raw, content_type),
            retry_after=retry_after,
            size=len(raw),
        )

    def _decode(self, method: str, url: str, status: int, raw: bytes, content_type: str) -> object:
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            excerpt = self.redact(text[:_EXCERPT])
            what = "an empty body" if not text.strip() else f"a {content_type or 'non-JSON'} body"
            exc = ResponseValidationError(
                f"{method} {url} answered {status} with {what} where JSON was expected "
                f"(starts {excerpt[:80]!r}); the server or a proxy in front of it "
                "sent something else than the API",
                method=method,
                url=url,
                status_code=status,
                problems=(f"(the whole answer): not JSON ({content_type or 'no content type'})",),
                body=excerpt,
            )
            exc._garbled = True  # type: ignore[attr-defined]
            raise exc from None

    def _status_error(
        self,
        method: str,
        url: str,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        retry_after: float | None,
    ) -> APIStatusError:
        text = self.redact(raw.decode("utf-8", errors="replace"))
        body: object
        try:
            body = json.loads(text)
        except ValueError:
            body = text[:_EXCERPT]
        detail_value = body.get("detail") if isinstance(body, dict) else None
        errors: tuple[ValidationDetail, ...] = ()
        if isinstance(detail_value, list):
            errors = tuple(_validation_detail(item) for item in detail_value)
            detail = "; ".join(_format_detail(e) for e in errors) or None
        elif isinstance(detail_value, str):
            detail = detail_value
        elif detail_value is not None:
            detail = json.dumps(detail_value)[:_EXCERPT]
        else:
            # An HTML page from a proxy: one line of its text, not its layout.
            detail = " ".join(text.split())[:_EXCERPT] or None
        cls = _STATUS_CLASSES.get(status) or (ServerError if status >= 500 else APIStatusError)
        applied = method == "POST" and status >= 500
        reason = _reason(status)
        message = f"{method} {url} answered {status} {reason}".rstrip()
        if detail:
            message += f": {detail}"
        advice = _ADVICE.get(status)
        if status >= 500:
            advice = "The server failed; " + (
                "the request may have taken effect: check before sending it again."
                if applied
                else "it was retried as the retry policy allows; try again later."
            )
        if retry_after is not None:
            message += f" (Retry-After: {retry_after:.3g}s)"
        if advice:
            message += f". {advice}"
        request_id = next(
            (headers[h] for h in headers if h.lower() in _paths.REQUEST_ID_HEADERS), None
        )
        exc = cls(
            message,
            method=method,
            url=url,
            status_code=status,
            detail=detail,
            body=body,
            request_id=request_id,
            headers=headers,
            may_have_taken_effect=applied,
        )
        if isinstance(exc, UnprocessableEntityError):
            exc.errors = errors
        if isinstance(exc, RateLimitError | ServerError):
            exc.retry_after = retry_after
        return exc


def _maybe_applied(method: str) -> str:
    if method == "POST":
        return "the request may have taken effect: check before sending it again; "
    return ""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _validation_detail(item: object) -> ValidationDetail:
    if not isinstance(item, dict):
        return ValidationDetail(loc=(), msg=str(item)[:_EXCERPT], type="")
    loc = item.get("loc")
    loc_items = tuple(x for x in loc if isinstance(x, str | int)) if isinstance(loc, list) else ()
    msg, kind = item.get("msg"), item.get("type")
    return ValidationDetail(
        loc=loc_items,
        msg=msg if isinstance(msg, str) else "",
        type=kind if isinstance(kind, str) else "",
    )


def _format_detail(detail: ValidationDetail) -> str:
    where = ".".join(str(x) for x in detail.loc)
    return f"{where}: {detail.msg}" if where else detail.msg


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        return f"status {exc.status_code}"
    if exc is None:
        return "no error"
    return type(exc).__name__
