"""The spec file of ``automation-sdk automations create``, read through the converter."""

from __future__ import annotations

from attrs import frozen

from ._models import EdgeSpec, StepSpec

__all__ = ["SpecFile"]


@frozen(kw_only=True)
class SpecFile:
    """The spec file of ``automations create``: the arguments of ``automations.create()``."""

    name: str
    description: str = ""
    steps: tuple[StepSpec, ...]
    edges: tuple[EdgeSpec, ...] | None = None
    transitions: tuple[EdgeSpec, ...] | None = None  # the name before "edges"; deprecated
