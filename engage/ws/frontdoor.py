"""One listening port for HTTP and WebSockets, both served by our own code.

:func:`serve_front` accepts TCP connections itself and peeks (``MSG_PEEK``)
at the first bytes of each. ``GET <ws_path>`` followed by a space or ``?``
is a WebSocket: the request head is read, and a valid upgrade becomes a
:class:`~engage.ws.transport.WebSocketConnection` handed to
``ws_handler(conn)``, which accepts or rejects it. A plain ``GET`` on that
path gets ``426``. Everything else is HTTP/1.1, served by
:class:`~engage.http1.connection.HttpConnection`: the fast lane (``routes``)
first, then the ASGI app (quart-trio) through
:class:`~engage.http1.asgi.AsgiBridge` (docs/decisions.md §12 says why
hypercorn no longer serves HTTP).

Every accepted socket passes :class:`~engage.http1.admission.Admission`
first: a process cap below the descriptor limit and a per-address cap.
Accept errors are logged once when they start and once when they end.

Shutdown (``shutdown_trigger`` returns):

1. listening sockets close; HTTP connections between requests close at once,
   in-flight requests get ``graceful_timeout`` seconds and are answered with
   ``Connection: close``;
2. ``conn.shutting_down`` (one ``trio.Event`` shared by all connections) is
   set, so ws handlers may close their own sockets with 1001;
3. after ``ws_shutdown_grace`` seconds the remaining ws handlers are
   cancelled and the front door closes their sockets with 1001 (each close
   shielded and bounded by ``CLOSE_TIMEOUT``);
4. the ASGI lifespan shutdown runs.

TLS is not served here (terminate it in front: deploy/nginx).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

import trio

from engage.errors import WebSocketClosed
from engage.http1.admission import Admission, refuse_now
from engage.http1.asgi import AsgiApp, AsgiBridge, run_lifespan
from engage.http1.connection import KEEP_ALIVE_TIMEOUT, REQUEST_TIMEOUT, HttpConnection
from engage.http1.request import Request, Response
from engage.settings import Settings
from engage.ws.frames import GOING_AWAY, INTERNAL_ERROR, NORMAL_CLOSURE
from engage.ws.handshake import (HEAD_END, MAX_HEAD_BYTES, UpgradeRefused, check_upgrade,
                                 parse_head, problem_body, problem_response)
from engage.ws.reader import DEFAULT_MAX_FRAGMENTS, DEFAULT_MESSAGE_TIMEOUT
from engage.ws.transport import (DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_OUTBOX_BYTES,
                                 WebSocketConnection)

log = logging.getLogger(__name__)

WsHandler = Callable[[WebSocketConnection], Awaitable[None]]
#: The fast lane: a response, or None to pass the request on to the ASGI app.
Routes = Callable[[Request], Awaitable[Response | None]]

#: Seconds a refusal on the ws path may take to write.
HEAD_TIMEOUT: Final = 10.0
#: Seconds between peeks while the first bytes trickle in.
PEEK_RETRY: Final = 0.005
#: Seconds ws handlers get after ``shutting_down`` is set before they are cancelled.
WS_SHUTDOWN_GRACE: Final = 1.0
#: Seconds between checks for ws handlers still running during shutdown.
SHUTDOWN_POLL: Final = 0.05
#: Seconds to pause accepting when out of file descriptors or memory.
ACCEPT_BACKOFF: Final = 0.1
#: Connections accepted per wake-up before yielding to other tasks.
ACCEPT_BATCH: Final = 64
_ACCEPT_CAPACITY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_IGNORED = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EAGAIN}


@dataclass(frozen=True, slots=True)
class FrontConfig:
    """How the front door listens and what it bounds.

    Attributes:
        host, port: where to listen (port 0: any free port).
        backlog: the listen backlog.
        ws_path: the one path served as WebSocket.
        max_body_bytes: largest HTTP request body (413 beyond).
        keep_alive_timeout: seconds an idle HTTP connection is kept.
        request_timeout: seconds an HTTP request has to arrive whole.
        graceful_timeout: seconds in-flight HTTP requests get at shutdown.
        max_connections: most open connections (after
            :func:`~engage.http1.admission.connection_capacity`).
        max_connections_per_ip: most open connections per peer address (0: off).
        exempt: addresses without a per-address cap (trusted proxies).
        max_message_bytes: per-connection inbound WebSocket message limit (1009).
        max_fragments: most frames in one WebSocket message (1009 beyond).
        message_timeout: seconds a fragmented WebSocket message may take (1008).
        max_outbox_bytes: per-connection outbox bound (slow consumer beyond).
        ws_shutdown_grace: seconds between ``conn.shutting_down`` and cancellation.
    """

    host: str = "127.0.0.1"
    port: int = 0
    backlog: int = 4096
    ws_path: str = "/v1/ws"
    max_body_bytes: int = 65536
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    graceful_timeout: float = 10.0
    max_connections: int = 50_000
    max_connections_per_ip: int = 0
    exempt: frozenset[str] = frozenset()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_fragments: int = DEFAULT_MAX_FRAGMENTS
    message_timeout: float = DEFAULT_MESSAGE_TIMEOUT
    max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES
    ws_shutdown_grace: float = WS_SHUTDOWN_GRACE
    #: Listen with SO_REUSEPORT: several worker processes on one port, the
    #: kernel spreading new connections over them.
    reuse_port: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, max_connections: int) -> "FrontConfig":
        """The front door of a server run with ``settings``; ``max_connections``
        is the process cap already fitted to the descriptor limit."""
        return cls(host=settings.host, port=settings.port, backlog=settings.backlog,
                   max_body_bytes=settings.max_body_bytes,
                   keep_alive_timeout=settings.http_keep_alive_timeout,
                   request_timeout=settings.http_request_timeout,
                   graceful_timeout=settings.shutdown_timeout,
                   max_connections=max_connections,
                   max_connections_per_ip=settings.max_connections_per_ip,
                   exempt=settings.proxies,
                   max_message_bytes=settings.ws_max_message_bytes,
                   max_fragments=settings.ws_max_fragments,
                   message_timeout=settings.ws_message_timeout,
                   max_outbox_bytes=settings.ws_outbox_bytes,
                   reuse_port=settings.reuse_port)


def open_listener(config: FrontConfig) -> socket.socket:
    """A non-blocking listening socket on ``config.host:config.port``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if config.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(config.backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_front(app: AsgiApp, config: FrontConfig, ws_handler: WsHandler, *,
                      routes: Routes | None = None,
                      shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve HTTP (``routes``, then ``app``) and ``ws_handler`` on one port.

    Args:
        app: the ASGI app (e.g. a ``QuartTrio``), run with its lifespan.
        config: where to listen and the limits.
        ws_handler: ``await ws_handler(conn)`` for each upgrade request on
            ``ws_path``; it must ``accept`` or ``reject``. When it returns the
            socket is closed (1000; 1011 if it raised; 1001 if cancelled).
        routes: the fast lane, tried before ``app`` for every HTTP request.
        shutdown_trigger: returning from it starts a graceful shutdown.
        task_status: started with the bound URLs.

    Raises:
        OSError: the address cannot be listened on (in use, not ours).
    """
    listener = open_listener(config)
    lifespan_state: dict = {}
    lifespan_stop = trio.Event()
    bridge = AsgiBridge(app, listener.getsockname()[:2], lifespan_state)
    door = _FrontDoor(bridge, routes, config, ws_handler)
    try:
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(partial(run_lifespan, app, lifespan_state,
                                                 stop=lifespan_stop))
            async with trio.open_nursery() as server_nursery:
                async with trio.open_nursery() as ws_nursery:
                    door.ws_nursery = ws_nursery
                    try:
                        async with trio.open_nursery() as accept_nursery:
                            accept_nursery.start_soon(door.accept_loop, listener, server_nursery)
                            if shutdown_trigger is not None:
                                accept_nursery.start_soon(_cancel_when, shutdown_trigger,
                                                          accept_nursery.cancel_scope)
                            url = _url(listener)
                            log.info("Running on %s", url)
                            task_status.started([url])
                    finally:
                        listener.close()
                        server_nursery.cancel_scope.deadline = (trio.current_time()
                                                                + config.graceful_timeout)
                        door.begin_shutdown()
                        server_nursery.start_soon(_cancel_ws_after, ws_nursery,
                                                  config.ws_shutdown_grace)
            lifespan_stop.set()
    finally:
        listener.close()


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

    def __init__(self, bridge: AsgiBridge, routes: Routes | None, config: FrontConfig,
                 ws_handler: WsHandler) -> None:
        self.bridge = bridge
        self.ws_handler = ws_handler
        self.routes = routes
        self.config = config
        self.admission = Admission(config.max_connections, config.max_connections_per_ip,
                                   config.exempt)
        self.ws_prefix = b"GET " + config.ws_path.encode("ascii")
        self.shutting_down = trio.Event()
        #: Runs every ws handler and every outbox writer task.
        self.ws_nursery: trio.Nursery | None = None
        self.http_connections: set[HttpConnection] = set()
        self._accept_failures = 0
        self._accept_failing_since = 0.0

    def begin_shutdown(self) -> None:
        self.shutting_down.set()
        for conn in list(self.http_connections):
            conn.close_if_idle()

    async def http_app(self, request: Request) -> Response:
        if self.routes is not None:
            response = await self.routes(request)
            if response is not None:
                return response
        return await self.bridge(request)

    async def accept_loop(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, addr = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _ACCEPT_CAPACITY:
                        self._accept_failed(exc)
                        await trio.sleep(ACCEPT_BACKOFF)
                        break
                    if exc.errno in _ACCEPT_IGNORED:
                        continue
                    raise
                self._accept_recovered()
                address = addr[0]
                if not self.admission.admit(address):
                    refuse_now(sock, self.admission.refusal(address))
                    continue
                nursery.start_soon(self.dispatch, sock, addr)
            await trio.lowlevel.checkpoint()

    def _accept_failed(self, exc: OSError) -> None:
        """Log the first failure of a run of them, not each one."""
        if not self._accept_failures:
            self._accept_failing_since = trio.current_time()
            log.error("accept failing (%s; %d connections open); retrying every %.1fs",
                      exc, self.admission.open, ACCEPT_BACKOFF)
        self._accept_failures += 1

    def _accept_recovered(self) -> None:
        if self._accept_failures:
            log.warning("accepting again after %d failed accepts over %.1fs",
                        self._accept_failures,
                        trio.current_time() - self._accept_failing_since)
            self._accept_failures = 0

    async def dispatch(self, raw: socket.socket, addr: tuple) -> None:
        """Route one accepted connection to the WebSocket path or to HTTP.

        A connection is routed once, on its first request: a keep-alive HTTP
        connection stays HTTP even if it later asks for ``ws_path``
        (browsers and WebSocket clients open a fresh connection to upgrade).
        """
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        handed_over = False
        try:
            try:
                kind = await self._peek_kind(raw)
            except OSError:
                kind = None
            if kind == "ws":
                conn = await self._upgrade(stream, raw)
                if conn is not None:  # the handler outlives this task: one task per socket
                    assert self.ws_nursery is not None
                    self.ws_nursery.start_soon(self._run_handler, conn, addr[0])
                    handed_over = True
                    return
            elif kind == "http":
                http = HttpConnection(stream, raw, self.http_app, client=addr[:2],
                                      max_body_bytes=self.config.max_body_bytes,
                                      shutting_down=self.shutting_down,
                                      keep_alive_timeout=self.config.keep_alive_timeout,
                                      request_timeout=self.config.request_timeout)
                self.http_connections.add(http)
                try:
                    await http.serve()
                finally:
                    self.http_connections.discard(http)
        except Exception:  # one bad connection must not take the server down
            log.exception("connection dispatch failed")
        finally:
            if not handed_over:
                self.admission.release(addr[0])
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _peek_kind(self, raw: socket.socket) -> str | None:
        """``"ws"``, ``"http"``, or None if the peer sent nothing in time."""
        prefix = self.ws_prefix
        need = len(prefix) + 1
        with trio.move_on_after(self.config.request_timeout):
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
        with trio.move_on_after(self.config.request_timeout):
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
        try:
            upgrade = check_upgrade(head)
        except UpgradeRefused as exc:
            await _send_and_close(stream, problem_response(
                exc.status, str(exc), code="bad_upgrade", headers=exc.headers))
            return None
        assert self.ws_nursery is not None
        config = self.config
        return WebSocketConnection(
            stream, raw, head, upgrade, trailing, nursery=self.ws_nursery,
            shutting_down=self.shutting_down, max_message_bytes=config.max_message_bytes,
            max_outbox_bytes=config.max_outbox_bytes, max_fragments=config.max_fragments,
            message_timeout=config.message_timeout)

    async def _run_handler(self, conn: WebSocketConnection, address: str) -> None:
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
                self.admission.release(address)

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
