"""What the SDK tells about its work: log records, hooks for metrics, and traces.

Three outlets, each free when nobody listens:

- **logs** on the ``automation_sdk`` logger, with structured ``extra`` fields
  (:data:`EXTRA_FIELDS`): each try of a request at DEBUG, each retry at INFO
  (what happened, the wait chosen), each poll and snapshot at DEBUG, each
  transition a watch delivers at INFO. A record is built only when
  ``logger.isEnabledFor`` says someone reads it. ``AUTOMATION_LOG=debug|info``
  (or the command line's ``-v``) adds a readable stderr handler;
- **hooks** (:class:`Hooks`): plain callables the client calls with a small
  frozen record (:class:`RequestRecord`, :class:`RetryRecord`) or the watch
  event itself, for metrics without parsing logs. The retry hook runs from
  tenacity's own ``before_sleep``; a try's end is observed where the session
  layer ends every try (the first one runs without tenacity, so tenacity's
  ``after`` never sees it). A hook that raises is logged and the work goes on;
- **traces** through OpenTelemetry, when ``opentelemetry-api`` is installed
  (:mod:`automation_sdk._otel`, imported only then).

Nothing here ever holds the token: the records carry the errors as the session
layer scrubbed them, and the request id a server sends is redacted too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from attrs import Attribute, field, frozen
from tenacity import RetryCallState

from . import _paths
from ._events import RunTransition, StepTransition
from ._retry import retry_after_of
from .errors import APIStatusError, AutomationError, ConfigurationError, ResponseValidationError

if TYPE_CHECKING:
    from ._otel import Tracing, WatchSpan

__all__ = [
    "ENV_LOG",
    "EXTRA_FIELDS",
    "Hooks",
    "Observer",
    "RequestRecord",
    "RetryRecord",
    "active",
    "install_handler",
    "log_from_env",
]

logger = logging.getLogger("automation_sdk")

ENV_LOG: Final = "AUTOMATION_LOG"
EXTRA_FIELDS: Final = (
    "method",
    "url",
    "path",
    "route",
    "status",
    "elapsed_ms",
    "attempt",
    "request_id",
    "run_id",
    "automation_id",
)
"""The ``extra`` fields a record may carry (each record has those that apply)."""

_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO}
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_NO_SPAN: Final = contextlib.nullcontext()


# -- records and hooks ----------------------------------------------------------------------


@frozen(kw_only=True)
class RequestRecord:
    """One try of an HTTP request, as it ended: with an answer, or with an error.

    A request retried three times gives four records, ``attempt`` 1 to 4.

    Attributes:
        method: The HTTP method.
        url: The full URL (base URL and path; it never holds the token).
        path: The URL's path, e.g. ``/automations/<id>/sessions/<id>/``.
        route: The path's template, e.g.
            ``/automations/{automation_id}/sessions/{session_id}/``: a label
            of few values, for metrics.
        attempt: Which try this was, 1 for the first.
        status: The HTTP status of the answer, or None when none came.
        elapsed: The try's duration in seconds, on the client's clock.
        request_id: The server's request id header (``x-request-id``), if sent.
        error: The error the try ended with (as the caller would see it if
            it was the last), or None for a successful answer.
    """

    method: str
    url: str
    path: str
    route: str
    attempt: int
    status: int | None
    elapsed: float
    request_id: str | None
    error: AutomationError | None

    @property
    def error_type(self) -> str | None:
        """The error's class name (``"ServerError"``, ``"RequestTimeoutError"``), or None."""
        return None if self.error is None else type(self.error).__name__


@frozen(kw_only=True)
class RetryRecord:
    """A try failed and another follows after ``wait`` seconds.

    Attributes:
        method: The HTTP method.
        url: The full URL.
        path: The URL's path.
        route: The path's template (see :class:`RequestRecord`).
        attempt: The try that failed, 1 for the first.
        attempts: The most tries the retry policy allows.
        wait: The seconds chosen before the next try: the server's
            ``Retry-After``, or the policy's backoff.
        status: The HTTP status of the failed try, or None when no answer came.
        request_id: The server's request id header, if sent.
        error: What the failed try raised.
    """

    method: str
    url: str
    path: str
    route: str
    attempt: int
    attempts: int
    wait: float
    status: int | None
    request_id: str | None
    error: AutomationError

    @property
    def error_type(self) -> str:
        """The error's class name, such as ``"ServerError"``."""
        return type(self.error).__name__


def _callable_or_none(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(
            f"Hooks.{attribute.name} must be a function taking one record, or None; "
            f"got {type(value).__name__}"
        )


@frozen(kw_only=True)
class Hooks:
    """Functions the client calls as it works, for metrics (Prometheus, statsd) or audit.

    Pass it as ``AutomationClient(hooks=Hooks(on_request=..., on_retry=...))``.
    Each hook is a plain (not async) function called on the event loop, inside
    the request or the watch: keep it quick (count, observe, append). A hook
    that raises is logged at WARNING on the ``automation_sdk`` logger and
    otherwise ignored: it never breaks the request or the watch.

    Args:
        on_request: Called at the end of every try of every request, the
            first and each retry, with a :class:`RequestRecord`.
        on_retry: Called when a try failed and another will follow, before
            the wait, with a :class:`RetryRecord`.
        on_transition: Called with each :class:`~automation_sdk.StepTransition`
            and :class:`~automation_sdk.RunTransition` a watch delivers,
            ``runs.wait()``'s included, and each one a
            :class:`~automation_sdk.RunMonitor` yields, when it is delivered.

    Raises:
        ConfigurationError: a hook is neither None nor callable.
    """

    on_request: Callable[[RequestRecord], object] | None = field(
        default=None, validator=_callable_or_none
    )
    on_retry: Callable[[RetryRecord], object] | None = field(
        default=None, validator=_callable_or_none
    )
    on_transition: Callable[[StepTransition | RunTransition], object] | None = field(
        default=None, validator=_callable_or_none
    )


def _call_hook(name: str, hook: Callable[[Any], object], record: object) -> None:
    try:
        hook(record)
    except Exception:
        logger.warning(
            "the %s hook %r raised; ignored, the work goes on", name, hook, exc_info=True
        )


# -- the stderr handler ---------------------------------------------------------------------

_handler: logging.Handler | None = None
_env_read = False


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not when it was made."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # always sys.stderr


def install_handler(level: int) -> logging.Handler:
    """Show the ``automation_sdk`` logger's records at ``level`` and above on stderr.

    Installed once: a second call changes the level only. Records still
    propagate to the application's own handlers.
    """
    global _handler
    if _handler is None:
        _handler = _StderrHandler()
        _handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(_handler)
    logger.setLevel(level)
    return _handler


def log_from_env() -> None:
    """Install the stderr handler if ``AUTOMATION_LOG`` asks for it (once per process).

    Called by every client's constructor; only the first call that finds the
    variable set (or a handler already installed by the command line) acts.
    """
    global _env_read
    if _env_read:
        return
    value = os.environ.get(ENV_LOG, "").strip().lower()
    if not value:
        return
    _env_read = True
    if _handler is not None:
        return  # the command line's -v came first
    level = _LEVELS.get(value)
    if level is None:
        warnings.warn(
            f"{ENV_LOG}={value!r} is not one of {', '.join(_LEVELS)}; no log handler was "
            "installed (unset it, or set it to 'info' to see retries, 'debug' for every request)",
            UserWarning,
            stacklevel=3,
        )
        return
    install_handler(level)


# -- the observer ---------------------------------------------------------------------------


def _request_id(headers: Mapping[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() in _paths.REQUEST_ID_HEADERS), None)


def _what_happened(exc: BaseException | None) -> str:
    """A short account of a failed try, for a log line."""
    if isinstance(exc, APIStatusError):
        after = retry_after_of(exc)
        asked = "" if after is None else f", Retry-After {after:.3g}s"
        return f"answered {exc.status_code}{asked}"
    if isinstance(exc, ResponseValidationError):
        return f"answered {exc.status_code} with a body that is not JSON"
    if exc is None:
        return "failed"
    cause = exc.__cause__  # aiohttp's own error, for a failure without an answer
    because = "" if cause is None else f" ({type(cause).__name__})"
    return f"failed with {type(exc).__name__}{because}"


class Observer:
    """One client's outlets: its hooks and, with the ``otel`` extra, its tracer.

    Shared by the clients ``with_options`` derives. ``tracing`` is None when
    OpenTelemetry is not installed: every call site checks it first.
    """

    __slots__ = ("_redact", "base_url", "on_request", "on_retry", "on_transition", "tracing")

    def __init__(
        self,
        hooks: Hooks | None,
        *,
        base_url: str,
        redact: Callable[[str], str],
        tracing: Tracing | None,
    ) -> None:
        self.base_url = base_url
        self.on_request = None if hooks is None else hooks.on_request
        self.on_retry = None if hooks is None else hooks.on_retry
        self.on_transition = None if hooks is None else hooks.on_transition
        self.tracing = tracing
        self._redact = redact

    def listening(self) -> bool:
        """Whether the end of a try is observed (a hook or a DEBUG log): then it is timed."""
        return self.on_request is not None or logger.isEnabledFor(logging.DEBUG)

    def tried(
        self,
        method: str,
        path: str,
        attempt: int,
        elapsed: float,
        status: int | None,
        headers: Mapping[str, str] | None,
        error: BaseException | None,
    ) -> None:
        """A try ended with an answer (``status``, ``headers``) or with ``error``."""
        if isinstance(error, APIStatusError):
            status, request_id = error.status_code, error.request_id
        else:
            if isinstance(error, ResponseValidationError):
                status = error.status_code
            request_id = None if headers is None else _request_id(headers)
            if request_id is not None:
                request_id = self._redact(request_id)
        url = self.base_url + path
        if logger.isEnabledFor(logging.DEBUG):
            outcome = str(status) if status is not None else type(error).__name__
            logger.debug(
                "%s %s -> %s in %.1f ms (try %d%s)",
                method,
                path,
                outcome,
                elapsed * 1000,
                attempt,
                "" if request_id is None else f", request id {request_id}",
                extra=self._extra(method, path, status, elapsed, attempt, request_id),
            )
        hook = self.on_request
        if hook is not None:
            record = RequestRecord(
                method=method,
                url=url,
                path=path,
                route=_paths.template_of(path),
                attempt=attempt,
                status=status,
                elapsed=elapsed,
                request_id=request_id,
                error=error if isinstance(error, AutomationError) else None,
            )
            _call_hook("on_request", hook, record)

    def retrying(self, method: str, path: str, attempts: int, state: RetryCallState) -> None:
        """tenacity's ``before_sleep``: a try failed, the next follows after ``upcoming_sleep``."""
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.upcoming_sleep
        attempt = state.attempt_number
        status = getattr(exc, "status_code", None)
        request_id = getattr(exc, "request_id", None)
        if logger.isEnabledFor(logging.INFO):
            why = "as the server asked" if retry_after_of(exc) is not None else "backoff"
            logger.info(
                "%s %s %s; try %d of %d in %.2fs (%s)",
                method,
                path,
                _what_happened(exc),
                attempt + 1,
                attempts,
                wait,
                why,
                extra=self._extra(method, path, status, None, attempt, request_id),
            )
        tracing = self.tracing
        if tracing is not None:
            tracing.retrying(attempt, wait, exc)
        hook = self.on_retry
        if hook is not None and isinstance(exc, AutomationError):
            record = RetryRecord(
                method=method,
                url=self.base_url + path,
                path=path,
                route=_paths.template_of(path),
                attempt=attempt,
                attempts=attempts,
                wait=wait,
                status=status,
                request_id=request_id,
                error=exc,
            )
            _call_hook("on_retry", hook, record)

    def transition(
        self,
        event: StepTransition | RunTransition,
        automation_id: uuid.UUID,
        span: WatchSpan | None,
    ) -> None:
        """A watch delivered ``event``."""
        if logger.isEnabledFor(logging.INFO):
            what = "run" if isinstance(event, RunTransition) else f"step {event.step_name!r}"
            before = "(none)" if event.previous is None else event.previous.value
            logger.info(
                "run %s: %s %s -> %s",
                event.run_id,
                what,
                before,
                event.status.value,
                extra={"run_id": str(event.run_id), "automation_id": str(automation_id)},
            )
        if span is not None:
            span.transition(event)
        hook = self.on_transition
        if hook is not None:
            _call_hook("on_transition", hook, event)

    def _extra(
        self,
        method: str,
        path: str,
        status: int | None,
        elapsed: float | None,
        attempt: int,
        request_id: str | None,
    ) -> dict[str, object]:
        automation_id, run_id = _paths.ids_of(path)
        return {
            "method": method,
            "url": self.base_url + path,
            "path": path,
            "route": _paths.template_of(path),
            "status": status,
            "elapsed_ms": None if elapsed is None else round(elapsed * 1000, 3),
            "attempt": attempt,
            "request_id": request_id,
            "run_id": run_id,
            "automation_id": automation_id,
        }


def active(span: WatchSpan | None) -> contextlib.AbstractContextManager[object]:
    """A context in which ``span`` is the current span (the parent of the requests sent)."""
    return _NO_SPAN if span is None else span.active()
