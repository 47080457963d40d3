"""A faithful local emulator of the Automation API, for tests, demos and offline work.

In a test, on a virtual clock::

    from automation_sdk.emulator import Emulator, Faults
    from automation_sdk.testing import FakeClock

    async with Emulator(token="test", clock=FakeClock(), step_duration=1.0) as emu:
        ...  # point a client at emu.url; emu.requests logs what it received

On the command line: ``python -m automation_sdk.emulator --port 8080 --token T``.

What it does, in short (each module's docstring has the details):

- every endpoint of the contract, with its exact paths and JSON shapes;
  creates answer 201, everything else 200; timestamps are ISO 8601 UTC with
  ``Z`` (microseconds omitted when zero, as pydantic does);
- FastAPI-style errors: 401 without ``Authorization: Bearer <token>`` or
  ``Api-key: <token>`` (or with a ``Current-Org-Id`` that is not
  ``organisation_id``), 404 unknown ids, 405 wrong method, 422 malformed
  path UUIDs and bad bodies, 307 to the right path on a slash mismatch;
- runs advance lazily on the emulator's clock: NEW for one ``step_duration``,
  then RUNNING through the steps breadth-first from START (START takes no
  time); every other step is NEW for half a ``step_duration`` then RUNNING
  for the other half; ``steps`` lists the steps reached so far and
  ``steps_count`` is its length; an LLM-like step's result is
  ``"[<step_type>] " + the text of its rendered prompt``; an input step
  (``INPUT`` or ``USER_INPUT``) waits for ``POST .../user-input``;
  ``PATCH .../cancel`` ends a run FAILED with ``"cancelled by user"``;
- a prompt referring to an unknown input (``${INPUTS.nope}``) or to a step
  without a result yet (``${later.result}``) fails that step and the run
  when the step would start running: the deterministic way to make a run fail;
- 409 for user input to a run that is not WAITING_FOR_USER_INPUT, and for
  cancelling a run that already ended (FINISHED or FAILED);
- faults (:class:`Faults`) are off by default, seeded and reproducible;
- step durations are fixed or drawn per step (:class:`StepDurations`), and a
  run's ``updated_at`` moves on every change or only on its own status
  changes (``updated_at_on_steps``);
- outside the API, ``GET /_emulator/stats`` counts the requests per route and
  ``GET /_emulator/history`` lists every status each run and step took, with
  the server's time (also :attr:`Emulator.request_counts`, :meth:`Emulator.history`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._admin import RecordedTransition
    from ._app import RecordedRequest
    from ._defaults import DEFAULT_ORGANISATION_ID, DEFAULT_STEP_DURATION, DEFAULT_TOKEN
    from ._durations import StepDurations
    from ._emulator import Emulator
    from ._faults import Faults
    from ._serve import add_arguments, banner, main, run_from_args, run_server, serve

__all__ = [
    "DEFAULT_ORGANISATION_ID",
    "DEFAULT_STEP_DURATION",
    "DEFAULT_TOKEN",
    "Emulator",
    "Faults",
    "RecordedRequest",
    "RecordedTransition",
    "StepDurations",
    "add_arguments",
    "banner",
    "main",
    "run_from_args",
    "run_server",
    "serve",
]

# Each public name and the private module that defines it, imported on first
# use (PEP 562): the command line builds its `emulator` options without
# importing aiohttp's server.
_EXPORTS: dict[str, str] = {
    "DEFAULT_ORGANISATION_ID": "._defaults",
    "DEFAULT_STEP_DURATION": "._defaults",
    "DEFAULT_TOKEN": "._defaults",
    "Emulator": "._emulator",
    "Faults": "._faults",
    "RecordedRequest": "._app",
    "RecordedTransition": "._admin",
    "StepDurations": "._durations",
    "add_arguments": "._serve",
    "banner": "._serve",
    "main": "._serve",
    "run_from_args": "._serve",
    "run_server": "._serve",
    "serve": "._serve",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
