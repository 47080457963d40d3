"""How long the steps of emulated runs take: one fixed value, or draws from a distribution.

Every run draws its durations once, when it is created, from one generator
seeded by the emulator's ``seed``: the same seed and the same order of creation
give the same timelines, whatever order the runs are later read in.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from attrs import frozen

__all__ = ["StepDurations"]


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"StepDurations {name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"StepDurations {name} must be finite and >= 0 seconds, got {value!r}")
    return float(value)


@frozen
class StepDurations:
    """How long each step of an emulated run takes (and a run's NEW -> RUNNING delay).

    Make one with :meth:`fixed`, :meth:`uniform`, :meth:`exponential` or
    :meth:`parse`, and pass it as the emulator's ``step_duration``. A run draws
    one duration for its NEW phase and one per step when it is created; with
    the emulator's ``seed`` set, the draws are reproducible.
    """

    kind: Literal["fixed", "uniform", "exponential"]
    """``"fixed"``, ``"uniform"`` or ``"exponential"``."""
    low: float
    """The shortest duration (the only one when fixed; 0 for exponential)."""
    high: float
    """The longest duration (``inf`` for exponential)."""
    mean: float
    """The mean duration."""

    @classmethod
    def fixed(cls, seconds: float) -> StepDurations:
        """Every step takes ``seconds``.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        value = _seconds("seconds", seconds)
        return cls("fixed", value, value, value)

    @classmethod
    def uniform(cls, low: float, high: float) -> StepDurations:
        """Each step takes a duration drawn uniformly from ``low`` to ``high`` seconds.

        Raises:
            ValueError: a bound is negative or not finite, or ``low > high``.
        """
        lo, hi = _seconds("low", low), _seconds("high", high)
        if lo > hi:
            raise ValueError(f"StepDurations.uniform needs low <= high, got {lo!r} > {hi!r}")
        return cls("uniform", lo, hi, (lo + hi) / 2)

    @classmethod
    def exponential(cls, mean: float) -> StepDurations:
        """Each step takes an exponentially distributed duration of mean ``mean`` seconds.

        Raises:
            ValueError: ``mean`` is not positive or not finite.
        """
        value = _seconds("mean", mean)
        if value == 0:
            raise ValueError("StepDurations.exponential needs a mean > 0 seconds, got 0")
        return cls("exponential", 0.0, math.inf, value)

    @classmethod
    def parse(cls, text: str) -> StepDurations:
        """Read ``"2.5"`` (fixed), ``"uniform:LOW:HIGH"`` or ``"exponential:MEAN"``.

        ``"fixed:SECONDS"`` is accepted too; this is the command line's
        ``--step-duration`` syntax, and what ``str()`` gives back.

        Raises:
            ValueError: the text is none of those forms, or a value is out of range.
        """
        kind, _, rest = text.strip().partition(":")
        if not rest:
            kind, rest = "fixed", kind
        kind = kind.strip().lower()
        try:
            values = [float(part) for part in rest.split(":")]
        except ValueError:
            values = []
        arity = {"fixed": 1, "uniform": 2, "exponential": 1}.get(kind)
        if arity is None or len(values) != arity:
            raise ValueError(
                f"cannot read step durations {text!r}: write SECONDS, uniform:LOW:HIGH "
                "or exponential:MEAN (seconds, e.g. 2.5 or uniform:1:4)"
            )
        if kind == "uniform":
            return cls.uniform(values[0], values[1])
        if kind == "exponential":
            return cls.exponential(values[0])
        return cls.fixed(values[0])

    def draw(self, rng: random.Random) -> float:
        """One duration in seconds (fixed ones use no randomness)."""
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        return self.low

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.low:g}:{self.high:g}"
        if self.kind == "exponential":
            return f"exponential:{self.mean:g}"
        return f"{self.low:g}"
