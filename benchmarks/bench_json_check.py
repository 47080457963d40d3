"""What checking caller JSON costs: the input check against ``json.dumps`` itself.

``runs.create(inputs=...)`` and prompt templates go through
``automation_sdk._jsonable.to_json`` before aiohttp serialises them, so every
run start pays both. This measures the check on inputs of a few shapes, in the
same run as ``json.dumps`` of the same value (the baseline the body costs
anyway), and prints the ratio: median and spread over the repeats.

Run it with ``python benchmarks/bench_json_check.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from collections.abc import Callable

from automation_sdk._jsonable import to_json


def shapes() -> dict[str, object]:
    """Inputs of the shapes a caller sends: small, a table of rows, one long text, deep."""
    deep: object = "leaf"
    for _ in range(100):
        deep = {"child": deep, "n": 1}
    return {
        "small (5 keys)": {"ticket": "T-1", "priority": 2, "tags": ["a", "b"], "x": None, "y": 1.5},
        "20,000 rows x 4 fields": {
            "rows": [
                {"id": i, "name": f"row {i}", "score": i * 0.5, "tags": ["a", "b"]}
                for i in range(20_000)
            ]
        },
        "one 1 MB text (non-ASCII)": {"text": "é" * 500_000},
        "100 levels deep": {"deep": deep},
    }


def per_call(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call, one figure per repeat."""
    number = max(1, int(0.2 / max(timeit.timeit(fn, number=1), 1e-6)))
    return [t / number for t in timeit.repeat(fn, number=number, repeat=repeats)]


def main() -> None:
    """Print, per shape, the check's time, json.dumps's time and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'inputs':28} {'to_json':>12} {'json.dumps':>12} {'ratio (median, spread)':>26}")
    for name, value in shapes().items():
        check = per_call(lambda v=value: to_json(v, "inputs"), args.repeats)
        dump = per_call(lambda v=value: json.dumps(v), args.repeats)
        ratios = [c / d for c, d in zip(check, dump, strict=True)]
        print(
            f"{name:28} {statistics.median(check) * 1e3:10.3f}ms "
            f"{statistics.median(dump) * 1e3:10.3f}ms "
            f"{statistics.median(ratios):14.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
