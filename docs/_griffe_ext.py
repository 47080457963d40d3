"""A griffe extension for the API reference: attrs classes and Sphinx-flavoured docstrings.

griffe reads the package's source without running it, so it sees neither the
``__init__`` that attrs writes nor Markdown where the docstrings use
reStructuredText habits (they are written to read well in ``help()`` and in an
editor). Before mkdocstrings renders anything, this extension:

- gives each attrs class (``@frozen``, ``@define``) the ``__init__`` attrs
  generates, so that its signature shows and its ``Args:`` section matches it;

- a role such as ``:class:`RetryPolicy``` or ``:meth:`~automation_sdk.Runs.wait```
  becomes a link to the object when the reference documents it, else inline code;
- a paragraph ending in ``::`` followed by an indented block becomes a paragraph
  ending in ``:`` followed by a fenced Python block.

Nothing here reaches the network; mkdocs.yml loads it by path.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

# The public modules, in the order a short name is looked up in.
_PUBLIC_MODULES = (
    "automation_sdk.errors",
    "automation_sdk",
    "automation_sdk.testing",
    "automation_sdk.emulator",
)
_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):`(~?)([^`]+)`")


_ATTRS_DECORATORS = frozenset({"frozen", "define", "mutable", "attrs.frozen", "attrs.define"})


class ReferenceExtension(griffe.Extension):
    """Synthesise attrs ``__init__`` signatures; rewrite roles and ``::`` blocks."""

    def on_class_members(
        self, *, node: object, cls: griffe.Class, agent: object, **kwargs: Any
    ) -> None:
        """Give an attrs class the ``__init__`` attrs generates from its fields."""
        decorators = [str(d.value) for d in cls.decorators]
        names = [d.split("(", 1)[0] for d in decorators]
        if "__init__" in cls.members or not any(n in _ATTRS_DECORATORS for n in names):
            return
        kw_only = any("kw_only=True" in d for d in decorators)
        kind = (
            griffe.ParameterKind.keyword_only
            if kw_only
            else griffe.ParameterKind.positional_or_keyword
        )
        params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
        for member in cls.members.values():
            if member.is_alias or not member.is_attribute or member.annotation is None:
                continue
            if "ClassVar" in str(member.annotation):
                continue
            default = _attrs_default(None if member.value is None else str(member.value))
            params.append(
                griffe.Parameter(
                    member.name.lstrip("_"),
                    annotation=member.annotation,
                    kind=kind,
                    default=default,
                )
            )
        init = griffe.Function(
            "__init__",
            parameters=griffe.Parameters(*params),
            returns="None",
            lineno=cls.lineno,
            endlineno=cls.lineno,
        )
        cls.set_member("__init__", init)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite every docstring once the whole package is loaded."""
        if pkg.path != "automation_sdk":
            return
        documented = _documented(loader)
        for obj in _walk(pkg):
            if obj.is_function:
                _show_private_defaults(obj)  # type: ignore[arg-type]
            init = obj.members.get("__init__") if obj.is_class else None
            if init is not None and not init.is_alias and "transport" in init.parameters:
                # Made by the client (client.runs.watch()), never by hand: the
                # private transport it takes is no part of the public signature.
                del obj.members["__init__"]
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj.docstring.value, obj, documented)


def _attrs_default(value: str | None) -> str | None:
    """The default an attrs field shows in a signature: ``field(factory=dict)`` -> ``dict()``."""
    if value is None or not value.startswith(("field(", "attr_field(", "attrs.field(")):
        return value
    default = re.search(r"\bdefault=([^,)]+(?:\([^)]*\))?)", value)
    if default:
        return default.group(1)
    factory = re.search(r"\bfactory=([\w.]+)", value)
    if factory:
        return f"{factory.group(1)}()"
    return None


def _show_private_defaults(function: griffe.Function) -> None:
    """``retry=_DEFAULT_RETRY`` -> ``retry=RetryPolicy()``: readers cannot look up private names."""
    module = function.module
    for parameter in function.parameters:
        default = str(parameter.default) if parameter.default is not None else ""
        if not default.startswith("_") or not default.isidentifier():
            continue
        constant = module.members.get(default)
        if (
            constant is not None
            and not constant.is_alias
            and constant.is_attribute  # a private function default (redact=_same) stays as is
            and constant.value is not None
        ):
            parameter.default = constant.value


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and member.parent is obj:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _documented(loader: griffe.GriffeLoader) -> set[str]:
    """The identifiers the reference pages render (one anchor per public object)."""
    paths: set[str] = set()
    for module_path in _PUBLIC_MODULES:
        module = loader.modules_collection.get_member(module_path)
        for name in module.exports or ():
            name = name if isinstance(name, str) else name.name
            path = f"{module_path}.{name}"
            if module_path == "automation_sdk" and any(
                f"{other}.{name}" in paths for other in _PUBLIC_MODULES[:1]
            ):
                continue  # errors are documented under automation_sdk.errors
            paths.add(path)
            target = module.members.get(name)
            if target is not None and target.is_class:
                for member_name, member in target.all_members.items():
                    if not member_name.startswith("_") and member.docstring is not None:
                        paths.add(f"{path}.{member_name}")
    return paths


def _resolve(target: str, obj: griffe.Object, documented: set[str]) -> str | None:
    candidates = []
    if target.startswith("automation_sdk."):
        candidates.append(target)
        parts = target.split(".")
        # automation_sdk._module.Name -> the public name it is exported as
        candidates.extend(f"{module}.{'.'.join(parts[2:])}" for module in _PUBLIC_MODULES)
    else:
        candidates.extend(f"{module}.{target}" for module in _PUBLIC_MODULES)
        scope: griffe.Object | None = obj if obj.is_class else obj.parent
        if scope is not None and scope.is_class:
            for module in _PUBLIC_MODULES:
                candidates.append(f"{module}.{scope.name}.{target}")
    return next((c for c in candidates if c in documented), None)


def _rewrite(text: str, obj: griffe.Object, documented: set[str]) -> str:
    def role(match: re.Match[str]) -> str:
        short, target = match.group(1), match.group(2).strip()
        titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", target)
        if titled:  # Sphinx's :meth:`title <target>`
            shown, target = titled.group(1), titled.group(2).lstrip("~")
        else:
            target = target.removesuffix("()")
            shown = target.rsplit(".", 1)[-1] if short else target
        resolved = _resolve(target, obj, documented)
        if resolved is None:
            return f"`{shown}`"
        return f"[`{shown}`][{resolved}]"

    return _ROLE.sub(role, _literal_blocks(text))


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        stripped = line.rstrip()[:-2].rstrip()
        if stripped:
            out.append(stripped + ":")
        indent = len(line) - len(line.lstrip())
        j = i + 1
        block: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        code = textwrap.dedent("\n".join(block)).strip("\n")
        pad = " " * indent
        lang = "text" if any(c in code for c in "├└│") else "python"  # a drawn tree, or code
        out.extend(["", f"{pad}```{lang}", *(pad + c if c else "" for c in code.split("\n"))])
        out.extend([f"{pad}```", ""])
        i = j
    return "\n".join(out)
