"""Each error status becomes its own class, with a message that says what to do."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses

from automation_sdk import (
    APIStatusError,
    AuthenticationError,
    AutomationClient,
    AutomationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
    ValidationDetail,
    errors,
)
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json

RUN_URL = f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"


@pytest.mark.parametrize(
    ("status", "cls", "advice"),
    [
        (400, BadRequestError, "arguments"),
        (401, AuthenticationError, "AUTOMATION_API_TOKEN"),
        (403, PermissionDeniedError, "may not do this"),
        (404, NotFoundError, "Check the automation and run ids"),
        (409, ConflictError, "state"),
        (410, APIStatusError, ""),
    ],
)
async def test_status_maps_to_its_class(
    client: AutomationClient,
    mock: aioresponses,
    status: int,
    cls: type[APIStatusError],
    advice: str,
) -> None:
    """A 4xx answer raises its own class carrying status, method, url and detail."""
    mock.get(RUN_URL, status=status, payload={"detail": "nope"}, headers={"x-request-id": "r-1"})
    with pytest.raises(cls) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert type(exc) is cls
    assert (exc.status_code, exc.method, exc.url) == (status, "GET", RUN_URL)
    assert exc.detail == "nope"
    assert exc.body == {"detail": "nope"}
    assert exc.request_id == "r-1"
    assert str(exc).startswith(f"GET {RUN_URL} answered {status}")
    assert advice in str(exc)


async def test_422_parses_fastapi_detail_list(client: AutomationClient, mock: aioresponses) -> None:
    """A 422 exposes each FastAPI validation entry and names the fields in its message."""
    detail = [
        {
            "loc": ["body", "inputs"],
            "msg": "Input should be a valid dictionary",
            "type": "dict_type",
        },
        {"loc": ["body", "extra", 0], "msg": "bad", "type": "x"},
    ]
    mock.post(
        f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/", status=422, payload={"detail": detail}
    )
    with pytest.raises(UnprocessableEntityError) as info:
        await client.runs.create(AUTOMATION_ID, inputs={})
    assert info.value.errors == (
        ValidationDetail(
            loc=("body", "inputs"), msg="Input should be a valid dictionary", type="dict_type"
        ),
        ValidationDetail(loc=("body", "extra", 0), msg="bad", type="x"),
    )
    assert "body.inputs: Input should be a valid dictionary" in str(info.value)


async def test_html_error_body_still_names_status_method_and_path(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A proxy's HTML error page gives an error with status, method, URL and an excerpt."""
    mock.get(RUN_URL, status=404, body="<html><h1>Not Found</h1></html>", content_type="text/html")
    with pytest.raises(NotFoundError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.detail == "<html><h1>Not Found</h1></html>"
    assert f"GET {RUN_URL} answered 404 Not Found" in str(info.value)


async def test_empty_error_body(client: AutomationClient, mock: aioresponses) -> None:
    """An error status with an empty body still raises the status's class with no detail."""
    mock.get(RUN_URL, status=403, body="")
    with pytest.raises(PermissionDeniedError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.detail is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html>gateway</html>", "text/html"),
        ('{"id": "9a1f0e6c-3b2d', "application/json"),
        ("", "application/json"),
    ],
)
async def test_success_with_a_body_that_is_not_json(
    mock: aioresponses, body: str, content_type: str
) -> None:
    """A 200 with HTML, truncated or empty JSON raises ResponseValidationError, not a bare error."""
    mock.get(RUN_URL, body=body, content_type=content_type)
    async with AutomationClient(TOKEN, base_url=BASE_URL, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(ResponseValidationError) as info:
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert info.value.status_code == 200
    assert f"GET {RUN_URL} answered 200" in str(info.value)
    assert "where JSON was expected" in str(info.value)


async def test_wrong_shape_names_the_field_path(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A missing or mistyped nested field is reported with its path and the request."""
    body = run_json()
    body["steps"][0]["step"]["id"] = 12
    del body["status"]
    mock.get(RUN_URL, payload=body)
    with pytest.raises(ResponseValidationError) as info:
        await client.runs.get(AUTOMATION_ID, RUN_ID)
    exc = info.value
    assert "steps[0].step.id: expected a UUID string, got int 12" in exc.problems
    assert "status: required field missing" in exc.problems
    assert "steps[0].step.id" in str(exc) and RUN_URL in str(exc)


@pytest.mark.parametrize("payload", [[1, 2], "run", 7, None])
async def test_json_that_is_not_an_object(
    client: AutomationClient, mock: aioresponses, payload: object
) -> None:
    """A JSON array, string or null where an object belongs raises ResponseValidationError."""
    mock.get(RUN_URL, body=__import__("json").dumps(payload))
    with pytest.raises(ResponseValidationError, match="expected a JSON object"):
        await client.runs.get(AUTOMATION_ID, RUN_ID)


def test_error_tree() -> None:
    """Every error is an AutomationError; builtins are kept where users catch them."""
    assert issubclass(errors.RequestTimeoutError, TimeoutError)
    assert issubclass(errors.RequestTimeoutError, errors.TransportError)
    assert issubclass(errors.TransportError, OSError)
    assert issubclass(errors.WaitTimeoutError, TimeoutError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.ClientClosedError, RuntimeError)
    assert issubclass(errors.EventLoopMismatchError, RuntimeError)
    assert issubclass(errors.InsecureURLWarning, UserWarning)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
            assert issubclass(cls, AutomationError), name
    assert issubclass(RateLimitError, APIStatusError) and issubclass(ServerError, APIStatusError)


async def test_html_error_page_becomes_one_line(
    client: AutomationClient, mock: aioresponses
) -> None:
    """A proxy's multi-line HTML page is folded into a one-line detail."""
    page = "<html>\n  <body>\n    <h1>502 Bad Gateway</h1>\n  </body>\n</html>\n"
    mock.post(f"{BASE_URL}/automations/{AUTOMATION_ID}/sessions/", status=502, body=page)
    with pytest.raises(ServerError) as info:
        await client.runs.create(AUTOMATION_ID, inputs={})
    assert "\n" not in str(info.value)
    assert info.value.detail == "<html> <body> <h1>502 Bad Gateway</h1> </body> </html>"
