"""The SDK's client against the emulator: both sides of the contract agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from automation_sdk import (
    AuthenticationError,
    AutomationClient,
    ConflictError,
    EdgeSpec,
    NotFoundError,
    RetryPolicy,
    RunStatus,
    StepSpec,
    StepStatus,
)
from automation_sdk.emulator import Emulator, Faults
from automation_sdk.testing import FakeClock

NO_JITTER = RetryPolicy(attempts=4, wait_initial=0.5, wait_max=4.0, jitter=False)
MISSING_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def client(emu: Emulator, clock: FakeClock) -> AsyncIterator[AutomationClient]:
    """An SDK client of the emulator, on the same fake clock."""
    async with AutomationClient(emu.token, base_url=emu.url, clock=clock, retry=NO_JITTER) as c:
        yield c


async def test_sdk_models_parse_every_answer(client: AutomationClient, clock: FakeClock) -> None:
    """Automations, runs, steps and summaries from the emulator parse into the SDK's models."""
    automation = await client.automations.create(
        name="triage",
        steps=[
            StepSpec("start", "START"),
            StepSpec("summarise", "LLM", {"type": "text", "text": "Summarise ${INPUTS.ticket}"}),
        ],
        edges=[EdgeSpec("start", "summarise")],
    )
    assert automation.organisation_id == "org-emulator"
    assert automation.current_version is not None
    assert len(automation.current_version.step_transitions) == 1
    run = await client.runs.create(automation.id, inputs={"ticket": "T-1"})
    assert run.status is RunStatus.NEW
    clock.advance(10)
    run = await client.runs.get(automation.id, run.id)
    assert run.status is RunStatus.FINISHED
    step = run.step("summarise")
    assert step is not None
    assert step.status is StepStatus.FINISHED
    assert step.result == "[LLM] Summarise T-1"
    (listed,) = await client.runs.list(automation.id)
    assert listed == run
    fetched = await client.automations.get(automation.id)
    assert [r.status for r in fetched.runs] == [RunStatus.FINISHED]


async def test_sdk_answers_input_and_cancels(client: AutomationClient, clock: FakeClock) -> None:
    """``submit_input`` resumes a waiting run; ``cancel`` of an ended run is a ConflictError."""
    automation = await client.automations.create(
        name="ask",
        steps=[StepSpec("start", "START"), StepSpec("ask", "INPUT", {"type": "text", "text": "?"})],
        edges=[EdgeSpec("start", "ask")],
    )
    run = await client.runs.create(automation.id)
    with pytest.raises(ConflictError):
        await client.runs.submit_input(automation.id, run.id, "too early")
    clock.advance(5)
    run = await client.runs.submit_input(automation.id, run.id, "yes")
    assert run.status is RunStatus.FINISHED
    with pytest.raises(ConflictError):
        await client.runs.cancel(automation.id, run.id)


async def test_sdk_maps_emulator_errors(emu: Emulator, client: AutomationClient) -> None:
    """404 and 401 from the emulator become NotFoundError and AuthenticationError."""
    with pytest.raises(NotFoundError):
        await client.automations.get(MISSING_ID)
    async with AutomationClient("wrong", base_url=emu.url, retry=NO_JITTER) as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.automations.get(MISSING_ID)


async def test_sdk_retries_through_injected_faults(
    emu: Emulator, client: AutomationClient, clock: FakeClock
) -> None:
    """With 30% of GETs failing, the client's retries still read the run, on the fake clock."""
    automation = await client.automations.create(
        name="x",
        steps=[StepSpec("start", "START"), StepSpec("a", "LLM")],
        edges=[EdgeSpec("start", "a")],
    )
    run = await client.runs.create(automation.id)
    emu.faults = Faults(error_rate=0.2, rate_limit_rate=0.1, retry_after=0.5)
    for _ in range(10):
        assert (await client.runs.get(automation.id, run.id)).id == run.id
    statuses = [r.status for r in emu.requests if r.method == "GET"]
    assert len(statuses) > 10
    assert any(s is not None and s >= 429 for s in statuses)


async def test_sdk_waits_for_a_run_on_the_fake_clock(client: AutomationClient) -> None:
    """``runs.wait`` polls the emulator to the end of a run in virtual time."""
    pytest.importorskip("automation_sdk._poller")
    automation = await client.automations.create(
        name="x",
        steps=[StepSpec("start", "START"), StepSpec("a", "LLM", {"type": "text", "text": "hi"})],
        edges=[EdgeSpec("start", "a")],
    )
    run = await client.runs.create(automation.id)
    done = await client.runs.wait(automation.id, run.id, timeout=60)
    assert done.status is RunStatus.FINISHED
    assert done.steps[-1].result == "[LLM] hi"
