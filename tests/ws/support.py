"""A serve_front server on 127.0.0.1 for the ws tests, with a tiny Quart app."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial

import trio
from quart_trio import QuartTrio

from engage.ws import FrontConfig, serve_front

#: Seconds every ws test may take.
TEST_TIMEOUT = 15.0


def make_app() -> QuartTrio:
    app = QuartTrio("ws-test")

    @app.get("/hello")
    async def hello():
        return {"hello": "world"}

    return app


@asynccontextmanager
async def serving(handler, *, app=None, stop: trio.Event | None = None, **kwargs):
    """Run serve_front until the block ends (or ``stop`` is set); yield the port."""
    config = FrontConfig(graceful_timeout=1.0, **kwargs)
    stop = stop if stop is not None else trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve_front, app or make_app(), config, handler,
                                            shutdown_trigger=stop.wait))
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()


def ws_url(port: int, path: str = "/v1/ws") -> str:
    return f"ws://127.0.0.1:{port}{path}"
