"""Run Engage: ``python run.py [--host H] [--port P] [--config FILE]``.

This file owns the root nursery. The supervisor tree and the front door
(HTTP and WebSocket on one port, engage/ws/frontdoor.py) run side by side in it. On SIGINT or SIGTERM the HTTP server stops
first, then the supervisor stops its children in reverse order, which ends
with a final flush to Postgres.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys
from contextlib import AsyncExitStack
from functools import partial

import trio

from engage.errors import ConfigError, EngageError
from engage.gc_tuning import freeze_startup, tune_gc
from engage.workers import run_workers, stop_when_orphaned
from engage.hot import HotRoutes
from engage.http import create_app
from engage.http1 import connection_capacity, raise_descriptor_limit
from engage.settings import Settings, load_settings
from engage.system import System, build_system, open_stores
from engage.ws import FrontConfig, serve_front
from engage.ws.endpoint import handle_websocket

log = logging.getLogger("engage")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Engage real-time engagement server")
    parser.add_argument("--host", help="address to bind (default from config)")
    parser.add_argument("--port", type=int, help="port to bind (default from config)")
    parser.add_argument("--config", help="extra TOML config file")
    parser.add_argument("--workers", help="worker processes on the one port: a number, or "
                                          "auto for one per core (default from config: 1)")
    return parser.parse_args(argv)


def front_config(settings: Settings) -> FrontConfig:
    """The front door for ``settings``, its connection cap fitted to the descriptor limit."""
    pools = (settings.redis_pool_size + settings.database_pool_size
             + settings.database_hot_pool_size)
    return FrontConfig.from_settings(settings,
                                     connection_capacity(settings.max_connections, pools))


async def main(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        if settings.embedded:
            from engage.embedded import open_embedded
            settings = await stack.enter_async_context(open_embedded(settings))
        if not settings.jwt_secret:
            log.warning("ENGAGE_JWT_SECRET is not set: using a random secret for this run")
            settings = settings.replace(jwt_secret=secrets.token_urlsafe(32))
        log.debug("settings: %s", settings.redacted())  # never the raw ones: secrets
        stores = await stack.enter_async_context(open_stores(settings))
        system = build_system(settings, stores)
        app = create_app(system)
        stop = trio.Event()
        async with trio.open_nursery() as root:
            await root.start(system.supervisor.run)
            root.start_soon(_stop_on_signal, stop)
            root.start_soon(stop_when_orphaned, stop)
            server_done = trio.Event()

            async def run_server(*, task_status):
                try:
                    await serve(system, app, stop.wait, task_status=task_status)
                finally:
                    server_done.set()

            urls = await root.start(run_server)
            freeze_startup()
            url = urls[0] if urls else f"http://{settings.host}:{settings.port}"
            print(f"Engage serving on {url} (instance {system.instance_id}); "
                  f"demo page: {url}/?content=hello", flush=True)
            await server_done.wait()
            log.info("http server stopped; stopping actors")
            root.cancel_scope.cancel()


async def serve(system: System, app, shutdown_trigger, *,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """HTTP (our HTTP/1.1 server: the hot routes, then quart-trio) and WebSocket
    (``/v1/ws``) on one port."""
    await serve_front(app, front_config(system.settings), partial(handle_websocket, system),
                      routes=HotRoutes(system), shutdown_trigger=shutdown_trigger,
                      task_status=task_status)


async def _stop_on_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stop.set()
            return


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config, host=args.host, port=args.port)
        if args.workers is not None:
            if not (args.workers == "auto" or (args.workers.isdigit() and int(args.workers) >= 1)):
                raise ConfigError("--workers must be a number >= 1 or auto")
            settings = settings.replace(workers=args.workers)
    except ConfigError as exc:
        print(f"engage: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_descriptor_limit()  # one descriptor per connection: take what the system allows
    tune_gc()
    failure = None  # one line for the operator, not a nested traceback
    try:
        if settings.worker_count > 1 and not settings.reuse_port:
            run_workers(settings)  # the parent: it supervises, workers serve
        else:
            trio.run(partial(main, settings))
    except* OSError as group:  # the address is taken, not ours, or unreachable
        failure = f"cannot serve on {settings.host}:{settings.port}: {_first(group)}"
    except* EngageError as group:  # a store unreachable at start, a restart budget spent...
        failure = str(_first(group))
    if failure is not None:
        print(f"engage: {failure}", file=sys.stderr)
        return 2
    return 0


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first leaf of a (nested) exception group: the one line worth printing."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


if __name__ == "__main__":
    sys.exit(cli())
