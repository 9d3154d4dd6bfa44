"""Reference server for bench/http_load.py: Starlette on uvicorn (uvloop, httptools), one worker.

The same three HTTP routes as Engage's hot path, done the plainest fast way in
Python, so the benchmark has a yardstick:

* ``POST /v1/content/{id}/views``: ``HINCRBY <prefix>content:{id} views 1``,
  202 ``{"views": n}``
* ``GET /v1/content/{id}``: ``HGETALL``, 200 ``{"content": id, "views": v,
  "likes": l, "applause": a}``
* ``GET /healthz``: 200 ``{"status": "ok"}``

No auth, no validation, no Postgres, no fan-out: a floor for what one Python
process answering over Redis costs, not a competitor to Engage's feature set.

    .venv/bin/python bench/http_reference.py --port 18090 \\
        --redis redis://127.0.0.1:6379/0 --prefix ref-bench:

It prints ``reference serving on http://HOST:PORT`` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app(redis_url: str, prefix: str, pool_size: int = 50) -> Starlette:
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=pool_size)
        client = aioredis.Redis(connection_pool=pool)
        await client.ping()
        state["redis"] = client
        try:
            yield
        finally:
            await client.aclose()
            await pool.aclose()

    def key(content_id: str) -> str:
        return f"{prefix}content:{content_id}"

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def view(request: Request) -> JSONResponse:
        content_id = request.path_params["content_id"]
        views = await state["redis"].hincrby(key(content_id), "views", 1)
        return JSONResponse({"views": views}, status_code=202)

    async def counts(request: Request) -> JSONResponse:
        content_id = request.path_params["content_id"]
        raw = await state["redis"].hgetall(key(content_id))
        return JSONResponse({"content": content_id,
                             "views": int(raw.get(b"views", 0)),
                             "likes": int(raw.get(b"likes", 0)),
                             "applause": int(raw.get(b"applause", 0))})

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/content/{content_id}/views", view, methods=["POST"]),
        Route("/v1/content/{content_id}", counts, methods=["GET"]),
    ], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="ref-bench:")
    parser.add_argument("--pool-size", type=int, default=50, help="Redis connections at most")
    args = parser.parse_args()
    app = create_app(args.redis, args.prefix, args.pool_size)
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop",
                            http="httptools", workers=1, log_level="warning",
                            access_log=False, lifespan="on", backlog=4096)
    server = uvicorn.Server(config)

    # Say so once the socket listens (uvicorn's own line is at info level, off here).
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        print(f"reference serving on http://{args.host}:{args.port}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
