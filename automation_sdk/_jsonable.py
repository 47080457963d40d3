"""Checking that a caller's value can be sent as JSON, before anything is sent.

``json.dumps`` fails late and badly on what JSON cannot carry: it writes
``NaN`` (which no strict parser reads), raises ``TypeError`` for a set or a
datetime, ``ValueError`` for a cycle or an integer of 5,000 digits, and
``RecursionError`` for a value nested a few thousand levels deep. The one
function here walks the value first, without recursion, and raises
:class:`~automation_sdk.errors.InvalidArgumentError` naming the path of the
first bad part (``inputs.a[2]: NaN cannot be sent as JSON``). It returns a
plain copy (dicts, lists, str, int, float, bool, None), so that the body sent
is exactly what was checked, whatever mapping or sequence types came in.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from .errors import InvalidArgumentError

__all__ = ["MAX_DEPTH", "to_json"]

_PLAIN_INT_BITS: Final = 1000  # far below the 4,300 digits int() prints by default

MAX_DEPTH: Final = 128
"""Nesting levels allowed in a value sent as JSON (the depth serde_json, say, reads)."""

_ADVICE: Final[tuple[tuple[type | tuple[type, ...], str, str], ...]] = (
    ((set, frozenset), "a set", "pass a list, e.g. sorted(value)"),
    ((bytes, bytearray, memoryview), "bytes", "decode them to a string first"),
    (date, "a date or datetime", "pass value.isoformat()"),
    (time, "a time", "pass value.isoformat()"),
    (timedelta, "a timedelta", "pass value.total_seconds()"),
    (Decimal, "a Decimal", "pass str(value) or float(value)"),
    (UUID, "a UUID", "pass str(value)"),
    (complex, "a complex number", "pass its parts as two numbers"),
)


def _path(root: str, keys: list[str | int]) -> str:
    parts = [root]
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif key.isidentifier():
            parts.append(f".{key}")
        else:
            parts.append(f"[{key!r}]")
    text = "".join(parts)
    return text if len(text) <= 120 else text[:60] + "..." + text[-30:]


def _refuse(root: str, keys: list[str | int], what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{_path(root, keys)}: {what}; nothing was sent")


def _scalar(value: object, root: str, keys: list[str | int]) -> object:
    """A plain copy of a JSON scalar, or raise naming why ``value`` is not one."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _refuse(
                    root,
                    keys,
                    f"a string holding a lone surrogate (U+{ord(value[exc.start]):04X} at "
                    f"position {exc.start}) cannot be sent as JSON; it is not valid Unicode",
                ) from None
        return str.__str__(value)
    if isinstance(value, int):
        if value.bit_length() > 1000:
            try:
                int.__repr__(value)
            except ValueError:
                raise _refuse(
                    root,
                    keys,
                    f"an integer of more than {sys.get_int_max_str_digits()} digits cannot "
                    "be sent as JSON",
                ) from None
        return int.__int__(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise _refuse(root, keys, "NaN cannot be sent as JSON (send None or a string instead)")
        if math.isinf(value):
            raise _refuse(
                root,
                keys,
                f"{'-' if value < 0 else ''}inf cannot be sent as JSON "
                "(send None, a string or a large finite number instead)",
            )
        return float.__float__(value)
    for kinds, name, advice in _ADVICE:
        if isinstance(value, kinds):
            raise _refuse(root, keys, f"{name} cannot be sent as JSON; {advice}")
    raise _refuse(
        root,
        keys,
        f"a value of type {type(value).__name__} cannot be sent as JSON; use dicts, lists, "
        "strings, numbers, booleans and None only",
    )


def to_json(value: object, root: str) -> object:
    """A plain copy of ``value`` when JSON can carry it, else :class:`InvalidArgumentError`.

    Mappings with string keys become dicts, lists and tuples become lists,
    subclasses of str, int and float (enums, say) become the plain type.
    Refused: NaN and infinities, non-string keys, cycles, more than
    :data:`MAX_DEPTH` levels of nesting, strings that are not valid Unicode,
    integers too long to print, and every other type.

    Args:
        value: The caller's value.
        root: The name the caller knows it by (``inputs``), the start of every path.
    """
    # An explicit stack instead of recursion: a value nested 100,000 levels deep
    # is refused in a loop, never by RecursionError. Each entry is a container
    # whose items are being copied; ``keys`` is the path down to the current one.
    if not isinstance(value, Mapping | list | tuple):
        return _scalar(value, root, [])
    keys: list[str | int] = []
    result, items = _open(value, root, keys)
    # Items are Any inside the loop: their type is what the loop finds out.
    stack: list[tuple[Iterator[tuple[str | int, Any]], Any, int]] = [(items, result, id(value))]
    on_path = {id(value)}
    while stack:
        items, target, container_id = stack[-1]
        into_list = isinstance(target, list)
        for key, child in items:
            cls = type(child)
            # The common plain values first: this loop is the whole cost of the check.
            if (
                (cls is str and child.isascii())
                or child is None
                or cls is bool
                or (cls is int and child.bit_length() <= _PLAIN_INT_BITS)
                or (cls is float and math.isfinite(child))
            ):
                plain = child
            elif cls is dict or cls is list or isinstance(child, Mapping | list | tuple):
                keys.append(key)
                if id(child) in on_path:
                    raise _refuse(
                        root,
                        keys,
                        "refers back to a container that holds it (a cycle), which JSON "
                        "cannot carry",
                    )
                if len(stack) >= MAX_DEPTH:
                    raise _refuse(
                        root,
                        keys,
                        f"nested deeper than {MAX_DEPTH} levels, which is more than a server "
                        "is expected to read; flatten the value",
                    )
                copy, child_items = _open(child, root, keys)
                if into_list:
                    target.append(copy)
                else:
                    target[key] = copy
                stack.append((child_items, copy, id(child)))
                on_path.add(id(child))
                break  # go down; this container's iterator resumes when the child is done
            else:
                keys.append(key)
                plain = _scalar(child, root, keys)
                keys.pop()
            if into_list:
                target.append(plain)
            else:
                target[key] = plain
        else:
            stack.pop()
            on_path.discard(container_id)
            if keys:
                keys.pop()
    return result


def _open(
    container: Mapping[object, object] | list[object] | tuple[object, ...],
    root: str,
    keys: list[str | int],
) -> tuple[dict[str, object] | list[object], Iterator[tuple[str | int, Any]]]:
    """An empty copy of ``container`` and an iterator of its (key, item) pairs."""
    if isinstance(container, Mapping):
        for key in container:
            if not isinstance(key, str):
                raise _refuse(
                    root,
                    keys,
                    f"the key {key!r} (of type {type(key).__name__}) is not a string; "
                    "JSON object keys are strings (use str(key))",
                )
        # str.__str__ turns a str subclass (an enum member, say) into a plain str.
        return {}, ((str.__str__(k), v) for k, v in container.items())
    return [], iter(enumerate(container))
