"""The run state machine, driven by a fake clock (one-second steps)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from automation_sdk.testing import FakeClock


def when(body: dict[str, Any]) -> datetime:
    """The ``updated_at`` of a session or step, parsed."""
    return datetime.fromisoformat(body["updated_at"])


def statuses(run: dict[str, Any]) -> list[tuple[str, str]]:
    """``(step name, status)`` of each step of a session."""
    return [(s["step"]["name"], s["status"]) for s in run["steps"]]


async def test_run_walks_new_running_steps_finished(api: Any, clock: FakeClock) -> None:
    """NEW for one step duration, then RUNNING through each step, then FINISHED."""
    run = await api.start(await api.chain("one", "two"))
    clock.advance(0.999)
    assert (await api.get(run))["status"] == "NEW"
    clock.advance(0.001)
    body = await api.get(run)
    assert body["status"] == "RUNNING"
    assert statuses(body) == [("start", "FINISHED"), ("s1", "NEW")]
    assert body["current_step"]["step"]["name"] == "s1"
    clock.advance(0.5)
    body = await api.get(run)
    assert statuses(body) == [("start", "FINISHED"), ("s1", "RUNNING")]
    clock.advance(0.5)
    body = await api.get(run)
    assert statuses(body) == [("start", "FINISHED"), ("s1", "FINISHED"), ("s2", "NEW")]
    assert body["steps_count"] == 3
    clock.advance(1.0)
    body = await api.get(run)
    assert body["status"] == "FINISHED"
    assert (body["error"], body["current_step"]) == (None, None)
    assert statuses(body)[-1] == ("s2", "FINISHED")


async def test_start_step_has_an_empty_prompt_and_result(api: Any, clock: FakeClock) -> None:
    """The START step finishes at once with an empty text prompt and an empty result."""
    run = await api.start(await api.chain("one"))
    clock.advance(1.0)
    start = (await api.get(run))["steps"][0]
    assert start["prompt"] == {"type": "text", "text": ""}
    assert (start["result"], start["error"], start["status"]) == ("", None, "FINISHED")


async def test_a_long_jump_catches_up_at_once(api: Any, clock: FakeClock) -> None:
    """Reading a run long after it started replays every transition in one go."""
    run = await api.start(await api.chain("a", "b", "c"))
    clock.advance(100)
    body = await api.get(run)
    assert body["status"] == "FINISHED"
    assert [s["status"] for s in body["steps"]] == ["FINISHED"] * 4


async def test_prompts_render_inputs_and_earlier_results(api: Any, clock: FakeClock) -> None:
    """``${INPUTS.key}`` and ``${step.result}`` are replaced; results are ``[LLM] <text>``."""
    automation = await api.chain(
        "Summarise ${INPUTS.ticket} (${INPUTS.n})", "Shorten: ${s1.result}"
    )
    run = await api.start(automation, ticket="T-1", n=3)
    clock.advance(10)
    s1, s2 = (await api.get(run))["steps"][1:]
    assert s1["prompt"] == {"type": "text", "text": "Summarise T-1 (3)"}
    assert s1["result"] == "[LLM] Summarise T-1 (3)"
    assert s2["prompt"]["text"] == "Shorten: [LLM] Summarise T-1 (3)"
    assert s2["result"] == "[LLM] Shorten: [LLM] Summarise T-1 (3)"
    assert s1["step"]["prompt_template"]["text"] == "Summarise ${INPUTS.ticket} (${INPUTS.n})"


async def test_rendering_reaches_nested_strings_and_keeps_other_keys(
    api: Any, clock: FakeClock
) -> None:
    """Every string of a template is rendered; other keys and values are kept."""
    llm = api.step("ask")
    llm["prompt_template"] = {
        "type": "chat",
        "messages": [{"role": "user", "content": "Hi ${INPUTS.who}"}],
        "temperature": 0.2,
    }
    run = await api.start(await api.create_automation(api.step("start", "START"), llm), who="Ann")
    clock.advance(10)
    ask = (await api.get(run))["steps"][1]
    assert ask["prompt"] == {
        "type": "chat",
        "messages": [{"role": "user", "content": "Hi Ann"}],
        "temperature": 0.2,
    }
    assert ask["result"] == "[LLM] user\nHi Ann"


async def test_unknown_input_fails_the_step_and_the_run(api: Any, clock: FakeClock) -> None:
    """A reference to a missing input fails its step and the run, both naming it."""
    run = await api.start(await api.chain("fine", "Needs ${INPUTS.missing}", "never"))
    clock.advance(10)
    body = await api.get(run)
    assert body["status"] == "FAILED"
    assert statuses(body) == [("start", "FINISHED"), ("s1", "FINISHED"), ("s2", "FAILED")]
    failed = body["steps"][2]
    assert "${INPUTS.missing}" in failed["error"]
    assert failed["result"] is None
    assert "s2" in body["error"]
    assert "missing" in body["error"]
    assert body["current_step"] is None


async def test_failure_happens_when_the_step_would_start_running(
    api: Any, clock: FakeClock
) -> None:
    """The failing step is NEW for half a step, then FAILED (never RUNNING)."""
    run = await api.start(await api.chain("${INPUTS.nope}"))
    clock.advance(1.0)
    assert statuses(await api.get(run))[-1] == ("s1", "NEW")
    clock.advance(0.5)
    assert (await api.get(run))["status"] == "FAILED"


async def test_reference_to_a_later_or_unknown_step_fails(api: Any, clock: FakeClock) -> None:
    """``${x.result}`` of a step not finished yet, or of no step, fails the run."""
    run = await api.start(await api.chain("${s2.result}", "two"))
    clock.advance(10)
    body = await api.get(run)
    assert body["status"] == "FAILED"
    assert "s2" in body["steps"][1]["error"]
    run = await api.start(await api.chain("${ghost.result}"))
    clock.advance(10)
    assert "ghost" in (await api.get(run))["steps"][1]["error"]


async def test_unrelated_placeholders_are_left_alone(api: Any, clock: FakeClock) -> None:
    """``${something}`` that is neither an input nor a result stays as written."""
    run = await api.start(await api.chain("cost: ${price} $5"))
    clock.advance(10)
    body = await api.get(run)
    assert body["status"] == "FINISHED"
    assert body["steps"][1]["prompt"]["text"] == "cost: ${price} $5"


async def test_input_step_waits_then_resumes(api: Any, clock: FakeClock) -> None:
    """An INPUT step waits with its rendered prompt; the answer becomes its result."""
    steps = [
        api.step("start", "START"),
        api.step("ask", "INPUT", "Approve ${INPUTS.ticket}?"),
        api.step("after", "LLM", "Got ${ask.result}"),
    ]
    run = await api.start(await api.create_automation(*steps), ticket="T-9")
    clock.advance(100)
    body = await api.get(run)
    assert body["status"] == "WAITING_FOR_USER_INPUT"
    assert body["current_step"]["status"] == "WAITING_FOR_USER_INPUT"
    assert body["current_step"]["prompt"]["text"] == "Approve T-9?"
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/user-input"
    status, answer, _ = await api.send("POST", path, json={"user_input": "yes"})
    assert status == 200
    assert answer["status"] == "RUNNING"
    ask = answer["steps"][1]
    assert (ask["status"], ask["result"], ask["user_input"]) == ("FINISHED", "yes", "yes")
    assert answer["current_step"]["step"]["name"] == "after"
    clock.advance(1.0)
    body = await api.get(run)
    assert body["status"] == "FINISHED"
    assert body["steps"][2]["result"] == "[LLM] Got yes"
    status, _, _ = await api.send("POST", path, json={"user_input": "again"})
    assert status == 409


async def test_user_input_step_type_also_waits(api: Any, clock: FakeClock) -> None:
    """``USER_INPUT`` is accepted as an input step type too."""
    steps = [api.step("start", "START"), api.step("ask", "USER_INPUT", "?")]
    run = await api.start(await api.create_automation(*steps))
    clock.advance(5)
    assert (await api.get(run))["status"] == "WAITING_FOR_USER_INPUT"


async def test_cancel_fails_the_run_and_its_current_step(api: Any, clock: FakeClock) -> None:
    """PATCH .../cancel ends the run FAILED, ``cancelled by user``, with its step."""
    run = await api.start(await api.chain("one", "two"))
    clock.advance(1.6)
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/cancel"
    status, body, _ = await api.send("PATCH", path)
    assert status == 200
    assert (body["status"], body["error"]) == ("FAILED", "cancelled by user")
    assert statuses(body) == [("start", "FINISHED"), ("s1", "FAILED")]
    assert body["steps"][1]["error"] == "cancelled by user"
    assert body["current_step"] is None
    clock.advance(100)
    later = await api.get(run)
    assert later == body
    status, _, _ = await api.send("PATCH", path)
    assert status == 409


async def test_cancel_a_new_run(api: Any) -> None:
    """A run cancelled while NEW ends FAILED with no steps."""
    run = await api.start(await api.chain("one"))
    status, body, _ = await api.send(
        "PATCH", f"/automations/{run['automation_id']}/sessions/{run['id']}/cancel"
    )
    assert (status, body["status"], body["steps"]) == (200, "FAILED", [])


async def test_cancel_a_waiting_run(api: Any, clock: FakeClock) -> None:
    """A run waiting for input can be cancelled; its waiting step fails."""
    steps = [api.step("start", "START"), api.step("ask", "INPUT", "?")]
    run = await api.start(await api.create_automation(*steps))
    clock.advance(5)
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/cancel"
    _, body, _ = await api.send("PATCH", path)
    assert statuses(body) == [("start", "FINISHED"), ("ask", "FAILED")]


async def test_steps_follow_edges_breadth_first_and_skip_unreachable(
    api: Any, clock: FakeClock
) -> None:
    """Steps run breadth-first from START, each once; unreachable ones never run."""
    names = ["start", "a", "b", "c", "island"]
    steps = [api.step(n, "START" if n == "start" else "LLM", n) for n in names]
    edges = [("start", "b"), ("start", "a"), ("b", "c"), ("a", "c"), ("c", "a")]
    run = await api.start(await api.create_automation(*steps, edges=edges))
    clock.advance(100)
    body = await api.get(run)
    assert body["status"] == "FINISHED"
    assert [name for name, _ in statuses(body)] == ["start", "b", "a", "c"]


async def test_automation_without_start_fails_its_runs(api: Any, clock: FakeClock) -> None:
    """A run of an automation with no START step fails, saying so."""
    run = await api.start(await api.create_automation(api.step("lonely")))
    clock.advance(1.0)
    body = await api.get(run)
    assert body["status"] == "FAILED"
    assert "START" in body["error"]


async def test_updated_at_moves_forward_with_every_change(api: Any, clock: FakeClock) -> None:
    """``updated_at`` strictly increases with each observed change and never goes back."""
    steps = [api.step("start", "START"), api.step("ask", "INPUT", "?"), api.step("end", "LLM", "x")]
    run = await api.start(await api.create_automation(*steps))
    path = f"/automations/{run['automation_id']}/sessions/{run['id']}/"
    seen = [run]
    for _ in range(3):
        clock.advance(0.5)
        seen.append(await api.get(run))
    assert seen[-1]["status"] == "WAITING_FOR_USER_INPUT"
    # The answer comes at the very instant the step started waiting.
    _, answered, _ = await api.send("POST", path + "user-input", json={"user_input": "ok"})
    seen.append(answered)
    clock.advance(5)
    seen.append(await api.get(run))
    for before, after in itertools.pairwise(seen):
        if before != after:
            assert when(after) > when(before)
        else:
            assert when(after) == when(before)
    assert seen[-1]["status"] == "FINISHED"
    step_times = [when(s) for s in seen[-1]["steps"]]
    assert step_times == sorted(step_times)
    assert max(step_times) <= when(seen[-1])


async def test_summaries_and_lists_advance_too(api: Any, clock: FakeClock) -> None:
    """The automation's summaries and the session list show up-to-date statuses."""
    automation = await api.chain("one")
    await api.start(automation)
    clock.advance(100)
    _, body, _ = await api.send("GET", f"/automations/{automation['id']}/")
    assert [s["status"] for s in body["sessions"]] == ["FINISHED"]
    _, runs, _ = await api.send("GET", f"/automations/{automation['id']}/sessions/")
    assert [r["status"] for r in runs] == ["FINISHED"]
