"""Framing responses: the status line, the headers every answer carries, problems.

Every response gets ``Content-Length`` (bodies are whole), ``Date``,
``X-Content-Type-Options: nosniff`` (no browser may guess a JSON error into
HTML) and, when the connection ends after it, ``Connection: close``.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from engage import metrics
from engage.http1.request import Response

PROBLEM_JSON: Final = "application/problem+json"
#: Headers the connection writes itself; a route's own copies are dropped.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "date",
                      "keep-alive"})
_COMMON = b"x-content-type-options: nosniff\r\n"


def _status_lines() -> dict[int, bytes]:
    lines = {}
    for status in HTTPStatus:
        lines[status.value] = f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")
    return lines


_STATUS_LINES: Final = _status_lines()
_date_second = 0
_date_line = b""


def _date_header() -> bytes:
    """``date: ...`` for the current second (formatted once a second)."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = f"date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
    return _date_line


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Status\r\n".encode("ascii")


def encode_response(response: Response, *, close: bool, keep_alive_header: bool = False,
                    head_only: bool = False) -> bytes:
    """The bytes of ``response`` on an HTTP/1.1 (or 1.0) connection.

    Args:
        close: the connection ends after this response (``Connection: close``).
        keep_alive_header: say ``Connection: keep-alive`` (HTTP/1.0 clients
            that asked for it need to hear it).
        head_only: an answer to ``HEAD``: the headers of a ``GET``, no body.
    """
    parts = [status_line(response.status), _date_header(), _COMMON]
    for name, value in response.headers:
        if name.lower() in _FRAMING:
            continue
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    body = response.body
    if response.status >= 200 and response.status not in (204, 304):
        parts.append(b"content-length: %d\r\n" % len(body))
    if close:
        parts.append(b"connection: close\r\n")
    elif keep_alive_header:
        parts.append(b"connection: keep-alive\r\n")
    parts.append(b"\r\n")
    if not head_only and response.status not in (204, 304):
        parts.append(body)
    return b"".join(parts)


def problem_body(status: int, detail: str, *, code: str, title: str | None = None,
                 **extra: object) -> bytes:
    """An RFC 9457 problem document, shaped like :mod:`engage.problems`
    (``title`` defaults to the status's reason phrase)."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    return json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail, "code": code, **extra}).encode("utf-8")


def problem(status: int, detail: str, *, code: str, headers: list[tuple[str, str]] | None = None,
            close: bool = False, title: str | None = None, **extra: object) -> Response:
    """A problem+json :class:`Response`, counted in ``engage_http_errors_total``."""
    metrics.HTTP_ERRORS.labels(str(status)).inc()
    return Response(status, problem_body(status, detail, code=code, title=title, **extra),
                    [("content-type", PROBLEM_JSON), *(headers or [])], close=close)
