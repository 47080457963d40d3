"""The emulator against hostile requests: every answer its own JSON, nothing stored poisons it."""

from __future__ import annotations

from typing import Any

import pytest
from yarl import URL

from automation_sdk.emulator import Emulator

AUTOMATIONS = "/automations/"


@pytest.mark.parametrize("depth", [201, 5_000, 100_000])
async def test_a_deeply_nested_body_is_422_json(api: Any, depth: int) -> None:
    """A body nested past 200 levels (up to 100k) gets FastAPI's 422 json_invalid, not a 500."""
    body = ("[" * depth + "]" * depth).encode()
    headers = {"Content-Type": "application/json"}
    for path in (AUTOMATIONS,):
        status, answer, resp_headers = await api.send("POST", path, data=body, headers=headers)
        assert status == 422
        assert resp_headers["Content-Type"].startswith("application/json")
        problem = answer["detail"][0]
        assert problem["type"] == "json_invalid"
        assert "nested deeper than 200 levels" in problem["ctx"]["error"]


async def test_nesting_up_to_the_limit_is_stored_and_read_back(api: Any) -> None:
    """Inputs nested as deep as the limit allows make a run that reads back unchanged."""
    automation = await api.chain("Hi")
    deep: Any = "leaf"
    for _ in range(197):  # body -> inputs -> x -> 197 lists: 200 levels in all
        deep = [deep]
    run = await api.start(automation, x=deep)
    assert (await api.get(run))["inputs"] == {"x": deep}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_inputs_are_422_and_do_not_poison_the_automation(api: Any, constant: str) -> None:
    """NaN or an infinity in a body gets 422; the automation keeps answering 200."""
    automation = await api.chain("Hi")
    path = f"/automations/{automation['id']}/sessions/"
    body = f'{{"inputs": {{"x": {constant}}}}}'.encode()
    status, answer, _ = await api.send(
        "POST", path, data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 422
    assert answer["detail"][0]["type"] == "json_invalid"
    assert constant.lstrip("-") in answer["detail"][0]["ctx"]["error"]
    status, runs, _ = await api.send("GET", path)
    assert (status, runs) == (200, [])
    status, _, _ = await api.send("GET", f"/automations/{automation['id']}/")
    assert status == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/automations/x%0Ay/", 422),
        ("/automations/x%0A/", 422),
        ("/automations/%0A/sessions/", 422),
        ("/automations/x%0Ay/nope%0A", 404),
        ("/nope%0A", 404),
    ],
)
async def test_a_path_with_an_encoded_newline_gets_the_emulator_s_own_answer(
    api: Any, emu: Emulator, path: str, status: int
) -> None:
    """An encoded newline in the path goes through routing, auth and the log: JSON answers."""
    emu.requests.clear()
    got, body, headers = await api.send("GET", URL(path, encoded=True))
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert "detail" in body
    assert [r.status for r in emu.requests] == [status]
    assert "\n" in emu.requests[0].path


async def test_a_path_with_an_encoded_newline_still_needs_the_token(emu: Emulator) -> None:
    """Without a token, such a path is 401 like any other route."""
    import aiohttp

    async with (
        aiohttp.ClientSession(emu.url) as http,
        http.get(URL("/automations/x%0Ay/", encoded=True)) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["detail"] == "Not authenticated"


async def test_a_trailing_newline_does_not_match_a_route(api: Any, emu: Emulator) -> None:
    """`/automations/%0A` is not `/automations/` with the newline ignored: it names an id."""
    status, _, headers = await api.send("POST", URL("/automations/%0A", encoded=True), json={})
    assert status == 307  # to /automations/%0A/, the automation route, as for any id
    assert headers["Location"] == f"{emu.url}/automations/%0A/"
    assert emu.automation_count == 0
