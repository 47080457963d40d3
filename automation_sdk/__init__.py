"""automation_sdk: an async Python SDK for the Automation API.

Start runs of automations, read them, and watch them to the end::

    from automation_sdk import AutomationClient

    async with AutomationClient(token="...") as client:
        run = await client.runs.create(automation_id, inputs={"ticket": "..."})
        run = await client.runs.wait(automation_id, run.id, timeout=600)
"""

from ._client import AutomationClient
from ._clock import Clock, SystemClock
from ._config import Timeout
from ._events import RunTransition, StepTransition
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
    "InsecureURLWarning",
    "InvalidArgumentError",
    "JSONValue",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
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
    "__version__",
]
