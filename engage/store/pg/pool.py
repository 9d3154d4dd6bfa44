"""A pool of trio-native Postgres connections for the hot statements.

:meth:`PgPool.run` lends a connection to one coroutine under one deadline:
the waiting for a connection, the connecting and the statements all count.
Connections open when needed (up to ``size``), are reused newest first, and
are dropped when broken or found closed by the server (a restart), so a
Postgres outage costs the calls made during it, not the pool.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Final, TypeVar

import trio

from engage.errors import StoreError
from engage.store.pg.address import PgAddress
from engage.store.pg.connection import PgConnection

T = TypeVar("T")

#: Seconds a call may take, waiting for a connection and connecting included.
CALL_TIMEOUT: Final = 30.0


class PgPool:
    """Up to ``size`` connections to ``address``.

    Args:
        address: Where Postgres is (see :class:`PgAddress`).
        size: How many connections at most.
    """

    def __init__(self, address: PgAddress, size: int) -> None:
        self.address = address
        self.size = size
        self._idle: list[PgConnection] = []
        self._slots = trio.Semaphore(size)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, size: int) -> "PgPool":
        """Raises StoreError when the URL needs asyncpg (see :mod:`.address`)."""
        return cls(PgAddress.from_url(url), size)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any,
                  timeout: float = CALL_TIMEOUT) -> T:
        """``await fn(connection, *args)`` on a pooled connection.

        Raises:
            StoreError: no connection within ``timeout``, the connection
                failed, or Postgres refused a statement
                (:class:`~engage.errors.PostgresServerError`).
        """
        if self._closed:
            raise StoreError("postgres: the pool is closed")
        with trio.move_on_after(timeout) as scope:
            await self._slots.acquire()
            try:
                connection = await self._take()
                try:
                    return await fn(connection, *args)
                finally:
                    self._give_back(connection)
            finally:
                self._slots.release()
        assert scope.cancelled_caught
        raise StoreError(f"postgres: no answer within {timeout} s")

    async def _take(self) -> PgConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.looks_alive():
                return connection
            await connection.aclose()
        return await PgConnection.connect(self.address)

    def _give_back(self, connection: PgConnection) -> None:
        if connection.broken or self._closed:
            connection.close_nowait()  # no checkpoint here: we may be cancelled
            return
        self._idle.append(connection)

    def statistics(self) -> dict[str, int]:
        return {"size": self.size, "idle": len(self._idle),
                "in_use": self.size - self._slots.value}

    async def aclose(self) -> None:
        """Close the idle connections; lent ones close when given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
