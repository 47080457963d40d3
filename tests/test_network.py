"""Network settings: proxies from the environment, TLS verification and CA bundles, timeouts."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aioresponses import aioresponses

from automation_sdk import (
    AutomationClient,
    ConfigurationError,
    RetryPolicy,
    Timeout,
    TransportError,
)
from automation_sdk.testing import FakeClock
from payloads import AUTOMATION_ID, BASE_URL, RUN_ID, TOKEN, run_json
from servers import serve

RUN_PATH = f"/automations/{AUTOMATION_ID}/sessions/{RUN_ID}/"
ONE_TRY = RetryPolicy(attempts=1)


class Recorder:
    """A local aiohttp server answering every request with a run, keeping each request target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.url = ""  # set once it serves

    async def handle(self, request: web.Request) -> web.Response:
        # raw_path is the request target as sent: absolute ("http://host/path") through a proxy.
        self.targets.append(request.raw_path)
        return web.json_response(run_json())


@pytest.fixture
async def proxy() -> AsyncIterator[Recorder]:
    """A server standing in for an HTTP proxy: it records the absolute URI it is asked for."""
    recorder = Recorder()
    async with serve(recorder.handle) as recorder.url:
        yield recorder


@pytest.fixture
async def api() -> AsyncIterator[Recorder]:
    """A server standing in for the API, reached directly."""
    recorder = Recorder()
    async with serve(recorder.handle) as recorder.url:
        yield recorder


# -- proxies -------------------------------------------------------------------------------


async def test_an_owned_session_follows_http_proxy(
    proxy: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, requests go to the proxy with the API's absolute URL."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with AutomationClient(TOKEN, base_url="http://api.localhost", retry=ONE_TRY) as c:
        run = await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(run.id) == RUN_ID
    assert proxy.targets == [f"http://api.localhost{RUN_PATH}"]


async def test_no_proxy_sends_requests_directly(
    proxy: Recorder, api: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host named in NO_PROXY is reached directly, though HTTP_PROXY is set."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with AutomationClient(TOKEN, base_url=api.url, retry=ONE_TRY) as c:
        await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert proxy.targets == []
    assert api.targets == [RUN_PATH]


async def test_trust_env_false_ignores_the_proxy_variables(
    proxy: Recorder, api: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AutomationClient(trust_env=False) never uses HTTP_PROXY."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with AutomationClient(TOKEN, base_url=api.url, retry=ONE_TRY, trust_env=False) as c:
        await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert proxy.targets == []
    assert api.targets == [RUN_PATH]


async def test_a_derived_client_uses_the_same_proxy(
    proxy: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client made by with_options() goes through the parent's proxy."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with AutomationClient(TOKEN, base_url="http://api.localhost", retry=ONE_TRY) as c:
        await c.with_options(timeout=5).runs.get(AUTOMATION_ID, RUN_ID)
    assert proxy.targets == [f"http://api.localhost{RUN_PATH}"]


def test_trust_env_must_be_a_bool() -> None:
    """trust_env='no' is refused, naming the argument."""
    with pytest.raises(ConfigurationError, match="trust_env must be True or False"):
        AutomationClient(TOKEN, base_url=BASE_URL, trust_env="no")  # type: ignore[arg-type]


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (an EC key: made in milliseconds)."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_api(certificate: tuple[Path, Path]) -> AsyncIterator[Recorder]:
    """The API on https://127.0.0.1 with a certificate no system CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    recorder = Recorder()
    async with serve(recorder.handle, context) as recorder.url:
        yield recorder


async def test_an_unknown_certificate_is_refused_by_default(tls_api: Recorder) -> None:
    """The default checks the certificate against the system's CAs: a self-signed one fails."""
    async with AutomationClient(TOKEN, base_url=tls_api.url, retry=ONE_TRY, clock=FakeClock()) as c:
        with pytest.raises(TransportError, match="could not connect"):
            await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert tls_api.targets == []


async def test_a_custom_ca_bundle_is_trusted_through_an_ssl_context(
    tls_api: Recorder, certificate: tuple[Path, Path]
) -> None:
    """ssl=ssl.create_default_context(cafile=...) trusts the CA in that file."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    async with AutomationClient(TOKEN, base_url=tls_api.url, ssl=context) as c:
        run = await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert str(run.id) == RUN_ID


async def test_ssl_false_skips_verification(tls_api: Recorder) -> None:
    """ssl=False talks to a local test server whatever its certificate."""
    async with AutomationClient(TOKEN, base_url=tls_api.url, ssl=False) as c:
        await c.runs.get(AUTOMATION_ID, RUN_ID)
    assert tls_api.targets == [RUN_PATH]


@pytest.mark.parametrize("value", ["/etc/ssl/ca.pem", None, 0])
def test_ssl_takes_a_bool_or_a_context(value: object) -> None:
    """A CA file path (or anything else) is refused with how to make a context from it."""
    with pytest.raises(ConfigurationError, match="create_default_context"):
        AutomationClient(TOKEN, base_url=BASE_URL, ssl=value)  # type: ignore[arg-type]


# -- timeouts ------------------------------------------------------------------------------


def test_a_number_is_a_total_timeout() -> None:
    """timeout=5 is Timeout(total=5): the whole try, with no separate connect or read limit."""
    client = AutomationClient(TOKEN, base_url=BASE_URL, timeout=5)
    assert client.timeout == Timeout(total=5)


async def test_a_timeout_value_reaches_each_try(mock: aioresponses) -> None:
    """Timeout(connect=, read=, total=) sets aiohttp's connect, read and total limits."""
    mock.get(BASE_URL + RUN_PATH, payload=run_json())
    timeout = Timeout(connect=3, read=10, total=60)
    async with AutomationClient(TOKEN, base_url=BASE_URL, timeout=timeout) as c:
        await c.runs.get(AUTOMATION_ID, RUN_ID)
    (call,) = next(iter(mock.requests.values()))
    sent = call.kwargs["timeout"]
    assert (sent.sock_connect, sent.sock_read, sent.total) == (3, 10, 60)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Timeout(), "at least one of"),
        (lambda: Timeout(read=0), r"Timeout\.read must be a finite number of seconds > 0"),
        (lambda: Timeout(connect=float("inf")), r"Timeout\.connect"),
        (lambda: Timeout(total="30"), r"Timeout\.total"),  # type: ignore[arg-type]
        (lambda: AutomationClient(TOKEN, base_url=BASE_URL, timeout="30"), "or a Timeout"),  # type: ignore[arg-type]
    ],
)
def test_bad_timeouts_are_refused(make: object, match: str) -> None:
    """A Timeout without any limit, or with a limit that is not seconds > 0, is refused."""
    with pytest.raises(ConfigurationError, match=match):
        make()  # type: ignore[operator]
