"""Checking the client's configuration, in one place, before anything is sent.

Each function takes one value as the caller gave it and returns it in the form
the session layer uses, or raises :class:`~automation_sdk.errors.ConfigurationError`
naming the argument and what it accepts. They are pure (the only side effect is
the :class:`~automation_sdk.errors.InsecureURLWarning` of :func:`base_url`),
so that :class:`~automation_sdk.AutomationClient` calls them all at
construction and the request path never meets a value that could fail later.

No message ever shows the token, a header's value or a URL's password: a
header may hold a secret too, so only its name is quoted.
"""

from __future__ import annotations

import ipaddress
import math
import re
import ssl as stdlib_ssl
import unicodedata
import warnings
from collections.abc import Mapping
from typing import Final
from urllib.parse import SplitResult, urlsplit

from attrs import Attribute, field, frozen

from . import _paths
from .errors import ConfigurationError, InsecureURLWarning

__all__ = [
    "Timeout",
    "base_url",
    "check_bool",
    "check_int",
    "check_seconds",
    "headers",
    "instance",
    "org_id",
    "ssl",
    "timeout",
    "token",
]

# RFC 9110 section 5.6.2: a header name is a "token".
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})
# Headers the client writes itself: a caller's copy would be dropped or break the request.
_OWNED_HEADERS: Final = frozenset({"authorization", "content-length", "transfer-encoding"})


def _char_name(char: str) -> str:
    named = {"\r": "a carriage return (\\r)", "\n": "a line feed (\\n)", "\t": "a tab (\\t)"}
    if char in named:
        return named[char]
    return f"the character U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"


def _control_char(text: str, *, allow_tab: bool = False) -> tuple[int, str] | None:
    for position, char in enumerate(text):
        if unicodedata.category(char) == "Cc" and not (allow_tab and char == "\t"):
            return position, char
    return None


def token(value: object) -> str:
    """The API token, stripped; refused when missing, not a string, or not printable ASCII.

    A bearer token is printable ASCII (RFC 6750); anything else is a
    copy-paste accident (a line break, a curly quote, a no-break space) that
    would fail at the first request, or worse, split the header.
    """
    if value is None:
        raise ConfigurationError(
            f"no API token: pass AutomationClient(token=...) or set {_paths.ENV_TOKEN}"
        )
    if not isinstance(value, str):
        raise ConfigurationError(
            f"the API token must be a string, got {type(value).__name__}"
            + ("; decode it first (token.decode())" if isinstance(value, bytes) else "")
        )
    value = value.strip()
    if not value:
        raise ConfigurationError(
            f"no API token: pass AutomationClient(token=...) or set {_paths.ENV_TOKEN}"
        )
    for position, char in enumerate(value):
        if not (char.isascii() and char.isprintable()) or char == " ":
            # The message names the character and where it is, never the token.
            raise ConfigurationError(
                f"the API token holds {_char_name(char)} at position {position}: "
                "a token is printable ASCII without spaces; copy it again "
                f"(from {_paths.ENV_TOKEN} or your secret store)"
            )
    return value


def org_id(value: object) -> str | None:
    """The organisation id, stripped, or None when not given (or empty)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"org_id must be a string, got {type(value).__name__}")
    value = value.strip()
    found = _control_char(value)
    if found is not None:
        position, char = found
        raise ConfigurationError(
            f"org_id holds {_char_name(char)} at position {position}; "
            f"check it (or {_paths.ENV_ORG_ID})"
        )
    return value or None


def headers(value: object) -> dict[str, str]:
    """The extra headers as a plain dict, each name an HTTP token and each value one line.

    ``Authorization`` is dropped (the token is sent by the client); the framing
    headers ``Content-Length`` and ``Transfer-Encoding`` are refused.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "headers must be a mapping of names to values, such as {'X-Team': 'support'}, "
            f"got {type(value).__name__}"
        )
    checked: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            shown = repr(name) if isinstance(name, str) else type(name).__name__
            raise ConfigurationError(
                f"headers: {shown} is not a valid header name (letters, digits and "
                "!#$%&'*+-.^_`|~ only, no spaces, colons or line breaks)"
            )
        if not isinstance(text, str):
            raise ConfigurationError(
                f"headers: the value of {name!r} must be a string, got {type(text).__name__}"
            )
        found = _control_char(text, allow_tab=True)
        if found is not None:
            position, char = found
            raise ConfigurationError(
                f"headers: the value of {name!r} holds {_char_name(char)} at position "
                f"{position}; a header value is one line"
            )
        lowered = name.lower()
        if lowered == "authorization":
            continue
        if lowered in _OWNED_HEADERS:
            raise ConfigurationError(
                f"headers: {name!r} is set by the client for each request; remove it"
            )
        checked[name] = text
    return checked


def _limit(_: object, attribute: Attribute[float | None], value: object) -> None:
    if value is not None:
        check_seconds(value, f"Timeout.{attribute.name}", positive=True)


@frozen(kw_only=True)
class Timeout:
    """How long one try of a request may take, in seconds; ``None`` means no limit.

    A plain number given as ``timeout=`` is the same as ``Timeout(total=...)``.

    Args:
        connect: Opening a new connection (TCP, then TLS). Waiting for a free
            connection of a full pool does not count (``total`` does).
        read: The longest silence while the answer arrives: between being
            sent and the first byte, and between two pieces of the body.
        total: The whole try, from asking for a connection to the last byte
            of the answer.

    Raises:
        ConfigurationError: a value is neither None nor a finite number of
            seconds > 0, or all three are None (a try could then wait forever).
    """

    connect: float | None = field(default=None, validator=_limit)
    read: float | None = field(default=None, validator=_limit)
    total: float | None = field(default=None, validator=_limit)

    def __attrs_post_init__(self) -> None:
        if self.connect is None and self.read is None and self.total is None:
            raise ConfigurationError(
                "Timeout() needs at least one of connect=, read= or total=: without any, "
                "a request to a server that never answers would wait forever"
            )


def timeout(value: object) -> Timeout:
    """The per-try timeout: a finite number of seconds above zero, or a :class:`Timeout`."""
    if isinstance(value, Timeout):
        return value
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigurationError(
            "timeout must be a number of seconds > 0 or a Timeout(connect=, read=, total=), "
            f"got {type(value).__name__} {value!r}"
        )
    return Timeout(total=check_seconds(value, "timeout", positive=True))


def ssl(value: object) -> stdlib_ssl.SSLContext | bool:
    """How TLS is checked: True (the system's CAs), False (not at all), or an SSLContext."""
    if isinstance(value, bool | stdlib_ssl.SSLContext):
        return value
    raise ConfigurationError(
        "ssl must be True (verify with the system's CA certificates), False (do not verify: "
        "for a test server only) or an ssl.SSLContext, such as "
        f"ssl.create_default_context(cafile='ca.pem'); got {type(value).__name__}"
    )


def check_seconds(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a float when it is a finite number (> 0 or >= 0), else ConfigurationError."""
    bound = "> 0" if positive else ">= 0"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be a number of seconds {bound}, got {type(value).__name__} {value!r}"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise ConfigurationError(
            f"{name} must be a finite number of seconds {bound}, got {value!r}"
        )
    return seconds


def check_int(value: object, name: str, *, minimum: int) -> int:
    """``value`` when it is an int (not a bool) of at least ``minimum``, else ConfigurationError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be a whole number >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ConfigurationError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def instance(value: object, cls: type, name: str, expected: str) -> None:
    """Refuse ``value`` unless it is a ``cls`` (a runtime-checkable protocol counts)."""
    if not isinstance(value, cls):
        raise ConfigurationError(f"{name} must be {expected}, got {type(value).__name__}")


def check_bool(value: object, name: str) -> bool:
    """``value`` when it is True or False, else ConfigurationError."""
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be True or False, got {type(value).__name__} {value!r}"
        )
    return value


def _shown(url: str) -> str:
    """``url`` fit for a message: any user name and password masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return repr(url[:200])
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return repr(f"{scheme}{sep}{authority}{slash}{path}"[:200])


def _refuse(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"base_url {_shown(url)} {why}; pass the API's root URL such as "
        f"'https://api.example.com/v1' (or set {_paths.ENV_BASE_URL})"
    )


def base_url(value: object) -> str:
    """The base URL without its trailing slash; refused when requests would misroute.

    Refused: not ``http``/``https``; no host; a user name or password (they
    would be sent to nobody, and shown in reprs); a query or fragment (every
    path would be appended after it); a bad port; whitespace or control
    characters. A plain ``http://`` URL to a host other than loopback warns
    with :class:`InsecureURLWarning`: the token would cross the network
    unencrypted.
    """
    if not isinstance(value, str):
        raise ConfigurationError(
            f"base_url must be a string such as 'https://api.example.com', "
            f"got {type(value).__name__}"
        )
    url = value.strip()
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
        raise _refuse(url, "holds whitespace or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(url, f"cannot be parsed ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _refuse(url, "must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise _refuse(
            url,
            "holds a user name or password, which the API does not use (it takes the "
            "token); remove them",
        )
    if not parts.hostname:
        raise _refuse(url, "has no host")
    if "?" in url or "#" in url:
        raise _refuse(
            url, "holds a query (?) or fragment (#): every request path would land after it"
        )
    if port == 0:
        raise _refuse(url, "has port 0")
    if parts.scheme == "http" and not _is_loopback(parts):
        warnings.warn(
            f"base_url {url!r} is plain http:// to {parts.hostname}: the API token will "
            "cross the network unencrypted; use https:// (plain http is meant for the "
            "emulator on this machine)",
            InsecureURLWarning,
            stacklevel=3,
        )
    return url.rstrip("/")


def _is_loopback(parts: SplitResult) -> bool:
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES or host.endswith((".localhost", ".localhost.")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
