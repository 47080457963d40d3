"""Fault injection: the ways a real service and the proxies in front of it misbehave.

Every request whose method is in :attr:`Faults.methods` draws exactly three
numbers from the emulator's ``random.Random(seed)``, whatever happens next, so
that the same seed and the same sequence of requests give the same faults:

- the first picks at most one of the exclusive faults, each with its rate
  (``error``, ``rate_limit``, ``drop``, ``stale``, ``truncate``);
- the second decides ``slow``, which combines with any of them;
- the third picks the variant (which 5xx page, which older snapshot, where
  to cut the body).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Final

from attrs import field, frozen

__all__ = [
    "NO_FAULT",
    "FaultDraw",
    "Faults",
    "draw",
    "error_page",
    "retry_after_header",
]

_EXCLUSIVE: Final = ("error", "rate_limit", "drop", "stale", "truncate")


def _rate(instance: object, attribute: object, value: float) -> None:
    name = getattr(attribute, "name", "rate")
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"Faults.{name} must be a number from 0 to 1, got {value!r}")


def _non_negative(instance: object, attribute: object, value: float | None) -> None:
    name = getattr(attribute, "name", "value")
    if value is not None and (not isinstance(value, int | float) or not value >= 0):
        raise ValueError(f"Faults.{name} must be a number of seconds >= 0, got {value!r}")


def _methods(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    return frozenset(m.upper() for m in value)


@frozen(kw_only=True)
class Faults:
    """Which faults the emulator injects, and how often (all off by default).

    Rates are probabilities from 0 to 1 per request. ``error_rate``,
    ``rate_limit_rate``, ``drop_rate``, ``stale_rate`` and ``truncate_rate``
    exclude each other (their sum must not exceed 1); ``slow_rate`` combines
    with any of them.

    Args:
        error_rate: Answer 500 (JSON or plain text), 502 (an HTML proxy page)
            or 503 (JSON, with ``Retry-After``) without handling the request.
        rate_limit_rate: Answer 429 with ``Retry-After`` without handling it.
        retry_after: Seconds sent in ``Retry-After`` (``"1"``, or ``"0.5"``
            for a fraction); None sends no header.
        drop_rate: Handle the request, then close the connection without
            answering (for a POST: the effect happened, the answer is lost).
        slow_rate: Sleep ``slow_seconds`` on the emulator's clock first.
        slow_seconds: How long a slow answer waits.
        stale_rate: For a GET of one session: answer an older snapshot of it
            that was served before (with its older ``updated_at``); no fault
            when no older snapshot exists.
        truncate_rate: For a 200 answer: cut the JSON body in the middle,
            with a matching ``Content-Length`` (a complete HTTP answer whose
            JSON does not parse).
        methods: The HTTP methods faults apply to; GET only by default, so
            that a retried create never duplicates anything.

    Raises:
        ValueError: a rate outside 0..1, exclusive rates summing above 1, or
            negative seconds.
    """

    error_rate: float = field(default=0.0, validator=_rate)
    rate_limit_rate: float = field(default=0.0, validator=_rate)
    retry_after: float | None = field(default=1.0, validator=_non_negative)
    drop_rate: float = field(default=0.0, validator=_rate)
    slow_rate: float = field(default=0.0, validator=_rate)
    slow_seconds: float = field(default=5.0, validator=_non_negative)
    stale_rate: float = field(default=0.0, validator=_rate)
    truncate_rate: float = field(default=0.0, validator=_rate)
    methods: frozenset[str] = field(default=frozenset({"GET"}), converter=_methods)

    def __attrs_post_init__(self) -> None:
        total = sum(self._exclusive_rates())
        if total > 1.0 + 1e-9:
            raise ValueError(
                "Faults: error_rate + rate_limit_rate + drop_rate + stale_rate + "
                f"truncate_rate must not exceed 1, got {total:g}"
            )

    def _exclusive_rates(self) -> tuple[float, ...]:
        return (
            self.error_rate,
            self.rate_limit_rate,
            self.drop_rate,
            self.stale_rate,
            self.truncate_rate,
        )

    @property
    def enabled(self) -> bool:
        """True when any rate is above zero."""
        return self.slow_rate > 0 or any(rate > 0 for rate in self._exclusive_rates())

    def applies_to(self, method: str) -> bool:
        """True when a request with this method draws faults."""
        return self.enabled and method.upper() in self.methods


@frozen
class FaultDraw:
    """The faults drawn for one request."""

    kind: str | None
    """One of the exclusive faults, or None."""
    slow: bool
    """Whether to sleep before answering."""
    variant: float
    """A number in [0, 1) choosing the fault's variant."""


NO_FAULT: Final = FaultDraw(None, False, 0.0)


def draw(faults: Faults, rng: random.Random) -> FaultDraw:
    """Draw the faults of one request (always three numbers from ``rng``)."""
    pick, slow, variant = rng.random(), rng.random(), rng.random()
    kind: str | None = None
    edge = 0.0
    for name, rate in zip(_EXCLUSIVE, faults._exclusive_rates(), strict=True):
        edge += rate
        if pick < edge:
            kind = name
            break
    return FaultDraw(kind, slow < faults.slow_rate, variant)


_PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error_page(variant: float, retry_after: float | None) -> tuple[int, str, bytes, dict[str, str]]:
    """A 5xx answer ``(status, content type, body, headers)``, chosen by ``variant``."""
    choice = int(variant * 4)
    if choice == 0:
        return 500, "application/json", b'{"detail":"Internal Server Error"}', {}
    if choice == 1:
        return 500, "text/plain", b"Internal Server Error", {}
    if choice == 2:
        page = _PROXY_PAGE.format(status=502, reason="Bad Gateway")
        return 502, "text/html", page.encode(), {}
    headers = retry_after_header(retry_after)
    return 503, "application/json", b'{"detail":"Service Unavailable"}', headers


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """The ``Retry-After`` header for ``seconds`` (none when None)."""
    if seconds is None:
        return {}
    text = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
    return {"Retry-After": text}
