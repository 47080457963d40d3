"""JSON bodies shaped like the API's answers, for mocked servers; and the retry wait helper."""

from __future__ import annotations

import uuid
from typing import Any

from tenacity import RetryCallState

from automation_sdk import RetryPolicy
from automation_sdk._retry import retry_wait

BASE_URL = "https://api.test"
TOKEN = "tok-SECRET-123"
AUTOMATION_ID = "5b7c1a52-6d1e-4c4e-9c8e-2f0a3a1b7d10"
RUN_ID = "9a1f0e6c-3b2d-4f5a-8e7c-6d5b4a3c2b1a"
START_ID = "11111111-1111-4111-8111-111111111111"
STEP2_ID = "22222222-2222-4222-8222-222222222222"
TS = "2026-11-29T10:00:00Z"


def step_json(
    step_id: str = START_ID, name: str = "start", step_type: str = "START"
) -> dict[str, Any]:
    """A Step definition."""
    return {
        "id": step_id,
        "name": name,
        "step_type": step_type,
        "prompt_template": {"type": "text", "text": ""},
        "created_at": TS,
        "updated_at": TS,
    }


def run_step_json(
    step_id: str = START_ID,
    name: str = "start",
    status: str = "FINISHED",
    *,
    step_type: str = "START",
    result: str | None = "",
    error: str | None = None,
    updated_at: str = TS,
) -> dict[str, Any]:
    """A session step."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, step_id + RUN_ID)),
        "status": status,
        "prompt": {"type": "text", "text": ""},
        "result": result,
        "error": error,
        "step": step_json(step_id, name, step_type),
        "created_at": TS,
        "updated_at": updated_at,
    }


def run_json(
    status: str = "RUNNING",
    steps: list[dict[str, Any]] | None = None,
    *,
    run_id: str = RUN_ID,
    error: str | None = None,
    updated_at: str = TS,
    **extra: Any,
) -> dict[str, Any]:
    """A Session (a run)."""
    steps = steps if steps is not None else [run_step_json()]
    current = next((s for s in steps if s["status"] not in ("FINISHED", "FAILED")), None)
    body = {
        "id": run_id,
        "automation_id": AUTOMATION_ID,
        "inputs": {"ticket": "T-1"},
        "error": error,
        "status": status,
        "created_at": TS,
        "updated_at": updated_at,
        "steps": steps,
        "steps_count": len(steps),
        "current_step": current,
    }
    body.update(extra)
    return body


def summary_json(status: str = "FINISHED", run_id: str = RUN_ID) -> dict[str, Any]:
    """A SessionSummary, as listed in an automation."""
    full = run_json(status, run_id=run_id)
    keys = ("id", "automation_id", "inputs", "error", "status", "created_at", "updated_at")
    return {k: full[k] for k in keys}


def automation_json(*, sessions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An Automation (with ``sessions`` when given, as GET answers)."""
    body: dict[str, Any] = {
        "id": AUTOMATION_ID,
        "name": "triage",
        "description": "triage tickets",
        "organisation_id": "org_123",
        "current_version": {
            "id": "33333333-3333-4333-8333-333333333333",
            "automation_id": AUTOMATION_ID,
            "steps": [step_json(), step_json(STEP2_ID, "summarise", "LLM")],
            "step_transitions": [
                {
                    "id": "44444444-4444-4444-8444-444444444444",
                    "source_step_id": START_ID,
                    "target_step_id": STEP2_ID,
                    "label": "",
                }
            ],
            "created_at": TS,
            "updated_at": TS,
        },
        "created_at": TS,
        "updated_at": TS,
    }
    if sessions is not None:
        body["sessions"] = sessions
    return body


def wait_after(policy: RetryPolicy, failures: int) -> float:
    """The wait ``policy`` chooses after the ``failures``-th failed try (no Retry-After)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = failures
    return retry_wait(policy)(state)
