"""The HTTP side of a WebSocket: parsing the request head, plain HTTP replies.

The front door reads the request head itself (it has to, to decide whether a
connection is a WebSocket upgrade or ordinary HTTP for engage.http1). wsproto
then validates the upgrade and builds the ``101`` reply; the refusals
(``400``, ``403``, ``426``, ``431``...) are written here, all as
``application/problem+json`` with ``Connection: close``.
"""

from __future__ import annotations

from dataclasses import dataclass

from engage.http1.request import Response
from engage.http1.response import PROBLEM_JSON, encode_response, problem_body

#: Largest request head accepted on the WebSocket path (431 beyond).
MAX_HEAD_BYTES = 16 * 1024
HEAD_END = b"\r\n\r\n"


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
