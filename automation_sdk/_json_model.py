"""The base every model and event shares: ``to_dict``/``to_json`` and ``from_dict``/``from_json``.

A module of its own, so that the models and ``errors`` (for
:class:`~automation_sdk.errors.ValidationDetail`) can both import it: the
converter behind the methods is imported when one of them is first called.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from ._models import JSONValue

__all__ = ["_JSONModel"]


class _JSONModel:
    """What every model and event shares: conversion to and from plain JSON.

    ``to_dict()`` gives the shape the API uses (ids and timestamps as strings,
    enums as their wire value, ``Automation.runs`` as ``"sessions"``) and
    ``from_dict()`` reads it back through the same converter that reads the
    API's answers, so that ``Model.from_dict(m.to_dict()) == m`` for every
    model. A naive ``datetime`` is written without an offset and read back as
    UTC, the API's only zone.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, JSONValue]:
        """Return the object as JSON-ready data: dicts, lists, strings, numbers, bools, None."""
        from ._convert import to_dict

        return to_dict(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """Return :meth:`to_dict` as a JSON string (non-ASCII characters kept as they are)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Self:
        """Build the object from :meth:`to_dict`'s shape (or the API's own JSON).

        Unknown keys are ignored and unknown enum values become ``UNKNOWN``
        members, as in an API answer.

        Raises:
            InvalidArgumentError: ``data`` does not have this shape; the message
                names each bad field by its path (``steps[0].status: ...``).
        """
        from ._convert import from_dict

        return from_dict(data, cls)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Build the object from :meth:`to_json`'s output.

        Raises:
            InvalidArgumentError: ``text`` is not JSON, or not this shape.
        """
        from ._convert import from_json

        return from_json(text, cls)
