"""The HTTP side of a WebSocket: the request head, the upgrade, plain replies.

The front door reads the request head itself (it has to, to decide whether a
connection is a WebSocket upgrade or ordinary HTTP for engage.http1), checks
the upgrade as RFC 6455 section 4.2.1 asks (:func:`check_upgrade`) and, once
the handler accepts, writes the ``101`` (:func:`accept_response`). This
was wsproto's handshake until a join storm's profile put a quarter of a
join in it, most of it h11 parsing the head a second time (docs/decisions.md
§16). The refusals (``400``, ``403``, ``426``, ``431``...) are written here,
all as ``application/problem+json`` with ``Connection: close``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from engage.http1.request import Response
from engage.http1.response import PROBLEM_JSON, encode_response, problem_body

#: Largest request head accepted on the WebSocket path (431 beyond).
MAX_HEAD_BYTES = 16 * 1024
HEAD_END = b"\r\n\r\n"
#: RFC 6455's constant, hashed with the client's key into Sec-WebSocket-Accept.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed HTTP/1.x request head.

    Attributes:
        method: e.g. ``"GET"``.
        target: the request target as sent, path and query.
        headers: header names lower-cased; repeated headers joined with ``", "``.
    """

    method: str
    target: str
    headers: dict[str, str]

    def header_tokens(self, name: str) -> set[str]:
        """The comma-separated, lower-cased tokens of header ``name``."""
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}

    @property
    def is_websocket_upgrade(self) -> bool:
        """True if the head asks to upgrade this connection to a WebSocket."""
        return ("websocket" in self.header_tokens("upgrade")
                and "upgrade" in self.header_tokens("connection"))


def parse_head(head: bytes) -> RequestHead:
    """Parse a request head (everything before the blank line).

    Raises:
        ValueError: the head is not a well-formed HTTP/1.x request.
    """
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise ValueError("undecodable request head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:40]!r}")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return RequestHead(parts[0], parts[1], headers)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A valid WebSocket upgrade request: what the ``101`` needs."""

    target: str
    key: str
    subprotocols: tuple[str, ...]


class UpgradeRefused(ValueError):
    """The head asks for a WebSocket but not as RFC 6455 says.

    Attributes:
        status: 400, or 426 for an unsupported version.
        headers: headers the refusal must carry.
    """

    def __init__(self, detail: str, *, status: int = 400,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = headers


def check_upgrade(head: RequestHead) -> Upgrade:
    """Check an upgrade request (``head.is_websocket_upgrade`` is true).

    Raises:
        UpgradeRefused: not GET, no ``Host``, a version other than 13 (426,
            with ``Sec-WebSocket-Version: 13``), or a key that is not 16
            bytes in base64.
    """
    if head.method != "GET":
        raise UpgradeRefused(f"a WebSocket upgrade must be GET, not {head.method}")
    headers = head.headers
    if "host" not in headers:
        raise UpgradeRefused("missing header, 'Host'")
    version = headers.get("sec-websocket-version")
    if version != "13":
        raise UpgradeRefused(
            "missing header, 'Sec-WebSocket-Version'" if version is None
            else f"unsupported Sec-WebSocket-Version {version!r}; this server speaks 13",
            status=426, headers=(("Sec-WebSocket-Version", "13"),))
    key = headers.get("sec-websocket-key")
    if key is None:
        raise UpgradeRefused("missing header, 'Sec-WebSocket-Key'")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        raise UpgradeRefused("Sec-WebSocket-Key must be 16 bytes in base64") from None
    offered = headers.get("sec-websocket-protocol", "")
    subprotocols = tuple(p.strip() for p in offered.split(",") if p.strip())
    return Upgrade(head.target, key, subprotocols)


def accept_response(key: str, subprotocol: str | None) -> bytes:
    """The ``101 Switching Protocols`` reply to an upgrade with ``key``."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest())
    protocol = b"" if subprotocol is None else b"Sec-WebSocket-Protocol: %s\r\n" % (
        subprotocol.encode())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n" % (accept, protocol))


def http_response(status: int, body: bytes = b"", *, content_type: str = PROBLEM_JSON,
                  headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete ``HTTP/1.1`` response that ends the connection (framed like
    every other answer: :func:`engage.http1.response.encode_response`)."""
    return encode_response(Response(status, body, [("content-type", content_type), *headers]),
                           close=True)


def problem_response(status: int, detail: str, *, code: str,
                     headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A problem+json response that ends the connection."""
    return http_response(status, problem_body(status, detail, code=code), headers=headers)
