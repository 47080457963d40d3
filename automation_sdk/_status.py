"""An error status (4xx/5xx) turned into its :mod:`automation_sdk.errors` class.

:func:`status_error` is pure: given what came back and what the retry policy
did, it builds the error and its message, with advice that fits the case (a
404 from a wrong base URL is not "check the ids"; a 5xx that was never
retried does not say it was).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

from . import _body, _paths
from ._retry import RetryPolicy
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    ValidationDetail,
)

__all__ = ["EXCERPT", "status_error"]

EXCERPT: Final = 300
"""The most characters of a body that go into an error (a detail, a non-JSON body)."""

_CLASSES: Final[Mapping[int, type[APIStatusError]]] = {
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
}
# FastAPI's answer to a path it has no route for; a missing object gets a sentence.
_NO_ROUTE: Final = "Not Found"
_VERSION_SEGMENTS: Final = ("v1", "v2", "v3", "api", "latest")


def status_error(
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    retry_after: float | None,
    base_url: str,
    tries: int,
    policy: RetryPolicy,
    idempotent: bool,
    redact: Callable[[str], str],
) -> APIStatusError:
    """The error for an answer with status ``status`` (>= 400).

    Args:
        method: The request's method.
        url: The request's full URL.
        status: The answer's status.
        headers: The answer's headers.
        raw: The answer's body, as read.
        retry_after: The parsed ``Retry-After``, if any.
        base_url: The client's base URL (a 404's advice depends on it).
        tries: Which try of the request this answer ended (1 for the first).
        policy: The retry policy of the request.
        idempotent: Whether the request may be retried after a 5xx.
        redact: Applied to any text before it is cut to an excerpt, so that
            a cut never leaves a piece of a secret behind.
    """
    text = _body.text_of(raw)
    body: object
    generic = False
    try:
        body = _body.decode(raw)
    except _body.NotDecodable:
        body = redact(text)[:EXCERPT]
        generic = True  # an HTML or empty page: not the API's own answer
    detail_value = body.get("detail") if isinstance(body, dict) else None
    errors: tuple[ValidationDetail, ...] = ()
    if isinstance(detail_value, list):
        errors = tuple(_validation_detail(item, redact) for item in detail_value)
        detail = "; ".join(_format_detail(e) for e in errors) or None
    elif isinstance(detail_value, str):
        detail = detail_value
        generic = generic or detail_value.strip() == _NO_ROUTE
    elif detail_value is not None:
        detail = _dump(detail_value, redact)
    else:
        # An HTML page from a proxy: one line of its text, not its layout.
        detail = " ".join(redact(text).split())[:EXCERPT] or None
    cls = _CLASSES.get(status) or (ServerError if status >= 500 else APIStatusError)
    applied = method == "POST" and status >= 500
    message = f"{method} {url} answered {status} {_reason(status)}".rstrip()
    if detail:
        message += f": {redact(detail)[:EXCERPT]}"
    if retry_after is not None:
        message += f" (Retry-After: {retry_after:.3g}s)"
    advice = _advice(
        status,
        generic=generic,
        base_url=base_url,
        applied=applied,
        retry_after=retry_after,
        tries=tries,
        policy=policy,
        idempotent=idempotent,
    )
    if advice:
        message += f". {advice}"
    request_id = next(
        (v for k, v in headers.items() if k.lower() in _paths.REQUEST_ID_HEADERS), None
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


def _advice(
    status: int,
    *,
    generic: bool,
    base_url: str,
    applied: bool,
    retry_after: float | None,
    tries: int,
    policy: RetryPolicy,
    idempotent: bool,
) -> str:
    if status == 404:
        return _not_found_advice(base_url, generic=generic)
    if status >= 500 and applied:
        return (
            "The server failed; the request may have taken effect: check before sending it again."
        )
    if not (status >= 500 or status in (408, 429)):
        return _ADVICE.get(status, "")
    if retry_after is not None and retry_after > policy.max_retry_after:
        tried = (
            f"it was not retried: the server asked to wait {retry_after:.3g}s, longer than "
            f"the retry policy's max_retry_after ({policy.max_retry_after:g}s)"
        )
    elif not idempotent and status != 429:
        tried = "it was not retried, as the request may not be sent twice"
    elif policy.attempts == 1:
        tried = "it was not retried (the retry policy allows a single try)"
    elif tries >= policy.attempts:
        tried = "it failed on every try the retry policy allows"
    else:
        tried = f"it failed on try {tries} of {policy.attempts}"
    if status == 429:
        return f"Too many requests ({tried}); slow down and try again later."
    if status == 408:
        return f"The server gave up waiting for the request; {tried}; try again later."
    return f"The server failed; {tried}; try again later."


def _not_found_advice(base_url: str, *, generic: bool) -> str:
    path = urlsplit(base_url).path.rstrip("/")
    last = path.rsplit("/", 1)[-1].lower()
    if last in _VERSION_SEGMENTS:
        return (
            f"The base URL {base_url} ends in '/{path.rsplit('/', 1)[-1]}', which the API's "
            "paths do not use: set the base URL to the API's root (e.g. "
            f"{_paths.DEFAULT_BASE_URL})."
        )
    if generic:
        return (
            f"The server has no such route: check that the base URL ({base_url}) is the "
            f"Automation API's root (e.g. {_paths.DEFAULT_BASE_URL})."
        )
    return _ADVICE[404]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _dump(value: object, redact: Callable[[str], str]) -> str:
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):
        text = "(a value nested too deep to show)"
    return redact(text)[:EXCERPT]


def _validation_detail(item: object, redact: Callable[[str], str]) -> ValidationDetail:
    if not isinstance(item, dict):
        shown = redact(item)[:EXCERPT] if isinstance(item, str) else _dump(item, redact)
        return ValidationDetail(loc=(), msg=shown, type="")
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
