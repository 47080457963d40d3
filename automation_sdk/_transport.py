"""The session layer: one aiohttp session, one request with retries, errors translated.

This is the only module that touches aiohttp's client: every aiohttp exception
is turned into an :mod:`automation_sdk.errors` class here, with
``raise ... from``. Retries run through tenacity with the client's clock, so
that tests never wait in real time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import warnings
from collections.abc import Mapping
from typing import Final

import aiohttp
from attrs import frozen
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from . import _body, _paths
from ._clock import Clock
from ._redact import Redactor
from ._retry import RetryPolicy, backoff, parse_retry_after, retry_after_of, should_retry
from ._status import EXCERPT, status_error
from .errors import (
    APIStatusError,
    AutomationError,
    ClientClosedError,
    EventLoopMismatchError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
    TransportError,
)

__all__ = ["DeadlineExceeded", "Response", "Transport"]

logger = logging.getLogger("automation_sdk")

_READ_CHUNK: Final = 64 * 1024


@frozen
class Response:
    """A successful answer: its status, headers and decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    data: object
    retry_after: float | None
    size: int = 0
    """The body's length in bytes, decompressed (the monitor weighs its polling plans by it)."""


class DeadlineExceeded(Exception):
    """The caller's deadline left no time for another try; ``last`` is what failed before."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__("the deadline was reached")
        self.last = last


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
        max_response_bytes: int,
    ) -> None:
        # Every argument was checked by automation_sdk._config (the client calls it).
        self.base_url = base_url.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self.timeout = float(timeout)
        self.retry = retry
        self.clock = clock
        self._token = token
        self._redactor = Redactor(token)
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
        """``text`` with every occurrence of the token replaced, however it is escaped."""
        return self._redactor.text(text)

    def scrub(self, exc: AutomationError) -> AutomationError:
        """``exc`` with the token redacted from every text field (in place)."""
        return self._redactor.error(exc)

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
                            self._get_session(),
                            method,
                            path,
                            url,
                            json_body,
                            timeout,
                            tries,
                            policy,
                            idempotent,
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
        tries: int,
        policy: RetryPolicy,
        idempotent: bool,
    ) -> Response:
        try:
            return await self._send(
                session, method, path, url, json_body, timeout, tries, policy, idempotent
            )
        except AutomationError as exc:
            # The one place every error from a request passes: nothing leaves with the token.
            self.scrub(exc)
            raise

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        url: str,
        json_body: object,
        timeout: float,
        tries: int,
        policy: RetryPolicy,
        idempotent: bool,
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
                status = resp.status
                headers = {k: v for k, v in resp.headers.items()}
                retry_after = parse_retry_after(resp.headers.get(_paths.HEADER_RETRY_AFTER))
                content_type = resp.content_type
                raw = await self._read(resp, method, url)
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
        if status >= 400:
            raise status_error(
                method,
                url,
                status,
                headers,
                raw,
                retry_after=retry_after,
                base_url=self.base_url,
                tries=tries,
                policy=policy,
                idempotent=idempotent,
                redact=self.redact,
            )
        return Response(
            status=status,
            headers=headers,
            data=self._decode(method, url, status, raw, content_type),
            retry_after=retry_after,
            size=len(raw),
        )

    async def _read(self, resp: aiohttp.ClientResponse, method: str, url: str) -> bytes:
        """The body, decompressed, read in chunks; stops as soon as it passes the limit.

        aiohttp inflates a compressed body a bounded piece at a time as it is
        read, so stopping the read bounds the memory a decompression bomb can take.
        """
        limit = self.max_response_bytes
        declared = resp.content_length
        if declared is not None and declared > limit and not resp.headers.get("Content-Encoding"):
            resp.close()
            raise self._too_large(method, url, resp.status, b"")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                resp.close()  # the rest is never downloaded
                head = (chunks[0] if chunks else chunk)[:EXCERPT]
                raise self._too_large(method, url, resp.status, head)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, method: str, url: str, status: int, start: bytes) -> ResponseTooLargeError:
        limit = self.max_response_bytes
        return ResponseTooLargeError(
            f"{method} {url} answered {status} with a body larger than {_size(limit)} "
            f"(max_response_bytes={limit}); it was not read further and is not retried. "
            "If the API really sends answers that large, raise "
            "AutomationClient(max_response_bytes=...)",
            method=method,
            url=url,
            status_code=status,
            limit=limit,
            body=self.redact(_body.text_of(start))[:EXCERPT],
        )

    def _decode(self, method: str, url: str, status: int, raw: bytes, content_type: str) -> object:
        try:
            return _body.decode(raw)
        except _body.NotDecodable as exc:
            text = _body.text_of(raw)
            excerpt = self.redact(text)[:EXCERPT]
            if exc.not_json:
                what = (
                    "an empty body" if not text.strip() else f"a {content_type or 'non-JSON'} body"
                )
                message = (
                    f"{method} {url} answered {status} with {what} where JSON was expected "
                    f"(starts {excerpt[:80]!r}); the server or a proxy in front of it "
                    "sent something else than the API"
                )
                problem = f"not JSON ({content_type or 'no content type'})"
            else:
                message = (
                    f"{method} {url} answered {status} with {exc.problem}, which no answer "
                    "of the API holds; it is not retried (a retry would get the same). "
                    "The server or a proxy in front of it sent something else than the API"
                )
                problem = exc.problem
            raise ResponseValidationError(
                message,
                method=method,
                url=url,
                status_code=status,
                problems=(f"(the whole answer): {problem}",),
                body=excerpt,
                not_json=exc.not_json,
            ) from None


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _maybe_applied(method: str) -> str:
    if method == "POST":
        return "the request may have taken effect: check before sending it again; "
    return ""


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        return f"status {exc.status_code}"
    if exc is None:
        return "no error"
    return type(exc).__name__
