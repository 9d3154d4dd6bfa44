"""One listening port for HTTP (hypercorn) and WebSockets (our transport).

:func:`serve_front` accepts TCP connections itself and peeks (``MSG_PEEK``)
at the first bytes of each. ``GET <ws_path>`` followed by a space or ``?``
is ours: the request head is read, and a valid upgrade becomes a
:class:`~engage.ws.transport.WebSocketConnection` handed to
``ws_handler(conn)``, which accepts or rejects it. A plain ``GET`` on that
path gets ``426``. Everything else goes, untouched (peeking consumes
nothing), to hypercorn's own per-connection ``TCPServer``, so HTTP keeps all
of hypercorn's behaviour: keep-alive, timeouts, h2c, lifespan state.

Shutdown (``shutdown_trigger`` returns, or hypercorn's ``max_requests``):

1. listening sockets close; hypercorn's idle keep-alive connections close
   (``context.terminated``), in-flight HTTP requests get
   ``config.graceful_timeout`` seconds;
2. ``conn.shutting_down`` (one ``trio.Event`` shared by all connections) is
   set, so handlers may close their own sockets with 1001;
3. after ``ws_shutdown_grace`` seconds the remaining ws handlers are
   cancelled and the front door closes their sockets with 1001 (each close
   shielded and bounded by ``CLOSE_TIMEOUT``);
4. the ASGI lifespan shutdown runs.

Hypercorn internals used (checked against hypercorn 0.18.0; re-check on
upgrade): ``hypercorn.trio.tcp_server.TCPServer(app, config, context, state,
stream)``, ``hypercorn.trio.lifespan.Lifespan``,
``hypercorn.trio.worker_context.WorkerContext``,
``hypercorn.trio.statsd.StatsdLogger``, ``hypercorn.utils.wrap_app`` and
``repr_socket_addr``. This function mirrors ``hypercorn.trio.run.worker_serve``.
TLS and QUIC binds are not supported here (terminate TLS in front).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from random import randint

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request
from wsproto.utilities import RemoteProtocolError

from engage.errors import ConfigError, WebSocketClosed
from engage.ws.frames import GOING_AWAY, INTERNAL_ERROR, NORMAL_CLOSURE
from engage.ws.handshake import (HEAD_END, MAX_HEAD_BYTES, parse_head, problem_body,
                                 problem_response)
from engage.ws.transport import (DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_OUTBOX_BYTES,
                                 WebSocketConnection)

log = logging.getLogger(__name__)

WsHandler = Callable[[WebSocketConnection], Awaitable[None]]

#: Seconds a new connection has to send its first bytes, and a ws request its head.
HEAD_TIMEOUT = 10.0
#: Seconds between peeks while the first bytes trickle in.
PEEK_RETRY = 0.005
#: Seconds ws handlers get after ``shutting_down`` is set before they are cancelled.
WS_SHUTDOWN_GRACE = 1.0
#: Seconds between checks for ws handlers still running during shutdown.
SHUTDOWN_POLL = 0.05
#: Seconds to pause accepting when out of file descriptors or memory.
ACCEPT_BACKOFF = 0.1
#: Connections accepted per wake-up before yielding to other tasks.
ACCEPT_BATCH = 64
_ACCEPT_CAPACITY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_IGNORED = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EAGAIN}


async def serve_front(app, config: Config, ws_handler: WsHandler, *, ws_path: str = "/v1/ws",
                      shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                      max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                      max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
                      ws_shutdown_grace: float = WS_SHUTDOWN_GRACE,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` over HTTP and ``ws_handler`` over WebSocket on ``config.bind``.

    Args:
        app: the ASGI app (e.g. a ``QuartTrio``), run with its lifespan.
        config: hypercorn's config: ``bind``, ``backlog``, timeouts, logs.
        ws_handler: ``await ws_handler(conn)`` for each upgrade request on
            ``ws_path``; it must ``accept`` or ``reject``. When it returns the
            socket is closed (1000; 1011 if it raised; 1001 if cancelled).
        ws_path: the one path served as WebSocket.
        shutdown_trigger: returning from it starts a graceful shutdown.
        max_message_bytes: per-connection inbound message limit (1009 beyond).
        max_outbox_bytes: per-connection outbox bound (slow consumer beyond).
        ws_shutdown_grace: seconds between ``conn.shutting_down`` and cancellation.
        task_status: started with the bound URLs, like ``hypercorn.trio.serve``.

    Raises:
        ConfigError: TLS or QUIC is configured.
    """
    if config.ssl_enabled or config.quic_bind:
        raise ConfigError("serve_front serves plain TCP only; terminate TLS in front of it")
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: dict = {}
    app_wrapper = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan = Lifespan(app_wrapper, config, lifespan_state)
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + randint(0, config.max_requests_jitter)
    context = WorkerContext(max_requests)
    door = _FrontDoor(app_wrapper, config, context, lifespan_state, ws_handler, ws_path,
                      max_message_bytes, max_outbox_bytes)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets().insecure_sockets
            binds = []
            for sock in sockets:
                sock.listen(config.backlog)
                sock.setblocking(False)
                bind = f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
                binds.append(bind)
                await config.log.info(f"Running on {bind} (CTRL + C to quit)")
            async with trio.open_nursery() as ws_nursery:
                door.ws_nursery = ws_nursery
                try:
                    async with trio.open_nursery() as accept_nursery:
                        for sock in sockets:
                            accept_nursery.start_soon(door.accept_loop, sock, server_nursery)
                        accept_nursery.start_soon(_cancel_when, context.terminate.wait,
                                                  accept_nursery.cancel_scope)
                        if shutdown_trigger is not None:
                            accept_nursery.start_soon(_cancel_when, shutdown_trigger,
                                                      accept_nursery.cancel_scope)
                        task_status.started(binds)
                finally:
                    for sock in sockets:
                        sock.close()
                    await context.terminated.set()
                    server_nursery.cancel_scope.deadline = (trio.current_time()
                                                            + config.graceful_timeout)
                    door.shutting_down.set()
                    server_nursery.start_soon(_cancel_ws_after, ws_nursery, ws_shutdown_grace)
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _cancel_when(trigger: Callable[[], Awaitable[object]], scope: trio.CancelScope) -> None:
    await trigger()
    scope.cancel()


async def _cancel_ws_after(ws_nursery: trio.Nursery, grace: float) -> None:
    """Give ws handlers ``grace`` seconds to finish, then cancel the rest."""
    with trio.move_on_after(grace):
        while ws_nursery.child_tasks:
            await trio.sleep(min(grace, SHUTDOWN_POLL))
    ws_nursery.cancel_scope.cancel()


class _FrontDoor:
    """Per-server state: what each accepted connection is dispatched with."""

    def __init__(self, app_wrapper, config: Config, context: WorkerContext, lifespan_state: dict,
                 ws_handler: WsHandler, ws_path: str, max_message_bytes: int,
                 max_outbox_bytes: int) -> None:
        self.app = app_wrapper
        self.config = config
        self.context = context
        self.lifespan_state = lifespan_state
        self.ws_handler = ws_handler
        self.ws_prefix = b"GET " + ws_path.encode("ascii")
        self.max_message_bytes = max_message_bytes
        self.max_outbox_bytes = max_outbox_bytes
        self.shutting_down = trio.Event()
        #: Runs every ws handler and every outbox writer task.
        self.ws_nursery: trio.Nursery | None = None

    async def accept_loop(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, _addr = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _ACCEPT_CAPACITY:
                        log.error("accept failed (%s); pausing %.1fs", exc, ACCEPT_BACKOFF)
                        await trio.sleep(ACCEPT_BACKOFF)
                        break
                    if exc.errno in _ACCEPT_IGNORED:
                        continue
                    raise
                nursery.start_soon(self.dispatch, sock)
            await trio.lowlevel.checkpoint()

    async def dispatch(self, raw: socket.socket) -> None:
        """Route one accepted connection to the WebSocket path or to hypercorn.

        A connection is routed once, on its first request: a keep-alive HTTP
        connection stays with hypercorn even if it later asks for ``ws_path``
        (browsers and WebSocket clients open a fresh connection to upgrade).
        """
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        try:
            try:
                kind = await self._peek_kind(raw)
            except OSError:
                kind = None
            if kind == "ws":
                conn = await self._upgrade(stream, raw)
                if conn is not None:  # the handler outlives this task: one task per socket
                    assert self.ws_nursery is not None
                    self.ws_nursery.start_soon(self._run_handler, conn)
                    return
            elif kind == "http":
                state = ConnectionState(self.lifespan_state.copy())
                await TCPServer(self.app, self.config, self.context, state, stream)
        except Exception:  # one bad connection must not take the server down
            log.exception("connection dispatch failed")
        with trio.CancelScope(shield=True):
            await stream.aclose()

    async def _peek_kind(self, raw: socket.socket) -> str | None:
        """``"ws"``, ``"http"``, or None if the peer sent nothing in time."""
        prefix = self.ws_prefix
        need = len(prefix) + 1
        with trio.move_on_after(HEAD_TIMEOUT):
            while True:
                await trio.lowlevel.wait_readable(raw)
                try:
                    data = raw.recv(need, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
                if not data:
                    return None
                if not prefix.startswith(data[:len(prefix)]):
                    return "http"
                if len(data) >= need:
                    return "ws" if data[len(prefix)] in b" ?" else "http"
                await trio.sleep(PEEK_RETRY)
        return None

    async def _read_head(self, stream: trio.SocketStream) -> tuple[bytes, bytes] | None:
        """The request head and any bytes after it; None if cut off or too slow."""
        buffer = bytearray()
        with trio.move_on_after(HEAD_TIMEOUT):
            while (end := buffer.find(HEAD_END, max(0, len(buffer) - 4096))) < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    await _send_and_close(stream, problem_response(
                        431, "the request head is too large", code="head_too_large"))
                    return None
                try:
                    chunk = await stream.receive_some(MAX_HEAD_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
                if not chunk:
                    return None
                buffer += chunk
            return bytes(buffer[:end]), bytes(buffer[end + len(HEAD_END):])
        return None

    async def _upgrade(self, stream: trio.SocketStream,
                       raw: socket.socket) -> WebSocketConnection | None:
        """Read and check the upgrade request; a connection, or None if refused."""
        got = await self._read_head(stream)
        if got is None:
            await stream.aclose()
            return None
        head_bytes, trailing = got
        try:
            head = parse_head(head_bytes)
        except ValueError as exc:
            await _send_and_close(stream, problem_response(400, str(exc), code="bad_request"))
            return None
        if not head.is_websocket_upgrade:
            await _send_and_close(stream, problem_response(
                426, "this path serves WebSocket only; send an Upgrade: websocket request",
                code="upgrade_required",
                headers=(("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"))))
            return None
        handshake = WSConnection(ConnectionType.SERVER)
        try:
            handshake.receive_data(head_bytes + HEAD_END)
            request = next(iter(handshake.events()), None)
        except RemoteProtocolError as exc:
            request = exc
        if not isinstance(request, Request):
            detail = str(request) if request is not None else "incomplete upgrade request"
            await _send_and_close(stream, problem_response(400, detail, code="bad_upgrade"))
            return None
        assert self.ws_nursery is not None
        return WebSocketConnection(
            stream, raw, head, handshake, request, trailing, nursery=self.ws_nursery,
            shutting_down=self.shutting_down, max_message_bytes=self.max_message_bytes,
            max_outbox_bytes=self.max_outbox_bytes)

    async def _run_handler(self, conn: WebSocketConnection) -> None:
        """Run ``ws_handler(conn)``, then close the socket whatever happened."""
        code, reason = GOING_AWAY, "server shutting down"  # if cancelled
        try:
            await self.ws_handler(conn)
            code, reason = NORMAL_CLOSURE, ""
        except WebSocketClosed:
            code, reason = NORMAL_CLOSURE, ""
        except Exception:
            log.exception("websocket handler failed")
            code, reason = INTERNAL_ERROR, "internal error"
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self._finish(conn, code, reason)
                except Exception:
                    log.exception("closing a websocket failed")

    async def _finish(self, conn: WebSocketConnection, code: int, reason: str) -> None:
        if conn.state != "connecting":
            await conn.close(code, reason)
        elif code == GOING_AWAY:
            await conn.reject(503, problem_body(503, "the server is shutting down",
                                                code="unavailable"))
        else:
            await conn.reject(500, problem_body(
                500, "the websocket was neither accepted nor rejected", code="internal"))


async def _send_and_close(stream: trio.SocketStream, response: bytes) -> None:
    """Write a final HTTP response and close, within ``HEAD_TIMEOUT``."""
    with trio.move_on_after(HEAD_TIMEOUT):
        try:
            await stream.send_all(response)
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    with trio.CancelScope(shield=True):
        await stream.aclose()
