"""The API's resources: ``client.automations`` and ``client.runs``.

Each method checks its arguments, sends one request through the session layer
and turns the answer into a model; the poller (``runs.watch`` / ``runs.wait``)
lives in :mod:`automation_sdk._poller`, structuring in :mod:`automation_sdk._convert`.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

from . import _paths
from ._convert import parse
from ._ids import to_uuid
from ._jsonable import to_json
from ._models import Automation, EdgeSpec, JSONValue, Run, StepSpec, StepType
from ._monitor import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MAX_PENDING_EVENTS,
    RunMonitor,
    cancel_after_timeout,
)
from ._poller import RunWatch, wait
from .errors import InvalidArgumentError, ResponseValidationError, WaitTimeoutError

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["Automations", "Runs"]

T = TypeVar("T")


def _check_specs(items: object, cls: type, name: str, example: str) -> None:
    """Refuse ``items`` unless it is a sequence of ``cls`` (a string is a sequence too)."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes | bytearray):
        raise InvalidArgumentError(
            f"automations.create: {name} must be a list of {cls.__name__}, such as "
            f"[{example}], got {type(items).__name__}"
        )
    for index, item in enumerate(items):
        if not isinstance(item, cls):
            raise InvalidArgumentError(
                f"automations.create: {name}[{index}] must be a {cls.__name__}, such as "
                f"{example}, got {type(item).__name__}"
            )


class _Resource:
    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def _call(
        self,
        method: str,
        path: str,
        cls: type[T],
        *,
        json_body: object = None,
        idempotent: bool,
    ) -> T:
        response = await self._transport.request(
            method, path, json_body=json_body, idempotent=idempotent
        )
        try:
            return parse(
                response.data,
                cls,
                status=response.status,
                method=method,
                url=self._transport.base_url + path,
            )
        except ResponseValidationError as exc:
            # Its problems may quote a server value that echoes the token.
            self._transport.scrub(exc)
            raise


class Automations(_Resource):
    """``client.automations``: create automations and read them with their runs."""

    __slots__ = ()

    async def create(
        self,
        *,
        name: str,
        description: str = "",
        steps: Sequence[StepSpec],
        edges: Sequence[EdgeSpec] = (),
        transitions: Sequence[EdgeSpec] | None = None,
    ) -> Automation:
        """Create an automation from steps and the edges between them.

        Args:
            name: The automation's name.
            description: A free description.
            steps: The steps; each gets its ``id`` sent so that edges can name it.
            edges: The edges; ``source`` and ``target`` name a step of
                ``steps`` by name or by id.
            transitions: The former name of ``edges``, kept for one release:
                it warns with ``DeprecationWarning``.

        Returns:
            The created automation (its ``runs`` is empty).

        Raises:
            InvalidArgumentError: a name that is not a string, ``steps`` or
                ``edges`` that is not a list of :class:`StepSpec` or
                :class:`EdgeSpec`, a duplicate step name or id, an edge naming
                no step of ``steps``, or both ``edges`` and ``transitions``;
                nothing was sent.
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(
                f"automations.create: name must be a non-empty string, got {name!r}"[:200]
            )
        if description is not None and not isinstance(description, str):
            raise InvalidArgumentError(
                "automations.create: description must be a string, "
                f"got {type(description).__name__}"
            )
        _check_specs(steps, StepSpec, "steps", 'StepSpec("start", "START")')
        if transitions is not None:
            if edges:
                raise InvalidArgumentError(
                    "automations.create() got both edges= and transitions=; "
                    "pass edges= only (transitions= is its deprecated name)"
                )
            warnings.warn(
                "automations.create(transitions=...) is deprecated and will be removed in the "
                "next release; pass edges=... (the same list of EdgeSpec)",
                DeprecationWarning,
                stacklevel=2,
            )
            _check_specs(transitions, EdgeSpec, "transitions", 'EdgeSpec("start", "summarise")')
            edges = transitions
        _check_specs(edges, EdgeSpec, "edges", 'EdgeSpec("start", "summarise")')
        if not steps:
            raise InvalidArgumentError("an automation needs at least one step (a START step)")
        by_name: dict[str, uuid.UUID] = {}
        by_id: set[uuid.UUID] = set()
        for spec in steps:
            if spec.name in by_name:
                raise InvalidArgumentError(
                    f"two steps are named {spec.name!r}; names must be unique"
                )
            if spec.id in by_id:
                raise InvalidArgumentError(f"two steps have the id {spec.id}; ids must be unique")
            by_name[spec.name] = spec.id
            by_id.add(spec.id)

        def resolve(ref: str | uuid.UUID, which: str, edge: EdgeSpec) -> uuid.UUID:
            if isinstance(ref, str) and ref in by_name:
                return by_name[ref]
            try:
                as_id = ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref)
            except ValueError:
                as_id = None
            if as_id is not None and as_id in by_id:
                return as_id
            raise InvalidArgumentError(
                f"edge {edge.source!s} -> {edge.target!s}: its {which} {ref!s} names no step "
                f"(known steps: {', '.join(sorted(by_name))})"
            )

        body = {
            "name": name,
            "description": description,
            "current_version": {
                "steps": [
                    {
                        "id": str(spec.id),
                        "name": spec.name,
                        "step_type": str(StepType(spec.step_type).value),
                        # Checked again: the spec's mapping may have changed since it was built.
                        "prompt_template": to_json(
                            spec.prompt_template, f"steps[{index}].prompt_template"
                        ),
                    }
                    for index, spec in enumerate(steps)
                ],
                "step_transitions": [
                    {
                        "source_step_id": str(resolve(edge.source, "source", edge)),
                        "target_step_id": str(resolve(edge.target, "target", edge)),
                        "label": edge.label,
                    }
                    for edge in edges
                ],
            },
        }
        return await self._call(
            "POST", _paths.automations(), Automation, json_body=body, idempotent=False
        )

    async def get(self, automation_id: uuid.UUID | str) -> Automation:
        """Fetch an automation, its current version and a summary of each of its runs.

        Raises:
            NotFoundError: no automation with that id for this organisation.
        """
        aid = to_uuid(automation_id, "automation_id")
        return await self._call("GET", _paths.automation(aid), Automation, idempotent=True)


class Runs(_Resource):
    """``client.runs``: start, read, cancel and answer runs, and watch them to the end."""

    __slots__ = ()

    async def create(
        self, automation_id: uuid.UUID | str, *, inputs: Mapping[str, JSONValue] | None = None
    ) -> Run:
        """Start a run of an automation's current version.

        Args:
            automation_id: The automation to run.
            inputs: The run's inputs, available to templates as ``${INPUTS.key}``.

        Returns:
            The new run (usually NEW).

        Raises:
            InvalidArgumentError: ``inputs`` is not a mapping, or holds a value
                JSON cannot carry (NaN, a set, bytes, a datetime, a Decimal, a
                key that is not a string, a cycle, more than 128 levels of
                nesting, ...); the message names its path, e.g.
                ``inputs.a[2]: NaN cannot be sent as JSON``. Nothing was sent.
        """
        aid = to_uuid(automation_id, "automation_id")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, Mapping):
            raise InvalidArgumentError(
                "inputs must be a mapping of names to JSON values, such as "
                f"{{'ticket': 'T-1'}}, got {type(inputs).__name__}; nothing was sent"
            )
        return await self._call(
            "POST",
            _paths.runs(aid),
            Run,
            json_body={"inputs": to_json(inputs, "inputs")},
            idempotent=False,
        )

    async def list(self, automation_id: uuid.UUID | str) -> tuple[Run, ...]:
        """List every run of an automation, with their steps (the API does not paginate)."""
        aid = to_uuid(automation_id, "automation_id")
        return await self._call("GET", _paths.runs(aid), tuple[Run, ...], idempotent=True)

    async def get(self, automation_id: uuid.UUID | str, run_id: uuid.UUID | str) -> Run:
        """Fetch one run with the steps it has reached."""
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        return await self._call("GET", _paths.run(aid, rid), Run, idempotent=True)

    async def cancel(self, automation_id: uuid.UUID | str, run_id: uuid.UUID | str) -> Run:
        """Cancel a run; it ends FAILED. Retried like a GET: cancelling twice is harmless."""
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        return await self._call("PATCH", _paths.run_cancel(aid, rid), Run, idempotent=True)

    async def submit_input(
        self, automation_id: uuid.UUID | str, run_id: uuid.UUID | str, user_input: str
    ) -> Run:
        """Answer a run that is WAITING_FOR_USER_INPUT; the run then goes on.

        Args:
            automation_id: The run's automation.
            run_id: The run.
            user_input: The answer, which becomes the waiting step's result.
        """
        aid = to_uuid(automation_id, "automation_id")
        rid = to_uuid(run_id, "run_id")
        if not isinstance(user_input, str):
            raise InvalidArgumentError(
                f"user_input must be a string, got {type(user_input).__name__}"
            )
        return await self._call(
            "POST",
            _paths.run_user_input(aid, rid),
            Run,
            json_body={"user_input": to_json(user_input, "user_input")},
            idempotent=False,
        )

    def watch(
        self,
        automation_id: uuid.UUID | str,
        run_id: uuid.UUID | str,
        *,
        interval: float = 1.0,
        max_interval: float = 15.0,
        timeout: float | None = None,
        cancel_on_timeout: bool = False,
        resume_from: str | None = None,
    ) -> RunWatch:
        """Follow a run, yielding a transition for each status change of its steps and itself.

        ::

            async with client.runs.watch(automation_id, run_id, timeout=600) as watch:
                async for event in watch:
                    match event:
                        case StepTransition(step_name=name, status=status): ...
                        case RunTransition(status=status): ...

        Nothing is sent until the iteration starts. The first poll goes out at
        once; then the poller waits ``interval``, 1.5x longer while nothing
        changes (up to ``max_interval``), back to ``interval`` on any change,
        each wait jittered by +-10%. A failed poll is retried by the client's
        :class:`RetryPolicy`; WAITING_FOR_USER_INPUT is an ordinary status.

        Args:
            automation_id: The run's automation.
            run_id: The run to watch.
            interval: Seconds between polls while the run changes.
            max_interval: The longest wait between polls while it does not.
            timeout: Seconds for the whole watch, counted from the first
                iteration; None waits as long as the run takes.
            cancel_on_timeout: When the timeout passes, ask the server to
                cancel the run (one request, at most 5 seconds) before raising.
            resume_from: A :meth:`RunWatch.checkpoint` of an earlier watch of
                this run: transitions it delivered are not delivered again.

        Returns:
            A single-use :class:`RunWatch` (async iterator and context manager).

        Raises:
            InvalidArgumentError: a bad id or number, or ``resume_from`` is not
                a checkpoint of this run or of a known version (raised here, at
                once); errors of the polls themselves come from the iteration.
        """
        return RunWatch(
            self._transport,
            to_uuid(automation_id, "automation_id"),
            to_uuid(run_id, "run_id"),
            interval=interval,
            max_interval=max_interval,
            timeout=timeout,
            cancel_on_timeout=cancel_on_timeout,
            resume_from=resume_from,
        )

    async def wait(
        self,
        automation_id: uuid.UUID | str,
        run_id: uuid.UUID | str,
        *,
        interval: float = 1.0,
        max_interval: float = 15.0,
        timeout: float | None = None,
        cancel_on_timeout: bool = False,
        raise_on_failure: bool = True,
        monitor: RunMonitor | None = None,
    ) -> Run:
        """Wait for a run to end, polling as :meth:`watch` does, and return its final snapshot.

        Args:
            automation_id: The run's automation.
            run_id: The run to wait for.
            interval: Seconds between polls while the run changes.
            max_interval: The longest wait between polls while it does not.
            timeout: Seconds to wait in all; None waits as long as the run takes.
            cancel_on_timeout: When the timeout passes, ask the server to
                cancel the run (one request, at most 5 seconds) before raising.
            raise_on_failure: Raise :class:`RunFailedError` when the run ends
                FAILED; with False, return the FAILED run instead.
            monitor: An open :class:`RunMonitor` (from :meth:`monitor`) to wait
                through: the run is then polled with every other run of the
                monitor, on the monitor's cadence (``interval`` and
                ``max_interval`` are not used). Many concurrent waits share its
                requests.

        Returns:
            The run, FINISHED (or FAILED when ``raise_on_failure`` is False).

        Raises:
            RunFailedError: the run ended FAILED (``.run`` has it; the message
                has the failing step's error).
            WaitTimeoutError: the timeout passed first (``.run``, ``.checkpoint``).
            AutomationError: a poll failed for good (401, 404, retries exhausted).
        """
        if monitor is not None:
            return await self._wait_through(
                monitor,
                to_uuid(automation_id, "automation_id"),
                to_uuid(run_id, "run_id"),
                timeout=timeout,
                cancel_on_timeout=cancel_on_timeout,
                raise_on_failure=raise_on_failure,
            )
        return await wait(
            self._transport,
            to_uuid(automation_id, "automation_id"),
            to_uuid(run_id, "run_id"),
            interval=interval,
            max_interval=max_interval,
            timeout=timeout,
            cancel_on_timeout=cancel_on_timeout,
            raise_on_failure=raise_on_failure,
        )

    async def _wait_through(
        self,
        monitor: RunMonitor,
        automation_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        timeout: float | None,
        cancel_on_timeout: bool,
        raise_on_failure: bool,
    ) -> Run:
        try:
            return await monitor.wait(
                automation_id, run_id, timeout=timeout, raise_on_failure=raise_on_failure
            )
        except WaitTimeoutError as exc:
            if not cancel_on_timeout:
                raise
            raise await cancel_after_timeout(self._transport, automation_id, run_id, exc) from None

    def monitor(
        self,
        *,
        strategy: Literal["auto", "summary", "per_run"] = "auto",
        interval: float = DEFAULT_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        end_when_empty: bool = True,
    ) -> RunMonitor:
        """Follow many runs with one :class:`RunMonitor`, polling per automation.

        ::

            async with client.runs.monitor() as monitor:
                for run in runs:
                    monitor.add(automation_id, run.id)
                async for event in monitor:
                    ...

        Args:
            strategy: ``"summary"``: one ``GET`` of each automation per tick
                says which watched runs changed, and only those are fetched in
                full; ``"per_run"``: each run is fetched on its own cadence, as
                a watch does; ``"auto"`` (the default): per automation, the
                one that moves fewer bytes, from measured sizes.
            interval: Seconds between polls of an automation (or of a run,
                polled per run) while something changes.
            max_interval: The longest wait between polls while nothing does.
            max_concurrency: At most this many detail fetches in flight at once.
            max_pending_events: Events the monitor holds for a slow consumer;
                while that many wait, runs watched for events are not polled.
            end_when_empty: Whether ``async for event in monitor`` ends when no
                added run is left; with False it waits for more runs and ends
                only when the monitor is closed (a worker fed by a queue).

        Returns:
            A :class:`RunMonitor`, to use with ``async with``.

        Raises:
            InvalidArgumentError: a bad strategy or number.
        """
        return RunMonitor(
            self._transport,
            strategy=strategy,
            interval=interval,
            max_interval=max_interval,
            max_concurrency=max_concurrency,
            max_pending_events=max_pending_events,
            end_when_empty=end_when_empty,
        )
