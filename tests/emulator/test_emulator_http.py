"""The emulator's endpoints, JSON shapes and FastAPI-style errors, over real HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest

from automation_sdk.emulator import Emulator

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STEP_KEYS = {"id", "name", "step_type", "prompt_template", "created_at", "updated_at"}
SUMMARY_KEYS = {"id", "automation_id", "inputs", "error", "status", "created_at", "updated_at"}
SESSION_KEYS = SUMMARY_KEYS | {"steps", "steps_count", "current_step"}
RUN_STEP_KEYS = {"id", "status", "prompt", "result", "error", "user_input", "step"}
RUN_STEP_KEYS |= {"created_at", "updated_at"}
MISSING_ID = "00000000-0000-4000-8000-000000000000"


def assert_uuid(value: Any) -> None:
    """Fail unless ``value`` is a UUID string."""
    assert isinstance(value, str)
    uuid.UUID(value)


async def test_create_automation_answers_the_automation_without_sessions(api: Any) -> None:
    """POST /automations/ answers 201 and the Automation, with no ``sessions`` key."""
    start, llm = api.step("start", "START"), api.step("summarise", "LLM", "Sum ${INPUTS.t}")
    automation = await api.create_automation(start, llm)
    assert set(automation) == {
        "id",
        "name",
        "description",
        "organisation_id",
        "current_version",
        "created_at",
        "updated_at",
    }
    assert_uuid(automation["id"])
    assert automation["name"] == "demo"
    assert automation["organisation_id"] == "org-emulator"
    assert TIMESTAMP.match(automation["created_at"])
    version = automation["current_version"]
    assert_uuid(version["id"])
    assert version["automation_id"] == automation["id"]
    assert [s["id"] for s in version["steps"]] == [start["id"], llm["id"]]
    assert all(set(s) == STEP_KEYS for s in version["steps"])
    assert version["steps"][1]["prompt_template"] == {"type": "text", "text": "Sum ${INPUTS.t}"}
    (edge,) = version["step_transitions"]
    assert_uuid(edge["id"])
    assert edge["source_step_id"] == start["id"]
    assert edge["target_step_id"] == llm["id"]
    assert edge["label"] == "start->summarise"


async def test_get_automation_lists_session_summaries(api: Any, emu: Emulator) -> None:
    """GET /automations/{id}/ adds ``sessions``: summaries of its runs, without steps."""
    automation = await api.chain("hello")
    run = await api.start(automation, ticket="T-1")
    status, body, _ = await api.send("GET", f"/automations/{automation['id']}/")
    assert status == 200
    (summary,) = body["sessions"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["id"] == run["id"]
    assert summary["inputs"] == {"ticket": "T-1"}
    assert emu.automation_count == 1
    assert emu.run_count == 1


async def test_create_run_answers_a_new_session(api: Any) -> None:
    """POST .../sessions/ answers 201 and a NEW session with no steps yet."""
    automation = await api.chain("hello")
    run = await api.start(automation, n=1)
    assert set(run) == SESSION_KEYS
    assert_uuid(run["id"])
    assert run["automation_id"] == automation["id"]
    assert run["status"] == "NEW"
    assert run["inputs"] == {"n": 1}
    assert (run["steps"], run["steps_count"], run["current_step"], run["error"]) == (
        [],
        0,
        None,
        None,
    )
    assert run["created_at"] == run["updated_at"]
    assert TIMESTAMP.match(run["created_at"])


async def test_create_run_inputs_default_to_empty(api: Any) -> None:
    """A create body without ``inputs`` starts a run with ``{}``."""
    automation = await api.chain("hello")
    status, body, _ = await api.send("POST", f"/automations/{automation['id']}/sessions/", json={})
    assert status == 201
    assert body["inputs"] == {}


async def test_list_runs_is_a_bare_array_of_sessions(api: Any) -> None:
    """GET .../sessions/ answers every session, full, as a bare JSON array."""
    automation = await api.chain("hello")
    first, second = await api.start(automation), await api.start(automation)
    status, body, _ = await api.send("GET", f"/automations/{automation['id']}/sessions/")
    assert status == 200
    assert [r["id"] for r in body] == [first["id"], second["id"]]
    assert all(set(r) == SESSION_KEYS for r in body)


async def test_session_steps_have_the_documented_fields(api: Any, clock: Any) -> None:
    """Session steps carry status, prompt, result, error, user_input, step and timestamps."""
    run = await api.start(await api.chain("hello"))
    clock.advance(1.0)
    body = await api.get(run)
    assert all(set(s) == RUN_STEP_KEYS for s in body["steps"])
    assert set(body["current_step"]) == RUN_STEP_KEYS
    assert set(body["steps"][0]["step"]) == STEP_KEYS
    assert all(TIMESTAMP.match(s["updated_at"]) for s in body["steps"])


async def test_timestamps_follow_the_clock_from_the_epoch(api: Any, clock: Any) -> None:
    """Wall timestamps are the epoch plus the emulator clock's elapsed time."""
    clock.advance(2.5)
    run = await api.start(await api.chain("hello"))
    assert run["created_at"] == "2026-01-01T00:00:02.500000Z"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic emu-token"},
        {"Api-key": "wrong"},
    ],
)
async def test_requests_without_a_valid_token_get_401(
    emu: Emulator, headers: dict[str, str]
) -> None:
    """A missing, wrong or non-Bearer credential gets 401 with a string ``detail``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emu.url}/automations/{MISSING_ID}/", headers=headers) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        body = await resp.json()
        assert isinstance(body["detail"], str)


async def test_api_key_header_is_accepted(emu: Emulator) -> None:
    """``Api-key: <token>`` authenticates like the Bearer header."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emu.url}/automations/{MISSING_ID}/", headers={"Api-key": emu.token}) as resp,
    ):
        assert resp.status == 404


async def test_other_organisation_gets_401(api: Any) -> None:
    """A ``Current-Org-Id`` other than the emulator's gets 401; its own is accepted."""
    path = f"/automations/{MISSING_ID}/"
    status, body, _ = await api.send("GET", path, headers={"Current-Org-Id": "org-other"})
    assert status == 401
    assert "org-other" in body["detail"]
    status, _, _ = await api.send("GET", path, headers={"Current-Org-Id": "org-emulator"})
    assert status == 404


async def test_unknown_ids_get_404(api: Any) -> None:
    """Unknown automation and session ids get 404 with a ``detail`` naming them."""
    automation = await api.chain("hello")
    aid = automation["id"]
    for method, path in [
        ("GET", f"/automations/{MISSING_ID}/"),
        ("GET", f"/automations/{MISSING_ID}/sessions/"),
        ("GET", f"/automations/{aid}/sessions/{MISSING_ID}/"),
        ("PATCH", f"/automations/{aid}/sessions/{MISSING_ID}/cancel"),
    ]:
        status, body, _ = await api.send(method, path)
        assert status == 404, path
        assert MISSING_ID in body["detail"]
    status, _, _ = await api.send(
        "POST", f"/automations/{MISSING_ID}/sessions/", json={"inputs": {}}
    )
    assert status == 404


async def test_session_of_another_automation_is_404(api: Any) -> None:
    """A session id read under another automation's path is not found."""
    run = await api.start(await api.chain("one"))
    other = await api.chain("two")
    status, _, _ = await api.send("GET", f"/automations/{other['id']}/sessions/{run['id']}/")
    assert status == 404


async def test_unknown_path_is_404_not_found(api: Any) -> None:
    """A path the API does not have gets FastAPI's 404 ``Not Found``."""
    status, body, _ = await api.send("GET", "/nowhere")
    assert (status, body) == (404, {"detail": "Not Found"})


async def test_malformed_uuid_in_path_is_422(api: Any) -> None:
    """A path id that is not a UUID gets 422 with ``loc: ["path", name]``."""
    status, body, _ = await api.send("GET", "/automations/not-a-uuid/sessions/nope/")
    assert status == 422
    locs = [item["loc"] for item in body["detail"]]
    assert locs == [["path", "automation_id"], ["path", "session_id"]]
    assert body["detail"][0]["type"] == "uuid_parsing"


async def test_wrong_method_is_405(api: Any) -> None:
    """A known path with the wrong method gets 405 ``Method Not Allowed`` and ``Allow``."""
    status, body, headers = await api.send("DELETE", "/automations/")
    assert (status, body) == (405, {"detail": "Method Not Allowed"})
    assert headers["Allow"] == "POST"
    status, _, headers = await api.send(
        "GET", f"/automations/{MISSING_ID}/sessions/{MISSING_ID}/cancel"
    )
    assert status == 405
    assert headers["Allow"] == "PATCH"


async def test_405_comes_before_401(emu: Emulator) -> None:
    """Like FastAPI, routing errors are answered before authentication."""
    async with aiohttp.ClientSession() as session, session.put(f"{emu.url}/automations/") as resp:
        assert resp.status == 405


async def test_slash_mismatch_redirects_with_307(api: Any, emu: Emulator) -> None:
    """A path missing (or adding) a trailing slash gets 307 to the right one, query kept."""
    automation = await api.chain("hello")
    aid = automation["id"]
    status, _, headers = await api.send("GET", f"/automations/{aid}?x=1")
    assert status == 307
    assert headers["Location"] == f"{emu.url}/automations/{aid}/?x=1"
    status, _, headers = await api.send(
        "PATCH", f"/automations/{aid}/sessions/{MISSING_ID}/cancel/"
    )
    assert status == 307
    assert headers["Location"].endswith("/cancel")


async def test_redirect_is_followed_to_the_right_endpoint(api: Any) -> None:
    """A client following the 307 reaches the endpoint, method and body kept."""
    automation = await api.chain("hello")
    path = f"/automations/{automation['id']}/sessions"
    async with api.http.post(path, json={"inputs": {"k": "v"}}) as resp:
        assert resp.status == 201
        assert (await resp.json())["inputs"] == {"k": "v"}


def _locs(body: Any) -> list[list[Any]]:
    return [item["loc"] for item in body["detail"]]


async def test_create_automation_missing_fields_is_422(api: Any) -> None:
    """Missing fields get 422 with FastAPI's ``missing`` entries at ``["body", field]``."""
    status, body, _ = await api.send("POST", "/automations/", json={"description": "x"})
    assert status == 422
    assert _locs(body) == [["body", "name"], ["body", "current_version"]]
    first = body["detail"][0]
    assert (first["type"], first["msg"]) == ("missing", "Field required")


async def test_create_automation_wrong_types_is_422(api: Any) -> None:
    """Wrong types get 422 naming each field's full path."""
    bad = {
        "name": 5,
        "current_version": {
            "steps": [{"id": "nope", "name": "a", "step_type": "START", "prompt_template": "x"}],
            "step_transitions": {},
        },
    }
    status, body, _ = await api.send("POST", "/automations/", json=bad)
    assert status == 422
    assert _locs(body) == [
        ["body", "name"],
        ["body", "current_version", "steps", 0, "id"],
        ["body", "current_version", "steps", 0, "prompt_template"],
        ["body", "current_version", "step_transitions"],
    ]
    assert [d["type"] for d in body["detail"]] == [
        "string_type",
        "uuid_parsing",
        "dict_type",
        "list_type",
    ]


async def test_invalid_json_is_422(api: Any) -> None:
    """A body that is not JSON gets 422 ``json_invalid``."""
    headers = {"Content-Type": "application/json"}
    status, body, _ = await api.send("POST", "/automations/", data=b"{nope", headers=headers)
    assert status == 422
    assert body["detail"][0]["type"] == "json_invalid"
    assert body["detail"][0]["loc"] == ["body", 1]


async def test_missing_body_is_422(api: Any) -> None:
    """No body at all gets 422 ``missing`` at ``["body"]``."""
    status, body, _ = await api.send("POST", "/automations/")
    assert status == 422
    assert body["detail"][0]["loc"] == ["body"]


async def test_transition_to_an_unknown_step_is_422(api: Any) -> None:
    """A transition naming a step id not in the body gets 422 ``value_error``."""
    start = api.step("start", "START")
    body = {
        "name": "x",
        "current_version": {
            "steps": [start],
            "step_transitions": [{"source_step_id": start["id"], "target_step_id": MISSING_ID}],
        },
    }
    status, answer, _ = await api.send("POST", "/automations/", json=body)
    assert status == 422
    (problem,) = answer["detail"]
    assert problem["loc"] == ["body", "current_version", "step_transitions", 0, "target_step_id"]
    assert problem["type"] == "value_error"
    assert MISSING_ID in problem["msg"]


async def test_duplicate_step_ids_and_names_are_422(api: Any) -> None:
    """Two steps with the same id, or the same name, get 422."""
    start = api.step("start", "START")
    same_id = {**api.step("other"), "id": start["id"]}
    same_name = api.step("start")
    body = {"name": "x", "current_version": {"steps": [start, same_id, same_name]}}
    status, answer, _ = await api.send("POST", "/automations/", json=body)
    assert status == 422
    assert _locs(answer) == [
        ["body", "current_version", "steps", 1, "id"],
        ["body", "current_version", "steps", 2, "name"],
    ]


async def test_step_id_is_optional_and_extra_keys_are_ignored(api: Any) -> None:
    """A step without ``id`` gets one; unknown keys in a body are ignored."""
    body = {
        "name": "x",
        "extra": True,
        "current_version": {"steps": [{"name": "start", "step_type": "START", "more": 1}]},
    }
    status, answer, _ = await api.send("POST", "/automations/", json=body)
    assert status == 201
    assert_uuid(answer["current_version"]["steps"][0]["id"])
    assert answer["current_version"]["steps"][0]["prompt_template"] == {}


async def test_bad_session_and_input_bodies_are_422(api: Any) -> None:
    """``inputs`` must be an object and ``user_input`` a string."""
    run = await api.start(await api.chain("hello"))
    base = f"/automations/{run['automation_id']}/sessions/"
    status, body, _ = await api.send("POST", base, json={"inputs": [1]})
    assert (status, _locs(body)) == (422, [["body", "inputs"]])
    status, body, _ = await api.send(
        "POST", f"{base}{run['id']}/user-input", json={"user_input": 3}
    )
    assert (status, _locs(body)) == (422, [["body", "user_input"]])
    status, body, _ = await api.send("POST", f"{base}{run['id']}/user-input", json=[])
    assert (status, body["detail"][0]["type"]) == (422, "model_attributes_type")


async def test_user_input_when_not_waiting_is_409(api: Any) -> None:
    """User input to a run that is not WAITING_FOR_USER_INPUT gets 409."""
    run = await api.start(await api.chain("hello"))
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/user-input"
    status, body, _ = await api.send("POST", path, json={"user_input": "hi"})
    assert status == 409
    assert "NEW" in body["detail"]


async def test_cancel_of_an_ended_run_is_409(api: Any, clock: Any) -> None:
    """Cancelling a FINISHED (or already cancelled) run gets 409."""
    run = await api.start(await api.chain("hello"))
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/cancel"
    clock.advance(10)
    assert (await api.get(run))["status"] == "FINISHED"
    status, body, _ = await api.send("PATCH", path)
    assert status == 409
    assert "FINISHED" in body["detail"]


async def test_answers_carry_a_request_id(api: Any) -> None:
    """Every answer has an ``x-request-id`` header."""
    _, _, headers = await api.send("GET", "/nowhere")
    assert headers["x-request-id"].startswith("emu-")


async def test_request_log_records_method_path_and_status(api: Any, emu: Emulator) -> None:
    """``emu.requests`` logs each request's method, path and status in order."""
    emu.requests.clear()
    await api.send("GET", "/nowhere")
    await api.send("DELETE", "/automations/")
    assert [tuple(r) for r in emu.requests] == [
        ("GET", "/nowhere", 404, ()),
        ("DELETE", "/automations/", 405, ()),
    ]
