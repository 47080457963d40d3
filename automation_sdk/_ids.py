"""Checking ids before they go into a URL path."""

from __future__ import annotations

import uuid

from .errors import InvalidArgumentError

__all__ = ["to_uuid"]


def to_uuid(value: uuid.UUID | str, what: str) -> uuid.UUID:
    """Return ``value`` as a UUID, or raise :class:`InvalidArgumentError` naming ``what``.

    Every id the API takes is a UUID, so anything else (``"../x"``, an empty
    string, a number) is refused before it can reach a URL.
    """
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise InvalidArgumentError(
        f"{what} must be a UUID (a uuid.UUID or a string such as "
        f"'3c90c3cc-0d44-4b50-8888-8dd25736052a'), got {value!r}"
    )
