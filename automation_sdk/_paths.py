"""Every path and header name of the Automation API, in one place.

Facts marked *inferred* in the API contract live here too, so that a correction
is a one-line change. Paths keep the trailing slash where the reference shows
one: the server answers a mismatch with a redirect.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

DEFAULT_BASE_URL: Final = "https://api.truestate.io"

ENV_TOKEN: Final = "AUTOMATION_API_TOKEN"
ENV_BASE_URL: Final = "AUTOMATION_BASE_URL"
ENV_ORG_ID: Final = "AUTOMATION_ORG_ID"

HEADER_AUTHORIZATION: Final = "Authorization"
HEADER_ORG_ID: Final = "Current-Org-Id"  # inferred from the vendor's own client
HEADER_ACCEPT: Final = "Accept"
HEADER_USER_AGENT: Final = "User-Agent"
HEADER_RETRY_AFTER: Final = "Retry-After"
REQUEST_ID_HEADERS: Final = ("x-request-id", "request-id", "x-correlation-id")


# Path templates: the client formats them, the emulator routes on them.
AUTOMATIONS: Final = "/automations/"  # POST creates an automation [doc]
AUTOMATION: Final = "/automations/{automation_id}/"  # GET one, with run summaries [doc]
RUNS: Final = "/automations/{automation_id}/sessions/"  # POST starts, GET lists [inferred]
RUN: Final = "/automations/{automation_id}/sessions/{session_id}/"  # GET [doc; path inferred]
RUN_CANCEL: Final = RUN + "cancel"  # PATCH [doc: the seed page]
RUN_USER_INPUT: Final = RUN + "user-input"  # POST [inferred]


def automations() -> str:
    """``POST`` creates an automation."""
    return AUTOMATIONS


def automation(automation_id: UUID) -> str:
    """``GET`` one automation with its run summaries."""
    return AUTOMATION.format(automation_id=automation_id)


def runs(automation_id: UUID) -> str:
    """``POST`` starts a run, ``GET`` lists them."""
    return RUNS.format(automation_id=automation_id)


def run(automation_id: UUID, run_id: UUID) -> str:
    """``GET`` one run."""
    return RUN.format(automation_id=automation_id, session_id=run_id)


def run_cancel(automation_id: UUID, run_id: UUID) -> str:
    """``PATCH`` cancels a run."""
    return RUN_CANCEL.format(automation_id=automation_id, session_id=run_id)


def run_user_input(automation_id: UUID, run_id: UUID) -> str:
    """``POST`` answers a run waiting for user input."""
    return RUN_USER_INPUT.format(automation_id=automation_id, session_id=run_id)


def template_of(path: str) -> str:
    """The template a path was formatted from: its ids replaced by their placeholders.

    ``/automations/<uuid>/sessions/<uuid>/cancel`` gives ``RUN_CANCEL``'s
    ``/automations/{automation_id}/sessions/{session_id}/cancel``: a label of few
    values, for metrics and traces.
    """
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "automations" and parts[2]:
        parts[2] = "{automation_id}"
        if len(parts) > 4 and parts[3] == "sessions" and parts[4]:
            parts[4] = "{session_id}"
    return "/".join(parts)


def ids_of(path: str) -> tuple[str | None, str | None]:
    """The automation id and run id a path names, as written in it (None where absent)."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "automations" and parts[2]:
        if len(parts) > 4 and parts[3] == "sessions" and parts[4]:
            return parts[2], parts[4]
        return parts[2], None
    return None, None
