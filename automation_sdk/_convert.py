"""JSON <-> models, through one private cattrs converter.

Structuring is strict about types (a number is not a string, ``true`` is not
an int) and lenient about the unknown: extra fields are ignored and unknown
enum values become ``UNKNOWN`` members. A failure becomes a list of readable
problems, each naming the field path (``steps[2].step.id: ...``), which the
session layer wraps in :class:`~automation_sdk.errors.ResponseValidationError`.

The same converter backs the models' public ``to_dict()`` / ``from_dict()``
(:func:`to_dict`, :func:`from_dict`): what it writes is the API's shape, and
what it reads back is checked as strictly as an answer, a bad shape becoming
an :class:`~automation_sdk.errors.InvalidArgumentError` since the caller gave it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from ._events import RunTransition, StepTransition, WatchEvent
from ._models import Automation, JSONValue, StepType, _OpenEnum
from .errors import InvalidArgumentError

__all__ = [
    "StructureFailed",
    "event_from_dict",
    "event_from_json",
    "from_dict",
    "from_json",
    "structure",
    "to_dict",
    "unstructure",
]

T = TypeVar("T")


class StructureFailed(Exception):
    """Raised by :func:`structure`; ``problems`` has one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def _expect(value: object, kind: type | tuple[type, ...], name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {name}, got {type(value).__name__} {_short(value)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _structure_str(value: object, _: type) -> str:
    _expect(value, str, "a string")
    assert isinstance(value, str)
    return value


def _structure_int(value: object, _: type) -> int:
    _expect(value, int, "an integer")
    assert isinstance(value, int)
    return value


def _structure_uuid(value: object, _: type) -> uuid.UUID:
    _expect(value, str, "a UUID string")
    assert isinstance(value, str)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"expected a UUID, got {_short(value)}") from None


def _structure_datetime(value: object, _: type) -> datetime:
    _expect(value, str, "an ISO 8601 timestamp")
    assert isinstance(value, str)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 timestamp, got {_short(value)}") from None
    # A timestamp without an offset is taken as UTC, the API's only zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _structure_open_enum(value: object, cls: type[_OpenEnum]) -> _OpenEnum:
    _expect(value, str, f"a {cls.__name__} string")
    return cls(value)


def _structure_json_object(value: object, _: type) -> Mapping[str, Any]:
    _expect(value, dict, "a JSON object")
    assert isinstance(value, dict)
    return dict(value)


def _is_mapping(t: Any) -> bool:
    return get_origin(t) in (Mapping, dict) or t in (Mapping, dict)


def _is_homogenous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_factory(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = homogenous_tuple_structure_factory(t, conv)

    def structure_tuple(value: object, cls: Any) -> Any:
        # A string or an object is iterable too; the API only ever sends arrays.
        _expect(value, list, "a JSON array")
        return inner(value, cls)

    return structure_tuple


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _json_ready(value: object) -> Any:
    # A user's inputs may hold tuples, MappingProxyType or any Mapping: JSON has
    # only objects and arrays, so they all become dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


# The "type" of each event in its JSON form, as OpenAI's and Anthropic's stream events have it.
_EVENT_TYPES: dict[type, str] = {
    StepTransition: "step_transition",
    RunTransition: "run_transition",
}
_EVENT_CLASSES = {name: cls for cls, name in _EVENT_TYPES.items()}


def _step_or_edge_ref(value: object, _: type) -> str | uuid.UUID:
    # An EdgeSpec names a step by name or id; in JSON both are strings, and one
    # that reads as a UUID comes back as one, as create() would resolve it.
    _expect(value, str, "a step name or id")
    assert isinstance(value, str)
    try:
        return uuid.UUID(value)
    except ValueError:
        return value


def _make() -> cattrs.Converter:
    conv = make_converter(detailed_validation=True, forbid_extra_keys=False)
    # Type hooks dispatch on the class's MRO: the _OpenEnum hook is more specific
    # than the str one for every enum below, so both can be registered by type.
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(_OpenEnum, _structure_open_enum)
    conv.register_structure_hook(uuid.UUID, _structure_uuid)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook_func(_is_mapping, _structure_json_object)
    conv.register_structure_hook_factory(_is_homogenous_tuple, _tuple_factory)
    conv.register_unstructure_hook(uuid.UUID, str)
    conv.register_unstructure_hook(datetime, _unstructure_datetime)
    # By class, so that it beats the json preconf's identity hook for str (an MRO match):
    # to_dict() gives plain strings, not enum members.
    conv.register_unstructure_hook(_OpenEnum, lambda e: e.value)
    conv.register_unstructure_hook_func(_is_mapping, _json_ready)
    # Unions go by predicate: the json preconf's union passthrough would win a type hook.
    conv.register_structure_hook_func(lambda t: t == str | uuid.UUID, _step_or_edge_ref)
    conv.register_structure_hook_func(
        lambda t: t == StepType | str, _structure_open_enum_as(StepType)
    )
    for event_cls, name in _EVENT_TYPES.items():
        conv.register_unstructure_hook(
            event_cls, _tagged(make_dict_unstructure_fn(event_cls, conv), name)
        )
        conv.register_structure_hook(
            event_cls, _checked_tag(make_dict_structure_fn(event_cls, conv), name)
        )
    # The API calls an automation's runs "sessions".
    conv.register_structure_hook(
        Automation, make_dict_structure_fn(Automation, conv, runs=override(rename="sessions"))
    )
    conv.register_unstructure_hook(
        Automation, make_dict_unstructure_fn(Automation, conv, runs=override(rename="sessions"))
    )
    return conv


def _structure_open_enum_as(cls: type[_OpenEnum]) -> Callable[[object, type], _OpenEnum]:
    def structure_enum(value: object, _: type) -> _OpenEnum:
        return _structure_open_enum(value, cls)

    return structure_enum


def _tagged(
    unstructure_fn: Callable[[Any], dict[str, Any]], name: str
) -> Callable[[Any], dict[str, Any]]:
    def unstructure_event(event: Any) -> dict[str, Any]:
        return {"type": name, **unstructure_fn(event)}

    return unstructure_event


def _checked_tag(structure_fn: Callable[[Any, Any], Any], name: str) -> Callable[[Any, Any], Any]:
    def structure_event(data: Any, cls: Any) -> Any:
        tag = data.get("type", name) if isinstance(data, dict) else name
        if tag != name:
            raise ValueError(f"expected an event of type {name!r}, got type {_short(tag)}")
        return structure_fn(data, cls)

    return structure_event


_CONVERTER = _make()

_PATH_PREFIX = re.compile(r"^\$\.?")


def _problem(line: str) -> str:
    # cattrs says "<what> @ $.steps[2].step.id"; users read "steps[2].step.id: <what>".
    what, sep, path = line.rpartition(" @ ")
    if not sep:
        return line
    path = _PATH_PREFIX.sub("", path) or "(the whole answer)"
    return f"{path}: {what}"


def _format(exc: BaseException, type_: type | None) -> str:
    # Our hooks' own messages say what was expected and what came, and so do the
    # specs' validators (an InvalidArgumentError from StepSpec(...)): keep them.
    if isinstance(exc, InvalidArgumentError):
        return str(exc)
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected "):
        return str(exc)
    return format_exception(exc, type_)


def structure(data: object, cls: type[T]) -> T:
    """Build a ``cls`` from decoded JSON, or raise :class:`StructureFailed`."""
    if not isinstance(data, dict) and not _is_homogenous_tuple(cls):
        raise StructureFailed([f"(the whole answer): expected a JSON object, got {_short(data)}"])
    try:
        return _CONVERTER.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise StructureFailed(
            [_problem(line) for line in cattrs.transform_error(exc, format_exception=_format)]
        ) from exc


def unstructure(obj: object) -> Any:
    """Turn a model back into the JSON shape the API uses."""
    return _CONVERTER.unstructure(obj)


# -- the public to_dict/from_dict of models and events ----------------------------------------


def to_dict(obj: object) -> dict[str, JSONValue]:
    """A model or event as JSON-ready data (what ``Model.to_dict()`` returns)."""
    data: dict[str, JSONValue] = _CONVERTER.unstructure(obj)
    return data


def _invalid(what: str, problems: tuple[str, ...] | list[str]) -> InvalidArgumentError:
    # The problems are worded for an API answer; here the caller handed the object over.
    problems = [p.replace("(the whole answer)", "(the whole object)") for p in problems]
    shown = "; ".join(problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return InvalidArgumentError(
        f"{what}: the data does not have the expected shape: {shown}{more}. "
        "Pass what to_dict() or to_json() returned, or the API's own JSON"
    )


def from_dict(data: object, cls: type[T]) -> T:
    """Build a ``cls`` from ``to_dict()``'s shape, or raise :class:`InvalidArgumentError`."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    try:
        return structure(data, cls)
    except StructureFailed as exc:
        raise _invalid(f"{cls.__name__}.from_dict()", exc.problems) from exc


def _loads(text: object, what: str) -> object:
    if not isinstance(text, str | bytes | bytearray):
        raise InvalidArgumentError(
            f"{what} takes a JSON string or bytes, got {type(text).__name__}"
        )
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{what}: the text is not JSON: {exc}") from None


def from_json(text: object, cls: type[T]) -> T:
    """Build a ``cls`` from ``to_json()``'s output, or raise :class:`InvalidArgumentError`."""
    return from_dict(_loads(text, f"{cls.__name__}.from_json()"), cls)


def event_from_dict(data: Mapping[str, object]) -> WatchEvent:
    """Build the event whose ``"type"`` the data names: a step or a run transition.

    Raises:
        InvalidArgumentError: no known ``"type"``, or a field of the wrong shape.
    """
    kind = data.get("type") if isinstance(data, Mapping) else None
    event_cls = _EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
    if event_cls is None:
        known = " or ".join(repr(name) for name in _EVENT_CLASSES)
        raise InvalidArgumentError(
            f'event_from_dict(): the data\'s "type" must be {known}, got '
            f"{_short(kind) if isinstance(data, Mapping) else 'no object: ' + _short(data)}. "
            "Pass what an event's to_dict() returned"
        )
    event: WatchEvent = from_dict(data, event_cls)
    return event


def event_from_json(text: str | bytes) -> WatchEvent:
    """Build an event from its ``to_json()`` output (see :func:`event_from_dict`).

    Raises:
        InvalidArgumentError: the text is not JSON, or not an event.
    """
    data = _loads(text, "event_from_json()")
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"event_from_json(): expected a JSON object, got {_short(data)}")
    return event_from_dict(data)
