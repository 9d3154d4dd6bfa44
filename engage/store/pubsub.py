"""A Redis pub/sub connection that runs natively on trio.

Why not redis-py here: a subscriber waits on its socket for as long as nobody
publishes, which redis-py's asyncio client turns into ``TimeoutError`` after its
socket timeout, and every message would cross the trio-asyncio bridge. Pub/sub
needs three commands and a RESP parser, so this module speaks it directly on a
trio stream with hiredis's parser. One connection per process (the router
actor's); publishing goes through the ordinary client or Lua scripts.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import AsyncIterator
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
import trio

from engage.errors import StoreError

log = logging.getLogger(__name__)

#: Seconds to establish the connection (and authenticate).
CONNECT_TIMEOUT = 5.0
#: Bytes read from the socket at a time.
READ_SIZE = 65536


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is, parsed from a ``redis://``, ``rediss://`` or ``unix://`` URL.

    ``rediss://`` is TLS, with the same query parameters redis-py reads:
    ``ssl_ca_certs`` (a CA file; default: the system's), ``ssl_cert_reqs``
    (``required``, the default, or ``none``), ``ssl_check_hostname``.
    """

    host: str | None = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    ca_certs: str | None = None
    verify: bool = True
    check_hostname: bool = True

    @classmethod
    def from_url(cls, url: str) -> "RedisAddress":
        parsed = urlparse(url)
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        if parsed.scheme == "unix":
            query = parse_qs(parsed.query)
            password = password or (query.get("password") or [None])[0]
            return cls(host=None, path=parsed.path, username=username, password=password)
        if parsed.scheme not in ("redis", "rediss"):
            raise StoreError(f"unsupported redis url scheme {parsed.scheme!r}")
        query = {k: v[0] for k, v in parse_qs(parsed.query).items() if v}
        db = parsed.path.strip("/")
        verify = query.get("ssl_cert_reqs", "required").lower() != "none"
        return cls(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379,
                   username=username, password=password, db=int(db) if db.isdigit() else 0,
                   tls=parsed.scheme == "rediss", ca_certs=query.get("ssl_ca_certs"),
                   verify=verify,
                   check_hostname=verify and query.get("ssl_check_hostname", "true").lower()
                   not in ("false", "0", "no"))

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for a ``rediss://`` address."""
        context = ssl.create_default_context(cafile=self.ca_certs)
        context.check_hostname = self.check_hostname
        if not self.verify:
            context.verify_mode = ssl.CERT_NONE
        return context

    async def open_stream(self) -> trio.abc.Stream:
        """A connected stream to this address (TLS handshake done for ``rediss://``).

        Raises:
            OSError, trio.BrokenResourceError: unreachable, or the handshake failed.
        """
        if self.path:
            return await trio.open_unix_socket(self.path)
        assert self.host is not None
        stream: trio.abc.Stream = await trio.open_tcp_stream(self.host, self.port)
        if self.tls:
            tls = trio.SSLStream(stream, self.ssl_context(), server_hostname=self.host)
            try:
                await tls.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            return tls
        return stream


def encode_command(*args: bytes | str) -> bytes:
    """RESP-encode one command."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class PubSubConnection:
    """One subscriber connection.

    Use :func:`open_pubsub`. ``subscribe``/``unsubscribe`` may be called from
    any task while another task iterates :meth:`messages`; confirmations of
    (un)subscription are consumed by the iterator and signalled to the caller.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader()
        self._send_lock = trio.Lock()
        self._confirmations: dict[tuple[bytes, bytes], list[trio.Event]] = {}
        self.channels: set[bytes] = set()

    async def _send(self, *args: bytes | str) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(encode_command(*args))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise StoreError(f"redis pub/sub: {exc}") from exc

    async def _read_reply(self):
        while True:
            reply = self._reader.gets()
            if reply is not False:
                return reply
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise StoreError(f"redis pub/sub: {exc}") from exc
            if not data:
                raise StoreError("redis pub/sub: connection closed by server")
            self._reader.feed(data)

    async def handshake(self, address: RedisAddress) -> None:
        if address.password:
            args = ["AUTH", *([address.username] if address.username else []), address.password]
            await self._send(*args)
            reply = await self._read_reply()
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError("redis pub/sub: authentication failed")

    async def subscribe(self, *channels: bytes, wait: bool = True) -> None:
        """Subscribe; with ``wait``, return once Redis has confirmed each channel.

        Confirmations are read by :meth:`messages`, so ``wait`` needs another
        task iterating it.
        """
        await self._change("subscribe", channels, wait)

    async def unsubscribe(self, *channels: bytes, wait: bool = False) -> None:
        await self._change("unsubscribe", channels, wait)

    async def _change(self, kind: str, channels: tuple[bytes, ...], wait: bool) -> None:
        if not channels:
            return
        events = []
        for channel in channels:
            event = trio.Event()
            self._confirmations.setdefault((kind.encode(), channel), []).append(event)
            events.append(event)
        await self._send(kind.upper(), *channels)
        if wait:
            for event in events:
                await event.wait()

    async def messages(self) -> AsyncIterator[tuple[bytes, bytes]]:
        """Yield ``(channel, data)`` for each published message, forever.

        Raises:
            StoreError: the connection broke (the caller reconnects).
        """
        async for batch in self.batches():
            for message in batch:
                yield message

    async def batches(self) -> AsyncIterator[list[tuple[bytes, bytes]]]:
        """Yield the published messages that arrived together, as lists.

        A list holds every complete message already read from the socket (one
        read is at most ``READ_SIZE`` bytes), so under load the consumer sees
        several at once and can write them to a socket together; when quiet,
        lists of one.

        Raises:
            StoreError: the connection broke (the caller reconnects).
        """
        while True:
            reply = await self._read_reply()
            batch: list[tuple[bytes, bytes]] = []
            while reply is not False:
                message = self._take(reply)
                if message is not None:
                    batch.append(message)
                reply = self._reader.gets()
            if batch:
                yield batch

    def _take(self, reply) -> tuple[bytes, bytes] | None:
        """A published message's ``(channel, data)``; confirmations are noted."""
        if isinstance(reply, hiredis.ReplyError):
            raise StoreError(f"redis pub/sub: {reply}")
        if not isinstance(reply, list) or len(reply) < 3:
            return None
        kind = reply[0]
        if kind == b"message":
            return reply[1], reply[2]
        if kind in (b"subscribe", b"unsubscribe"):
            channel = reply[1]
            if kind == b"subscribe":
                self.channels.add(channel)
            else:
                self.channels.discard(channel)
            waiters = self._confirmations.get((kind, channel))
            if waiters:
                waiters.pop(0).set()
                if not waiters:
                    del self._confirmations[(kind, channel)]
        return None

    def release_waiters(self) -> None:
        """Wake every task waiting on a confirmation (the connection is gone)."""
        for waiters in self._confirmations.values():
            for event in waiters:
                event.set()
        self._confirmations.clear()

    async def aclose(self) -> None:
        self.release_waiters()
        await self._stream.aclose()


async def connect_pubsub(url: str) -> PubSubConnection:
    """Connect and authenticate a pub/sub connection.

    Raises:
        StoreError: Redis is unreachable or refused us.
    """
    address = RedisAddress.from_url(url)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            conn = PubSubConnection(await address.open_stream())
            await conn.handshake(address)
            return conn
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise StoreError(f"redis pub/sub: cannot connect: {exc}") from exc
