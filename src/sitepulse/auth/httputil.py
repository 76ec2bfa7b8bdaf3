"""Small HTTP pieces the auth middleware and routes share: headers, cookies, bodies, URLs."""

from __future__ import annotations

import email.message
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.types import Message, Receive, Scope

# Hosts on which browsers accept Secure cookies over plain http.
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (name in lower case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie's value from the Cookie headers; malformed pairs are skipped, not fatal."""
    for key, value in scope["headers"]:
        if key != b"cookie":
            continue
        for pair in bytes(value).decode("latin-1").split(";"):
            found, sep, content = pair.strip().partition("=")
            if sep and found == name:
                return content.strip().strip('"')
    return None


def host_of(scope: Scope) -> str:
    """The Host the client asked for, lower case, with its port."""
    value = header(scope, b"host")
    if value is None and scope.get("server"):
        host, port = scope["server"]
        value = f"{host}:{port}"
    return (value or "").strip().lower()


def hostname(host: str) -> str:
    """A Host value without its port ("[::1]:8000" → "[::1]")."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_https(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


def wants_secure_cookie(scope: Scope, forced: bool | None) -> bool:
    """Secure when forced, else when the request came over https or to a loopback name."""
    if forced is not None:
        return forced
    return is_https(scope) or hostname(host_of(scope)) in LOOPBACK_HOSTS


def set_cookie_header(
    name: str,
    value: str,
    *,
    max_age_secs: int,
    secure: bool,
    path: str = "/",
    same_site: str = "Lax",
) -> tuple[bytes, bytes]:
    """A Set-Cookie header, always HttpOnly; max_age_secs=0 deletes the cookie."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age_secs}", "HttpOnly"]
    parts.append(f"SameSite={same_site}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def _default_port(scheme: str) -> str:
    return "443" if scheme == "https" else "80"


def same_origin(origin: str, scope: Scope) -> bool:
    """Whether an Origin header names this server.

    Hosts (with ports) must be equal. The scheme must match when the request came over
    https; over http an https Origin is also accepted, because a TLS proxy in front may
    not tell us the original scheme, and the host comparison already stops other sites.
    """
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    request_scheme = "https" if is_https(scope) else "http"
    if request_scheme == "https" and parts.scheme != "https":
        return False
    own = host_of(scope)
    theirs = parts.netloc.lower()
    if ":" not in theirs.rsplit("]", 1)[-1]:
        theirs += ":" + _default_port(parts.scheme)
    if ":" not in own.rsplit("]", 1)[-1]:
        # A Host without a port means the default one of the scheme the browser used.
        own += ":" + _default_port(parts.scheme)
    return theirs == own


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` if it is a path on this server, else `default`: no open redirects.

    Refused: anything not starting with one "/", "//host" and "/\\host" (which browsers
    read as another host), schemes, and control characters (browsers drop tabs and
    newlines, turning "/\\t/evil" into "//evil").
    """
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    # A Location header is ASCII: quote what is not, keep what is already quoted.
    return quote(value, safe="/?&=%:@!$'()*+,;~-._#")


def media_type(scope: Scope) -> str:
    value = header(scope, b"content-type") or ""
    return value.split(";", 1)[0].strip().lower()


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes without reading it all."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields the already-read body, then defers to the real one."""
    pending = True

    async def receive_again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a urlencoded or multipart form (first value of each; files skipped).

    Here because the app has no python-multipart: forms are small, so parsing in memory
    with the standard library is enough.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return _first(pairs)
    if kind == "multipart/form-data":
        return _first(_multipart(body, content_type))
    return {}


def _first(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    parsed = email.message.Message()
    parsed["content-type"] = content_type
    boundary = parsed.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return []
    fields = []
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = email.message.Message()
        for line in head.decode("latin-1").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                disposition[key.strip()] = value.strip()
        name = disposition.get_param("name", header="content-disposition")
        if not isinstance(name, str) or disposition.get_param(
            "filename", header="content-disposition"
        ):
            continue
        fields.append((name, content.removesuffix(b"\r\n").decode("utf-8", "replace")))
    return fields


def header_map(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Response headers in ASGI form."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
