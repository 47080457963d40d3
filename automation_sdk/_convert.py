"""JSON <-> models, through one private cattrs converter.

Structuring is strict about types (a number is not a string, ``true`` is not
an int) and lenient about the unknown: extra fields are ignored and unknown
enum values become ``UNKNOWN`` members. A failure becomes a list of readable
problems, each naming the field path (``steps[2].step.id: ...``), which the
session layer wraps in :class:`~automation_sdk.errors.ResponseValidationError`.
"""

from __future__ import annotations

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

from ._models import Automation, _OpenEnum
from .errors import ResponseValidationError

__all__ = [
    "StructureFailed",
    "fingerprint",
    "parse",
    "structure",
    "summary_states",
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
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, _OpenEnum), lambda e: e.value
    )
    conv.register_unstructure_hook_func(_is_mapping, dict)
    # The API calls an automation's runs "sessions".
    conv.register_structure_hook(
        Automation, make_dict_structure_fn(Automation, conv, runs=override(rename="sessions"))
    )
    conv.register_unstructure_hook(
        Automation, make_dict_unstructure_fn(Automation, conv, runs=override(rename="sessions"))
    )
    return conv


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
    # Our hooks' own messages say what was expected and what came; keep them.
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


def parse(data: object, cls: type[T], *, status: int, method: str, url: str) -> T:
    """Structure an answer's decoded body as ``cls`` or raise :class:`ResponseValidationError`.

    ``status``, ``method`` and ``url`` name the request in the error's message.
    """
    try:
        return structure(data, cls)
    except StructureFailed as exc:
        raise invalid_answer(exc, cls, status=status, method=method, url=url) from exc


def invalid_answer(
    exc: StructureFailed, cls: object, *, status: int, method: str, url: str
) -> ResponseValidationError:
    """The error saying that the answer to ``method url`` does not match ``cls``."""
    shown = "; ".join(exc.problems[:5])
    more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
    return ResponseValidationError(
        f"{method} {url} answered {status} with a body that does not match "
        f"{cls.__name__ if isinstance(cls, type) else 'the expected shape'}: {shown}{more}. "
        "The server may be newer or older than this SDK; upgrade the SDK or report it",
        method=method,
        url=url,
        status_code=status,
        problems=exc.problems,
    )


_SEPARATOR = "\x00"


def fingerprint(data: object) -> str | None:
    """What a watch's events depend on, read straight from a run's decoded JSON.

    Two answers with equal fingerprints have the same run, status and
    ``updated_at``, and the same steps with the same statuses and
    ``updated_at``: the second can yield no event. Anything unexpected gives
    None, and the answer goes through full validation. The pieces are joined
    into one string (a tenth of the memory of a tuple of them), which is only
    used when no piece contains the separator, so that it stays unambiguous.
    """
    if type(data) is not dict:
        return None
    try:
        steps = data["steps"]
        if type(steps) is not list:
            return None
        pieces = [data["id"], data["automation_id"], data["updated_at"], data["status"]]
        for s in steps:
            pieces += (s["id"], s["step"]["id"], s["status"], s["updated_at"])
        joined = _SEPARATOR.join(pieces)  # a TypeError unless every piece is a string
    except (KeyError, TypeError):
        return None
    return joined if joined.count(_SEPARATOR) == len(pieces) - 1 else None


def unstructure(obj: object) -> Any:
    """Turn a model back into the JSON shape the API uses."""
    return _CONVERTER.unstructure(obj)


def summary_states(data: object) -> dict[str, tuple[str, str]] | None:
    """``{run id: (status, updated_at)}`` from an Automation answer's ``sessions``, unparsed.

    Only the two fields that say whether a run moved are read, as raw strings,
    so that a summary of thousands of runs costs no structuring. None when the
    answer is not an object with a ``sessions`` array; an entry whose id,
    status or ``updated_at`` is not a string is left out (the run then counts
    as not listed).
    """
    if type(data) is not dict:
        return None
    sessions = data.get("sessions")
    if type(sessions) is not list:
        return None
    states: dict[str, tuple[str, str]] = {}
    for entry in sessions:
        if type(entry) is not dict:
            continue
        run_id, status, updated_at = entry.get("id"), entry.get("status"), entry.get("updated_at")
        if type(run_id) is str and type(status) is str and type(updated_at) is str:
            states[run_id.lower()] = (status, updated_at)
    return states
