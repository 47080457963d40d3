"""Hostile caller input: every bad value is a typed error before anything is sent.

The promise tested here: whatever a caller passes (a NaN timeout, a token with a
line break, a base URL with a password, inputs JSON cannot carry, a prompt given
as a plain string, a client used from a second event loop), the SDK raises an
``AutomationError`` subclass that names the argument and the right form, and
sends nothing. The case lists are module constants so that their sizes can be
counted (see the CHANGELOG for the figure).
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from attrs import evolve
from yarl import URL

from automation_sdk import (
    AutomationClient,
    ClientClosedError,
    ConfigurationError,
    EdgeSpec,
    EventLoopMismatchError,
    InsecureURLWarning,
    InvalidArgumentError,
    RetryPolicy,
    StepSpec,
    StepType,
    Timeout,
)
from automation_sdk._jsonable import MAX_DEPTH, to_json
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, automation_json, run_json, wait_after

RUNS_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/"
RUN_PATH = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
PASSWORD = "hunter2-pw"


# -- the client's arguments ----------------------------------------------------------------

BAD_CLIENT_ARGS: list[tuple[str, dict[str, Any], str]] = [
    ("timeout nan", {"timeout": math.nan}, "timeout must be a finite"),
    ("timeout inf", {"timeout": math.inf}, "timeout must be a finite"),
    ("timeout -inf", {"timeout": -math.inf}, "timeout must be a finite"),
    ("timeout str", {"timeout": "5"}, "timeout must be a number"),
    ("timeout 0", {"timeout": 0}, "timeout must be a finite number of seconds > 0"),
    ("timeout -1", {"timeout": -1}, "timeout must be a finite"),
    ("timeout True", {"timeout": True}, "timeout must be a number"),
    ("timeout None", {"timeout": None}, "timeout must be a number"),
    ("token CRLF", {"token": "tok\r\nX-Evil: 1"}, r"carriage return \(\\r\) at position 3"),
    ("token LF", {"token": "tok\nen"}, r"line feed \(\\n\)"),
    ("token NUL", {"token": "tok\x00en"}, "U[+]0000"),
    ("token DEL", {"token": "tok\x7fen"}, "U[+]007F"),
    ("token tab", {"token": "tok\ten"}, r"tab \(\\t\)"),
    ("token space", {"token": "tok en"}, "SPACE"),
    ("token curly quote", {"token": "\u201ctok\u201d"}, "U[+]201C"),
    ("token bytes", {"token": b"tok"}, r"must be a string.*decode"),
    ("token int", {"token": 123}, "must be a string"),
    ("token empty", {"token": " \n "}, "no API token"),
    ("org id CRLF", {"org_id": "org\r\nX-Evil: 1"}, "org_id holds a carriage return"),
    ("org id NUL", {"org_id": "org\x00"}, "org_id holds the character U[+]0000"),
    ("org id int", {"org_id": 5}, "org_id must be a string"),
    ("header value CRLF", {"headers": {"X-A": "v\r\nX-Evil: 1"}}, "value of 'X-A' holds"),
    ("header value NUL", {"headers": {"X-A": "v\x00"}}, "value of 'X-A' holds"),
    ("header value int", {"headers": {"X-A": 5}}, "value of 'X-A' must be a string"),
    ("header name LF", {"headers": {"X-A\n": "v"}}, "not a valid header name"),
    ("header name space", {"headers": {"X A": "v"}}, "not a valid header name"),
    ("header name colon", {"headers": {"X-A:": "v"}}, "not a valid header name"),
    ("header name empty", {"headers": {"": "v"}}, "not a valid header name"),
    ("header name int", {"headers": {5: "v"}}, "int is not a valid header name"),
    ("headers str", {"headers": "X-A: v"}, "headers must be a mapping"),
    ("header Content-Length", {"headers": {"Content-Length": "0"}}, "set by the client"),
    ("retry str", {"retry": "fast"}, "retry must be a RetryPolicy"),
    ("retry int", {"retry": 3}, "retry must be a RetryPolicy"),
    ("session str", {"session": "session"}, "session must be an aiohttp.ClientSession"),
    ("clock object", {"clock": object()}, "clock must be a Clock with monotonic"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [pytest.param(kw, msg, id=name) for name, kw, msg in BAD_CLIENT_ARGS],
)
def test_bad_client_argument_is_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    """Each unusable argument raises ConfigurationError (a ValueError) naming it, no secret."""
    kwargs = {"token": TOKEN, "base_url": BASE_URL, **kwargs}
    with pytest.raises(ConfigurationError, match=message) as info:
        AutomationClient(**kwargs)
    assert isinstance(info.value, ValueError)
    assert TOKEN not in str(info.value)
    assert "X-Evil" not in str(info.value)  # a header's value is never quoted


def test_environment_token_with_a_line_break_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTOMATION_API_TOKEN is checked like the argument, and named in the message."""
    monkeypatch.setenv("AUTOMATION_API_TOKEN", "abc\ndef")
    with pytest.raises(ConfigurationError, match="AUTOMATION_API_TOKEN") as info:
        AutomationClient(base_url=BASE_URL)
    assert "abc" not in str(info.value)


def test_good_configuration_is_kept_as_given() -> None:
    """Stripped token and org id, int timeout as float, extra headers and a tab in a value pass."""
    client = AutomationClient(
        f"  {TOKEN}\n",
        base_url=BASE_URL + "/",
        org_id=" org_9 ",
        timeout=5,
        headers={"X-Trace": "a\tb", "authorization": "dropped"},
    )
    assert client.timeout == Timeout(total=5.0)
    headers = client._transport._headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Current-Org-Id"] == "org_9"
    assert headers["X-Trace"] == "a\tb"
    assert "authorization" not in headers
    assert client.base_url == BASE_URL


# -- RetryPolicy ---------------------------------------------------------------------------

BAD_RETRY_POLICIES: list[tuple[str, dict[str, Any], str]] = [
    ("attempts 0", {"attempts": 0}, r"RetryPolicy\.attempts must be a whole number >= 1"),
    ("attempts -1", {"attempts": -1}, r"RetryPolicy\.attempts must be a whole number >= 1"),
    ("attempts 2.5", {"attempts": 2.5}, r"RetryPolicy\.attempts must be a whole number"),
    ("attempts 2.0", {"attempts": 2.0}, r"RetryPolicy\.attempts must be a whole number"),
    ("attempts True", {"attempts": True}, r"RetryPolicy\.attempts must be a whole number"),
    ("attempts str", {"attempts": "3"}, r"RetryPolicy\.attempts must be a whole number"),
    ("attempts None", {"attempts": None}, r"RetryPolicy\.attempts must be a whole number"),
    ("wait_initial -1", {"wait_initial": -1}, r"RetryPolicy\.wait_initial must be a finite"),
    ("wait_initial nan", {"wait_initial": math.nan}, r"RetryPolicy\.wait_initial"),
    ("wait_initial inf", {"wait_initial": math.inf}, r"RetryPolicy\.wait_initial"),
    ("wait_initial str", {"wait_initial": "0.5"}, r"RetryPolicy\.wait_initial must be a number"),
    ("wait_initial True", {"wait_initial": True}, r"RetryPolicy\.wait_initial"),
    ("wait_max -1", {"wait_max": -1.0}, r"RetryPolicy\.wait_max must be a finite .* >= 0"),
    ("wait_max nan", {"wait_max": math.nan}, r"RetryPolicy\.wait_max"),
    ("wait_max inf", {"wait_max": math.inf}, r"RetryPolicy\.wait_max"),
    ("max_retry_after -1", {"max_retry_after": -1}, r"RetryPolicy\.max_retry_after"),
    ("max_retry_after nan", {"max_retry_after": math.nan}, r"RetryPolicy\.max_retry_after"),
    ("max_retry_after inf", {"max_retry_after": math.inf}, r"RetryPolicy\.max_retry_after"),
    ("max_retry_after str", {"max_retry_after": "60"}, r"RetryPolicy\.max_retry_after"),
    ("jitter str", {"jitter": "no"}, r"RetryPolicy\.jitter must be True or False"),
    ("jitter int", {"jitter": 1}, r"RetryPolicy\.jitter must be True or False"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [pytest.param(kw, msg, id=name) for name, kw, msg in BAD_RETRY_POLICIES],
)
def test_bad_retry_policy_is_a_configuration_error(kwargs: dict[str, Any], message: str) -> None:
    """RetryPolicy refuses a value outside its range with ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=message) as info:
        RetryPolicy(**kwargs)
    assert isinstance(info.value, ValueError)


def test_retry_policy_checks_evolve_too() -> None:
    """A policy changed with attrs.evolve is checked like a new one."""
    with pytest.raises(ConfigurationError, match="attempts"):
        evolve(RetryPolicy(), attempts=0)


def test_many_attempts_never_overflow_the_backoff() -> None:
    """The 1100th backoff of a long policy is wait_max, not an OverflowError."""
    policy = RetryPolicy(attempts=5000, wait_initial=0.5, wait_max=30.0, jitter=False)
    assert wait_after(policy, 1100) == 30.0
    assert wait_after(evolve(policy, jitter=True), 1100) <= 30.0


# -- base_url ------------------------------------------------------------------------------

BAD_BASE_URLS: list[tuple[str, object, str]] = [
    ("query", "https://h.example/api?x=1", "query"),
    ("empty query", "https://h.example/api?", "query"),
    ("fragment", "https://h.example/api#v1", "fragment"),
    ("empty fragment", "https://h.example#", "fragment"),
    ("user and password", f"https://user:{PASSWORD}@h.example", "user name or password"),
    ("password only", f"https://:{PASSWORD}@h.example/api", "user name or password"),
    ("user only", "https://user@h.example", "user name or password"),
    ("password, bad scheme", f"ftp://user:{PASSWORD}@h.example", "http:// or https://"),
    ("password, bad port", f"https://u:{PASSWORD}@h.example:99999", "cannot be parsed"),
    ("empty host", "http://:8080", "has no host"),
    ("no host", "https://", "http:// or https://"),
    ("no scheme", "api.example.com", "http:// or https://"),
    ("ftp", "ftp://h.example", "http:// or https://"),
    ("file", "file:///etc/passwd", "http:// or https://"),
    ("bad port", "https://h.example:abc", "cannot be parsed"),
    ("port out of range", "https://h.example:70000", "cannot be parsed"),
    ("port 0", "https://h.example:0", "port 0"),
    ("broken IPv6", "http://[::1", "cannot be parsed"),
    ("space", "https://h.example/a b", "whitespace"),
    ("line feed", "https://h.example/\nHost: evil", "control character"),
    ("not a string", 5, "must be a string"),
]


@pytest.mark.parametrize(
    ("url", "message"), [pytest.param(u, m, id=name) for name, u, m in BAD_BASE_URLS]
)
def test_base_url_that_would_misroute_is_refused(url: object, message: str) -> None:
    """A query, fragment, userinfo, missing host, other scheme or bad port: ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message) as info:
        AutomationClient(TOKEN, base_url=url)  # type: ignore[arg-type]
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert "base_url" in str(info.value)


def test_base_url_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTOMATION_BASE_URL gets the same checks, and the message says where to fix it."""
    monkeypatch.setenv("AUTOMATION_BASE_URL", f"https://u:{PASSWORD}@h.example")
    with pytest.raises(ConfigurationError, match="AUTOMATION_BASE_URL") as info:
        AutomationClient(TOKEN)
    assert PASSWORD not in str(info.value)


PLAIN_HTTP_REMOTE = [
    "http://api.example.com",
    "http://10.0.0.5:8000/api",
    "http://[2001:db8::1]:8080",
    "http://localhost.example.com",
    "http://128.0.0.1",
]
LOOPBACK_OR_HTTPS = [
    "http://127.0.0.1:8000",
    "http://127.5.6.7",
    "http://localhost:8080/api",
    "http://LOCALHOST",
    "http://emulator.localhost:9000",
    "http://[::1]:8080",
    "https://api.example.com",
    "HTTPS://api.example.com",
]


@pytest.mark.parametrize("url", PLAIN_HTTP_REMOTE)
async def test_plain_http_to_another_host_warns_once(url: str, mock: aioresponses) -> None:
    """http:// to a non-loopback host warns InsecureURLWarning when built, never per request."""
    with pytest.warns(InsecureURLWarning, match="unencrypted") as record:
        client = AutomationClient(TOKEN, base_url=url)
    assert len(record) == 1
    assert TOKEN not in str(record[0].message)
    assert record[0].filename == __file__  # it points at the caller's line
    mock.get(f"{client.base_url}{RUN_PATH}", payload=run_json(), repeat=True)
    async with client:  # filterwarnings=error: a second warning would fail here
        await client.runs.get(AUTOMATION_ID, RUN_ID)
        await client.runs.get(AUTOMATION_ID, RUN_ID)


@pytest.mark.parametrize("url", LOOPBACK_OR_HTTPS)
def test_https_and_loopback_do_not_warn(url: str) -> None:
    """https://, localhost, 127.0.0.0/8 and ::1 are accepted without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AutomationClient(TOKEN, base_url=url)


# -- inputs JSON cannot carry --------------------------------------------------------------


def _cycle_list() -> object:
    items: list[object] = [1]
    items.append(items)
    return items


def _cycle_dict() -> object:
    inner: dict[str, object] = {}
    inner["self"] = {"again": inner}
    return inner


def _deep(levels: int, kind: Callable[[object], object]) -> object:
    value: object = "bottom"
    for _ in range(levels):
        value = kind(value)
    return value


class _Deep:
    """``levels`` nestings of ``kind`` around a string, built when the test runs.

    Built at import, 100,000 nested lists cost 75 ms in every worker that collects the
    tests, and would then stay alive for the whole run.
    """

    def __init__(self, levels: int, kind: Callable[[object], object]) -> None:
        self.levels, self.kind = levels, kind

    def build(self) -> object:
        return _deep(self.levels, self.kind)


class _Opaque:
    """A caller's own class, which JSON knows nothing of."""


def _generator() -> Iterator[int]:
    yield 1


BAD_INPUTS: list[tuple[str, object, str]] = [
    ("NaN", {"a": [0, 1, math.nan]}, r"^inputs\.a\[2\]: NaN cannot be sent as JSON"),
    ("inf", {"a": math.inf}, r"^inputs\.a: inf cannot be sent as JSON"),
    ("-inf", {"a": {"b": -math.inf}}, r"^inputs\.a\.b: -inf cannot be sent as JSON"),
    ("set", {"tags": {"x", "y"}}, r"^inputs\.tags: a set cannot .*list"),
    ("frozenset", {"tags": frozenset()}, r"^inputs\.tags: a set cannot"),
    ("bytes", {"file": b"\x00\x01"}, r"^inputs\.file: bytes cannot .*decode"),
    ("bytearray", {"file": bytearray(b"x")}, r"^inputs\.file: bytes cannot"),
    ("memoryview", {"file": memoryview(b"x")}, r"^inputs\.file: bytes cannot"),
    (
        "datetime",
        {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
        r"^inputs\.when: a date or datetime cannot .*isoformat",
    ),
    ("date", {"when": datetime.date(2026, 1, 1)}, r"^inputs\.when: a date or datetime"),
    ("time", {"when": datetime.time(12)}, r"^inputs\.when: a time cannot"),
    ("timedelta", {"d": datetime.timedelta(1)}, r"^inputs\.d: a timedelta cannot"),
    ("Decimal", {"price": decimal.Decimal("1.10")}, r"^inputs\.price: a Decimal cannot"),
    ("UUID", {"id": uuid.UUID(RUN_ID)}, r"^inputs\.id: a UUID cannot .*str\(value\)"),
    ("complex", {"z": 1j}, r"^inputs\.z: a complex number cannot"),
    ("int key", {"a": {1: "one"}}, r"^inputs\.a: the key 1 \(of type int\) is not a string"),
    ("None key", {None: 1}, r"^inputs: the key None \(of type NoneType\)"),
    ("tuple key", {"a": {(1, 2): 3}}, r"^inputs\.a: the key \(1, 2\)"),
    ("cycle in a list", {"a": _cycle_list()}, r"^inputs\.a\[1\]: refers back .* cycle"),
    ("cycle in a dict", {"a": _cycle_dict()}, r"^inputs\.a\.self\.again: refers back"),
    ("5,000 levels of lists", {"a": _Deep(5000, lambda v: [v])}, r"deeper than 128 levels"),
    ("5,000 levels of dicts", {"a": _Deep(5000, lambda v: {"k": v})}, r"deeper than 128"),
    ("100,000 levels", {"a": _Deep(100_000, lambda v: [v])}, r"deeper than 128 levels"),
    ("huge int", {"n": 10**5000}, r"^inputs\.n: an integer of more than \d+ digits"),
    ("lone surrogate", {"s": "ok\ud800"}, r"^inputs\.s: a string holding a lone surrogate"),
    ("object", {"o": _Opaque()}, r"^inputs\.o: a value of type _Opaque cannot"),
    ("generator", {"g": _generator()}, r"^inputs\.g: a value of type generator"),
    ("range", {"r": range(3)}, r"^inputs\.r: a value of type range"),
    ("function", {"f": print}, r"^inputs\.f: a value of type builtin_function"),
    ("Ellipsis", {"e": ...}, r"^inputs\.e: a value of type ellipsis"),
    ("odd key", {"my key": [math.nan]}, r"^inputs\['my key'\]\[0\]: NaN"),
    ("not a mapping: list", [("a", 1)], r"^inputs must be a mapping"),
    ("not a mapping: str", "ticket=1", r"^inputs must be a mapping"),
]


@pytest.mark.parametrize(
    ("inputs", "message"), [pytest.param(i, m, id=name) for name, i, m in BAD_INPUTS]
)
async def test_inputs_json_cannot_carry_are_refused_before_sending(
    client: AutomationClient, mock: aioresponses, inputs: Any, message: str
) -> None:
    """runs.create refuses each non-JSON input with InvalidArgumentError naming its path."""
    if isinstance(inputs, dict) and isinstance(inputs.get("a"), _Deep):
        inputs = {"a": inputs["a"].build()}
    with pytest.raises(InvalidArgumentError, match=message) as info:
        await client.runs.create(AUTOMATION_ID, inputs=inputs)
    assert mock.requests == {}
    assert "nothing was sent" in str(info.value)


async def test_json_inputs_are_sent_as_plain_json(
    client: AutomationClient, mock: aioresponses
) -> None:
    """Tuples, read-only mappings, str/int enums, shared lists and 128 levels are all sent."""
    mock.post(RUNS_URL, payload=run_json("NEW"))
    shared = [1, 2]
    deep = _deep(MAX_DEPTH - 1, lambda v: [v])
    inputs = MappingProxyType(
        {
            "t": (1, 2.5, None, True),
            "kind": StepType.LLM,
            "nested": MappingProxyType({"x": "é ✓"}),
            "a": shared,
            "b": shared,
            "big": 10**100,
            "deep": deep,
        }
    )
    await client.runs.create(AUTOMATION_ID, inputs=inputs)
    (call,) = mock.requests[("POST", URL(RUNS_URL))]
    sent = call.kwargs["json"]["inputs"]
    assert sent["t"] == [1, 2.5, None, True]
    assert type(sent["kind"]) is str and sent["kind"] == "LLM"
    assert sent["nested"] == {"x": "é ✓"} and type(sent["nested"]) is dict
    assert sent["a"] == sent["b"] == [1, 2]
    assert sent["big"] == 10**100
    assert sent["deep"] == deep


def test_json_check_depth_limit_is_exact() -> None:
    """MAX_DEPTH nested containers pass; one more is refused."""
    assert to_json(_deep(MAX_DEPTH, lambda v: [v]), "x") == _deep(MAX_DEPTH, lambda v: [v])
    with pytest.raises(InvalidArgumentError, match="deeper than"):
        to_json(_deep(MAX_DEPTH + 1, lambda v: [v]), "x")


async def test_user_input_with_a_lone_surrogate_is_refused(
    client: AutomationClient, mock: aioresponses
) -> None:
    """submit_input refuses a string that is not valid Unicode before sending it."""
    with pytest.raises(InvalidArgumentError, match=r"^user_input: a string holding a lone"):
        await client.runs.submit_input(AUTOMATION_ID, RUN_ID, "yes\udc80")
    assert mock.requests == {}


# -- specs ---------------------------------------------------------------------------------

RIGHT_PROMPT = r'prompt_template=\{"type": "text", "text": "'

BAD_SPECS: list[tuple[str, Callable[[], object], str]] = [
    (
        "prompt as a plain string",
        lambda: StepSpec("s", "LLM", "Summarise ${INPUTS.ticket}"),
        RIGHT_PROMPT + r"Summarise \$\{INPUTS.ticket\}\"\}, got the string",
    ),
    ("prompt None", lambda: StepSpec("s", "LLM", None), RIGHT_PROMPT + r"\.\.\.\"\}, got None"),
    ("prompt list", lambda: StepSpec("s", "LLM", ["type", "text"]), RIGHT_PROMPT),
    ("prompt without type", lambda: StepSpec("s", "LLM", {"text": "x"}), 'needs a "type" key'),
    ("prompt type int", lambda: StepSpec("s", "LLM", {"type": 5}), 'needs a "type" key'),
    (
        "prompt with NaN",
        lambda: StepSpec("s", "LLM", {"type": "text", "temperature": math.nan}),
        r"StepSpec 's': prompt_template\.temperature: NaN",
    ),
    (
        "prompt with a set",
        lambda: StepSpec("s", "LLM", {"type": "text", "tags": {"a"}}),
        r"prompt_template\.tags: a set",
    ),
    ("step_type int", lambda: StepSpec("s", 5), r"step_type must be a StepType .* got int 5"),
    ("step_type None", lambda: StepSpec("s", None), "step_type must be a StepType"),
    ("step_type empty", lambda: StepSpec("s", ""), "step_type must be a StepType"),
    ("name int", lambda: StepSpec(5, "LLM"), "name must be a non-empty string"),
    ("name None", lambda: StepSpec(None, "LLM"), "name must be a non-empty string"),
    ("name empty", lambda: StepSpec("  ", "LLM"), "name must be a non-empty string"),
    ("id int", lambda: StepSpec("s", "LLM", id=5), r"StepSpec\.id must be a UUID"),
    (
        "evolve to a string prompt",
        lambda: evolve(StepSpec("s", "LLM"), prompt_template="x"),
        "mapping",
    ),
    ("edge source int", lambda: EdgeSpec(5, "b"), "source must name a StepSpec"),
    ("edge target None", lambda: EdgeSpec("a", None), "target must name a StepSpec"),
    ("edge source empty", lambda: EdgeSpec("", "b"), "source must name a StepSpec"),
    ("edge label int", lambda: EdgeSpec("a", "b", 5), "label must be a string"),
]


@pytest.mark.parametrize(
    ("build", "message"), [pytest.param(b, m, id=name) for name, b, m in BAD_SPECS]
)
def test_spec_of_the_wrong_form_is_refused_when_built(
    build: Callable[[], object], message: str
) -> None:
    """StepSpec and EdgeSpec check their fields when built, showing the right form."""
    with pytest.raises(InvalidArgumentError, match=message):
        build()


BAD_CREATE_ARGS: list[tuple[str, dict[str, Any], str]] = [
    ("steps str", {"steps": "abc"}, r"steps must be a list of StepSpec, such as \[StepSpec\("),
    ("steps one spec", {"steps": StepSpec("start", "START")}, "steps must be a list"),
    ("steps None", {"steps": None}, "steps must be a list"),
    ("steps of dicts", {"steps": [{"name": "start"}]}, r"steps\[0\] must be a StepSpec"),
    ("edges str", {"edges": "ab"}, "edges must be a list of EdgeSpec"),
    ("edges tuples", {"edges": [("a", "b")]}, r"edges\[0\] must be an? Edge"),
    ("name int", {"name": 5}, "name must be a non-empty string"),
    ("name None", {"name": None}, "name must be a non-empty string"),
    ("description int", {"description": 5}, "description must be a string"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), [pytest.param(k, m, id=name) for name, k, m in BAD_CREATE_ARGS]
)
async def test_automations_create_refuses_arguments_of_the_wrong_form(
    client: AutomationClient, mock: aioresponses, kwargs: dict[str, Any], message: str
) -> None:
    """automations.create checks its arguments' types before anything is sent."""
    arguments: dict[str, Any] = {"name": "x", "steps": [StepSpec("start", "START")], **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        await client.automations.create(**arguments)
    assert mock.requests == {}


async def test_prompt_changed_after_the_spec_was_built_is_checked_again(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A NaN put into a spec's mapping after building it is still refused by create."""
    prompt: dict[str, Any] = {"type": "text", "text": "hi"}
    spec = StepSpec("hi", "LLM", prompt)
    prompt["temperature"] = math.nan
    with pytest.raises(InvalidArgumentError, match=r"steps\[1\]\.prompt_template\.temperature"):
        await client.automations.create(name="x", steps=[StepSpec("start", "START"), spec])
    assert mock.requests == {}


async def test_good_specs_are_still_sent(client: AutomationClient, mock: aioresponses) -> None:
    """A uuid edge end, an unknown step type and a tuple of steps are accepted."""
    mock.post(f"{BASE_URL}/automations/", payload=automation_json())
    start = StepSpec("start", StepType.START)
    tool = StepSpec("tool", "SEARCH", {"type": "tool", "args": ("a", 1)})
    await client.automations.create(
        name="x", steps=(start, tool), edges=[EdgeSpec(start.id, "tool")]
    )
    (call,) = mock.requests[("POST", URL(f"{BASE_URL}/automations/"))]
    sent = call.kwargs["json"]["current_version"]["steps"][1]
    assert sent["prompt_template"] == {"type": "tool", "args": ["a", 1]}


# -- misuse of the client's lifecycle ------------------------------------------------------


@pytest.fixture
async def stalled_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server on 127.0.0.1 holding every request; yields its URL and a request-arrived event."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def handler(_: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response(run_json())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", arrived
    finally:
        release.set()
        await runner.cleanup()


@pytest.mark.parametrize("attempts", [1, 3])
async def test_aclose_during_a_request_is_a_client_closed_error(
    stalled_server: tuple[str, asyncio.Event], attempts: int
) -> None:
    """aclose() while a request is in flight: ClientClosedError saying so, not RuntimeError."""
    url, arrived = stalled_server
    client = AutomationClient(
        TOKEN, base_url=url, retry=RetryPolicy(attempts=attempts, wait_initial=0)
    )
    task = asyncio.create_task(client.runs.get(AUTOMATION_ID, RUN_ID))
    await asyncio.wait_for(arrived.wait(), 5)
    await client.aclose()
    with pytest.raises(ClientClosedError, match=r"closed \(aclose\(\)\) while it was in flight"):
        await task


async def test_aclose_during_a_watch_ends_it_with_a_checkpoint(
    stalled_server: tuple[str, asyncio.Event],
) -> None:
    """A watch whose client is closed mid-poll raises ClientClosedError carrying a checkpoint."""
    url, arrived = stalled_server
    client = AutomationClient(TOKEN, base_url=url)

    async def consume() -> None:
        async for _ in client.runs.watch(AUTOMATION_ID, RUN_ID):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(arrived.wait(), 5)
    await client.aclose()
    with pytest.raises(ClientClosedError, match="while it was in flight") as info:
        await task
    assert info.value.checkpoint is not None


async def test_borrowed_session_closed_by_its_owner(mock: aioresponses) -> None:
    """A borrowed session closed under the client: ClientClosedError saying to keep it open."""
    async with aiohttp.ClientSession() as session:
        client = AutomationClient(TOKEN, base_url=BASE_URL, session=session)
    with pytest.raises(ClientClosedError, match=r"borrows .* was closed by its owner"):
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert mock.requests == {}
    await client.aclose()


def test_client_reused_from_a_second_event_loop() -> None:
    """asyncio.run per task (Celery): the second loop gets EventLoopMismatchError, nothing sent."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)

    async def task() -> None:
        await client.runs.get(AUTOMATION_ID, RUN_ID)

    with aioresponses() as mock:
        mock.get(f"{BASE_URL}{RUN_PATH}", payload=run_json(), repeat=True)
        asyncio.run(task())
        with pytest.raises(EventLoopMismatchError, match="one client per event loop") as info:
            asyncio.run(task())
        assert "now closed" in str(info.value)
        assert isinstance(info.value, RuntimeError)
        assert len(mock.requests[("GET", URL(f"{BASE_URL}{RUN_PATH}"))]) == 1
    asyncio.run(client.aclose())  # closing from another loop is allowed


def test_client_built_outside_a_loop_and_used_inside_one_works() -> None:
    """Only the first use binds the client: building it at module level is fine."""
    client = AutomationClient(TOKEN, base_url=BASE_URL)

    async def task() -> None:
        async with client:
            await client.runs.get(AUTOMATION_ID, RUN_ID)

    with aioresponses() as mock:
        mock.get(f"{BASE_URL}{RUN_PATH}", payload=run_json())
        asyncio.run(task())
