"""The one crossing between trio and asyncio.

asyncpg and redis-py's asyncio client run on a trio-asyncio loop opened once
per process. Each crossing costs far more than a trio await (measured: a Redis
PING round trip through the bridge ~330 µs), so store methods are written as
whole asyncio coroutines (one pipeline, one transaction) and cross once.
Cancellation crosses too: a cancelled trio caller cancels the asyncio task,
and asyncpg's own ``async with pool.acquire()`` then releases the connection.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import trio_asyncio

T = TypeVar("T")


class Bridge:
    """Runs asyncio coroutine functions from trio on one trio-asyncio loop."""

    def __init__(self, loop: trio_asyncio.TrioEventLoop) -> None:
        self.loop = loop

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` on the asyncio side and return its result."""
        return await trio_asyncio.aio_as_trio(fn, loop=self.loop)(*args)


@asynccontextmanager
async def open_bridge() -> AsyncIterator[Bridge]:
    """Open the process's trio-asyncio loop."""
    async with trio_asyncio.open_loop() as loop:
        yield Bridge(loop)
