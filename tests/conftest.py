"""Shared fixtures (a fake clock, a client wired to it, aioresponses' aiohttp shim), and the
order in which pytest-xdist's workers get the tests."""

from __future__ import annotations

import asyncio
import copy
import gc
import inspect
import types
import unittest.mock
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import _bytecode  # first: the bytecode of what follows is written (see its docstring)
import pytest

# What the fixtures need is imported by the processes that run tests, when they first need it:
# under pytest-xdist, the controller (which runs none) then starts its workers ~0.2 s sooner.
if TYPE_CHECKING:
    from automation_sdk import AutomationClient
    from automation_sdk.testing import FakeClock


def _patch_aioresponses() -> None:
    """Fit aioresponses to aiohttp 3.14, and take out what made each mocked request slow.

    - aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` that aiohttp
      3.14 requires; its mocked answers never write, so a writer reporting 0 bytes is enough.
    - It gives every response it builds a ``Mock()`` for an event loop, one whose
      ``get_debug()`` is true: aiohttp then records the stack of each response
      (``traceback.extract_stack``), and on Python 3.11 each ``Mock()`` walks ``dir(None)``.
      The running loop serves instead, as it does for a real response, and the unused
      Mocks are plain namespaces.
    - It patches ``ClientSession._request`` with ``autospec=True``: a mock of the signature
      built at every start (1.4 ms) and checked at every request. Nothing is checked that
      aiohttp's own call does not already fix, so a plain function forwards instead.
    - It records each request's keyword arguments through ``copy.deepcopy``, 32 µs a
      request for a timeout object, a headers dict and flags. What a test reads back is what
      was sent: the body (``json``, ``data``) is still copied deeply and the headers dict is
      copied; the other arguments are immutable values, kept as they are.

    Measured on the 2-core CI machine: a mocked GET 0.36 -> 0.07 ms, a mock's start 1.4 ->
    0.15 ms; the two property tests, which make ~2,300 mocked requests, 4.7 -> 1.8 s.
    """
    import aiohttp
    import aioresponses.core

    if aioresponses.core.patch is not unittest.mock.patch:
        return  # fitted already
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    needs_writer = "stream_writer" in params

    class CompatClientResponse(aiohttp.ClientResponse):
        def __init__(self, method: str, url: object, **kwargs: object) -> None:
            if needs_writer:
                kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            kwargs["loop"] = asyncio.get_running_loop()
            super().__init__(method, url, **kwargs)  # type: ignore[arg-type]

    stream_reader_factory = aioresponses.core.stream_reader_factory

    def stream_reader_on_the_running_loop(loop: object = None) -> aiohttp.StreamReader:
        return stream_reader_factory(asyncio.get_running_loop())

    def forwarding_patch(
        target: str, *, side_effect: Callable[..., object], autospec: bool
    ) -> object:
        def _request(session: aiohttp.ClientSession, *args: object, **kwargs: object) -> object:
            return side_effect(session, *args, **kwargs)

        return unittest.mock.patch(target, _request)

    def copy_request_kwargs(kwargs: dict[str, object]) -> dict[str, object]:
        copied = dict(kwargs)
        for name in ("json", "data"):
            if name in copied:
                copied[name] = copy.deepcopy(copied[name])
        if isinstance(copied.get("headers"), dict):
            copied["headers"] = dict(copied["headers"])  # type: ignore[call-overload]
        return copied

    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]
    # its only use of the copy module is that deepcopy of a request's keyword arguments
    aioresponses.core.copy = types.SimpleNamespace(deepcopy=copy_request_kwargs)  # type: ignore[assignment]
    aioresponses.core.stream_reader_factory = stream_reader_on_the_running_loop
    aioresponses.core.Mock = types.SimpleNamespace  # type: ignore[misc]
    aioresponses.core.patch = forwarding_patch  # type: ignore[assignment]


# -- running in parallel ------------------------------------------------------------------------
# pyproject.toml's addopts run the suite on pytest-xdist's workers (--numprocesses=auto
# --dist=worksteal).

# The tests that take most of a worker's time, with what each takes on the 2-core CI machine
# (seconds, with both cores busy). The rest take 10 ms or less each.
SLOW_TESTS = {
    # real processes and Redis key expiry, on the wall clock; little CPU in this process
    "tests/test_distributed.py::test_a_sigkilled_worker_loses_and_repeats_no_event": 7.0,
    # mypy --strict over the docs' examples: 5 s without .mypy_cache (a fresh clone), 0.3 s with
    "tests/test_docs.py::test_examples_type_check": 5.0,
    "tests/test_monitor_property.py::test_random_histories_keep_every_runs_guarantees": 1.1,
    "tests/test_poller_property.py::test_random_histories_keep_the_ordering_guarantees": 0.7,
    "tests/test_monitor.py::test_no_leak_under_asyncio_debug": 0.5,
}


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Let ``pytest -p no:xdist`` (one process, for a debugger) read addopts' xdist options."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist", "pytest-xdist is off: these are read and ignored")
    group.addoption("--numprocesses", dest="numprocesses", help="ignored")
    group.addoption("--dist", dest="dist", default="no", help="ignored")


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say that bytecode is written despite PYTHONDONTWRITEBYTECODE."""
    if _bytecode.WRITTEN:
        return "bytecode: written to __pycache__ despite PYTHONDONTWRITEBYTECODE (see README)"
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collecting the tests made: the garbage collector then leaves it alone.

    The modules, the test items and their parameters (~220,000 objects) live as long as the
    process. Without this, every full collection walks them again: the automatic ones while
    the tests run, each ``gc.collect()`` of a test that checks what is left unreferenced
    (70-100 ms each), and pytest's own at the end of each worker. Objects made by the tests
    are collected as before. tests/test_docs.py's mypy run unfreezes them, and freezes again.

    This runs in each process that runs tests (each worker, or the one process without
    pytest-xdist), before the first test: aioresponses is fitted here too.
    """
    _patch_aioresponses()
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist's workers, start the slow tests first, one share of the suite each.

    ``--dist worksteal`` hands worker k the k-th of equal contiguous shares of the tests,
    and a worker that runs out takes tests from the end of the longest share. So each slow
    test goes to the front of the share with the fewest slow seconds so far, longest first:
    the kill test, which waits on real time, starts at once, and no slow test is left to
    run last, after the other workers are done.
    """
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers < 2:
        return
    slow = sorted(
        (item for item in items if item.nodeid in SLOW_TESTS),
        key=lambda item: -SLOW_TESTS[item.nodeid],
    )
    rest = [item for item in items if item.nodeid not in SLOW_TESTS]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for item in slow:
        k = load.index(min(load))
        shares[k].append(item)
        load[k] += SLOW_TESTS[item.nodeid]
    # Fill each share to the size worksteal gives it: the tests left // the shares left.
    left = len(items)
    for k, share in enumerate(shares):
        fill = max(0, left // (workers - k) - len(share))
        share += rest[:fill]
        del rest[:fill]
        left -= len(share)
    items[:] = [item for share in shares for item in share] + rest


_SDK_VARIABLES = (
    "AUTOMATION_API_TOKEN",
    "AUTOMATION_BASE_URL",
    "AUTOMATION_ORG_ID",
    "AUTOMATION_LOG",
)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's AUTOMATION_* or proxy variables (unless they set one)."""
    for name in _SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def clock() -> FakeClock:
    """A virtual clock: sleeps return at once."""
    from automation_sdk.testing import FakeClock

    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[AutomationClient]:
    """A client of ``BASE_URL`` on the fake clock, with retries without jitter."""
    from automation_sdk import AutomationClient, RetryPolicy
    from payloads import BASE_URL, TOKEN

    async with AutomationClient(
        TOKEN,
        base_url=BASE_URL,
        clock=clock,
        retry=RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False),
    ) as c:
        yield c


@pytest.fixture(scope="session")
def one_cli_parser() -> Iterator[None]:
    """``main()`` in-process, with the command line's parser built once per worker.

    A process runs ``main()`` once; the tests run it in-process ~150 times, and each build of
    the parser cost 5 ms (argparse looks gettext up for every string). The parser holds no
    state between parses and reads no environment when built, so one serves every call.
    """
    from automation_sdk import _cli

    parser = _cli.build_parser()
    with unittest.mock.patch.object(_cli, "build_parser", return_value=parser):
        yield


@pytest.fixture(scope="session")
def jitter_seeded_by_hypothesis() -> None:
    """Have hypothesis seed the watches' and monitors' jitter for each example.

    The jitter is random: seeded, a failing example replays. Registered when the tests run
    rather than when their module is imported: ``register_random`` makes a full garbage
    collection, cheap once ``pytest_collection_finish`` has frozen what collection made. It
    also checks that something refers to each generator, with ``gc.get_referrers``, which
    does not see the frozen modules that hold them: ``held`` is a referrer it sees.
    """
    from hypothesis import register_random

    from automation_sdk import _monitor, _poller

    held = [_poller._rng, _monitor._rng]
    for rng in held:
        register_random(rng)


@pytest.fixture
def mock() -> types.GeneratorType:  # type: ignore[type-arg]
    """An aioresponses mock; requests to anything not registered fail."""
    import aioresponses

    with aioresponses.aioresponses() as m:
        yield m
