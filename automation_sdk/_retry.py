"""When a failed request is tried again, and how long to wait first.

The public knob is :class:`RetryPolicy`; tenacity does the looping inside
:mod:`automation_sdk._transport` and never shows in a public signature.

The rules (see the docs' "Errors and retries" page):

- a GET or the cancel PATCH (idempotent) is retried on a failed connection,
  a timeout, a garbled body, 408, 429 and 5xx;
- a POST is retried only when the server cannot have acted on it: the
  connection was never made, or it answered 429;
- a ``Retry-After`` is honoured, even above ``wait_max``, up to
  ``max_retry_after``; a longer one is not waited for: the error is raised
  at once with its ``retry_after`` set;
- otherwise the wait grows exponentially from ``wait_initial`` up to
  ``wait_max``, with jitter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from attrs import Attribute, frozen
from attrs import field as attr_field

from ._config import check_bool, check_int, check_seconds
from .errors import (
    APIStatusError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TransportError,
)

__all__ = ["RetryPolicy", "backoff", "parse_retry_after", "retry_after_of", "should_retry"]

_RETRY_STATUSES: Final = frozenset({408, 429})
_JITTER_FLOOR: Final = 0.5  # a jittered wait is between half and all of the base wait
# 2.0 ** 1024 overflows; 2 ** 1000 times any usable wait_initial is past any wait_max.
_MAX_DOUBLINGS: Final = 1000


# Validators raising ConfigurationError (a ValueError, as attrs' own would be),
# with a message naming the field and the values it takes.
def _attempts(_: object, attribute: Attribute[int], value: object) -> None:
    check_int(value, f"RetryPolicy.{attribute.name}", minimum=1)


def _seconds(_: object, attribute: Attribute[float], value: object) -> None:
    check_seconds(value, f"RetryPolicy.{attribute.name}")


def _flag(_: object, attribute: Attribute[bool], value: object) -> None:
    check_bool(value, f"RetryPolicy.{attribute.name}")


@frozen(kw_only=True)
class RetryPolicy:
    """How the client retries a request that failed for a passing reason.

    Args:
        attempts: Tries in all, the first included; ``1`` turns retries off.
        wait_initial: The wait before the second try, in seconds.
        wait_max: The longest wait between tries (a server's ``Retry-After``
            may ask for more, up to ``max_retry_after``).
        jitter: Spread each wait randomly over 50-100% of its value, so that
            many clients do not retry in lockstep.
        max_retry_after: The longest ``Retry-After`` the client waits for;
            beyond it the error is raised at once with ``retry_after`` set.

    Raises:
        ConfigurationError: ``attempts`` is not a whole number >= 1, a wait is
            not a finite number of seconds >= 0, or ``jitter`` is not a bool.
    """

    attempts: int = attr_field(default=5, validator=_attempts)
    wait_initial: float = attr_field(default=0.5, validator=_seconds)
    wait_max: float = attr_field(default=8.0, validator=_seconds)
    jitter: bool = attr_field(default=True, validator=_flag)
    max_retry_after: float = attr_field(default=60.0, validator=_seconds)


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


def retry_after_of(exc: BaseException) -> float | None:
    """The ``Retry-After`` an error carries, if any."""
    if isinstance(exc, RateLimitError | ServerError):
        return exc.retry_after
    return None


def should_retry(exc: BaseException, *, idempotent: bool, policy: RetryPolicy) -> bool:
    """Whether ``exc`` from one try may be followed by another."""
    retry_after = retry_after_of(exc)
    if retry_after is not None and retry_after > policy.max_retry_after:
        return False
    if isinstance(exc, TransportError):
        return idempotent or not exc.may_have_taken_effect
    if isinstance(exc, RateLimitError):
        return True  # a 429 means the server did not act on the request
    if isinstance(exc, ServerError):
        return idempotent
    if isinstance(exc, APIStatusError):
        return idempotent and exc.status_code in _RETRY_STATUSES
    if isinstance(exc, ResponseValidationError):
        # A body that is not JSON at all is most often cut short on the way;
        # a JSON body of the wrong shape will not get better on a retry.
        return idempotent and exc.not_json
    return False


def backoff(
    policy: RetryPolicy, failures: int, retry_after: float | None, rng: random.Random
) -> float:
    """The wait after the ``failures``-th failed try."""
    if retry_after is not None:
        return max(0.0, retry_after)
    doublings = min(failures - 1, _MAX_DOUBLINGS)
    base: float = min(policy.wait_max, policy.wait_initial * 2.0**doublings)
    if policy.jitter:
        return base * rng.uniform(_JITTER_FLOOR, 1.0)
    return base
