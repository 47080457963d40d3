"""automation_sdk: an async Python SDK for the Automation API.

Start runs of automations, read them, and watch them to the end::

    from automation_sdk import AutomationClient

    async with AutomationClient(token="...") as client:
        run = await client.runs.create(automation_id, inputs={"ticket": "..."})
        run = await client.runs.wait(automation_id, run.id, timeout=600)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._client import AutomationClient
    from ._clock import Clock, SystemClock
    from ._config import Timeout
    from ._convert import event_from_dict, event_from_json
    from ._events import RunTransition, StepTransition, WatchEvent
    from ._models import (
        Automation,
        AutomationVersion,
        EdgeSpec,
        JSONValue,
        Run,
        RunStatus,
        RunStep,
        RunSummary,
        Step,
        StepEdge,
        StepSpec,
        StepStatus,
        StepType,
    )
    from ._monitor import RunMonitor
    from ._observe import Hooks, RequestRecord, RetryRecord
    from ._poller import RunWatch
    from ._resources import Automations, Runs
    from ._retry import RetryPolicy
    from ._version import __version__
    from .errors import (
        APIStatusError,
        AuthenticationError,
        AutomationError,
        BadRequestError,
        ClientClosedError,
        ConfigurationError,
        ConflictError,
        EventLoopMismatchError,
        InsecureURLWarning,
        InvalidArgumentError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        RequestTimeoutError,
        ResponseTooLargeError,
        ResponseValidationError,
        RunFailedError,
        ServerError,
        StepNotFoundError,
        TransportError,
        UnprocessableEntityError,
        ValidationDetail,
        WaitTimeoutError,
    )

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "Automation",
    "AutomationClient",
    "AutomationError",
    "AutomationVersion",
    "Automations",
    "BadRequestError",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "EdgeSpec",
    "EventLoopMismatchError",
    "Hooks",
    "InsecureURLWarning",
    "InvalidArgumentError",
    "JSONValue",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestRecord",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "RetryRecord",
    "Run",
    "RunFailedError",
    "RunMonitor",
    "RunStatus",
    "RunStep",
    "RunSummary",
    "RunTransition",
    "RunWatch",
    "Runs",
    "ServerError",
    "Step",
    "StepEdge",
    "StepNotFoundError",
    "StepSpec",
    "StepStatus",
    "StepTransition",
    "StepType",
    "SystemClock",
    "Timeout",
    "TransportError",
    "UnprocessableEntityError",
    "ValidationDetail",
    "WaitTimeoutError",
    "WatchEvent",
    "__version__",
    "event_from_dict",
    "event_from_json",
]

# Each public name and the private module that defines it. The package imports
# them on first use (PEP 562), so that `automation-sdk --help` and `--version`,
# which need none of them, do not pay for aiohttp and cattrs (about 150 ms).
_EXPORTS: dict[str, str] = {
    "APIStatusError": ".errors",
    "AuthenticationError": ".errors",
    "Automation": "._models",
    "AutomationClient": "._client",
    "AutomationError": ".errors",
    "AutomationVersion": "._models",
    "Automations": "._resources",
    "BadRequestError": ".errors",
    "ClientClosedError": ".errors",
    "Clock": "._clock",
    "ConfigurationError": ".errors",
    "ConflictError": ".errors",
    "EdgeSpec": "._models",
    "EventLoopMismatchError": ".errors",
    "Hooks": "._observe",
    "InsecureURLWarning": ".errors",
    "InvalidArgumentError": ".errors",
    "JSONValue": "._models",
    "NotFoundError": ".errors",
    "PermissionDeniedError": ".errors",
    "RateLimitError": ".errors",
    "RequestRecord": "._observe",
    "RequestTimeoutError": ".errors",
    "ResponseTooLargeError": ".errors",
    "ResponseValidationError": ".errors",
    "RetryPolicy": "._retry",
    "RetryRecord": "._observe",
    "Run": "._models",
    "RunFailedError": ".errors",
    "RunMonitor": "._monitor",
    "RunStatus": "._models",
    "RunStep": "._models",
    "RunSummary": "._models",
    "RunTransition": "._events",
    "RunWatch": "._poller",
    "Runs": "._resources",
    "ServerError": ".errors",
    "Step": "._models",
    "StepEdge": "._models",
    "StepNotFoundError": ".errors",
    "StepSpec": "._models",
    "StepStatus": "._models",
    "StepTransition": "._events",
    "StepType": "._models",
    "SystemClock": "._clock",
    "Timeout": "._config",
    "TransportError": ".errors",
    "UnprocessableEntityError": ".errors",
    "ValidationDetail": ".errors",
    "WaitTimeoutError": ".errors",
    "WatchEvent": "._events",
    "__version__": "._version",
    "event_from_dict": "._convert",
    "event_from_json": "._convert",
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
