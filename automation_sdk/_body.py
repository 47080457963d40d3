"""An answer's body, decoded as JSON, or a plain reason why it could not be.

The choices, for answers that are JSON but awkward (see the docs' "Errors and
retries" page):

- a UTF-8 byte order mark before the JSON is skipped: the JSON is valid;
- JSON nested deeper than Python's decoder can follow is refused, not
  retried (a retry would get the same answer);
- an integer of more digits than Python converts (``sys.get_int_max_str_digits``,
  4300 by default) is refused, not retried: no field of the API holds one.
"""

from __future__ import annotations

import json
import sys
from typing import Final

__all__ = ["NotDecodable", "decode"]

_BOM: Final = "\ufeff"


class NotDecodable(Exception):
    """The body could not be used as JSON; ``problem`` says why, for a user."""

    def __init__(self, problem: str, *, not_json: bool) -> None:
        super().__init__(problem)
        self.problem = problem
        self.not_json = not_json


def text_of(raw: bytes) -> str:
    """The body as text: UTF-8, a leading byte order mark dropped, bad bytes replaced."""
    text = raw.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(_BOM) else text


def decode(raw: bytes) -> object:
    """The decoded JSON of ``raw``.

    Raises:
        NotDecodable: the body is not JSON (``not_json=True``), or is JSON
            that Python cannot decode safely (``not_json=False``).
    """
    try:
        return json.loads(text_of(raw))
    except json.JSONDecodeError:
        raise NotDecodable("not JSON", not_json=True) from None
    except RecursionError:
        raise NotDecodable(
            "JSON nested deeper than the decoder can follow", not_json=False
        ) from None
    except ValueError:
        # The only other ValueError json.loads raises: an integer string over the limit.
        raise NotDecodable(
            f"JSON holding an integer of more than {sys.get_int_max_str_digits()} digits",
            not_json=False,
        ) from None
