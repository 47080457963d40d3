"""Keeping the API token out of everything a user can see.

A server may echo the token back: in a JSON body (plain, with ``/`` written
``\\/``, or as ``\\uXXXX`` escapes), in a header (``x-request-id``,
``WWW-Authenticate``), or inside a value that a validation problem quotes.
:class:`Redactor` finds it in any of those spellings, and :meth:`Redactor.error`
scrubs every text field of an :class:`~automation_sdk.errors.AutomationError`
in place. The session layer and the poller call it once, on each error as it
leaves them, after every message is formatted: redaction is the last step, so
a cut (an excerpt, a quoted value) never leaves a piece of the token behind,
except a prefix cut short by ``...``, which is caught too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .errors import (
    APIStatusError,
    AutomationError,
    ResponseValidationError,
    UnprocessableEntityError,
    ValidationDetail,
)

__all__ = ["REDACTED", "Redactor"]

REDACTED: Final = "[redacted]"
# A cut-off prefix of the token shorter than this is left alone: it reveals
# next to nothing, and matching shorter pieces would mangle ordinary words.
_MIN_PREFIX: Final = 6


def _spellings(char: str) -> str:
    """A regex for one character of the token: itself, or as JSON or a URL may escape it."""
    code = ord(char)
    forms = [re.escape(char)]
    if code <= 0xFFFF:
        forms.append(r"\\u" + _hex(f"{code:04x}"))  # JSON: "\u002f" or "\u002F"
    if char == "/":
        forms.append(r"\\/")
    if code < 0x80 and not char.isalnum():
        forms.append("%" + _hex(f"{code:02x}"))  # percent-encoding: %2F, %2f, %2B
    return "(?:" + "|".join(forms) + ")"


def _hex(digits: str) -> str:
    """A regex matching ``digits`` in either case (the token itself stays case-sensitive)."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


class Redactor:
    """Replaces the token, however it is spelled, with ``[redacted]``."""

    __slots__ = ("_pattern", "_token")

    def __init__(self, token: str) -> None:
        self._token = token
        if not token:
            self._pattern: re.Pattern[str] | None = None
            return
        chars = [_spellings(c) for c in token]
        whole = "".join(chars)
        alternatives = [whole]
        if len(token) > _MIN_PREFIX:
            # A prefix of the token cut short by an excerpt ("sk_live/ab...").
            tail = ""
            for piece in reversed(chars[_MIN_PREFIX:-1]):
                tail = f"(?:{piece}{tail})?"
            alternatives.append("".join(chars[:_MIN_PREFIX]) + tail + r"(?=\.\.\.|…|\Z)")
        self._pattern = re.compile("|".join(alternatives))

    def text(self, text: str) -> str:
        """``text`` with every spelling of the token replaced."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        if (
            "\\" not in text
            and "%" not in text
            and self._token[:_MIN_PREFIX] not in text  # the token, or a cut-off prefix of it
        ):
            return text  # the common case: nothing to look at closer
        return pattern.sub(REDACTED, text)

    def value(self, value: object) -> object:
        """A decoded JSON value with every string in it (keys too) redacted."""
        try:
            return self._walk(value)
        except RecursionError:
            # Deeper than Python can walk: keep only a redacted excerpt.
            return self.text(repr(value)[:300])

    def _walk(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value

    def error(self, exc: AutomationError) -> AutomationError:
        """Scrub every text field of ``exc`` in place and return it."""
        if self._pattern is None:
            return exc
        exc.message = self.text(exc.message)
        exc.args = (exc.message,)
        if isinstance(exc, APIStatusError):
            exc.detail = None if exc.detail is None else self.text(exc.detail)
            exc.body = self.value(exc.body)
            exc.request_id = None if exc.request_id is None else self.text(exc.request_id)
            exc.headers = self.headers(exc.headers)
            if isinstance(exc, UnprocessableEntityError):
                exc.errors = tuple(self._detail(d) for d in exc.errors)
        if isinstance(exc, ResponseValidationError):
            exc.problems = tuple(self.text(p) for p in exc.problems)
            exc.body = self.text(exc.body)
        return exc

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with the token redacted from every name and value."""
        return {self.text(k): self.text(v) for k, v in headers.items()}

    def _detail(self, detail: ValidationDetail) -> ValidationDetail:
        return ValidationDetail(
            loc=tuple(self.text(x) if isinstance(x, str) else x for x in detail.loc),
            msg=self.text(detail.msg),
            type=self.text(detail.type),
        )
