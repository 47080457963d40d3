"""JSON <-> models, through one private cattrs converter.

Structuring is strict about types (a number is not a string, ``true`` is not
an int) and lenient about the unknown: extra fields are ignored and unknown
enum values become ``UNKNOWN`` members. A failure becomes a list of readable
problems, each naming the field path (``steps[2].step.id: ...``), which
:func:`parse` wraps in :class:`~automation_sdk.errors.ResponseValidationError`.

Two savings for watches, which structure the same run again and again:

- every :class:`Step` definition goes through a bounded, process-wide intern
  table, so that the runs of one automation version share their ``Step``
  objects (in a 50-step run they are over half of a snapshot's memory);
- :class:`RunSteps` structures successive snapshots of one run, reusing the
  :class:`RunStep` of each step whose JSON did not change; a changed or new
  step is structured (and validated) in full.

The same converter backs the models' public ``to_dict()`` / ``from_dict()``
(:func:`to_dict`, :func:`from_dict`): what it writes is the API's shape, and
what it reads back is checked as strictly as an answer, a bad shape becoming
an :class:`~automation_sdk.errors.InvalidArgumentError` since the caller gave it.
"""

from __future__ import annotations

import copy
import json
import operator
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from itertools import chain, compress, repeat
from operator import and_, eq, ne, not_
from typing import Any, Final, NoReturn, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from ._events import RunTransition, StepTransition, WatchEvent
from ._models import Automation, JSONValue, Run, RunStep, Step, StepType, _OpenEnum
from .errors import InvalidArgumentError, ResponseValidationError

__all__ = [
    "STEP_TABLE_SIZE",
    "Entries",
    "RunSteps",
    "StepKeys",
    "StructureFailed",
    "event_from_dict",
    "event_from_json",
    "fingerprint",
    "from_dict",
    "from_json",
    "parse",
    "run_head",
    "structure",
    "summary_states",
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
    # Not copied: the decoded answer belongs to the SDK, and a snapshot kept by
    # a watch would otherwise hold its prompts twice.
    return value


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


STEP_TABLE_SIZE: Final = 2048
"""How many step definitions the intern table keeps (about 1 KB each with a short template)."""


class _StepTable:
    """Step definitions by (id, updated_at), each with the JSON it came from.

    A definition is shared only when its JSON is equal to the one it was built
    from, so a server that changes a step without moving its ``updated_at`` is
    still read right. Bounded: beyond ``size`` entries the oldest goes (a run
    holding its ``Step`` keeps it alive; the next run of that version builds
    and interns it again).
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[tuple[str, str | None], tuple[object, Step]] = {}

    @staticmethod
    def _key(raw: object) -> tuple[str, str | None] | None:
        if type(raw) is not dict:
            return None
        step_id, updated_at = raw.get("id"), raw.get("updated_at")
        if type(step_id) is not str or not (updated_at is None or type(updated_at) is str):
            return None
        return step_id, updated_at

    def _entry(self, raw: object) -> tuple[object, Step] | None:
        key = self._key(raw)
        entry = None if key is None else self._entries.get(key)
        try:
            return entry if entry is not None and entry[0] == raw else None
        except RecursionError:  # nested deeper than a comparison goes: not shared
            return None

    def find(self, raw: object) -> Step | None:
        """The interned Step built from JSON equal to ``raw``, or None."""
        entry = self._entry(raw)
        return None if entry is None else entry[1]

    def source(self, raw: object) -> object | None:
        """The interned JSON equal to ``raw``, or None."""
        entry = self._entry(raw)
        return None if entry is None else entry[0]

    def add(self, raw: object, step: Step) -> None:
        """Intern ``step``, built from ``raw``, which the table then owns."""
        key = self._key(raw)
        if key is None:
            return
        entries = self._entries
        if key not in entries and len(entries) >= self._size:
            entries.pop(next(iter(entries)), None)
        entries[key] = (raw, step)

    def __len__(self) -> int:
        return len(self._entries)


_STEPS: Final = _StepTable(STEP_TABLE_SIZE)


def _step_hook(conv: cattrs.Converter) -> Callable[[Any, Any], Step]:
    build = make_dict_structure_fn(Step, conv)

    def structure_step(value: Any, cls: Any) -> Step:
        found = _STEPS.find(value)
        if found is not None:
            return found
        try:
            # A Step shared by many runs holds nothing of one answer: a copy of its JSON.
            own = copy.deepcopy(value)
        except RecursionError:
            return build(value, cls)
        step = build(own, cls)
        _STEPS.add(own, step)
        return step

    return structure_step


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
    # Before the event hooks below, which capture the hooks of their fields when made.
    conv.register_structure_hook(Step, _step_hook(conv))
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


_NESTED: Final = frozenset({"steps", "current_step"})
# What structuring reads of a run step, but "user_input", which servers leave out
# (a missing key would cost the slower way of reading them all). Each value equal
# to the one a RunStep was built from structures to an equal value, and other
# keys are ignored by structuring: a step with equal values gives an equal RunStep.
_RUN_STEP_FIELDS: Final = (
    "id",
    "updated_at",
    "status",
    "result",
    "error",
    "created_at",
    "prompt",
    "step",
)
_read_fields: Final = operator.itemgetter(*_RUN_STEP_FIELDS)  # one C call, not eight


def _read_fields_slowly(raw: object) -> tuple[object, ...] | None:
    if type(raw) is not dict:
        return None
    return tuple([raw.get(name) for name in _RUN_STEP_FIELDS])


_user_input_of: Final = operator.attrgetter("user_input")
_get_user_input: Final = operator.methodcaller("get", "user_input")


class RunSteps:
    """Structures successive snapshots of one run, reusing the RunSteps that did not change.

    A step whose JSON equals the one at the same place in the previous
    snapshot (same id, same fields, same definition) gets the previous
    :class:`RunStep` object back, which costs a comparison instead of a
    validation. Anything else is structured in full; on any problem the whole
    snapshot is, so that errors name the same field paths
    (``steps[2].step.id: ...``) as :func:`structure`. Only the last snapshot's
    steps are kept, each as the values it was built from, holding wherever
    they are equal what the RunStep and the intern table hold already, and
    its id and timestamps as one hashed key (see :func:`_condensed`): about
    150 bytes a step, not a copy of its JSON.
    """

    __slots__ = ("_built", "_read")

    def __init__(self) -> None:
        self._read: list[tuple[object, ...]] = []
        self._built: tuple[RunStep, ...] = ()

    def structure(self, data: object) -> Run:
        """Build the run from decoded JSON, or raise :class:`StructureFailed`."""
        if type(data) is not dict:
            return structure(data, Run)
        raw_steps = data.get("steps", [])
        raw_current = data.get("current_step")
        if type(raw_steps) is not list or not (raw_current is None or type(raw_current) is dict):
            return self._whole(data)
        try:
            read = list(map(_read_fields, raw_steps))
        except (KeyError, TypeError):  # a field left out, or not an object: judged below
            read = list(map(_read_fields_slowly, raw_steps))
        values = list(map(_condensed, read))
        before, built = self._read, self._built
        count = len(values)
        known = min(len(before), count)
        try:
            # C loops over the steps: equal values, and an equal user_input (not among them).
            reused = list(
                map(
                    and_,
                    map(eq, before, values),
                    map(eq, map(_user_input_of, built), map(_get_user_input, raw_steps)),
                )
            )
        except (RecursionError, AttributeError):  # too deep to compare, or not objects
            reused = [False] * known
        steps: list[RunStep] = [*built[:known], *([None] * (count - known))]  # type: ignore[list-item]
        kept: list[tuple[object, ...]] = [*before[:known], *([()] * (count - known))]
        try:
            for i in chain(compress(range(known), map(not_, reused)), range(known, count)):
                raw = raw_steps[i]
                run_step = steps[i] = structure(raw, RunStep)
                kept[i] = _kept(raw, values[i], run_step)
            current = None if raw_current is None else self._current(raw_current, kept, steps)
            top = structure({k: v for k, v in data.items() if k not in _NESTED}, Run)
        except StructureFailed:
            return self._whole(data)
        self._read, self._built = kept, tuple(steps)
        return attrs.evolve(top, steps=self._built, current_step=current)

    @staticmethod
    def _current(
        raw: dict[str, Any], kept: list[tuple[object, ...]], steps: list[RunStep]
    ) -> RunStep:
        # The step in progress is one of the steps, as a rule: share its RunStep.
        values = _condensed(_read_fields_slowly(raw))
        for i, candidate in enumerate(kept):
            if _equal(candidate, values) and steps[i].user_input == raw.get("user_input"):
                return steps[i]
        return structure(raw, RunStep)

    def _whole(self, data: object) -> Run:
        self._read, self._built = [], ()
        return structure(data, Run)


def _structured_whole_or(data: object, exc: StructureFailed) -> NoReturn:
    """Raise the problems of the whole answer, so that they name ``steps[2]...``; else ``exc``."""
    structure(data, Run)
    raise exc


def run_head(data: object) -> Run:
    """A run's own fields, validated, without its steps: ``steps=()``, ``current_step=None``.

    Raises:
        StructureFailed: the answer is not a run, or its ``steps`` are not a list.
    """
    if type(data) is not dict:
        return structure(data, Run)  # raises, saying what came instead
    raw_steps = data.get("steps", [])
    raw_current = data.get("current_step")
    if type(raw_steps) is not list or not (raw_current is None or type(raw_current) is dict):
        _structured_whole_or(data, StructureFailed(["steps: expected a list of steps"]))
    try:
        return structure({k: v for k, v in data.items() if k not in _NESTED}, Run)
    except StructureFailed as exc:
        _structured_whole_or(data, exc)


_STR_OR_NONE: Final = frozenset({str, type(None)})


def _entry_keys(read: list[tuple[object, ...]]) -> list[object]:
    """What each step entry's events depend on, as one 64-bit key an entry.

    The hash of the entry's id, ``updated_at``, ``created_at``, status and its
    definition's id. Python's string hashes are SipHash keyed per process, so no
    server can aim at a collision. An entry whose fields have types structuring
    refuses (a prompt that is not an object, a result that is not a string...)
    gets a new ``object()``, equal to no other key: such an entry is always built,
    so that it is validated. Equal keys need no type check of their own values:
    a key is kept only for an entry that was built from values hashing the same.
    """
    if not read:
        return []
    ids, updated, statuses, results, errors, created, prompts, definitions = zip(*read, strict=True)
    if (
        {*map(type, prompts)} == {dict}
        and {*map(type, definitions)} == {dict}
        and {*map(type, results)} <= _STR_OR_NONE
        and {*map(type, errors)} <= _STR_OR_NONE
    ):
        try:
            definition_ids = map(dict.get, definitions, repeat("id"))
            return list(
                map(hash, zip(ids, updated, created, statuses, definition_ids, strict=True))
            )
        except TypeError:  # a value that cannot be hashed (a list): judged one by one
            pass
    return [_entry_key(values) for values in read]


def _entry_key(values: tuple[object, ...] | None) -> object:
    """:func:`_entry_keys` for one entry (of a snapshot whose entries are not all well formed)."""
    if values is None:
        return object()
    raw_id, updated_at, status, result, error, created_at, prompt, definition = values
    if (
        type(definition) is dict
        and type(prompt) is dict
        and type(result) in _STR_OR_NONE
        and type(error) in _STR_OR_NONE
    ):
        try:
            return hash((raw_id, updated_at, created_at, status, definition.get("id")))
        except TypeError:
            pass
    return object()


class StepKeys:
    """What successive snapshots of one run showed of its steps, kept as a key per entry.

    For a watch that does not keep its last snapshot (a monitor's, watching
    thousands of runs): per step entry, a 64-bit key of what its events depend
    on (:func:`_entry_keys`) and its definition's id as an int (the very int the
    interned :class:`Step`'s UUID holds). That is about 50 bytes an entry, where
    the RunSteps of a kept snapshot hold every prompt and result (about 1 KB an
    entry in a 50-step run).

    :meth:`read` structures, and so validates, only the entries whose key
    changed since the snapshot last committed (or all of them with
    ``whole=True``); an unchanged entry is checked for the types of its fields,
    not built, and the step in progress (``current_step``) is built unless its
    key is one of the entries'. :meth:`Entries.run` builds the whole run when
    one is wanted, and so validates every entry.
    """

    __slots__ = ("_definitions", "_keys")

    def __init__(self) -> None:
        self._keys: list[object] = []
        self._definitions: list[int | None] = []

    def read(self, data: dict[str, Any], head: Run, *, whole: bool) -> Entries:
        """The entries of ``data`` (whose head is ``head``), the changed ones structured.

        Raises:
            StructureFailed: a changed entry is not a valid step.
        """
        raw_steps: list[Any] = data.get("steps", [])
        try:
            read = list(map(_read_fields, raw_steps))
        except (KeyError, TypeError):  # a field left out, or not an object
            read = list(map(_read_fields_slowly, raw_steps))
            if None in read:  # not an object: the whole answer says where
                _structured_whole_or(data, StructureFailed(["steps: expected step objects"]))
        keys = _entry_keys(read)
        count = len(keys)
        if whole:
            changed: Iterable[int] = range(count)
            definitions: list[int | None] = [None] * count
        else:
            before = self._keys
            known = min(len(before), count)
            # C loops: an entry is changed where its key differs (an odd key differs always).
            changed = chain(compress(range(known), map(ne, keys, before)), range(known, count))
            definitions = self._definitions[:known] + [None] * (count - known)
        steps: list[RunStep | None] = [None] * count
        for i in changed:
            try:
                run_step = steps[i] = structure(raw_steps[i], RunStep)
            except StructureFailed as exc:
                _structured_whole_or(data, exc)
            definitions[i] = run_step.step.id.int
        raw_current = data.get("current_step")
        current = None
        if raw_current is not None and _entry_key(_read_fields_slowly(raw_current)) not in keys:
            # The step in progress is trusted as an entry is: only with the key of one.
            try:
                current = structure(raw_current, RunStep)
            except StructureFailed as exc:
                _structured_whole_or(data, exc)
        return Entries(data, head, keys, definitions, steps, current)  # type: ignore[arg-type]

    def commit(self, entries: Entries) -> None:
        """Keep ``entries`` as the last accepted snapshot's: the next read compares with them."""
        self._keys, self._definitions = entries.keys, entries.definitions  # type: ignore[assignment]

    def clear(self) -> None:
        """Forget every entry (the run ended: no snapshot will be read again)."""
        self._keys, self._definitions = [], []


class Entries:
    """One snapshot's step entries, read by :class:`StepKeys`: the changed ones built."""

    __slots__ = ("_current", "_data", "_head", "definitions", "keys", "steps")

    def __init__(
        self,
        data: dict[str, Any],
        head: Run,
        keys: list[object],
        definitions: list[int],
        steps: list[RunStep | None],
        current: RunStep | None = None,
    ) -> None:
        self._current = current  # built by the read when it is none of the entries
        self._data = data
        self._head = head
        self.keys = keys
        self.definitions = definitions
        """Per entry, its step definition's id, as an int."""
        self.steps = steps
        """Per entry, its RunStep where it was built (changed, or asked for whole), else None."""

    def run(self) -> Run:
        """The whole run: every entry built, the step in progress shared with its entry.

        Raises:
            StructureFailed: an entry is not a valid step.
        """
        data, steps = self._data, self.steps
        raw_steps: list[Any] = data.get("steps", [])
        for i, run_step in enumerate(steps):
            if run_step is None:
                try:
                    steps[i] = structure(raw_steps[i], RunStep)
                except StructureFailed as exc:
                    _structured_whole_or(data, exc)
        built: tuple[RunStep, ...] = tuple(steps)  # type: ignore[arg-type]  # all built now
        raw_current = data.get("current_step")
        current = self._current
        if raw_current is not None and current is None:
            try:
                # The step in progress is one of the steps, as a rule: share its RunStep.
                current = next(
                    (built[i] for i in reversed(range(len(built))) if raw_steps[i] == raw_current),
                    None,
                )
            except RecursionError:  # nested deeper than a comparison goes: built on its own
                current = None
            if current is None:
                try:
                    current = structure(raw_current, RunStep)
                except StructureFailed as exc:
                    _structured_whole_or(data, exc)
        return attrs.evolve(self._head, steps=built, current_step=current)


def _equal(kept: tuple[object, ...], values: tuple[object, ...] | None) -> bool:
    try:
        return kept == values
    except RecursionError:  # nested deeper than a comparison goes: built again
        return False


def _condensed(values: tuple[object, ...] | None) -> tuple[object, ...] | None:
    """A step's values as kept: its id and timestamps as one key, the rest as they are.

    The three strings cost about 250 bytes a step when kept as they are; their
    key costs 32: the hash of the three, Python's string hashes being SipHash
    keyed per process, so that no server can aim at a collision. A value that
    cannot be hashed (a list) leaves them as they are, which compares exactly;
    one of another type than a string can be kept only by a collision, since a
    key is kept only for a step that was built, and so checked.
    """
    if values is None:
        return None
    raw_id, updated_at, status, result, error, created_at, prompt, definition = values
    key: object = (raw_id, updated_at, created_at)
    try:  # noqa: SIM105 - contextlib.suppress costs a call per step of every snapshot
        key = hash(key)
    except TypeError:
        pass
    return (key, status, result, error, prompt, definition)


def _kept(raw: object, values: tuple[object, ...] | None, run_step: RunStep) -> tuple[object, ...]:
    """The values ``run_step`` was built from, sharing what it holds where they are equal."""
    assert values is not None  # structuring succeeded: the step is an object
    key, _, _, _, prompt, definition = values
    return (
        key,
        run_step.status,
        run_step.result,
        run_step.error,
        run_step.prompt if prompt is not None else None,
        _STEPS.source(definition) or definition,
    )


_SEPARATOR = "\x00"


def fingerprint(data: object) -> int | None:
    """What a watch's events depend on, read straight from a run's decoded JSON.

    Two answers with equal fingerprints have the same run, status and
    ``updated_at``, and the same steps with the same statuses and
    ``updated_at``: the second can yield no event. Anything unexpected gives
    None, and the answer goes through full validation. The pieces are joined
    into one string, used only when no piece contains the separator so that it
    stays unambiguous, and kept as its 64-bit hash (SipHash, keyed per process,
    so a server cannot aim at a collision): 32 bytes a watch instead of 5 KB for
    a 50-step run, for 1 µs a poll.
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
    if joined.count(_SEPARATOR) != len(pieces) - 1:
        return None
    return hash(joined)


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


def _copied(value: object) -> object:
    # Models hold the JSON objects they are built from (an answer's are the SDK's
    # own): a caller's dicts are copied, so that changing them later changes no model.
    if isinstance(value, Mapping):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def _from_owned(data: object, cls: type[T], what: str) -> T:
    try:
        return structure(data, cls)
    except StructureFailed as exc:
        raise _invalid(what, exc.problems) from exc


def from_dict(data: object, cls: type[T]) -> T:
    """Build a ``cls`` from ``to_dict()``'s shape, or raise :class:`InvalidArgumentError`."""
    what = f"{cls.__name__}.from_dict()"
    try:
        owned = _copied(data)
    except RecursionError:
        raise InvalidArgumentError(f"{what}: the data is nested too deeply") from None
    return _from_owned(owned, cls, what)


def _loads(text: object, what: str) -> object:
    if not isinstance(text, str | bytes | bytearray):
        raise InvalidArgumentError(
            f"{what} takes a JSON string or bytes, got {type(text).__name__}"
        )
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{what}: the text is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgumentError(f"{what}: the JSON is nested too deeply") from None


def from_json(text: object, cls: type[T]) -> T:
    """Build a ``cls`` from ``to_json()``'s output, or raise :class:`InvalidArgumentError`."""
    what = f"{cls.__name__}.from_json()"
    return _from_owned(_loads(text, what), cls, what)


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
