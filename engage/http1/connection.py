"""One HTTP/1.1 connection: read requests, answer each in order, close when due.

:meth:`HttpConnection.serve` runs in the connection's own task. Requests are read with
plain non-blocking ``recv`` calls (``wait_readable`` only when the kernel has
nothing) and parsed by :class:`~engage.http1.parser.RequestParser`; each
complete request goes to the app, and its answer is written before the next
request is looked at, so pipelined requests are answered in order.

When the connection ends (the server closes it, never the peer's say-so
alone):

* after a response marked ``Connection: close`` (a request that asked for
  it, an HTTP/1.0 request without keep-alive, a refused framing, 413);
* when a keep-alive connection has had no new request for
  ``keep_alive_timeout`` seconds;
* when a request's head or body takes longer than ``request_timeout``
  (answered 408 when something arrived, closed silently otherwise: a
  slowloris client is dropped, not held);
* when the server starts shutting down and the connection is between
  requests (a request in progress is finished first, answered with
  ``Connection: close``).

Closing sends FIN first and drains what the peer still sends for a moment,
so a client that pipelined past a refusal reads its answer instead of a reset.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from engage.netio import recv_nowait, recv_wait
from engage.http1.parser import RequestParser
from engage.http1.request import Request, Response
from engage.http1.response import encode_response, problem

log = logging.getLogger(__name__)

App = Callable[[Request], Awaitable[Response]]

#: Seconds an idle keep-alive connection is kept open between requests.
KEEP_ALIVE_TIMEOUT: Final = 5.0
#: Seconds a request has, from its first byte, to arrive whole (head and body).
REQUEST_TIMEOUT: Final = 10.0
#: Most bytes read from the socket at once.
RECV_BYTES: Final = 64 * 1024
#: Seconds the closing side keeps reading after its FIN, so the peer sees our last answer.
LINGER_TIMEOUT: Final = 1.0
#: Reads in a row that may skip the scheduler before a checkpoint.
DIRECT_READS_PER_YIELD: Final = 8
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpConnection:
    """State of one HTTP connection, kept by the front door while it lives.

    Attributes:
        idle: True while waiting for the next request (nothing of it read yet).
    """

    __slots__ = ("_stream", "_raw", "_app", "_parser", "_shutting_down", "keep_alive_timeout",
                 "request_timeout", "idle", "_wait_scope", "_direct_reads")

    def __init__(self, stream: trio.SocketStream, raw: socket.socket, app: App, *,
                 client: tuple[str, int], max_body_bytes: int, shutting_down: trio.Event,
                 keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self._stream = stream
        self._raw = raw
        self._app = app
        self._parser = RequestParser(client, max_body_bytes)
        self._shutting_down = shutting_down
        self.keep_alive_timeout = keep_alive_timeout
        self.request_timeout = request_timeout
        self.idle = True
        #: Bounds each wait for the peer's bytes: one scope for the connection,
        #: its deadline set while waiting and lifted after (entering a scope
        #: per read cost more than the read; docs/decisions.md §14).
        self._wait_scope = trio.CancelScope()
        self._direct_reads = 0

    def close_if_idle(self) -> None:
        """Shutdown: end this connection now if it is between requests."""
        if self.idle:
            self._wait_scope.cancel()

    async def serve(self) -> None:
        """Answer requests until the connection is due to close, then close it."""
        try:
            with self._wait_scope:
                while (request := await self._next_request()) is not None:
                    response = await self._answer(request)
                    parser = self._parser
                    close = (not request.keep_alive or response.close or parser.upgraded
                             or self._shutting_down.is_set())
                    data = encode_response(response, close=close,
                                           keep_alive_header=request.version == "1.0",
                                           head_only=request.method == "HEAD")
                    if not await self._send(data) or close:
                        break
            # A wait ran out (or shutdown ended an idle one): a request that
            # had begun is told why; an idle connection just closes.
            if self._wait_scope.cancelled_caught and not self.idle and self._parser.in_progress:
                await self._send(encode_response(problem(
                    408, "the request did not arrive in time", code="request_timeout"),
                    close=True))
        finally:
            with trio.CancelScope(shield=True):
                await self._close()

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._app(request)
        except Exception:
            log.exception("http request %s %r failed", request.method, request.target[:200])
            return problem(500, "the server failed to handle this request; it has been logged",
                           code="internal")

    async def _next_request(self) -> Request | None:
        """The next complete request; None when the connection should close.

        A framing error is answered here (400, 413, 431, 505...) once the
        requests before it are answered.
        """
        parser = self._parser
        continued = False
        deadline = None  # from the request's first byte: a trickle does not extend it
        while not parser.requests:
            if parser.error is not None:
                error = parser.error
                await self._send(encode_response(
                    problem(error.status, error.detail, code=error.code), close=True))
                return None
            if parser.upgraded:
                return None
            if parser.expects_continue and not continued:
                continued = True
                if not await self._send(_CONTINUE):
                    return None
            if parser.in_progress and deadline is None:
                deadline = trio.current_time() + self.request_timeout
            data = await self._receive(deadline)
            if not data:
                return None
            parser.feed(data)
        return parser.requests.popleft()

    async def _receive(self, deadline: float | None) -> bytes:
        """Bytes from the peer (``b""`` at its end).

        Between requests (``deadline`` None) the wait is
        ``keep_alive_timeout`` and shutdown ends it; inside a request it ends
        at ``deadline``. Either way the connection's wait scope is cancelled,
        which ends :meth:`serve`'s loop.
        """
        in_progress = deadline is not None
        if self._direct_reads >= DIRECT_READS_PER_YIELD:
            self._direct_reads = 0
            await trio.lowlevel.checkpoint()
        data = recv_nowait(self._raw, RECV_BYTES)
        if data is not None:
            self._direct_reads += 1
            self.idle = False
            return data
        self._direct_reads = 0
        self.idle = not in_progress
        if self.idle and self._shutting_down.is_set():
            return b""
        if deadline is None:
            deadline = trio.current_time() + self.keep_alive_timeout
        scope = self._wait_scope
        scope.deadline = deadline
        data = await recv_wait(self._raw, RECV_BYTES)  # Cancelled here ends serve's loop
        if scope.cancel_called:
            # The deadline passed (or shutdown came) as the bytes did: the scope
            # stays cancelled, so the request must not run inside it. End here.
            await trio.lowlevel.checkpoint()
        scope.deadline = math.inf
        self.idle = False
        return data

    async def _send(self, data: bytes) -> bool:
        """Write ``data`` whole; False if the peer is gone."""
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False
        if sent == len(data):
            return True
        try:
            with trio.move_on_after(self.request_timeout) as scope:
                await self._stream.send_all(memoryview(data)[sent:])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return not scope.cancelled_caught

    async def _close(self) -> None:
        """FIN, then read and discard for up to ``LINGER_TIMEOUT``, then close.

        Closing a socket with unread bytes makes the kernel send a reset,
        which can destroy the last answer before the peer reads it.
        """
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        else:
            with trio.move_on_after(LINGER_TIMEOUT):
                while await recv_wait(self._raw, RECV_BYTES):
                    pass
        await self._stream.aclose()
