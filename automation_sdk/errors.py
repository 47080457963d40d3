"""Every error the SDK raises, in one tree.

::

    AutomationError
    ├── ConfigurationError          (also ValueError)   no token, a bad base URL, timeout or retry
    ├── InvalidArgumentError        (also ValueError)   bad id, spec or input, bad checkpoint,
    │                                                    a bad dict for Model.from_dict()
    ├── ClientClosedError           (also RuntimeError) a call on a closed client or session
    ├── EventLoopMismatchError      (also RuntimeError) a client used from a second event loop
    ├── StepNotFoundError           (also KeyError)     run.step(name) of a step not reached
    ├── APIStatusError                                   the server answered 4xx/5xx
    │   ├── BadRequestError                400
    │   ├── AuthenticationError            401
    │   ├── PermissionDeniedError          403
    │   ├── NotFoundError                  404
    │   ├── ConflictError                  409
    │   ├── UnprocessableEntityError       422  (.errors: the parsed ``detail`` list)
    │   ├── RateLimitError                 429  (.retry_after)
    │   └── ServerError                    5xx  (.retry_after)
    ├── TransportError              (also OSError)       no answer: connection refused, reset, ...
    │   └── RequestTimeoutError     (also TimeoutError)  no answer in time
    ├── ResponseValidationError                          an answer that is not what the API promises
    ├── RunFailedError                                   a waited-for run ended FAILED
    └── WaitTimeoutError            (also TimeoutError)  a watch or wait passed its deadline

Every error carries ``method`` and ``url`` when it comes from a request, and
``checkpoint`` when it escaped a watch (so the watch can be resumed), and
``run_ids`` when it ended runs of a monitor. Messages
say what happened, to which request, and what to do; they never contain the
API token.

One warning: :class:`InsecureURLWarning` (a ``UserWarning``), when the client
is built with a plain ``http://`` URL to a host other than this machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attrs import frozen

from ._json_model import _JSONModel

if TYPE_CHECKING:
    from ._models import Run

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "AutomationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "EventLoopMismatchError",
    "InsecureURLWarning",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RunFailedError",
    "ServerError",
    "StepNotFoundError",
    "TransportError",
    "UnprocessableEntityError",
    "ValidationDetail",
    "WaitTimeoutError",
]


class AutomationError(Exception):
    """Base class of every error raised by ``automation_sdk``.

    Attributes:
        message: The message, as ``str(exc)`` gives it.
        checkpoint: When the error escaped a watch, the watch's checkpoint at
            that moment (a JSON string to pass as ``resume_from``); else None.
        run_ids: When the error ended runs of a :class:`~automation_sdk.RunMonitor`,
            the ids of those runs (their checkpoints stay readable with
            ``monitor.checkpoint(run_id)``); else empty.
    """

    checkpoint: str | None = None
    run_ids: tuple[uuid.UUID, ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AutomationError, ValueError):
    """The client or a :class:`~automation_sdk.RetryPolicy` is configured in a way that cannot work.

    Raised when the object is built, before anything is sent: no token, a
    token, org id or header holding a control character, a base URL with a
    query, fragment or password, a timeout or retry value that is not a
    finite number in its range.
    """


class InvalidArgumentError(AutomationError, ValueError):
    """An argument was rejected before any request was sent.

    A malformed id, a :class:`~automation_sdk.StepSpec` or
    :class:`~automation_sdk.EdgeSpec` of the wrong form, or an input JSON
    cannot carry (NaN, a set, bytes, a datetime, a cycle, ...): the message
    names where, e.g. ``inputs.a[2]: NaN cannot be sent as JSON``.
    """


class ClientClosedError(AutomationError, RuntimeError):
    """A request was made on a closed client, or its HTTP session was closed under it.

    Either :meth:`~automation_sdk.AutomationClient.aclose` was called (before
    or during the request), or the ``aiohttp`` session the client borrows was
    closed by its owner. Make a new client, or close it only once its requests
    and watches are done.
    """


class EventLoopMismatchError(AutomationError, RuntimeError):
    """A client was used from another event loop than the one its HTTP session was opened on.

    An ``aiohttp`` session belongs to one event loop. Code that calls
    ``asyncio.run()`` per job (a Celery task, a script's helper) must make one
    client per loop: create it inside the coroutine that ``asyncio.run`` runs,
    with ``async with``.
    """


class InsecureURLWarning(UserWarning):
    """The base URL is plain ``http://`` to another machine: the token travels unencrypted.

    Issued once per client, when it is built; never for ``https://`` or for
    loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``). Silence it with
    ``warnings.filterwarnings("ignore", category=InsecureURLWarning)``.
    """


class StepNotFoundError(AutomationError, KeyError):
    """:meth:`Run.step() <automation_sdk.Run.step>` named a step the run has not reached.

    Also a ``KeyError``, like a missing key of a mapping.

    Attributes:
        name: The name asked for.
        known: The names of the steps the run has reached, in its order.
    """

    def __init__(self, message: str, *, name: str, known: tuple[str, ...]) -> None:
        super().__init__(message)
        self.name = name
        self.known = known


class _RequestError(AutomationError):
    """An error about one request: knows its method and URL."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


@frozen(kw_only=True)
class ValidationDetail(_JSONModel):
    """One entry of a 422 answer's ``detail`` list (FastAPI's shape)."""

    loc: tuple[str | int, ...]
    """Where the problem is, e.g. ``("body", "name")``."""
    msg: str
    """What the server says is wrong."""
    type: str
    """The server's code for the problem, e.g. ``"missing"``."""


class APIStatusError(_RequestError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        method: The request's method.
        url: The request's URL.
        detail: The server's explanation (FastAPI's ``detail``), or a short
            excerpt of the body when it was not JSON, or None.
        body: The decoded JSON body, or the raw text when it was not JSON.
        request_id: The server's request id header, when it sent one.
        headers: The answer's headers.
        may_have_taken_effect: True when the request was a POST whose effect
            the server may already have applied (a 5xx): check before sending
            it again.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        detail: str | None = None,
        body: object = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        may_have_taken_effect: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.detail = detail
        self.body = body
        self.request_id = request_id
        self.headers: Mapping[str, str] = dict(headers or {})
        self.may_have_taken_effect = may_have_taken_effect


class BadRequestError(APIStatusError):
    """400: the server could not make sense of the request."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong, or not valid for the organisation."""


class PermissionDeniedError(APIStatusError):
    """403: the token is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no automation or run with that id (for this organisation)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state (e.g. the run already ended)."""


class UnprocessableEntityError(APIStatusError):
    """422: the server rejected the request body.

    Attributes:
        errors: The parsed entries of FastAPI's ``detail`` list.
    """

    errors: tuple[ValidationDetail, ...] = ()


class _RetryAfterMixin(APIStatusError):
    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After``), or None."""


class RateLimitError(_RetryAfterMixin):
    """429: too many requests; ``retry_after`` says how long the server asked to wait."""


class ServerError(_RetryAfterMixin):
    """5xx: the server failed; ``retry_after`` is set when it sent ``Retry-After``."""


class TransportError(_RequestError, OSError):
    """No usable answer: the connection failed, was reset, or broke mid-body.

    Attributes:
        may_have_taken_effect: True when the request may have reached the
            server before the failure (only matters for a POST).
    """

    def __init__(
        self, message: str, *, method: str, url: str, may_have_taken_effect: bool = False
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.may_have_taken_effect = may_have_taken_effect

    def __str__(self) -> str:
        return self.message


class RequestTimeoutError(TransportError, TimeoutError):
    """No answer arrived within the request's timeout."""


class ResponseValidationError(_RequestError):
    """The answer was not what the API promises: not JSON, or the wrong shape.

    Attributes:
        status_code: The HTTP status of the answer.
        problems: One line per problem, each naming the field path
            (e.g. ``steps[2].step.id``).
        body: An excerpt of the raw body (at most a few hundred characters).
        not_json: True when the body was not JSON at all (empty, cut short,
            an HTML page from a proxy): a ``GET`` is retried on it, since such
            a body is most often damaged on the way. False when it was JSON
            that the SDK cannot use (the wrong shape, nested deeper than
            Python can decode, an integer of thousands of digits): a retry
            would get the same.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        problems: tuple[str, ...] = (),
        body: str = "",
        not_json: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.problems = problems
        self.body = body
        self.not_json = not_json


class ResponseTooLargeError(ResponseValidationError):
    """The answer's body, decompressed, was larger than the client's ``max_response_bytes``.

    Reading stopped as soon as the limit was passed, so a huge or
    decompression-bomb answer never fills memory; it is not retried.

    Attributes:
        limit: The ``max_response_bytes`` that was passed, in bytes.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        limit: int,
        body: str = "",
    ) -> None:
        super().__init__(
            message,
            method=method,
            url=url,
            status_code=status_code,
            problems=(f"(the whole answer): larger than max_response_bytes ({limit} bytes)",),
            body=body,
        )
        self.limit = limit


class RunFailedError(AutomationError):
    """A run that :meth:`~automation_sdk.Runs.wait` waited for ended FAILED.

    Attributes:
        run: The final snapshot of the run.
    """

    def __init__(self, message: str, *, run: Run) -> None:
        super().__init__(message)
        self.run = run


class WaitTimeoutError(AutomationError, TimeoutError):
    """A watch or wait reached its deadline before the run ended.

    Attributes:
        run: The last snapshot seen, or None if no poll succeeded.
        checkpoint: The watch's checkpoint, to resume it later.
    """

    def __init__(self, message: str, *, run: Run | None, checkpoint: str | None) -> None:
        super().__init__(message)
        self.run = run
        self.checkpoint = checkpoint
