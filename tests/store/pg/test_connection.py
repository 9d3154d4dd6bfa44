"""The native Postgres connection: values, refusals, cached statements, and
the password exchanges (against a scripted server: the test Postgres trusts
127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from functools import partial
from datetime import datetime, timedelta, timezone

import pytest
import trio

from engage.errors import PostgresServerError, StoreError
from engage.store.pg import PgAddress, PgConnection
from engage.store.pg import codec
from tests.conftest import BASE_DATABASE_URL


async def _connect(url: str = BASE_DATABASE_URL) -> PgConnection:
    return await PgConnection.connect(PgAddress.from_url(url))


async def test_values_round_trip_in_binary_and_text():
    with trio.fail_after(10):
        conn = await _connect()
        try:
            when = datetime(2026, 12, 7, 13, 1, 2, 345678, tzinfo=timezone.utc)
            row = await conn.fetchrow(
                "SELECT $1::int8 AS big, $2::int4 AS small, $3::text AS word, $4::bool AS yes, "
                "$5::timestamptz AS at, $6::text[] AS words, $7::float8 AS ratio, "
                "$8::bytea AS raw, NULL::text AS nothing, 2.50::numeric AS price, "
                "'{1,2}'::int8[] AS ids",
                2**40, -7, "héllo\x01", True, when, ["a", 'b"c', None], 0.25, b"\x00\xff")
            assert row == {"big": 2**40, "small": -7, "word": "héllo\x01", "yes": True,
                           "at": when, "words": ["a", 'b"c', None], "ratio": 0.25,
                           "raw": b"\x00\xff", "nothing": None, "price": "2.50",
                           "ids": [1, 2]}
            assert await conn.fetchval("SELECT now() - $1::timestamptz < interval '1 day'",
                                       datetime.now(timezone.utc) - timedelta(hours=1))
            assert await conn.fetch("SELECT 1 AS x WHERE false") == []
            assert await conn.fetchrow("SELECT 1 AS x WHERE false") is None
        finally:
            await conn.aclose()


async def test_a_refused_statement_leaves_the_connection_usable():
    with trio.fail_after(10):
        conn = await _connect()
        try:
            with pytest.raises(PostgresServerError) as caught:
                await conn.fetch("SELECT 1 / $1::int4", 0)
            assert caught.value.sqlstate == "22012"
            with pytest.raises(PostgresServerError) as caught:
                await conn.fetch("SELECT FROM no_such_table")
            assert caught.value.sqlstate == "42P01"
            assert not conn.broken
            assert await conn.fetchval("SELECT 1 / $1::int4", 1) == 1
            with pytest.raises(StoreError, match="parameters"):
                await conn.fetch("SELECT $1::int4", 1, 2)
            assert await conn.fetchval("SELECT 3") == 3
        finally:
            await conn.aclose()


async def test_a_cached_statement_is_prepared_again_when_the_table_changes():
    with trio.fail_after(10):
        conn = await _connect()
        try:
            await conn.execute("CREATE TEMP TABLE t (a int)")
            await conn.execute("INSERT INTO t VALUES (1)")
            assert await conn.fetch("SELECT * FROM t") == [{"a": 1}]
            await conn.execute("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'")
            assert await conn.fetch("SELECT * FROM t") == [{"a": 1, "b": "x"}]
        finally:
            await conn.aclose()


async def test_a_cancel_in_the_middle_of_a_statement_breaks_the_connection():
    with trio.fail_after(10):
        conn = await _connect()
        try:
            with trio.move_on_after(0.2):
                await conn.fetch("SELECT pg_sleep(5)")
            assert conn.broken
            with pytest.raises(StoreError, match="broken"):
                await conn.fetch("SELECT 1")
        finally:
            await conn.aclose()


async def test_sslmode_require_refuses_a_server_without_tls():
    with trio.fail_after(10):
        head, _, tail = BASE_DATABASE_URL.partition("?")
        conn = await _connect(head + "?sslmode=prefer")
        await conn.aclose()  # prefer: plain when the server says no
        if await _server_has_tls():
            pytest.skip("the test Postgres offers TLS")
        with pytest.raises(StoreError, match="TLS"):
            await _connect(head + "?sslmode=require")


async def _server_has_tls() -> bool:
    conn = await _connect()
    try:
        return await conn.fetchval("SELECT current_setting('ssl')") == "on"
    finally:
        await conn.aclose()


# -- a scripted server for the password exchanges -----------------------------


class _Server:
    """Accepts one client, asks for a password the ``method`` way, checks it."""

    def __init__(self, method: str, password: str) -> None:
        self.method, self.password = method, password
        self.accepted = False

    async def serve(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve(stream)
        except (EOFError, trio.BrokenResourceError):
            pass  # the client gave up first (no password to give)

    async def _serve(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()

        async def read(n: int) -> bytes:
            while len(buffer) < n:
                data = await stream.receive_some(4096)
                if not data:
                    raise EOFError
                buffer.extend(data)
            out = bytes(buffer[:n])
            del buffer[:n]
            return out

        async def message() -> bytes:
            _, size = struct.unpack("!ci", await read(5))
            return await read(size - 4)

        size = struct.unpack("!i", await read(4))[0]
        params = (await read(size - 4))[4:].split(b"\x00")
        user = params[params.index(b"user") + 1].decode()
        ok = False
        if self.method == "md5":
            salt = b"salt"
            await stream.send_all(codec.message(b"R", struct.pack("!i", 5) + salt))
            inner = hashlib.md5((self.password + user).encode()).hexdigest()
            expected = b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()
            ok = (await message()).rstrip(b"\x00") == expected
        else:
            ok = await self._scram(stream, message)
        if ok:
            self.accepted = True
            await stream.send_all(codec.message(b"R", struct.pack("!i", 0))
                                  + codec.message(b"Z", b"I"))
        else:
            await stream.send_all(codec.message(
                b"E", b"SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"))
        await stream.aclose()

    async def _scram(self, stream, message) -> bool:
        await stream.send_all(codec.message(b"R", struct.pack("!i", 10)
                                            + b"SCRAM-SHA-256\x00\x00"))
        body = await message()
        mechanism, rest = body.split(b"\x00", 1)
        assert mechanism == b"SCRAM-SHA-256"
        first = rest[4:].decode()
        first_bare = first[3:]
        nonce = dict(p.split("=", 1) for p in first_bare.split(","))["r"] + "server"
        salt, iterations = b"0123456789abcdef", 4096
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        await stream.send_all(codec.message(b"R", struct.pack("!i", 11) + server_first.encode()))
        final = (await message()).decode()
        without_proof, _, proof = final.rpartition(",p=")
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        auth = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored, auth, "sha256").digest()
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature))
        if hashlib.sha256(recovered).digest() != stored:
            return False
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        verifier = base64.b64encode(hmac.new(server_key, auth, "sha256").digest())
        await stream.send_all(codec.message(b"R", struct.pack("!i", 12) + b"v=" + verifier))
        return True


@pytest.mark.parametrize("method", ["md5", "scram"])
@pytest.mark.parametrize("password, accepted", [("s3cret", True), ("wrong", False)])
async def test_password_exchanges(nursery, method, password, accepted):
    with trio.fail_after(10):
        server = _Server(method, "s3cret")
        listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        url = f"postgresql://alice:{password}@127.0.0.1:{port}/db?sslmode=disable"
        if accepted:
            conn = await _connect(url)
            assert server.accepted
            await conn.aclose()
        else:
            with pytest.raises(PostgresServerError) as caught:
                await _connect(url)
            assert caught.value.sqlstate == "28P01"


async def test_a_password_asked_for_and_not_given_is_a_clear_error(nursery):
    with trio.fail_after(10):
        server = _Server("md5", "s3cret")
        listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(StoreError, match="password"):
            await _connect(f"postgresql://alice@127.0.0.1:{port}/db?sslmode=disable")


async def test_a_transaction_commits_or_rolls_back_as_a_whole():
    with trio.fail_after(10):
        conn = await _connect()
        try:
            await conn.execute("CREATE TEMP TABLE t (k text, b bytea, ok bool)")
            async with conn.transaction():
                await conn.execute("INSERT INTO t SELECT * FROM unnest($1::text[], $2::bytea[], "
                                   "$3::bool[])", ["a", "b"], [b"\x00\x01", None], [True, False])
            with pytest.raises(PostgresServerError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO t VALUES ('c', NULL, true)")
                    await conn.execute("SELECT 1 / 0")
            assert not conn.broken
            assert await conn.fetch("SELECT k, b, ok FROM t ORDER BY k") == [
                {"k": "a", "b": b"\x00\x01", "ok": True}, {"k": "b", "b": None, "ok": False}]
            assert await conn.fetchval("SELECT array_agg(ok ORDER BY k) FROM t") == [True, False]
        finally:
            await conn.aclose()
