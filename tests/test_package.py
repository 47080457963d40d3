"""The package as a user gets it: its public names, their docstrings, its metadata and files.

CI runs this file twice: on the source tree (an editable install) and on the
built wheel installed in a fresh environment, with ``AUTOMATION_SDK_TEST_WHEEL=1``;
the tests marked for the wheel then check that the code under test really
came from it, so that a file missing from the wheel cannot hide behind the
source tree.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import automation_sdk

griffe = pytest.importorskip("griffe", reason="the docs dependencies are not installed")

DOCS = Path(__file__).resolve().parent.parent / "docs"
PUBLIC_MODULES = (
    "automation_sdk",
    "automation_sdk.errors",
    "automation_sdk.testing",
    "automation_sdk.emulator",
)
PACKAGE_DIR = Path(automation_sdk.__file__).resolve().parent
ON_WHEEL = os.environ.get("AUTOMATION_SDK_TEST_WHEEL") == "1"


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    """The package as mkdocstrings sees it: loaded by griffe from the installed sources."""
    return griffe.load("automation_sdk", search_paths=[str(PACKAGE_DIR.parent)])


def _documented_names(section: object) -> set[str]:
    return {item.name for item in getattr(section, "value", ()) if hasattr(item, "name")}


def _undocumented(package: griffe.Module, module: str, name: str) -> list[str]:
    """What the reference would show empty for ``module.name``: the object or a member of it."""
    inner = module.removeprefix("automation_sdk").lstrip(".")
    obj = package[f"{inner}.{name}" if inner else name]
    target = obj.final_target if obj.is_alias else obj
    if not target.docstring or not target.docstring.value.strip():
        return [f"{module}.{name}"]
    if not target.is_class:
        return []
    described: set[str] = set()
    for section in target.docstring.parse("google"):
        described |= _documented_names(section)
    missing = []
    for member_name, member in target.members.items():
        if member_name.startswith("_") or member.is_alias:
            continue
        if member.docstring and member.docstring.value.strip():
            continue
        if member_name in described:
            continue  # listed under the class's Args: or Attributes:
        missing.append(f"{module}.{name}.{member_name}")
    return missing


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_all_is_sorted_and_importable(module: str) -> None:
    """Each public module's ``__all__`` is sorted, without duplicates, and every name imports."""
    exported = _module(module).__all__
    assert exported == sorted(exported), f"{module}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(_module(module), name), f"{module}.__all__ names {name}, which is missing"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_object_has_a_docstring(module: str, package: griffe.Module) -> None:
    """Every exported object, and every public member of an exported class, has a docstring."""
    missing = [m for name in _module(module).__all__ for m in _undocumented(package, module, name)]
    assert not missing, "no docstring (the reference would show an empty entry): " + ", ".join(
        missing
    )


def test_every_exported_name_is_on_a_reference_page() -> None:
    """Each name of each public ``__all__`` has its entry on one of the reference pages."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    rendered = set(re.findall(r"^::: ([\w.]+)", pages, re.MULTILINE))
    errors = set(_module("automation_sdk.errors").__all__)
    missing = []
    for module in PUBLIC_MODULES:
        for name in _module(module).__all__:
            # The errors are re-exported by automation_sdk and documented once, under .errors.
            home = "automation_sdk.errors" if name in errors else module
            if f"{home}.{name}" not in rendered:
                missing.append(f"{home}.{name}")
    assert not missing, "not on any docs/reference page: " + ", ".join(missing)


def test_version_comes_from_the_metadata() -> None:
    """``__version__`` is the installed distribution's version, not a second copy of it."""
    assert automation_sdk.__version__ == importlib.metadata.version("automation-sdk")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", automation_sdk.__version__)


def test_command_line_prints_the_version() -> None:
    """``automation-sdk --version`` and ``python -m automation_sdk --version`` print it."""
    expected = f"automation-sdk {automation_sdk.__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "automation_sdk", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert module.stdout.strip() == expected
    script = Path(sys.executable).parent / "automation-sdk"
    if script.exists():  # the console script of the environment pytest runs in
        result = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip() == expected


def test_metadata_has_what_a_registry_page_needs() -> None:
    """Summary, readme, license, keywords, URLs and the typed/asyncio classifiers are set."""
    meta = importlib.metadata.metadata("automation-sdk")
    assert meta["Summary"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "Automation API" in str(meta.json.get("description", ""))
    assert meta["License-Expression"] == "MIT" or meta["License"] == "MIT"
    assert meta["Keywords"]
    classifiers = set(meta.get_all("Classifier") or [])
    assert {"Typing :: Typed", "Framework :: AsyncIO"} <= classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Repository", "Changelog"} <= set(urls)
    entry_points = importlib.metadata.entry_points(group="console_scripts")
    assert any(
        e.name == "automation-sdk" and e.value == "automation_sdk._cli:main" for e in entry_points
    )


def test_the_package_ships_its_marker_emulator_and_cli() -> None:
    """``py.typed``, the emulator and the command line are part of the installed package."""
    assert (PACKAGE_DIR / "py.typed").is_file()
    for module in ("automation_sdk.emulator", "automation_sdk._cli", "automation_sdk.__main__"):
        assert importlib.util.find_spec(module) is not None, module


def test_no_tests_are_installed() -> None:
    """The distribution installs no ``tests`` package."""
    files = importlib.metadata.files("automation-sdk") or []
    assert not [f for f in files if str(f).startswith("tests/")]


@pytest.mark.skipif(not ON_WHEEL, reason="only when CI runs the suite against the built wheel")
def test_suite_runs_against_the_installed_wheel() -> None:
    """The package under test is the installed wheel, not a source tree next to the tests."""
    assert "site-packages" in PACKAGE_DIR.parts, PACKAGE_DIR
    dist = importlib.metadata.distribution("automation-sdk")
    assert not (dist.read_text("direct_url.json") or "").count('"editable": true')
    tests_root = Path(__file__).resolve().parent.parent
    assert not (tests_root / "automation_sdk").exists()


@pytest.mark.parametrize("module", ["automation_sdk", "automation_sdk.emulator"])
def test_lazy_exports_match_all_and_the_type_checking_imports(module: str) -> None:
    """Each name of ``__all__`` has its lazy import, and the imports type checkers read agree."""
    import ast

    mod = _module(module)
    lazy = dict(mod._EXPORTS)
    assert set(lazy) == set(mod.__all__)
    tree = ast.parse(Path(mod.__file__ or "").read_text())
    guarded = {
        alias.asname or alias.name: "." + (node.module or "")
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert guarded == lazy
