"""The client: configuration plus the ``automations`` and ``runs`` resources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from ssl import SSLContext
from types import TracebackType
from typing import TYPE_CHECKING

import aiohttp

from . import _config, _observe, _paths
from ._clock import Clock, SystemClock
from ._config import Timeout
from ._observe import Hooks
from ._resources import Automations, Runs
from ._retry import RetryPolicy
from ._transport import Transport
from ._version import __version__
from .errors import ClientClosedError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["AutomationClient"]

_DEFAULT_RETRY = RetryPolicy()
# The API does not paginate runs.list: an automation with a thousand runs of ten
# steps, each with a few kB of LLM output, answers several MiB.
_DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class AutomationClient:
    """An async client of the Automation API.

    Use it as an async context manager, or call :meth:`aclose` when done::

        async with AutomationClient(token="...") as client:
            run = await client.runs.create(automation_id, inputs={"ticket": "..."})
            run = await client.runs.wait(automation_id, run.id, timeout=600)

    Args:
        token: The API token, sent as ``Authorization: Bearer <token>``;
            defaults to the ``AUTOMATION_API_TOKEN`` environment variable.
        base_url: The API's root URL; defaults to ``AUTOMATION_BASE_URL``,
            then ``https://api.truestate.io``.
        org_id: Sent as ``Current-Org-Id`` to choose an organisation;
            defaults to ``AUTOMATION_ORG_ID``, else not sent.
        timeout: How long one try of a request may take: seconds for the
            whole try, answer body included, or a :class:`~automation_sdk.Timeout`
            with separate ``connect``, ``read`` and ``total`` limits.
        retry: When and how failed requests are retried.
        session: An ``aiohttp.ClientSession`` to borrow (it is never closed
            by the client); by default the client opens and owns one.
        headers: Extra headers sent with every request (they cannot replace
            ``Authorization``).
        clock: The clock every wait goes through (retry backoff, polling,
            deadlines); :class:`automation_sdk.testing.FakeClock` in tests.
        max_response_bytes: The largest answer body the client reads, counted
            after decompression (16 MiB by default). Reading stops as soon as
            a body passes it, with :class:`~automation_sdk.errors.ResponseTooLargeError`,
            so that no answer can fill memory.
        trust_env: Whether the session the client opens follows the
            ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` environment
            variables (and ``~/.netrc``), as curl, requests and httpx do.
            A borrowed ``session`` keeps its own setting.
        ssl: How the server's TLS certificate is checked: ``True`` (the
            default) against the system's CA certificates, an
            :class:`ssl.SSLContext` (e.g. ``ssl.create_default_context(cafile=...)``
            for a company CA bundle), or ``False`` not at all (a local test
            server only).
        hooks: Functions called at the end of each try of a request, before
            each retry, and for each transition a watch delivers (see
            :class:`~automation_sdk.Hooks`), e.g. to feed metrics.
        tracer_provider: The OpenTelemetry tracer provider the client's spans
            go to; by default the global one (``trace.set_tracer_provider``).
            Spans are made only when ``opentelemetry-api`` is installed (the
            ``otel`` extra); the client never configures an exporter.

    Raises:
        ConfigurationError: no token was given or found; the token, org id or
            a header holds a control character; the base URL has a query,
            fragment, user name or password, no host, or another scheme than
            http(s); the timeout is not a finite number of seconds above 0;
            ``retry``, ``session`` or ``clock`` is of the wrong type;
            ``max_response_bytes`` is not a whole number >= 1; ``trust_env``
            is not a bool; ``ssl`` is not a bool or an ``ssl.SSLContext``;
            ``hooks`` is not a ``Hooks``.

    Warns:
        InsecureURLWarning: the base URL is plain ``http://`` to a host other
            than this machine (the token would travel unencrypted).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        org_id: str | None = None,
        timeout: float | Timeout = 30.0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        max_response_bytes: int = _DEFAULT_MAX_RESPONSE_BYTES,
        trust_env: bool = True,
        ssl: SSLContext | bool = True,
        hooks: Hooks | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        # The first client built while AUTOMATION_LOG is set installs the stderr log handler.
        _observe.log_from_env()
        # Every value is checked here, so that no request can fail on configuration.
        checked_token = _config.token(
            token if token is not None else os.environ.get(_paths.ENV_TOKEN)
        )
        checked_url = _config.base_url(
            base_url or os.environ.get(_paths.ENV_BASE_URL) or _paths.DEFAULT_BASE_URL
        )
        checked_org = _config.org_id(
            org_id if org_id is not None else os.environ.get(_paths.ENV_ORG_ID)
        )
        _config.instance(
            retry, RetryPolicy, "retry", "a RetryPolicy, such as RetryPolicy(attempts=3)"
        )
        if session is not None:
            _config.instance(session, aiohttp.ClientSession, "session", "an aiohttp.ClientSession")
        if hooks is not None:
            _config.instance(hooks, Hooks, "hooks", "a Hooks, such as Hooks(on_retry=print)")
        if clock is not None:
            # Clock is a runtime-checkable protocol: this checks monotonic() and sleep().
            _config.instance(
                clock,
                Clock,
                "clock",
                "a Clock with monotonic() and async sleep(), such as FakeClock()",
            )
        self._transport = Transport(
            token=checked_token,
            base_url=checked_url,
            org_id=checked_org,
            timeout=_config.timeout(timeout),
            retry=retry,
            session=session,
            headers=_config.headers(headers),
            clock=clock or SystemClock(),
            user_agent=f"automation-sdk/{__version__}",
            max_response_bytes=_config.check_int(
                max_response_bytes, "max_response_bytes", minimum=1
            ),
            trust_env=_config.check_bool(trust_env, "trust_env"),
            ssl=_config.ssl(ssl),
            hooks=hooks,
            tracer_provider=tracer_provider,
        )
        self.automations = Automations(self._transport)
        """Create and read automations."""
        self.runs = Runs(self._transport)
        """Start, read, cancel, answer and watch runs."""

    def with_options(
        self,
        *,
        timeout: float | Timeout | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AutomationClient:
        """A client like this one, with the options given replaced, on the same HTTP session.

        For a call that needs other settings than the rest, without a second
        session: ``await client.with_options(retry=RetryPolicy(attempts=1)).runs.create(...)``.
        Everything not named (token, base URL, clock, session, proxy and TLS
        settings) is this client's. ``headers`` are added to this client's
        extra headers, replacing those of the same name.

        The derived client borrows this client's session: closing it (or
        leaving it unclosed) does not close the session; once this client is
        closed, the derived one raises :class:`~automation_sdk.errors.ClientClosedError`.

        Args:
            timeout: Replaces the timeout of one try (seconds or a ``Timeout``).
            retry: Replaces the retry policy.
            headers: Extra headers, merged over this client's.

        Raises:
            ConfigurationError: a value is unusable, as for the constructor.
            ClientClosedError: this client is closed.
        """
        if self.is_closed:
            raise ClientClosedError(
                "with_options() was called on a closed AutomationClient; derive clients "
                "from an open one"
            )
        if retry is not None:
            _config.instance(
                retry, RetryPolicy, "retry", "a RetryPolicy, such as RetryPolicy(attempts=3)"
            )
        derived = object.__new__(AutomationClient)
        derived._transport = self._transport.derive(
            timeout=None if timeout is None else _config.timeout(timeout),
            retry=retry,
            headers=None if headers is None else _config.headers(headers),
        )
        derived.automations = Automations(derived._transport)
        derived.runs = Runs(derived._transport)
        return derived

    @property
    def base_url(self) -> str:
        """The API's root URL, without a trailing slash."""
        return self._transport.base_url

    @property
    def clock(self) -> Clock:
        """The clock every wait of this client goes through."""
        return self._transport.clock

    @property
    def timeout(self) -> Timeout:
        """The limits of one try of a request (a number given is ``Timeout(total=...)``)."""
        return self._transport.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this client's requests."""
        return self._transport.retry

    @property
    def is_closed(self) -> bool:
        """True once :meth:`aclose` was called; a closed client cannot be reopened."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the client's own HTTP session (a borrowed one stays open). Idempotent."""
        await self._transport.aclose()

    async def __aenter__(self) -> AutomationClient:
        await self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AutomationClient(base_url={self.base_url!r})"

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None:
            transport.warn_if_unclosed(self)
