"""A serve_front server on 127.0.0.1 for the http1 tests, and a raw-socket HTTP client.

The tests talk to the server over plain TCP so the bytes on the wire are
exactly what they wrote; :class:`RawClient` reads responses back by hand.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio
from quart import request as quart_request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from engage import problems
from engage.http1 import Request, Response
from engage.ws import FrontConfig, serve_front

#: Seconds every I/O test may take.
TEST_TIMEOUT = 15.0
#: Seconds GET /slow takes.
SLOW_SECONDS = 0.4


def make_app(*, slow_started: trio.Event | None = None) -> QuartTrio:
    """GET /hello, POST /echo (length and body), GET /slow (sleeps ``SLOW_SECONDS``)."""
    app = QuartTrio("http1-test")

    @app.get("/hello")
    async def hello():
        return {"hello": "world"}

    @app.post("/echo")
    async def echo():
        body = await quart_request.get_data()
        return {"length": len(body), "body": body.decode("latin-1")}

    @app.get("/slow")
    async def slow():
        if slow_started is not None:
            slow_started.set()
        await trio.sleep(SLOW_SECONDS)
        return {"slow": True}

    # As engage.http.create_app does: Quart's own errors become problem+json.
    app.errorhandler(HTTPException)(problems.from_http_exception)
    return app


async def fast_routes(request: Request) -> Response | None:
    """The fast lane: GET /fast, /framing and /boom; everything else passes on."""
    if request.method != "GET":
        return None
    if request.path == "/fast":
        return Response(200, b'{"fast":true}', [("content-type", "application/json")])
    if request.path == "/framing":  # framing headers a route must not get to set
        return Response(200, b"abc", [("Content-Length", "999"), ("Connection", "keep-alive"),
                                      ("Transfer-Encoding", "chunked"), ("Date", "yesterday"),
                                      ("X-Route", "kept")])
    if request.path == "/boom":
        raise RuntimeError("the fast lane failed (on purpose, in a test)")
    return None


async def no_ws(conn) -> None:  # pragma: no cover - no test upgrades
    await conn.reject(404, b"")


@asynccontextmanager
async def serving(*, app=None, routes=fast_routes, stop: trio.Event | None = None,
                  **kwargs):
    """Run serve_front until the block ends (or ``stop`` is set); yield the port."""
    kwargs.setdefault("graceful_timeout", 2.0)
    config = FrontConfig(**kwargs)
    stop = stop if stop is not None else trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve_front, app or make_app(), config, no_ws,
                                            routes=routes, shutdown_trigger=stop.wait))
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()


@dataclass
class Reply:
    """One HTTP response as read off the socket."""

    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def header_count(self, name: str) -> int:
        return sum(1 for k, _ in self.headers if k == name.lower())

    def json(self):
        return json.loads(self.body)


class RawClient:
    """A TCP connection to the server: write bytes, read responses by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False

    @classmethod
    async def connect(cls, port: int, *, source: str | None = None) -> "RawClient":
        if source is None:
            return cls(await trio.open_tcp_stream("127.0.0.1", port))
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        try:
            await sock.bind((source, 0))
            await sock.connect(("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        return cls(trio.SocketStream(sock))

    async def __aenter__(self) -> "RawClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        """Read more into the buffer; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            chunk = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    async def read_head(self) -> Reply:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if not await self._fill():
                raise EOFError(f"connection closed mid-head: {bytes(self.buffer)!r}")
        raw = bytes(self.buffer[:end])
        del self.buffer[:end + 4]
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        version, status, reason = (status_line.split(" ", 2) + [""])[:3]
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return Reply(int(status), reason, version, headers, raw_head=raw)

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._fill():
                raise EOFError(f"connection closed mid-body: {bytes(self.buffer)!r}")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def read_response(self, *, head: bool = False) -> Reply:
        """The next response (a body only where Content-Length says, never for HEAD)."""
        reply = await self.read_head()
        length = reply.header("content-length")
        if not head and length is not None:
            reply.body = await self.read_exactly(int(length))
        return reply

    async def read_to_eof(self) -> bytes:
        """Everything left until the server closes."""
        while await self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    async def request(self, data: bytes, *, head: bool = False) -> Reply:
        await self.send(data)
        return await self.read_response(head=head)


def get(path: str, *extra: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = "\r\n".join([f"POST {path} HTTP/1.1", "Host: test",
                        f"Content-Length: {len(body)}", *extra, "", ""])
    return head.encode("latin-1") + body
