"""Request validation with FastAPI's 422 shape.

Each problem is one entry of ``{"detail": [...]}``:
``{"type": ..., "loc": ["body", "name"], "msg": ..., "input": ...}``, with
pydantic v2's types and messages (``missing`` / ``Field required``,
``string_type`` / ``Input should be a valid string``, ...). Extra keys are
ignored, as pydantic does by default.

A body must be strict JSON: ``NaN`` and ``Infinity`` (which Python's decoder
takes but JSON has not) and nesting deeper than :data:`MAX_DEPTH` levels get
422 ``json_invalid`` too, so that nothing stored can make a later answer fail.
"""

from __future__ import annotations

import json
import uuid
from email.message import Message
from typing import Any, Final

from ._engine import NewAutomation, NewEdge, NewStep

__all__ = [
    "MAX_DEPTH",
    "MISSING",
    "Problem",
    "ValidationFailed",
    "automation_create",
    "parse_body",
    "path_ids",
    "session_create",
    "user_input",
]

Problem = dict[str, Any]
Loc = tuple[str | int, ...]

MISSING: Final = object()
"""The body when the request had none."""

MAX_DEPTH: Final = 200
"""The deepest nesting of arrays and objects a body may have: the recursion limit
of pydantic-core's JSON parser. Python's own decoder fails near 1000 levels, and
answers holding a stored value one level deeper could fail to encode."""


class _Constant(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not a valid JSON value")
        self.name = name


def _reject_constant(name: str) -> object:
    raise _Constant(name)


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests arrays and objects deeper than MAX_DEPTH (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _invalid(pos: int, reason: str) -> ValidationFailed:
    return ValidationFailed(
        [_problem("json_invalid", ("body", pos), "JSON decode error", {}, error=reason)]
    )


class ValidationFailed(Exception):
    """Carries the ``detail`` list of a 422 answer."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} validation problem(s)")
        self.problems = problems


def _problem(kind: str, loc: Loc, msg: str, value: Any, **ctx: Any) -> Problem:
    problem: Problem = {"type": kind, "loc": list(loc), "msg": msg, "input": value}
    if ctx:
        problem["ctx"] = ctx
    return problem


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON body as FastAPI does; MISSING when empty.

    Raises:
        ValidationFailed: the body is not valid JSON, holds NaN or an infinity,
            or nests deeper than MAX_DEPTH.
    """
    if not raw:
        return MISSING
    if content_type:
        message = Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        is_json = message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        )
        if not is_json:
            return raw.decode("utf-8", errors="replace")
    too_deep = f"nested deeper than {MAX_DEPTH} levels"
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise _invalid(0, too_deep) from None
    except _Constant as exc:
        raise _invalid(max(0, raw.find(exc.name.encode())), str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _invalid(pos, reason) from None
    if _too_deep(body):
        raise _invalid(0, too_deep)
    return body


def path_ids(params: dict[str, str]) -> dict[str, uuid.UUID]:
    """Parse every path parameter as a UUID.

    Raises:
        ValidationFailed: one is not a UUID (FastAPI's 422 for a malformed path id).
    """
    ids: dict[str, uuid.UUID] = {}
    problems: list[Problem] = []
    for name, value in params.items():
        try:
            ids[name] = uuid.UUID(value)
        except ValueError as exc:
            msg = f"Input should be a valid UUID, {exc}"
            problems.append(_problem("uuid_parsing", ("path", name), msg, value))
    if problems:
        raise ValidationFailed(problems)
    return ids


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def model(self, value: Any, loc: Loc) -> dict[str, Any] | None:
        if value is MISSING:
            self.problems.append(_problem("missing", loc, "Field required", None))
            return None
        if not isinstance(value, dict):
            self.problems.append(
                _problem(
                    "model_attributes_type",
                    loc,
                    "Input should be a valid dictionary or object to extract fields from",
                    value,
                )
            )
            return None
        return value

    def get(self, obj: dict[str, Any], key: str, loc: Loc, *, required: bool) -> Any:
        if key in obj:
            return obj[key]
        if required:
            self.problems.append(_problem("missing", (*loc, key), "Field required", obj))
        return MISSING

    def string(self, obj: dict[str, Any], key: str, loc: Loc, *, nullable: bool = False) -> Any:
        value = self.get(obj, key, loc, required=True)
        if value is MISSING or (nullable and value is None) or isinstance(value, str):
            return value
        self.problems.append(
            _problem("string_type", (*loc, key), "Input should be a valid string", value)
        )
        return MISSING

    def mapping(self, value: Any, loc: Loc) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problems.append(
            _problem("dict_type", loc, "Input should be a valid dictionary", value)
        )
        return None

    def array(self, value: Any, loc: Loc) -> list[Any] | None:
        if isinstance(value, list):
            return value
        self.problems.append(_problem("list_type", loc, "Input should be a valid list", value))
        return None

    def uuid(self, value: Any, loc: Loc) -> uuid.UUID | None:
        if not isinstance(value, str):
            self.problems.append(
                _problem(
                    "uuid_type", loc, "UUID input should be a string, bytes or UUID object", value
                )
            )
            return None
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            self.problems.append(
                _problem("uuid_parsing", loc, f"Input should be a valid UUID, {exc}", value)
            )
            return None

    def value_error(self, loc: Loc, msg: str, value: Any) -> None:
        self.problems.append(_problem("value_error", loc, f"Value error, {msg}", value))

    def done(self) -> None:
        if self.problems:
            raise ValidationFailed(self.problems)


def _step(check: _Checker, item: Any, loc: Loc) -> NewStep | None:
    obj = check.model(item, loc)
    if obj is None:
        return None
    raw_id = obj.get("id")
    step_id = uuid.uuid4() if raw_id is None else check.uuid(raw_id, (*loc, "id"))
    name = check.string(obj, "name", loc)
    step_type = check.string(obj, "step_type", loc)
    template: dict[str, Any] | None = {}
    if "prompt_template" in obj:
        template = check.mapping(obj["prompt_template"], (*loc, "prompt_template"))
    if step_id is None or name is MISSING or step_type is MISSING or template is None:
        return None
    return NewStep(id=step_id, name=name, step_type=step_type, prompt_template=template)


def _edge(check: _Checker, item: Any, loc: Loc) -> NewEdge | None:
    obj = check.model(item, loc)
    if obj is None:
        return None
    ids: list[uuid.UUID | None] = []
    for key in ("source_step_id", "target_step_id"):
        value = check.get(obj, key, loc, required=True)
        ids.append(None if value is MISSING else check.uuid(value, (*loc, key)))
    label = obj.get("label", "")
    if not isinstance(label, str):
        check.problems.append(
            _problem("string_type", (*loc, "label"), "Input should be a valid string", label)
        )
        return None
    source, target = ids
    if source is None or target is None:
        return None
    return NewEdge(source_step_id=source, target_step_id=target, label=label)


def automation_create(body: Any) -> NewAutomation:
    """Validate an ``AutomationCreate`` body.

    Besides the types, it checks that step ids and names are unique and that
    every transition names steps of the same body.

    Raises:
        ValidationFailed: with every problem found.
    """
    check = _Checker()
    obj = check.model(body, ("body",))
    if obj is None:
        check.done()
        raise AssertionError("unreachable")
    name = check.string(obj, "name", ("body",))
    description = obj.get("description")
    if description is not None and not isinstance(description, str):
        check.problems.append(
            _problem(
                "string_type",
                ("body", "description"),
                "Input should be a valid string",
                description,
            )
        )
    version_loc: Loc = ("body", "current_version")
    version = check.model(check.get(obj, "current_version", ("body",), required=False), version_loc)
    steps: list[NewStep] = []
    edges: list[tuple[Loc, NewEdge]] = []
    if version is not None:
        raw_steps = check.get(version, "steps", version_loc, required=True)
        items = (
            [] if raw_steps is MISSING else check.array(raw_steps, (*version_loc, "steps")) or []
        )
        for i, item in enumerate(items):
            step = _step(check, item, (*version_loc, "steps", i))
            if step is not None:
                steps.append(step)
        raw_edges = version.get("step_transitions", [])
        edge_items = check.array(raw_edges, (*version_loc, "step_transitions")) or []
        for i, item in enumerate(edge_items):
            loc: Loc = (*version_loc, "step_transitions", i)
            edge = _edge(check, item, loc)
            if edge is not None:
                edges.append((loc, edge))
    check.done()
    seen_ids: set[uuid.UUID] = set()
    seen_names: set[str] = set()
    for i, step in enumerate(steps):
        loc = (*version_loc, "steps", i)
        if step.id in seen_ids:
            check.value_error((*loc, "id"), f"duplicate step id {step.id}", str(step.id))
        if step.name in seen_names:
            check.value_error((*loc, "name"), f"duplicate step name {step.name!r}", step.name)
        seen_ids.add(step.id)
        seen_names.add(step.name)
    for loc, edge in edges:
        for key, step_id in (
            ("source_step_id", edge.source_step_id),
            ("target_step_id", edge.target_step_id),
        ):
            if step_id not in seen_ids:
                check.value_error(
                    (*loc, key),
                    f"unknown step id {step_id}: no step of current_version has it",
                    str(step_id),
                )
    check.done()
    return NewAutomation(
        name=name, description=description, steps=tuple(steps), edges=tuple(e for _, e in edges)
    )


def session_create(body: Any) -> dict[str, Any]:
    """Validate ``{"inputs": {...}}`` (``inputs`` defaults to ``{}``) and return the inputs.

    Raises:
        ValidationFailed: the body is not an object or ``inputs`` not a mapping.
    """
    check = _Checker()
    obj = check.model(body, ("body",))
    inputs: dict[str, Any] | None = {}
    if obj is not None and "inputs" in obj:
        inputs = check.mapping(obj["inputs"], ("body", "inputs"))
    check.done()
    assert inputs is not None
    return inputs


def user_input(body: Any) -> str:
    """Validate ``{"user_input": "..."}`` and return the answer.

    Raises:
        ValidationFailed: the body is not an object or ``user_input`` not a string.
    """
    check = _Checker()
    obj = check.model(body, ("body",))
    text = MISSING if obj is None else check.string(obj, "user_input", ("body",))
    check.done()
    assert isinstance(text, str)
    return text
