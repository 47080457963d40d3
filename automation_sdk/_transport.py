"""The session layer: one aiohttp session, one request with retries, errors translated.

This is the only module that touches aiohttp's client: every aiohttp exception
is turned into an :mod:`automation_sdk.errors` class here, with
``raise ... from``. Retries run through tenacity with the client's clock, so
that tests never wait in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from collections.abc import Coroutine, Mapping
from ssl import SSLContext
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from attrs import frozen
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from yarl import URL

from . import _body, _otel, _paths
from ._clock import Clock
from ._config import Timeout
from ._observe import Hooks, Observer
from ._redact import Redactor
from ._retry import RetryPolicy, parse_retry_after, retry_stop, retry_wait, should_retry
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

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

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


class _Shared:
    """The HTTP session and the event loop it belongs to, shared by a client and its derivatives.

    A client made by ``with_options`` shares this with its parent: whichever
    uses it first opens the session, and only the parent closes it.
    """

    __slots__ = (
        "closed",
        "loop",
        "owns_session",
        "proxy",
        "proxy_auth",
        "session",
        "ssl",
        "trust_env",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        trust_env: bool,
        ssl: SSLContext | bool,
    ) -> None:
        self.session = session
        self.owns_session = session is None
        self.trust_env = trust_env
        self.ssl = ssl
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False  # the parent client was closed
        # The proxy from the environment, looked up once when the owned session opens.
        self.proxy: URL | None = None
        self.proxy_auth: aiohttp.BasicAuth | None = None

    def open_session(self, base_url: str) -> aiohttp.ClientSession:
        """Open the owned session; with ``trust_env``, look up the proxy for ``base_url``.

        aiohttp's own ``trust_env=True`` reads the environment and ``~/.netrc``
        on every request (300-400 µs each, more than the rest of a local request:
        benchmarks/bench_request_overhead.py);
        every request here goes to one host, so one lookup serves them all.
        """
        self.session = aiohttp.ClientSession()
        if self.trust_env:
            # LookupError: no proxy variable for this scheme, or NO_PROXY names the host.
            with contextlib.suppress(LookupError):
                self.proxy, self.proxy_auth = get_env_proxy_for_url(URL(base_url))
        return self.session


class Transport:
    """Sends requests to one base URL with one token, one session and one retry policy."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        org_id: str | None,
        timeout: Timeout,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None,
        headers: Mapping[str, str] | None,
        clock: Clock,
        user_agent: str,
        max_response_bytes: int,
        trust_env: bool = True,
        ssl: SSLContext | bool = True,
        hooks: Hooks | None = None,
        tracer_provider: TracerProvider | None = None,
        _shared: _Shared | None = None,
        _observer: Observer | None = None,
    ) -> None:
        # Every argument was checked by automation_sdk._config (the client calls it).
        self.base_url = base_url.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self.timeout = timeout
        self._client_timeout = _client_timeout(timeout, None)
        self.retry = retry
        self.clock = clock
        self._token = token
        self._org_id = org_id
        self._user_agent = user_agent
        self._extra_headers = dict(headers or {})
        self._redactor = Redactor(token)
        self.observer = _observer or Observer(
            hooks,
            base_url=self.base_url,
            redact=self._redactor.text,
            tracing=_otel.tracing(self.base_url, tracer_provider),
        )
        self._shared = _shared or _Shared(session, trust_env=trust_env, ssl=ssl)
        self._derived = _shared is not None
        self._closed = False
        merged = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        merged.setdefault(_paths.HEADER_USER_AGENT, user_agent)
        merged[_paths.HEADER_ACCEPT] = "application/json"
        merged[_paths.HEADER_AUTHORIZATION] = f"Bearer {token}"
        if org_id:
            merged[_paths.HEADER_ORG_ID] = org_id
        self._headers = merged

    def derive(
        self,
        *,
        timeout: Timeout | None,
        retry: RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> Transport:
        """A transport like this one, on the same session, with the values given replaced.

        ``headers`` are added to (and override) this transport's extra headers.
        """
        return Transport(
            token=self._token,
            base_url=self.base_url,
            org_id=self._org_id,
            timeout=self.timeout if timeout is None else timeout,
            retry=self.retry if retry is None else retry,
            session=None,
            headers={**self._extra_headers, **(headers or {})},
            clock=self.clock,
            user_agent=self._user_agent,
            max_response_bytes=self.max_response_bytes,
            _shared=self._shared,
            _observer=self.observer,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called (on this client, or on the one it derives from)."""
        return self._closed or self._shared.closed

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The HTTP session, once opened (shared with the clients derived from this one)."""
        return self._shared.session

    def _get_session(self) -> aiohttp.ClientSession:
        """The session, after checking that it can still be used from this loop."""
        shared = self._shared
        if self._closed:
            raise ClientClosedError(
                "this AutomationClient is closed; create a new one (a closed client cannot reopen)"
            )
        if shared.closed:
            raise ClientClosedError(
                "this AutomationClient was made by with_options() from a client that is now "
                "closed, and shares its HTTP session; derive clients from an open client and "
                "close the parent last"
            )
        # aiohttp binds a session to the loop it first runs on; another loop gets
        # "Event loop is closed" or a hang from deep inside aiohttp, so check first.
        loop = asyncio.get_running_loop()
        if shared.loop is None:
            shared.loop = loop
        elif loop is not shared.loop:
            state = "now closed" if shared.loop.is_closed() else "still running"
            raise EventLoopMismatchError(
                "this AutomationClient was first used on another event loop (one that is "
                f"{state}), and its HTTP session works on that loop only. Create one client "
                "per event loop, inside it: e.g. 'async with AutomationClient() as client:' "
                "inside the coroutine you pass to asyncio.run() (or inside each Celery task), "
                "not at module level"
            )
        session = shared.session
        if session is None:
            # Created on first use, so it binds to the loop that uses it.
            session = shared.open_session(self.base_url)
        elif session.closed:
            if shared.owns_session:
                raise ClientClosedError(
                    "this AutomationClient's HTTP session was closed; create a new client"
                )
            raise ClientClosedError(
                "the aiohttp session this AutomationClient borrows (session=...) was closed by "
                "its owner; keep it open while the client is in use, or let the client own "
                "its session (omit session=)"
            )
        return session

    def _closed_during(self, method: str, url: str) -> ClientClosedError | None:
        """The error for a try that failed because the client was closed meanwhile, if so."""
        session = self._shared.session
        if not self.closed and (session is None or not session.closed):
            return None
        whom = "client was closed (aclose())" if self.closed else "borrowed session was closed"
        return ClientClosedError(
            f"{method} {url} was cut short: the {whom} while it was in flight. "
            "Close the client only after its requests and watches are done (or cancel "
            "them first)" + ("; the request may have taken effect" if method == "POST" else "")
        )

    async def open(self) -> None:
        """Create the owned session now (inside the running loop)."""
        self._get_session()

    async def aclose(self) -> None:
        """Close the owned session; a borrowed or shared one is left open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._derived:
            return  # the session belongs to the client this one was derived from
        shared = self._shared
        shared.closed = True
        if shared.owns_session and shared.session is not None:
            await shared.session.close()

    def warn_if_unclosed(self, owner: object) -> None:
        """Warn when an owned session was opened and never closed (called from ``__del__``)."""
        shared = self._shared
        session = shared.session
        if (
            not self._derived
            and shared.owns_session
            and not self._closed
            and session is not None
            and not session.closed
        ):
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

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        idempotent: bool,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Coroutine[object, None, Response]:
        """Send one request, retrying as the policy allows (see :meth:`_request`), traced.

        Not a coroutine function itself: it hands back :meth:`_request`'s
        coroutine, wrapped in a span only when traces are recorded, so that an
        untraced request pays for no second coroutine.
        """
        call = self._request(
            method, path, json_body=json_body, idempotent=idempotent, deadline=deadline, retry=retry
        )
        tracing = self.observer.tracing
        if tracing is None or not tracing.live():
            return call
        return tracing.request(call, method, path, self.base_url + path)

    async def _request(
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

        The first try runs on its own: only a failure that may be retried
        builds tenacity's machinery (see :meth:`_retry`), so that a request
        that succeeds at once costs no more than the try itself.

        Args:
            method: The HTTP method.
            path: The path, from :mod:`automation_sdk._paths`.
            json_body: The JSON body, if any.
            idempotent: Whether a retry is safe even if the server acted on the request.
            deadline: A reading of the client's clock after which no try may
                still be running and no wait may end; each try's timeout is
                clipped to it. When no time is left, :class:`DeadlineExceeded`.
            retry: Overrides the client's policy for this request. Its
                ``timeout`` budget, if any, bounds tries and waits like a
                deadline, but ends with the last try's error, its message
                saying how many tries ran in how long.

        Raises:
            APIStatusError: the server answered with an error status.
            TransportError: no usable answer.
            ResponseValidationError: the answer was not JSON.
            DeadlineExceeded: only when ``deadline`` is given.
        """
        policy = retry or self.retry
        self._get_session()  # a closed client or a wrong loop fails before any try
        url = self.base_url + path
        # The request starts here: one reading of the clock, and the moment it must end by.
        started = self.clock.monotonic()
        end = deadline
        if policy.timeout is not None and (end is None or started + policy.timeout < end):
            end = started + policy.timeout
        left = None
        if end is not None:
            left = end - started
            if left <= 0:
                raise DeadlineExceeded(None)
        try:
            return await self._try(method, path, url, json_body, 1, policy, idempotent, left)
        except Exception as exc:
            if (
                policy.attempts == 1
                or not isinstance(exc, AutomationError)
                or not should_retry(exc, idempotent=idempotent, policy=policy)
            ):
                raise
            first = exc
        return await self._retry(
            first, method, path, url, json_body, policy, idempotent, started, deadline, end
        )

    async def _retry(
        self,
        first: AutomationError,
        method: str,
        path: str,
        url: str,
        json_body: object,
        policy: RetryPolicy,
        idempotent: bool,
        started: float,
        deadline: float | None,
        end: float | None,
    ) -> Response:
        """Tries two and later of a request whose first try failed with ``first``.

        tenacity decides: whether to retry (``should_retry``), when to stop
        (attempts, or no time left before ``end``), how long to wait
        (``Retry-After`` or backoff), and calls :meth:`_before_sleep` before
        each wait.
        """
        clock = self.clock
        retrying = AsyncRetrying(
            stop=retry_stop(policy, end, clock),
            wait=retry_wait(policy),
            retry=retry_if_exception(
                functools.partial(should_retry, idempotent=idempotent, policy=policy)
            ),
            sleep=clock.sleep,
            before_sleep=functools.partial(self._before_sleep, method, path, policy),
            reraise=True,
        )
        last: AutomationError = first
        tries = 1  # sent so far
        try:
            async for attempt in retrying:
                if attempt.retry_state.attempt_number == 1:
                    # The first try already ran without tenacity: its failure is tenacity's
                    # first outcome, from which it decides whether and how long to wait.
                    attempt.retry_state.set_exception((type(first), first, first.__traceback__))
                    continue
                left = None if end is None else end - clock.monotonic()
                if left is not None and left <= 0:
                    break  # the wait overran the time left (a real sleep may run late)
                tries = attempt.retry_state.attempt_number
                with attempt:
                    return await self._try(
                        method, path, url, json_body, tries, policy, idempotent, left
                    )
        except (APIStatusError, TransportError, ResponseValidationError) as exc:
            last = exc
        time_ran_out = tries < policy.attempts and should_retry(
            last, idempotent=idempotent, policy=policy
        )
        if time_ran_out and deadline is not None and deadline == end:
            # Retries were cut short by the caller's deadline, not exhausted.
            raise DeadlineExceeded(last) from last
        raise _gave_up(last, tries, clock.monotonic() - started, policy, budget_spent=time_ran_out)

    def _before_sleep(
        self, method: str, path: str, policy: RetryPolicy, state: RetryCallState
    ) -> None:
        """A try failed and the next one will follow after ``state.upcoming_sleep`` seconds."""
        self.observer.retrying(method, path, policy.attempts, state)

    async def _try(
        self,
        method: str,
        path: str,
        url: str,
        json_body: object,
        tries: int,
        policy: RetryPolicy,
        idempotent: bool,
        left: float | None,
    ) -> Response:
        """One try, its timeout clipped to ``left`` seconds: an answer, or an SDK error."""
        client_timeout = (
            self._client_timeout if left is None else _client_timeout(self.timeout, left)
        )
        session = self._get_session()
        observer = self.observer
        started = self.clock.monotonic() if observer.listening() else None
        try:
            response = await self._once(
                session, method, path, url, json_body, client_timeout, tries, policy, idempotent
            )
        except Exception as exc:
            if isinstance(exc, AutomationError):
                # The one place every error from a try passes: nothing leaves with the token.
                self.scrub(exc)
            closed = self._closed_during(method, url)
            if started is not None:
                elapsed = self.clock.monotonic() - started
                observer.tried(method, path, tries, elapsed, None, None, closed or exc)
            if closed is not None:
                raise closed from exc
            raise
        # Every try, the first and each retry, ends here with an answer or in the except
        # above with an error: the one place to observe a try's outcome.
        if started is not None:
            elapsed = self.clock.monotonic() - started
            observer.tried(method, path, tries, elapsed, response.status, response.headers, None)
        return response

    async def _once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        url: str,
        json_body: object,
        timeout: aiohttp.ClientTimeout,
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
                timeout=timeout,
                ssl=self._shared.ssl,
                proxy=self._shared.proxy,
                proxy_auth=self._shared.proxy_auth,
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
                f"{where} {_timed_out(exc, timeout)}; "
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


def _client_timeout(timeout: Timeout, left: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's form of ``timeout``, its total cut to the ``left`` seconds of a deadline."""
    total = timeout.total
    if left is not None and (total is None or left < total):
        total = left
    return aiohttp.ClientTimeout(total=total, sock_connect=timeout.connect, sock_read=timeout.read)


def _timed_out(exc: TimeoutError, timeout: aiohttp.ClientTimeout) -> str:
    """Which limit ran out, for a message: the silence between bytes or the whole try."""
    if isinstance(exc, aiohttp.SocketTimeoutError) and timeout.sock_read is not None:
        return f"received nothing for {timeout.sock_read:.3g}s (the read timeout)"
    return f"got no complete answer within {timeout.total or 0:.3g}s"


def _gave_up(
    exc: AutomationError, tries: int, elapsed: float, policy: RetryPolicy, *, budget_spent: bool
) -> AutomationError:
    """``exc`` (the last try's error), its message ending with the tries made and the time taken."""
    if budget_spent:
        summary = (
            f"Gave up after {tries} {_plural(tries, 'try', 'tries')} in {elapsed:.3g}s: "
            f"the retry budget of {policy.timeout:g}s (RetryPolicy timeout) was used up"
        )
    else:
        summary = f"Gave up after {tries} {_plural(tries, 'try', 'tries')} in {elapsed:.3g}s"
    message = exc.message.rstrip()
    exc.message = f"{message}{'' if message.endswith('.') else '.'} {summary}."
    exc.args = (exc.message,)
    return exc


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _maybe_applied(method: str) -> str:
    if method == "POST":
        return "the request may have taken effect: check before sending it again; "
    return ""
