"""Redis pipelines spoken natively on trio, for the counter hot path.

Every view, like and applause ends in one Lua script call, group-committed
by the mirror actor: one pipeline per round. Through redis-py that round
crossed the trio-asyncio bridge (§1 of docs/decisions.md) and back: with the
asyncio loop's own scheduling, about a quarter of a view's CPU. The mirror is
one actor, so one connection, written and read in order, serves it;
:class:`RespConnection` is that connection and :class:`NativeScripts` runs
Lua scripts over it by SHA, loading them when Redis does not know them.

The connection opens on first use and again after any failure; a failure is
a :class:`~engage.errors.StoreError` (the caller answers 503 and retries
later, as with the bridge). Error replies to single commands come back as
``hiredis.ReplyError`` values in the result list, as redis-py's pipelines do.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final, Sequence

import hiredis
import trio

from engage.errors import StoreError
from engage.store.pubsub import CONNECT_TIMEOUT, READ_SIZE, RedisAddress, encode_command
from engage.store.scripts import script_source

log = logging.getLogger(__name__)

#: Seconds one pipeline may take, connecting included.
PIPELINE_TIMEOUT: Final = 5.0


class RespConnection:
    """One Redis connection on trio, shared by tasks that pipeline on it.

    Pipelines are written one at a time and their replies read in the same
    order (Redis answers in order), so a second pipeline can be on the wire
    while the first one's replies are still coming: the caller's CPU is not
    idle during a round trip. A pipeline that fails or is cancelled after it
    was written leaves replies nobody can match: the connection is dropped
    and every pipeline waiting on it fails with it.

    Args:
        url: ``redis://[user:password@]host[:port][/db]``, ``rediss://`` or ``unix://``.
    """

    def __init__(self, url: str) -> None:
        self.address = RedisAddress.from_url(url)
        self._stream: trio.abc.Stream | None = None
        self._reader = hiredis.Reader()
        self._send_lock = trio.Lock()
        #: One event per pipeline written and not yet read, in write order; the
        #: head's is set (it reads now), the others wait their turn.
        self._turns: deque[trio.Event] = deque()
        #: Bumped when the connection is dropped: older pipelines cannot be read.
        self._generation = 0

    async def pipeline(self, commands: Sequence[Sequence[bytes | str]], *,
                       timeout: float = PIPELINE_TIMEOUT) -> list:
        """Send ``commands`` in one write and read their replies, in order.

        Raises:
            StoreError: Redis is unreachable, the connection broke, or it
                took longer than ``timeout`` seconds, connecting included
                (the connection is dropped: its replies can no longer be
                matched).
        """
        data = b"".join(encode_command(*c) for c in commands)
        written = None  # the generation it was written on, once it was
        try:
            with trio.fail_after(timeout):
                async with self._send_lock:
                    stream = self._stream or await self._connect()
                    turn = trio.Event()
                    if not self._turns:
                        turn.set()
                    self._turns.append(turn)
                    written = self._generation
                    await stream.send_all(data)
                await turn.wait()
                if written != self._generation:
                    raise StoreError("redis: the connection was lost")
                replies = [await self._read_reply() for _ in commands]
            self._turns.popleft()  # ours, at the head: hand the turn on
            if self._turns:
                self._turns[0].set()
            return replies
        except BaseException as exc:
            if written is not None and written == self._generation:
                await self._drop()  # our replies would be read as someone else's
            if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                                trio.TooSlowError)):
                raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
            raise

    async def _connect(self) -> trio.abc.Stream:
        address = self.address
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await address.open_stream()
        self._stream = stream
        self._reader = hiredis.Reader()
        setup = []
        if address.password:
            setup.append(["AUTH", *([address.username] if address.username else []),
                          address.password])
        if address.db:
            setup.append(["SELECT", str(address.db)])
        if setup:
            await stream.send_all(b"".join(encode_command(*c) for c in setup))
            for _ in setup:
                if isinstance(await self._read_reply(), hiredis.ReplyError):
                    raise StoreError("redis: authentication or SELECT refused")
        return stream

    async def _read_reply(self):
        reader = self._reader
        while (reply := reader.gets()) is False:
            assert self._stream is not None
            data = await self._stream.receive_some(READ_SIZE)
            if not data:
                raise StoreError("redis: connection closed by the server")
            reader.feed(data)
        return reply

    async def _drop(self) -> None:
        self._generation += 1
        for turn in self._turns:  # waiting pipelines wake, see the new generation, fail
            turn.set()
        self._turns.clear()
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def aclose(self) -> None:
        await self._drop()


class NativeScripts:
    """Named Lua scripts run by SHA over a :class:`RespConnection`.

    Args:
        connection: the connection (its task's alone, or shared under its lock).
        names: script names under ``engage/store/lua/`` (without ``.lua``).
    """

    def __init__(self, connection: RespConnection, names: Sequence[str]) -> None:
        self.connection = connection
        self._sources = {name: script_source(name) for name in names}
        self._sha: dict[str, bytes] = {}

    async def run_many(self, calls: Sequence[tuple[str, Sequence, Sequence]]) -> list:
        """Run ``(name, keys, args)`` calls in one pipeline; results in order.

        Raises:
            StoreError: Redis failed, or a script raised an error.
        """
        if len(self._sha) < len(self._sources):
            await self._load()
        replies = await self._run(calls)
        # Redis restarted or flushed its scripts: load them and run again only the
        # calls it refused (the others ran: running them twice would count twice).
        unknown = [i for i, r in enumerate(replies) if _no_script(r)]
        if unknown:
            await self._load()
            for i, reply in zip(unknown, await self._run([calls[i] for i in unknown])):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError(f"redis script failed: {reply}")
        return replies

    async def _run(self, calls: Sequence[tuple[str, Sequence, Sequence]]) -> list:
        return await self.connection.pipeline(
            [("EVALSHA", self._sha[name], str(len(keys)), *keys, *map(_arg, args))
             for name, keys, args in calls])

    async def _load(self) -> None:
        names = list(self._sources)
        replies = await self.connection.pipeline(
            [("SCRIPT", "LOAD", self._sources[name]) for name in names])
        for name, reply in zip(names, replies):
            if isinstance(reply, hiredis.ReplyError):
                raise StoreError(f"redis: cannot load script {name}: {reply}")
        self._sha = dict(zip(names, replies))


def _no_script(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


def _arg(value: object) -> bytes | str:
    """A script argument as RESP wants it (numbers as their decimal text)."""
    if isinstance(value, (bytes, str)):
        return value
    return str(value)
