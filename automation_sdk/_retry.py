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
  ``wait_max``, with jitter;
- with a ``timeout`` budget, no wait is started that would end past it.

The pieces here are tenacity's own (``stop_after_attempt``, ``wait_exponential``
and ``wait_random_exponential``, combined with ``|`` and ``+``), plus two small
strategies tenacity has no word for: a stop at a moment of the client's clock,
and a wait that prefers the server's ``Retry-After``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from attrs import Attribute, frozen
from attrs import field as attr_field
from tenacity import RetryCallState
from tenacity.stop import stop_after_attempt, stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

from ._clock import Clock
from ._config import check_bool, check_int, check_seconds
from .errors import (
    APIStatusError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TransportError,
)

__all__ = [
    "RetryPolicy",
    "parse_retry_after",
    "retry_after_of",
    "retry_stop",
    "retry_wait",
    "should_retry",
]

_RETRY_STATUSES: Final = frozenset({408, 429})


# Validators raising ConfigurationError (a ValueError, as attrs' own would be),
# with a message naming the field and the values it takes.
def _attempts(_: object, attribute: Attribute[int], value: object) -> None:
    check_int(value, f"RetryPolicy.{attribute.name}", minimum=1)


def _seconds(_: object, attribute: Attribute[float], value: object) -> None:
    check_seconds(value, f"RetryPolicy.{attribute.name}")


def _budget(_: object, attribute: Attribute[float | None], value: object) -> None:
    if value is not None:
        check_seconds(value, f"RetryPolicy.{attribute.name}", positive=True)


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
        timeout: A budget in seconds for one call, all its tries and waits
            together: each try's timeout is cut to what is left of it, and no
            wait starts that would end past it. ``None`` (the default): only
            ``attempts`` bounds the retries.

    Raises:
        ConfigurationError: ``attempts`` is not a whole number >= 1, a wait is
            not a finite number of seconds >= 0, ``timeout`` is neither None
            nor a finite number of seconds > 0, or ``jitter`` is not a bool.
    """

    attempts: int = attr_field(default=5, validator=_attempts)
    wait_initial: float = attr_field(default=0.5, validator=_seconds)
    wait_max: float = attr_field(default=8.0, validator=_seconds)
    jitter: bool = attr_field(default=True, validator=_flag)
    max_retry_after: float = attr_field(default=60.0, validator=_seconds)
    timeout: float | None = attr_field(default=None, validator=_budget)


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


def retry_after_of(exc: BaseException | None) -> float | None:
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


class _stop_at(stop_base):  # lower case, like tenacity's strategies
    """Stop when the next wait would end at or past ``end`` on ``clock``.

    tenacity's own ``stop_before_delay`` reads ``time.monotonic``; this one reads
    the client's clock, so that a :class:`~automation_sdk.testing.FakeClock`
    drives it too.
    """

    def __init__(self, end: float, clock: Clock) -> None:
        self.end = end
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock.monotonic() + retry_state.upcoming_sleep >= self.end


class _wait_retry_after(wait_base):  # lower case, like tenacity's strategies
    """The ``Retry-After`` the failure carries, else ``fallback``'s wait."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        after = retry_after_of(outcome.exception()) if outcome is not None else None
        return self.fallback(retry_state) if after is None else after


def retry_stop(policy: RetryPolicy, end: float | None, clock: Clock) -> stop_base:
    """Stop after ``policy.attempts`` tries, or before a wait that would end past ``end``."""
    attempts = stop_after_attempt(policy.attempts)
    return attempts if end is None else attempts | _stop_at(end, clock)


def retry_wait(policy: RetryPolicy) -> wait_base:
    """The wait after a failed try: ``Retry-After``, else exponential backoff.

    Without jitter the n-th wait is ``min(wait_max, wait_initial * 2 ** (n - 1))``.
    With jitter it lies uniformly between half and all of that: a fixed half
    plus tenacity's "full jitter" over the other half.
    """
    if policy.jitter:
        initial, most = policy.wait_initial / 2, policy.wait_max / 2
        backoff: wait_base = wait_exponential(multiplier=initial, max=most) + (
            wait_random_exponential(multiplier=initial, max=most)
        )
    else:
        backoff = wait_exponential(multiplier=policy.wait_initial, max=policy.wait_max)
    return _wait_retry_after(backoff)
