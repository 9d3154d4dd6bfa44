"""One Postgres connection on trio: the extended query protocol, statements
prepared once per connection.

The methods mirror asyncpg's (``fetch``, ``fetchrow``, ``fetchval``,
``execute``) so that one coroutine holding a statement's SQL and its row
handling runs on either driver; a row is a ``dict`` by column name.

A statement runs as Bind, Execute, Sync in one write and one read of the
answers (the first time it is also parsed and described, one more round
trip). A refusal by the server (:class:`~engage.errors.PostgresServerError`)
leaves the connection usable; any other failure (the socket, a timeout, a
cancel in the middle of an exchange) leaves it :attr:`broken`, to be closed.
"""

from __future__ import annotations

import select
import struct
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Final

import trio

from engage.errors import PostgresServerError, StoreError
from engage.store.pg import codec
from engage.store.pg.address import PgAddress
from engage.store.pg.auth import SCRAM, ScramClient, md5_password

READ_SIZE: Final = 65536
_HEADER = struct.Struct("!ci")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
#: SQLSTATEs after which a cached statement must be prepared again.
_STALE_STATEMENT = {"0A000", "26000"}


class _Statement:
    __slots__ = ("name", "params", "columns", "decoders", "formats")

    def __init__(self, name: str, params: tuple[int, ...],
                 columns: list[tuple[str, int]]) -> None:
        self.name = name
        self.params = params
        self.columns = tuple(name for name, _ in columns)
        self.decoders = tuple(codec.DECODERS.get(oid) for _, oid in columns)
        self.formats = [1 if d is not None else 0 for d in self.decoders]


def _server_error(body: bytes) -> PostgresServerError:
    fields = {}
    for part in body.split(b"\x00"):
        if part:
            fields[part[:1]] = part[1:].decode(errors="replace")
    detail = fields.get(b"D")
    text = fields.get(b"M", "error") + (f" ({detail})" if detail else "")
    return PostgresServerError(f"postgres: {text}", sqlstate=fields.get(b"C", "XX000"))


class PgConnection:
    """An open, authenticated connection. Make one with :meth:`connect`."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._statements: dict[str, _Statement] = {}
        self._prepared = 0  # statements ever prepared here: their names stay unique
        self.broken = False
        self.parameters: dict[str, str] = {}

    @classmethod
    async def connect(cls, address: PgAddress) -> "PgConnection":
        """Open and authenticate a session (no timeout of its own: the caller's).

        Raises:
            StoreError: unreachable, refused, or the password is wrong.
        """
        try:
            stream = await address.open_stream()
        except (OSError, trio.BrokenResourceError) as exc:
            raise StoreError(f"postgres: cannot connect to {address.host}:{address.port}: "
                             f"{exc}") from exc
        connection = cls(stream)
        try:
            await connection._start(address)
        except BaseException:
            await connection.aclose()
            raise
        return connection

    async def _start(self, address: PgAddress) -> None:
        await self._send(codec.startup({
            "user": address.user, "database": address.database,
            "application_name": address.application_name, "client_encoding": "UTF8"}))
        scram: ScramClient | None = None
        while True:
            kind, body = await self._receive()
            if kind == b"R":
                code = _I32.unpack_from(body)[0]
                if code == 0:
                    continue
                if address.password is None:
                    raise StoreError("postgres asks for a password and the url has none")
                if code == 3:
                    await self._send(codec.message(b"p", codec.cstring(address.password)))
                elif code == 5:
                    answer = md5_password(address.user, address.password, body[4:8])
                    await self._send(codec.message(b"p", answer + b"\x00"))
                elif code == 10:
                    if SCRAM.encode() not in body[4:].split(b"\x00"):
                        raise StoreError(f"postgres offers no mechanism we speak: {body[4:]!r}")
                    scram = ScramClient(address.password)
                    first = scram.first()
                    await self._send(codec.message(
                        b"p", codec.cstring(SCRAM) + _I32.pack(len(first)) + first))
                elif code == 11 and scram is not None:
                    await self._send(codec.message(b"p", scram.final(body[4:])))
                elif code == 12 and scram is not None:
                    scram.verify(body[4:])
                else:
                    raise StoreError(f"postgres asks for authentication method {code}")
            elif kind == b"S":
                name, value, _ = body.split(b"\x00", 2)
                self.parameters[name.decode()] = value.decode()
            elif kind == b"E":
                raise _server_error(body)
            elif kind == b"Z":
                return
            # BackendKeyData and notices need nothing from us.

    # -- queries ------------------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Every row ``sql`` returns, each a dict by column name."""
        return await self._run(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self._run(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self._run(sql, args)
        return next(iter(rows[0].values())) if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._run(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises (as
        asyncpg's ``transaction()``; a broken connection is just dropped)."""
        await self._run("BEGIN", ())
        try:
            yield
        except BaseException:
            if not self.broken:
                with trio.CancelScope(shield=True):
                    await self._run("ROLLBACK", ())
            raise
        await self._run("COMMIT", ())

    async def _run(self, sql: str, args: tuple) -> list[dict[str, Any]]:
        if self.broken:
            raise StoreError("postgres: connection is broken")
        statement = self._statements.get(sql) or await self._prepare(sql)
        try:
            return await self._execute(statement, args)
        except PostgresServerError as exc:
            if exc.sqlstate not in _STALE_STATEMENT:
                raise
        # The schema changed under a cached plan: prepare it again, once.
        del self._statements[sql]
        return await self._execute(await self._prepare(sql), args)

    async def _prepare(self, sql: str) -> _Statement:
        self._prepared += 1
        name = f"engage_{self._prepared}"
        params: tuple[int, ...] = ()
        columns: list[tuple[str, int]] = []
        for kind, body in await self._exchange(
                codec.parse(name, sql) + codec.describe_statement(name) + codec.SYNC):
            if kind == b"t":
                count = _I16.unpack_from(body)[0]
                params = struct.unpack_from(f"!{count}i", body, 2)
            elif kind == b"T":
                columns = self._columns(body)
        statement = _Statement(name, params, columns)
        self._statements[sql] = statement
        return statement

    @staticmethod
    def _columns(body: bytes) -> list[tuple[str, int]]:
        count = _I16.unpack_from(body)[0]
        out, pos = [], 2
        for _ in range(count):
            end = body.index(b"\x00", pos)
            name = body[pos:end].decode()
            oid = _I32.unpack_from(body, end + 7)[0]  # after table oid (4) and attnum (2)
            out.append((name, oid))
            pos = end + 19
        return out

    async def _execute(self, statement: _Statement, args: tuple) -> list[dict[str, Any]]:
        try:
            values, formats = codec.encode_params(statement.params, args)
        except (ValueError, TypeError, struct.error, OverflowError) as exc:
            raise StoreError(f"postgres: bad parameters for {statement.name}: {exc}") from exc
        answers = await self._exchange(codec.bind(statement.name, values, formats,
                                                  statement.formats) + codec.EXECUTE + codec.SYNC)
        columns, decoders = statement.columns, statement.decoders
        return [dict(zip(columns, self._row(body, decoders)))
                for kind, body in answers if kind == b"D"]

    async def _exchange(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Send ``data`` (ending in Sync) and read the answers up to
        ReadyForQuery; a refusal among them is raised once all are read, so
        the connection is ready for the next statement either way."""
        await self._send(data)
        answers: list[tuple[bytes, bytes]] = []
        error = None
        while True:
            kind, body = await self._receive()
            if kind == b"Z":
                break
            if kind == b"E":
                error = _server_error(body)
            answers.append((kind, body))
        if error is not None:
            raise error
        return answers

    @staticmethod
    def _row(body: bytes, decoders: tuple) -> list[Any]:
        values: list[Any] = []
        pos = 2
        for decode in decoders:
            size = _I32.unpack_from(body, pos)[0]
            pos += 4
            if size < 0:
                values.append(None)
                continue
            data = body[pos:pos + size]
            pos += size
            values.append(decode(data) if decode is not None else data.decode())
        return values

    # -- the socket ---------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except BaseException as exc:
            self.broken = True
            if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
                raise StoreError(f"postgres: connection lost: {exc}") from exc
            raise

    async def _receive(self) -> tuple[bytes, bytes]:
        """The next backend message: its type byte and its body."""
        buffer = self._buffer
        try:
            while True:
                if len(buffer) >= 5:
                    kind, size = _HEADER.unpack_from(buffer)
                    if len(buffer) >= size + 1:
                        body = bytes(buffer[5:size + 1])
                        del buffer[:size + 1]
                        return kind, body
                data = await self._stream.receive_some(READ_SIZE)
                if not data:
                    raise StoreError("postgres closed the connection")
                buffer += data
        except BaseException as exc:
            self.broken = True
            if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
                raise StoreError(f"postgres: connection lost: {exc}") from exc
            raise

    def _socket(self):
        sock = getattr(self._stream, "socket", None)
        if sock is None:  # TLS: the socket is under it
            sock = getattr(getattr(self._stream, "transport_stream", None), "socket", None)
        return sock

    def looks_alive(self) -> bool:
        """False when the server has closed it (or said something unasked,
        which on an idle connection is a FATAL error before closing)."""
        if self.broken:
            return False
        sock = self._socket()
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close_nowait(self) -> None:
        """Close the socket at once, without a goodbye (a broken connection)."""
        self.broken = True
        sock = self._socket()
        if sock is not None:
            sock.close()

    async def aclose(self) -> None:
        """Say goodbye (best effort) and close."""
        if not self.broken:
            self.broken = True
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                try:
                    await self._stream.send_all(codec.TERMINATE)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        await trio.aclose_forcefully(self._stream)
