"""Every endpoint: method, path, headers and body sent; typed objects returned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from automation_sdk import (
    Automation,
    AutomationClient,
    EdgeSpec,
    InvalidArgumentError,
    Run,
    RunStatus,
    StepNotFoundError,
    StepSpec,
    StepType,
    __version__,
)
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, automation_json, run_json, summary_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
RUNS_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/"


def sent(mock: aioresponses, method: str, url: str) -> list[dict[str, Any]]:
    """The keyword arguments of every request sent as ``method url``."""
    return [call.kwargs for call in mock.requests.get((method, URL(url)), [])]


async def test_create_automation_sends_steps_and_edges_by_id(
    client: AutomationClient, mock: aioresponses
) -> None:
    """automations.create posts the version with client-chosen step ids and resolved edges."""
    mock.post(f"{BASE_URL}/automations/", payload=automation_json())
    start = StepSpec(name="start", step_type="START")
    summarise = StepSpec(
        name="summarise",
        step_type=StepType.LLM,
        prompt_template={"type": "text", "text": "Summarise ${INPUTS.ticket}"},
    )
    automation = await client.automations.create(
        name="triage",
        description="triage tickets",
        steps=[start, summarise],
        edges=[EdgeSpec(source="start", target=summarise.id, label="next")],
    )
    assert isinstance(automation, Automation)
    assert automation.runs == ()
    (call,) = sent(mock, "POST", f"{BASE_URL}/automations/")
    assert call["json"] == {
        "name": "triage",
        "description": "triage tickets",
        "current_version": {
            "steps": [
                {
                    "id": str(start.id),
                    "name": "start",
                    "step_type": "START",
                    "prompt_template": {},
                },
                {
                    "id": str(summarise.id),
                    "name": "summarise",
                    "step_type": "LLM",
                    "prompt_template": {"type": "text", "text": "Summarise ${INPUTS.ticket}"},
                },
            ],
            "step_transitions": [
                {
                    "source_step_id": str(start.id),
                    "target_step_id": str(summarise.id),
                    "label": "next",
                }
            ],
        },
    }


async def test_every_request_carries_auth_accept_user_agent_and_org(
    mock: aioresponses,
) -> None:
    """Bearer token, Accept, User-Agent and Current-Org-Id go on every request."""
    mock.get(RUN_URL, payload=run_json())
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, org_id="org_9", headers={"X-Trace": "t1"}
    ) as client:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    (call,) = sent(mock, "GET", RUN_URL)
    headers = call["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"automation-sdk/{__version__}"
    assert headers["Current-Org-Id"] == "org_9"
    assert headers["X-Trace"] == "t1"


async def test_extra_headers_cannot_replace_authorization(mock: aioresponses) -> None:
    """A user header named Authorization is dropped; the token's header wins."""
    mock.get(RUN_URL, payload=run_json())
    async with AutomationClient(
        TOKEN, base_url=BASE_URL, headers={"authorization": "Basic x"}
    ) as client:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    headers = sent(mock, "GET", RUN_URL)[0]["headers"]
    assert [k for k in headers if k.lower() == "authorization"] == ["Authorization"]


async def test_no_org_header_without_org_id(client: AutomationClient, mock: aioresponses) -> None:
    """Current-Org-Id is only sent when an organisation was chosen."""
    mock.get(RUN_URL, payload=run_json())
    await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert "Current-Org-Id" not in sent(mock, "GET", RUN_URL)[0]["headers"]


async def test_get_automation_lists_runs_as_summaries(
    client: AutomationClient, mock: aioresponses
) -> None:
    """automations.get returns the version's graph and the runs from ``sessions``."""
    url = f"{BASE_URL}/automations/{AUTOMATION_ID}/"
    mock.get(url, payload=automation_json(sessions=[summary_json("FAILED")]))
    automation = await client.automations.get(uuid.UUID(AUTOMATION_ID))
    assert automation.organisation_id == "org_123"
    assert automation.current_version is not None
    assert [s.name for s in automation.current_version.steps] == ["start", "summarise"]
    edge = automation.current_version.step_transitions[0]
    assert edge.target_step_id == automation.current_version.steps[1].id
    assert automation.runs[0].status is RunStatus.FAILED
    assert automation.runs[0].id == uuid.UUID(RUN_ID)


async def test_create_run_posts_inputs(client: AutomationClient, mock: aioresponses) -> None:
    """runs.create posts ``{"inputs": ...}`` to the sessions collection."""
    mock.post(RUNS_URL, payload=run_json("NEW", steps=[]))
    run = await client.runs.create(AUTOMATION_ID, inputs={"company": "Acme"})
    assert run.status is RunStatus.NEW
    assert sent(mock, "POST", RUNS_URL)[0]["json"] == {"inputs": {"company": "Acme"}}


async def test_create_run_without_inputs_sends_empty_object(
    client: AutomationClient, mock: aioresponses
) -> None:
    """Omitted inputs are sent as an empty object, never null."""
    mock.post(RUNS_URL, payload=run_json("NEW", steps=[]))
    await client.runs.create(AUTOMATION_ID)
    assert sent(mock, "POST", RUNS_URL)[0]["json"] == {"inputs": {}}


async def test_list_runs_returns_a_tuple_of_runs(
    client: AutomationClient, mock: aioresponses
) -> None:
    """runs.list decodes the bare array of sessions."""
    other = "0d8e6a34-5c3b-4d2a-9e1f-7a6b5c4d3e2f"
    mock.get(RUNS_URL, payload=[run_json("FINISHED"), run_json("RUNNING", run_id=other)])
    runs = await client.runs.list(AUTOMATION_ID)
    assert isinstance(runs, tuple)
    assert [r.id for r in runs] == [uuid.UUID(RUN_ID), uuid.UUID(other)]


async def test_get_run_returns_typed_run(client: AutomationClient, mock: aioresponses) -> None:
    """runs.get returns a Run with aware datetimes, UUIDs and tuples."""
    mock.get(RUN_URL, payload=run_json("RUNNING"))
    run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert isinstance(run, Run)
    assert run.created_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert isinstance(run.steps, tuple)
    assert run.steps[0].step.step_type is StepType.START
    assert run.step("start") is run.steps[0]
    assert run.find_step("start") is run.steps[0]
    assert run.find_step("nope") is None


async def test_step_of_a_name_not_reached_raises_naming_the_known_steps(
    client: AutomationClient, mock: aioresponses
) -> None:
    """run.step(name) of a step not in the run raises a KeyError that lists the steps reached."""
    mock.get(RUN_URL, payload=run_json("RUNNING"))
    run = await client.runs.get(AUTOMATION_ID, RUN_ID)
    with pytest.raises(KeyError) as caught:
        run.step("reply")
    assert isinstance(caught.value, StepNotFoundError)
    assert caught.value.name == "reply"
    assert caught.value.known == ("start",)
    assert str(caught.value).startswith(f"run {RUN_ID} (RUNNING) has no step named 'reply'")
    assert "steps reached: 'start'" in str(caught.value)
    assert "run.find_step(name)" in str(caught.value)


async def test_cancel_patches_the_cancel_path(client: AutomationClient, mock: aioresponses) -> None:
    """runs.cancel sends PATCH .../cancel with no body."""
    url = RUN_URL + "cancel"
    mock.patch(url, payload=run_json("FAILED", error="cancelled"))
    run = await client.runs.cancel(AUTOMATION_ID, RUN_ID)
    assert run.status is RunStatus.FAILED
    assert sent(mock, "PATCH", url)[0]["json"] is None


async def test_submit_input_posts_user_input(client: AutomationClient, mock: aioresponses) -> None:
    """runs.submit_input posts ``{"user_input": ...}`` to .../user-input."""
    url = RUN_URL + "user-input"
    mock.post(url, payload=run_json("RUNNING"))
    await client.runs.submit_input(AUTOMATION_ID, RUN_ID, "yes")
    assert sent(mock, "POST", url)[0]["json"] == {"user_input": "yes"}


@pytest.mark.parametrize("bad", ["../x", "", "123", "5b7c1a52/../../admin", 42])
async def test_malformed_ids_are_refused_before_any_request(
    client: AutomationClient, mock: aioresponses, bad: Any
) -> None:
    """An id that is not a UUID raises ValueError and sends nothing."""
    with pytest.raises(ValueError, match="run_id must be a UUID"):
        await client.runs.get(AUTOMATION_ID, bad)
    with pytest.raises(InvalidArgumentError, match="automation_id must be a UUID"):
        await client.automations.get(bad)
    assert mock.requests == {}


async def test_transitions_keyword_still_works_with_a_deprecation_warning(
    client: AutomationClient, mock: aioresponses
) -> None:
    """transitions= (the old name of edges=) sends the same body and warns DeprecationWarning."""
    steps = [StepSpec("start", "START"), StepSpec("summarise", "LLM")]
    edge = EdgeSpec("start", "summarise", label="next")
    url = f"{BASE_URL}/automations/"
    mock.post(url, payload=automation_json(), repeat=True)
    await client.automations.create(name="x", steps=steps, edges=[edge])
    with pytest.warns(DeprecationWarning, match=r"transitions=\.\.\.\) is deprecated.*edges="):
        await client.automations.create(name="x", steps=steps, transitions=[edge])
    new, old = sent(mock, "POST", url)
    assert old["json"] == new["json"]
    assert new["json"]["current_version"]["step_transitions"][0]["label"] == "next"


async def test_edges_and_transitions_together_are_refused(
    client: AutomationClient, mock: aioresponses
) -> None:
    """Passing both the new and the deprecated keyword is an error, before any request."""
    steps = [StepSpec("start", "START"), StepSpec("b", "LLM")]
    with pytest.raises(InvalidArgumentError, match="both edges= and transitions="):
        await client.automations.create(
            name="x", steps=steps, edges=[EdgeSpec("start", "b")], transitions=[]
        )
    assert mock.requests == {}


async def test_edge_to_unknown_step_is_refused_before_any_request(
    client: AutomationClient, mock: aioresponses
) -> None:
    """An EdgeSpec naming no StepSpec raises ValueError naming the missing step."""
    with pytest.raises(ValueError, match=r"summary names no step"):
        await client.automations.create(
            name="x",
            steps=[StepSpec("start", "START"), StepSpec("summarise", "LLM")],
            edges=[EdgeSpec("start", "summary")],
        )
    assert mock.requests == {}


async def test_duplicate_step_names_are_refused(
    client: AutomationClient, mock: aioresponses
) -> None:
    """Two steps of one name would make edges ambiguous: refused before sending."""
    with pytest.raises(InvalidArgumentError, match=r"two steps are named 'a'"):
        await client.automations.create(
            name="x", steps=[StepSpec("a", "START"), StepSpec("a", "LLM")]
        )
    assert mock.requests == {}


def test_step_spec_generates_an_id_and_accepts_a_string_id() -> None:
    """StepSpec makes a fresh UUID when none is given, and parses a given string."""
    assert isinstance(StepSpec("a", "START").id, uuid.UUID)
    assert StepSpec("a", "START").id != StepSpec("a", "START").id
    assert StepSpec("a", "START", id=RUN_ID).id == uuid.UUID(RUN_ID)
    with pytest.raises(ValueError, match=r"StepSpec\.id must be a UUID"):
        StepSpec("a", "START", id="nope")
