"""HTTP/1.1 request framing: bytes in, complete requests out (llhttp via httptools).

:class:`RequestParser` wraps ``httptools.HttpRequestParser`` (the C parser
uvicorn uses; h11, hypercorn's, is pure Python and cost about 13 % of the
CPU per request). It enforces what the parser alone does not: the size of a
request head (431), the size of a body (413, judged from ``Content-Length``
before any of the body is read), HTTP/1.0 and 1.1 only (505). llhttp itself
refuses conflicting framing (``Content-Length`` with ``Transfer-Encoding``,
duplicate lengths, a ``Transfer-Encoding`` that does not end in
``chunked``) and malformed heads: those are 400s after which the connection
is closed (RFC 9112 6.3), so a request smuggled behind one is never read.

Pipelined requests are queued in arrival order; a parse error after some
complete requests is held back until those are answered.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import httptools

from engage.http1.request import Request

#: Largest request head (request line and headers) accepted (431 beyond).
MAX_HEAD_BYTES: Final = 16 * 1024
#: Most header lines in one request (431 beyond).
MAX_HEADERS: Final = 100


class ParseError(Exception):
    """The bytes are not an acceptable request: answer ``status`` and close."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class _Abort(Exception):
    """Raised inside a parser callback to stop it with a :class:`ParseError`."""


class RequestParser:
    """Turns the bytes of one connection into :class:`Request` objects.

    Args:
        client: the peer's ``(host, port)``.
        max_body_bytes: a larger body is refused with 413.

    Attributes:
        requests: complete requests not yet taken, oldest first.
        error: the :class:`ParseError` met after ``requests``, if any; no
            request follows it.
        upgraded: the last request asked to switch protocols; nothing after
            it is parsed (the connection closes after its answer).
        expects_continue: the request being read sent ``Expect: 100-continue``
            and its body has not started; the server should say ``100``.
    """

    __slots__ = ("client", "max_body_bytes", "_parser", "requests", "error", "upgraded",
                 "_url", "_headers", "_head_bytes", "_body", "_in_head", "_current",
                 "_body_size", "expects_continue", "in_progress", "_completed", "_head_fed")

    def __init__(self, client: tuple[str, int], max_body_bytes: int) -> None:
        self.client = client
        self.max_body_bytes = max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self.requests: deque[Request] = deque()
        self.error: ParseError | None = None
        self.upgraded = False
        self.expects_continue = False
        #: True between the first byte of a request and its end.
        self.in_progress = False
        self._completed = 0  # requests completed so far
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._in_head = True
        self._current: Request | None = None
        self._head_fed = 0  # bytes fed whole into this request's head

    def feed(self, data: bytes) -> None:
        """Parse ``data``; complete requests go to :attr:`requests`.

        A parse error is kept in :attr:`error` (raised by nobody): the
        connection answers the requests before it, then the error, then closes.
        """
        if self.error is not None or self.upgraded:
            return
        # httptools reports a header only once its line ends, so a line that never
        # ends would grow unseen: count what is fed whole into an unfinished head.
        inside_head = self.in_progress and self._in_head
        completed = self._completed
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self.error = cause.args[0] if isinstance(cause, _Abort) else ParseError(
                400, "bad_request", "malformed request")
        except httptools.HttpParserError as exc:
            if self.requests and not self.requests[-1].keep_alive and not self.in_progress:
                return  # bytes after a request that closes the connection: ignored
            self.error = ParseError(400, "bad_request", f"malformed request: {exc}")
            return
        if inside_head and self.in_progress and self._in_head and completed == self._completed:
            self._head_fed += len(data)
            if self._head_fed > MAX_HEAD_BYTES:
                self.error = ParseError(431, "head_too_large", f"the request head is larger "
                                                               f"than {MAX_HEAD_BYTES} bytes")

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_progress = True
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # chunked trailers: not used by any route
        self._headers.append((name.lower(), value))
        self._grow_head(len(name) + len(value) + 4)
        if len(self._headers) > MAX_HEADERS:
            raise _Abort(ParseError(431, "head_too_large",
                                    f"more than {MAX_HEADERS} header lines"))

    def _grow_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Abort(ParseError(431, "head_too_large",
                                    f"the request head is larger than {MAX_HEAD_BYTES} bytes"))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Abort(ParseError(505, "http_version", "this server speaks HTTP/1.0 and 1.1"))
        request = Request(parser.get_method().decode("ascii"), self._url, version,
                          self._headers, self.client, parser.should_keep_alive())
        length = request.header(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _Abort(ParseError(413, "too_large",
                                    f"the body is larger than {self.max_body_bytes} bytes"))
        self._current = request
        expect = request.header(b"expect")
        if expect is not None and request.has_body:
            if expect.lower() != b"100-continue":
                raise _Abort(ParseError(417, "expectation_failed",
                                        "the only expectation supported is 100-continue"))
            self.expects_continue = True

    def on_body(self, body: bytes) -> None:
        self.expects_continue = False
        self._body_size += len(body)
        if self._body_size > self.max_body_bytes:
            raise _Abort(ParseError(413, "too_large",
                                    f"the body is larger than {self.max_body_bytes} bytes"))
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        request.body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        self.requests.append(request)
        self._completed += 1
        self.expects_continue = False
        self.in_progress = False
        self._reset()
