"""One HTTP request as the server hands it to routes, and one response.

Plain slotted classes, no I/O: a route takes a :class:`Request` and returns a
:class:`Response`; the connection (:mod:`engage.http1.connection`) frames it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote


class Request:
    """A complete HTTP/1.x request (head and whole body).

    Attributes:
        method: e.g. ``"GET"``.
        target: the request target as sent (path and query), bytes.
        version: ``"1.1"`` or ``"1.0"``.
        headers: ``(name, value)`` pairs in order, names lower-cased, bytes.
        client: the peer's ``(host, port)``.
        keep_alive: whether the connection may carry another request after this one.
        body: the body, ``b""`` when there is none.
    """

    __slots__ = ("method", "target", "version", "headers", "client", "keep_alive", "body",
                 "_path", "_query")

    def __init__(self, method: str, target: bytes, version: str,
                 headers: list[tuple[bytes, bytes]], client: tuple[str, int],
                 keep_alive: bool, body: bytes = b"") -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.client = client
        self.keep_alive = keep_alive
        self.body = body
        raw_path, _, query = target.partition(b"?")
        self._path = raw_path
        self._query = query

    @property
    def raw_path(self) -> bytes:
        """The path as sent, still percent-encoded."""
        return self._path

    @property
    def path(self) -> str:
        """The path, percent-decoded (UTF-8, invalid bytes replaced)."""
        return unquote(self._path.decode("latin-1"), errors="replace") \
            if b"%" in self._path else self._path.decode("latin-1")

    @property
    def query_string(self) -> bytes:
        return self._query

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, the first of each name."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(self._query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(name, value)
        return params

    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower-case); several are joined with ``", "``."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value if found is None else found + b", " + value
        return found

    def header_str(self, name: bytes) -> str | None:
        value = self.header(name)
        return None if value is None else value.decode("latin-1")

    @property
    def has_body(self) -> bool:
        """Whether the head announces a body (a non-zero length, or chunked)."""
        length = self.header(b"content-length")
        if length is not None:
            return length.strip() not in (b"0", b"")
        return self.header(b"transfer-encoding") is not None

    @property
    def media_type(self) -> str | None:
        """The ``Content-Type`` without parameters, lower-cased; None if absent."""
        value = self.header(b"content-type")
        if value is None:
            return None
        return value.split(b";", 1)[0].strip().lower().decode("latin-1")


class Response:
    """What a route answers: status, headers and the whole body.

    ``close`` asks the connection to close after sending it.
    """

    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, body: bytes = b"",
                 headers: list[tuple[str, str]] | None = None, *, close: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.close = close
