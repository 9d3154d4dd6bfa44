"""One server-side WebSocket over a trio ``SocketStream``, built for fan-out.

:class:`WebSocketConnection` adds the handshake, inbound messages and the
closing handshake to :class:`~engage.ws.outbox.FrameWriter`, whose
``write_nowait`` is the fan-out hot path (see :mod:`engage.ws.outbox` for
how direct writes and the bounded outbox interplay).

Inbound frames are parsed by :class:`~engage.ws.reader.FrameReader`; the
upgrade was checked by :func:`~engage.ws.handshake.check_upgrade`. A close
with :data:`~engage.ws.frames.SLOW_CONSUMER_CLOSE` (or after the outbox
overflowed) discards the queued frames first, so the close frame is next in
line.
"""

from __future__ import annotations

import socket
from urllib.parse import parse_qsl, unquote

import trio

from engage.errors import WebSocketClosed
from engage.netio import recv_nowait, recv_wait
from engage.ws.frames import (ABNORMAL_CLOSURE, NORMAL_CLOSURE, POLICY_VIOLATION,
                              SLOW_CONSUMER_CLOSE, close_frame, ping_frame, pong_frame)
from engage.ws.handshake import (PROBLEM_JSON, RequestHead, Upgrade, accept_response,
                                 http_response)
from engage.ws.outbox import DEFAULT_MAX_OUTBOX_BYTES, FrameWriter
from engage.ws.reader import (DEFAULT_MAX_FRAGMENTS, DEFAULT_MESSAGE_TIMEOUT, Close,
                              FrameReader, Ping, ProtocolViolation)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
#: Seconds :meth:`WebSocketConnection.close` may take before it drops the socket.
CLOSE_TIMEOUT = 2.0
#: Most bytes read from the socket at once.
RECV_BYTES = 16 * 1024
#: Socket reads in a row that may skip the scheduler (see ``_read``).
DIRECT_READS_PER_YIELD = 8
#: Close codes that must never appear in a close frame (RFC 6455 7.4.1).
_LOCAL_ONLY_CODES = frozenset({1005, 1006, 1015})

CONNECTING = "connecting"
OPEN = "open"
CLOSING = "closing"
CLOSED = "closed"


class WebSocketConnection(FrameWriter):
    """A server-side WebSocket: handshake, fan-out writes, inbound messages.

    Made by :func:`engage.ws.frontdoor.serve_front` once a request head asks
    for an upgrade; the handler then calls :meth:`accept` or :meth:`reject`.

    Args:
        stream: the connection's trio stream.
        raw: the stdlib socket under ``stream`` (for non-blocking direct writes).
        head: the parsed request head.
        upgrade: the checked upgrade request (its key and subprotocols).
        trailing: bytes received after the head.
        nursery: where the writer task runs while the outbox is non-empty.
        shutting_down: set when the server starts a graceful shutdown.
        max_message_bytes: larger inbound messages close the socket with 1009.
        max_outbox_bytes: the outbox bound; beyond it the peer is a slow consumer.

    Attributes:
        headers: request headers, names lower-cased.
        subprotocols: the subprotocols the client offered, in its order.
        subprotocol: the one accepted, if any.
        last_seen: ``trio.current_time()`` of the last inbound bytes.
        slow_consumer: True once a write found the outbox full.
        shutting_down: a ``trio.Event`` set when the server is shutting down.
        close_code: the code of the close frame we sent, once sent.
    """

    __slots__ = ("_target", "headers", "subprotocols", "subprotocol", "_key",
                 "_trailing", "_reader", "shutting_down", "max_message_bytes", "_state",
                 "_receiving", "_recv_done", "_direct_reads", "last_seen",
                 "close_code", "close_reason", "_closed_exc", "max_fragments",
                 "message_timeout", "_message_started")

    def __init__(self, stream: trio.SocketStream, raw: socket.socket, head: RequestHead,
                 upgrade: Upgrade, trailing: bytes, *,
                 nursery: trio.Nursery, shutting_down: trio.Event | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
                 max_fragments: int = DEFAULT_MAX_FRAGMENTS,
                 message_timeout: float = DEFAULT_MESSAGE_TIMEOUT) -> None:
        super().__init__(stream, raw, nursery, max_outbox_bytes)
        self._target = upgrade.target
        self.headers = head.headers
        self.subprotocols = list(upgrade.subprotocols)
        self.subprotocol: str | None = None
        #: The client's Sec-WebSocket-Key until the handshake is answered.
        self._key: str | None = upgrade.key
        self._trailing = trailing
        self._reader: FrameReader | None = None
        self.shutting_down = shutting_down if shutting_down is not None else trio.Event()
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max_fragments
        self.message_timeout = message_timeout
        #: When the fragmented message being read began (None: none is).
        self._message_started: float | None = None
        self._state = CONNECTING
        self._receiving = False
        self._recv_done: trio.Event | None = None
        self._direct_reads = 0
        self.last_seen = trio.current_time()
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed_exc: WebSocketClosed | None = None

    # -- the request ---------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The request path, percent-decoded, without the query."""
        return unquote(self._target.partition("?")[0])

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the last value wins for repeated names)."""
        return dict(parse_qsl(self._target.partition("?")[2], keep_blank_values=True))

    @property
    def peer_address(self) -> str | None:
        """The TCP peer's IP address, or None if the socket no longer knows it."""
        try:
            return self._raw.getpeername()[0]
        except (OSError, IndexError, TypeError):
            return None

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header, if the client sent one."""
        return self.headers.get("origin")

    @property
    def state(self) -> str:
        """``"connecting"``, ``"open"``, ``"closing"`` or ``"closed"``."""
        return self._state

    # -- handshake -----------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None) -> None:
        """Complete the handshake (``101 Switching Protocols``).

        Args:
            subprotocol: one of :attr:`subprotocols`, or None for none.

        Raises:
            ValueError: ``subprotocol`` was not offered by the client.
            RuntimeError: the handshake was already answered.
            WebSocketClosed: the peer went away during the reply.
        """
        if self._state is not CONNECTING or self._key is None:
            raise RuntimeError(f"accept() on a {self._state} websocket")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered")
        reply = accept_response(self._key, subprotocol)
        self._key = None
        self._reader = FrameReader(self.max_message_bytes, self.max_fragments)
        self._reader.feed(self._trailing)
        self._trailing = b""
        self.subprotocol = subprotocol
        try:
            await self._stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._state = CLOSED
            self._mark_broken()
            raise WebSocketClosed(ABNORMAL_CLOSURE, "connection lost during handshake") from None
        self._state = OPEN
        self._writable = True

    async def reject(self, status: int, body: bytes = b"", *, content_type: str = PROBLEM_JSON,
                     headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse the upgrade with an HTTP response and end the connection."""
        if self._state is not CONNECTING:
            raise RuntimeError(f"reject() on a {self._state} websocket")
        self._key = None
        self._state = CLOSING
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self._stream.send_all(
                    http_response(status, body, content_type=content_type, headers=headers))
                await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self._abort()

    # -- writing (write_nowait is inherited: the hot path) --------------------------------

    async def send(self, frame: bytes) -> None:
        """Write a complete frame and wait until the kernel has it.

        For replies to one client: the outbox bound does not apply (the
        caller waits, so it cannot run away); the ordering rules do.

        Raises:
            WebSocketClosed: the connection is closing or lost.
        """
        if not self._writable or not await self._write_and_wait(frame):
            raise self._closed_error()

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the pong (like any inbound bytes) updates :attr:`last_seen`."""
        await self.send(ping_frame(payload))

    # -- reading -------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next complete message: ``str`` for text, ``bytes`` for binary.

        Pings are answered with pongs; pongs are absorbed. Every inbound
        byte updates :attr:`last_seen`.

        Raises:
            WebSocketClosed: the peer closed (we have replied with a close
                frame), a message exceeded ``max_message_bytes`` (we sent
                1009), the peer broke the protocol (we sent its error code),
                or the connection was lost (1006).
        """
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._reader is None:
            raise RuntimeError(f"receive() on a {self._state} websocket")
        if self._receiving:
            if self._state is not OPEN:  # close() is reading the peer's close frame
                await self._wait_receiver()
                raise self._closed_error()
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            while True:
                message = self._next_message()
                if message is not None:
                    return message
                data = await self._read()
                if not data:
                    self._on_lost()
                self.last_seen = trio.current_time()
                self._reader.feed(data)
        finally:
            self._stop_receiving()

    async def _read(self) -> bytes:
        """Bytes from the socket; ``b""`` when it ended or broke.

        A plain non-blocking ``recv``, and ``wait_readable`` only when the
        kernel has nothing: trio's ``receive_some`` adds a scheduling round
        trip to every read, which cost as much as parsing the small frame it
        carried. Every ``DIRECT_READS_PER_YIELD`` reads without a wait we
        checkpoint anyway, so a client that floods us cannot starve other
        tasks and cancellation is always seen.
        """
        if self._direct_reads >= DIRECT_READS_PER_YIELD:
            self._direct_reads = 0
            await trio.lowlevel.checkpoint()
        data = recv_nowait(self._raw, RECV_BYTES)
        if data is not None:
            self._direct_reads += 1
            return data
        self._direct_reads = 0
        return await recv_wait(self._raw, RECV_BYTES)

    def _stop_receiving(self) -> None:
        self._receiving = False
        if self._recv_done is not None:
            self._recv_done.set()
            self._recv_done = None

    async def _wait_receiver(self) -> None:
        if self._recv_done is None:
            self._recv_done = trio.Event()
        await self._recv_done.wait()

    def _next_message(self) -> str | bytes | None:
        """Process buffered frames; a finished message, or None for more data.

        A fragmented message must end within ``message_timeout`` of its first
        frame (1008): a peer trickling empty fragments keeps the socket busy
        and never reaches the size limit.
        """
        assert self._reader is not None
        while True:
            try:
                event = self._reader.next()
            except ProtocolViolation as violation:
                self._fail(violation.code, violation.reason)
            if event is None:
                self._check_message_time()
                return None
            if isinstance(event, (str, bytes)):
                if self._close_code_sent():
                    continue  # we are closing: late messages are dropped
                return event
            if isinstance(event, Ping):
                if self._writable and not self.write_nowait(pong_frame(event.payload)) \
                        and self.slow_consumer:
                    self._fail(SLOW_CONSUMER_CLOSE, "slow consumer: outbox overflowed")
            elif isinstance(event, Close):
                self._on_close(event)
            # a Pong only proves the peer is alive: last_seen is already updated

    def _check_message_time(self) -> None:
        assert self._reader is not None
        if not self._reader.fragmenting:
            self._message_started = None
        elif self._message_started is None:
            self._message_started = trio.current_time()
        elif trio.current_time() - self._message_started > self.message_timeout:
            self._fail(POLICY_VIOLATION, f"message not finished within "
                                         f"{self.message_timeout:g} s")

    def _on_close(self, event: Close) -> None:
        if self._close_code_sent():  # the peer's reply to our close
            self._closed_exc = WebSocketClosed(self.close_code or NORMAL_CLOSURE,
                                               self.close_reason)
        else:  # the peer closes: echo its code
            self._begin_close(event.code, event.reason)
            self._closed_exc = WebSocketClosed(event.code, event.reason)
        raise self._closed_exc

    def _on_lost(self) -> None:
        """The TCP connection ended without (or after) the closing handshake."""
        self._mark_broken()
        if self.close_code is not None:  # we closed it (close() from another task)
            self._closed_exc = WebSocketClosed(self.close_code, self.close_reason)
        else:
            self._closed_exc = WebSocketClosed(ABNORMAL_CLOSURE, "connection lost")
        raise self._closed_exc

    def _fail(self, code: int, reason: str) -> None:
        self._begin_close(code, reason)
        self._closed_exc = WebSocketClosed(code, reason)
        raise self._closed_exc

    # -- closing -------------------------------------------------------------------------

    def _close_code_sent(self) -> bool:
        return self.close_code is not None

    def _begin_close(self, code: int, reason: str) -> None:
        """Queue the close frame (once); no data frame may follow it."""
        if self.close_code is not None or self._state is not OPEN:
            return
        self._state = CLOSING
        self._writable = False
        self.close_code, self.close_reason = code, reason
        if code == SLOW_CONSUMER_CLOSE or self.slow_consumer:
            self._drop_queued()
        self._write(close_frame(None if code in _LOCAL_ONLY_CODES else code, reason))

    def _closed_error(self) -> WebSocketClosed:
        if self._closed_exc is not None:
            return self._closed_exc
        if self.close_code is not None:
            return WebSocketClosed(self.close_code, self.close_reason)
        return WebSocketClosed(ABNORMAL_CLOSURE, "connection lost")

    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "", *,
                    timeout: float = CLOSE_TIMEOUT) -> None:
        """Close: send the close frame after what is queued, await the peer's, end TCP.

        Safe to call more than once and after the peer closed. Takes at most
        ``timeout`` seconds (then the socket is simply dropped). A slow
        consumer's queued frames are discarded first so the close frame is
        next. Before the handshake was answered it just drops the socket.
        Not shielded: a caller that is being cancelled should shield it (the
        timeout bounds it).
        """
        if self._state is CLOSED:
            await trio.lowlevel.checkpoint()
            return
        if self._state is CONNECTING:
            self._key = None
            await self._abort()
            return
        with trio.move_on_after(timeout):
            self._begin_close(code, reason)
            await self._wait_flushed()
            if not self._broken:
                await self._await_peer_close()
        await self._abort()

    async def _await_peer_close(self) -> None:
        """Read (and drop) until the peer's close frame or EOF.

        Closing the TCP connection with unread input would reset it, and the
        peer could lose our close frame; RFC 6455 also has the server close
        TCP first, once both close frames have crossed. If another task is
        in :meth:`receive`, it does the reading and we wait for it.
        """
        while self._reader is not None and not self._reader.closed and not self._broken:
            if self._receiving:
                await self._wait_receiver()
                continue
            self._receiving = True
            try:
                data = await self._stream.receive_some(RECV_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            finally:
                self._stop_receiving()
            if not data:
                return
            self.last_seen = trio.current_time()
            self._reader.feed(data)
            try:
                while (event := self._reader.next()) is not None:
                    if isinstance(event, Close):
                        return
            except ProtocolViolation:
                return  # we are closing anyway

    async def _abort(self) -> None:
        self._state = CLOSED
        self._writable = False
        if self._closed_exc is None:
            self._closed_exc = WebSocketClosed(
                self.close_code if self.close_code is not None else ABNORMAL_CLOSURE,
                self.close_reason)
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    # -- introspection -------------------------------------------------------------------

    def statistics(self) -> dict[str, int | bool | str]:
        """Counters for this connection.

        Returns:
            ``state``; ``outbox_bytes`` and ``outbox_frames`` queued now;
            ``frames_direct`` and ``frames_queued`` since the start;
            ``writer_active`` and ``slow_consumer``.
        """
        return {"state": self._state, **self.outbox_statistics()}
