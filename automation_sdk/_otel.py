"""Spans through OpenTelemetry, when ``opentelemetry-api`` is installed (the ``otel`` extra).

:func:`tracing` is the only door: it imports the API on first use and returns
None when it is not installed, so that nothing else in the SDK imports
OpenTelemetry or pays for it. The SDK never configures a provider or an
exporter: spans go to the provider the application set
(``trace.set_tracer_provider``) or passed (``AutomationClient(tracer_provider=...)``);
without one, OpenTelemetry's own no-op spans cost a few microseconds.

What is traced, after the semantic conventions for HTTP clients:

- one CLIENT span per request the SDK makes, its tries and waits included,
  named ``{method} {url.template}``, with ``http.request.method``,
  ``url.full``, ``url.template``, ``server.address``, ``server.port``,
  ``http.response.status_code`` (the last answer), ``error.type`` (the status
  as a string, or the error's class) and ``http.request.resend_count`` when
  it was retried; each retry is an event ``automation_sdk.retry``. A span per
  try would be the other reading of the conventions: aiohttp's own
  instrumentation, if installed, adds those as children;
- one INTERNAL span ``watch run`` per watch (``runs.wait()`` included), the
  parent of its polls, with an event per transition delivered and the run's
  final status (``automation_sdk.run.status``); its status is ERROR when the
  watch raised or the run FAILED.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Final, TypeVar

from yarl import URL

from ._events import RunTransition, StepTransition
from ._models import RunStatus
from ._paths import template_of
from ._version import __version__
from .errors import APIStatusError, AutomationError, ResponseValidationError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["Tracing", "WatchSpan", "tracing"]

T = TypeVar("T")

_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.26.0"
_NOT_LOOKED_UP: Final = object()
_trace: object = _NOT_LOOKED_UP  # the opentelemetry.trace module, or None when not installed


def _api() -> object:
    global _trace
    if _trace is _NOT_LOOKED_UP:
        try:
            from opentelemetry import trace
        except ImportError:
            _trace = None
        else:
            _trace = trace
    return _trace


def tracing(base_url: str, provider: TracerProvider | None) -> Tracing | None:
    """The client's tracing, or None when ``opentelemetry-api`` is not installed."""
    if _api() is None:
        return None
    from opentelemetry import trace

    tracer = trace.get_tracer(
        "automation_sdk", __version__, tracer_provider=provider, schema_url=_SCHEMA_URL
    )
    return Tracing(tracer, base_url, given=provider is not None)


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, APIStatusError):
        return str(exc.status_code)
    if type(exc).__name__ == "DeadlineExceeded":
        return "WaitTimeoutError"  # what the watch that set the deadline raises
    return type(exc).__name__


class Tracing:
    """A tracer and what every span of one client shares."""

    __slots__ = ("_given", "_live", "_server", "_tracer", "trace")

    def __init__(self, tracer: Tracer, base_url: str, *, given: bool) -> None:
        from opentelemetry import trace

        self.trace = trace  # imported once here, not on every request
        self._tracer = tracer
        self._given = given
        self._live = given and not isinstance(tracer, trace.NoOpTracer)
        url = URL(base_url)
        self._server: dict[str, str | int] = {"server.address": url.host or ""}
        if url.port is not None:
            self._server["server.port"] = url.port

    def live(self) -> bool:
        """Whether spans would be recorded: a provider was given, or the application set one.

        Until the application sets a global provider, OpenTelemetry's own no-op
        spans would still cost some 15 µs a request (benchmarks/bench_observe.py):
        they are not made at all. The global provider can be set only once, so
        once it is there it stays.
        """
        if self._live:
            return True
        if self._given:
            return False  # a no-op provider was given
        provider = self.trace.get_tracer_provider()
        if isinstance(provider, self.trace.ProxyTracerProvider | self.trace.NoOpTracerProvider):
            return False
        self._live = True
        return True

    async def request(self, call: Awaitable[T], method: str, path: str, url: str) -> T:
        """Await ``call`` (one request of the SDK, its retries included) inside a CLIENT span."""
        trace = self.trace
        route = template_of(path)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.full": url,
            "url.template": route,
            **self._server,
        }
        with self._tracer.start_as_current_span(
            f"{method} {route}",
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await call
            except BaseException as exc:
                if span.is_recording():
                    status = getattr(exc, "status_code", None)
                    if isinstance(exc, APIStatusError | ResponseValidationError) and status:
                        span.set_attribute("http.response.status_code", status)
                    span.set_attribute("error.type", _error_type(exc))
                    if isinstance(exc, Exception):
                        if isinstance(exc, AutomationError):
                            span.record_exception(exc)
                        span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                raise
            if span.is_recording():
                span.set_attribute("http.response.status_code", getattr(response, "status", 0))
            return response

    def retrying(self, attempt: int, wait: float, exc: BaseException | None) -> None:
        """A retry of the current request's span: an event, and the resend count so far."""
        span = self.trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, str | int | float] = {
            "http.request.resend_count": attempt,
            "automation_sdk.retry.wait": wait,
        }
        if exc is not None:
            attributes["error.type"] = _error_type(exc)
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                attributes["http.response.status_code"] = status
        span.add_event("automation_sdk.retry", attributes)
        span.set_attribute("http.request.resend_count", attempt)

    def watch(self, automation_id: uuid.UUID, run_id: uuid.UUID) -> WatchSpan:
        """Start the span of one watch."""
        span = self._tracer.start_span(
            "watch run",
            attributes={
                "automation_sdk.automation_id": str(automation_id),
                "automation_sdk.run_id": str(run_id),
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        return WatchSpan(span, self.trace)


class WatchSpan:
    """The span of one watch: made current around its polls, ended once."""

    __slots__ = ("_ended", "_span", "_trace")

    def __init__(self, span: Span, trace: ModuleType) -> None:
        self._span = span
        self._trace = trace
        self._ended = False

    def active(self) -> AbstractContextManager[object]:
        """Make the span current (the parent of the requests sent meanwhile), not ending it."""
        return self._trace.use_span(  # type: ignore[no-any-return]
            self._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def transition(self, event: StepTransition | RunTransition) -> None:
        """An event per transition delivered; the run's end ends the span."""
        span = self._span
        if isinstance(event, RunTransition):
            attributes = {"automation_sdk.run.status": event.status.value}
            if event.previous is not None:
                attributes["automation_sdk.run.previous_status"] = event.previous.value
            span.add_event("automation_sdk.run.transition", attributes)
            span.set_attribute("automation_sdk.run.status", event.status.value)
            if event.status.is_terminal:
                self.end(None, failed=event.status == RunStatus.FAILED)
        else:
            attributes = {
                "automation_sdk.step.name": event.step_name,
                "automation_sdk.step.status": event.status.value,
            }
            if event.previous is not None:
                attributes["automation_sdk.step.previous_status"] = event.previous.value
            span.add_event("automation_sdk.step.transition", attributes)

    def end(self, exc: BaseException | None, *, failed: bool = False) -> None:
        """End the span (once): with ``exc`` when the watch raised it, else as it stands."""
        if self._ended:
            return
        self._ended = True
        span = self._span
        error = self._trace.StatusCode.ERROR
        if exc is not None and not isinstance(exc, StopAsyncIteration | GeneratorExit):
            span.set_attribute("error.type", _error_type(exc))
            if isinstance(exc, Exception):
                if isinstance(exc, AutomationError):
                    span.record_exception(exc)
                span.set_status(error, type(exc).__name__)
        elif failed:
            span.set_status(error, "the run FAILED")
        span.end()
