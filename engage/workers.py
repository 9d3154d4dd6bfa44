"""``run.py --workers N``: N worker processes on one port, supervised.

The parent is a small OTP-style supervisor for processes: it starts each
worker (``run.py`` again, with ``ENGAGE_WORKERS=1`` and
``ENGAGE_REUSE_PORT=true``, so each listens on the same port with
SO_REUSEPORT and the kernel spreads new connections over them), waits for
each to say it is serving, and prints one line for all. A worker that exits
while the parent is not stopping is restarted after :data:`RESTART_DELAY`,
``one_for_one``, within a budget of :data:`MAX_RESTARTS` in
:data:`RESTART_WINDOW` seconds per worker; past it the parent stops the
others and exits with status 2. On SIGTERM or SIGINT every worker gets
SIGTERM at once and runs its own graceful stop (final flush included);
one still running after the shutdown deadline is killed; a worker whose
parent is gone (even by ``kill -9``) stops by itself within a second.

Workers are instances of one service as the design draws them: they share
Redis and Postgres, and anything one applied is seen by the others (the
multi-instance tests cover that). The parent starts the embedded Postgres
and Redis once when the URLs are unset, and makes one JWT secret for all
when none is configured.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import tempfile
import subprocess
import sys
from pathlib import Path
from typing import Final

import trio
from prometheus_client import multiprocess

from engage.errors import RestartBudgetExceeded
from engage.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between a worker's exit and its restart.
RESTART_DELAY: Final = 0.5
#: Restarts of one worker allowed within RESTART_WINDOW seconds.
MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 60.0
#: Seconds a worker may take to start serving.
START_TIMEOUT: Final = 60.0
#: Seconds beyond ``shutdown_timeout`` before a stopping worker is killed.
STOP_MARGIN: Final = 5.0
SERVING: Final = "Engage serving on"
#: Seconds between a worker's checks that its parent is alive.
ORPHAN_CHECK_INTERVAL: Final = 1.0
RUN_PY: Final = Path(__file__).resolve().parent.parent / "run.py"


class Worker:
    """One worker slot: its process, restarted in place."""

    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = {**env, "ENGAGE_WORKER_INDEX": str(index)}
        self.process: trio.Process | None = None
        self.ready = trio.Event()
        self.restarts: list[float] = []

    async def run(self, pool: "WorkerPool") -> None:
        """Run the worker until the pool stops; restart it when it dies."""
        while True:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, str(RUN_PY)], env=self.env, stdout=subprocess.PIPE,
                stderr=None, start_new_session=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._relay, self.process)
                code = await self.process.wait()
            pool.forget_metrics(self.process.pid)
            if pool.stopping:
                return
            now = trio.current_time()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW] + [now]
            log.warning("worker %d (pid %d) exited with %s; restarting", self.index,
                        self.process.pid, code)
            if len(self.restarts) > MAX_RESTARTS:
                raise RestartBudgetExceeded(
                    f"worker {self.index} exited {len(self.restarts)} times in "
                    f"{RESTART_WINDOW:g} s")
            await trio.sleep(RESTART_DELAY)

    async def _relay(self, process: trio.Process) -> None:
        """Pass the worker's output on; its "serving" line marks it ready."""
        assert process.stdout is not None
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith(SERVING):
                    self.ready.set()
                else:
                    print(f"[worker {self.index}] {text}", flush=True)

    def signal(self, signum: int) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass


async def stop_when_orphaned(stop: trio.Event) -> None:
    """In a worker: set ``stop`` (a graceful stop) once the parent is gone,
    even killed with ``kill -9``, so no worker outlives its supervisor.
    Polled: ``PR_SET_PDEATHSIG`` would follow the thread that started the
    worker, and trio starts processes from threads that come and go."""
    parent = int(os.environ.get("ENGAGE_PARENT_PID", "0"))
    if not parent:
        return
    while os.getppid() == parent:
        await trio.sleep(ORPHAN_CHECK_INTERVAL)
    log.warning("the parent process %d is gone: stopping", parent)
    stop.set()


class WorkerPool:
    """The parent: N workers on one port."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.stopping = False
        self.workers: list[Worker] = []
        self.metrics_dir = ""

    async def run(self) -> None:
        settings = self.settings
        # The workers' metrics, in files that whichever worker answers a
        # scrape reads (engage/metrics.py); gone with the parent.
        self.metrics_dir = tempfile.mkdtemp(prefix="engage-metrics-")
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        try:
            await self._run_with_stores(env, settings)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def forget_metrics(self, pid: int) -> None:
        """A worker ended: its live gauges (connections, actors) no longer count;
        its counters stay in the sums."""
        multiprocess.mark_process_dead(pid, self.metrics_dir)

    async def _run_with_stores(self, env: dict[str, str], settings: Settings) -> None:
        if settings.embedded:
            from engage.embedded import open_embedded
            async with open_embedded(settings) as settings:
                await self._run(self._env(env, settings), settings)
        else:
            await self._run(self._env(env, settings), settings)

    def _env(self, env: dict[str, str], settings: Settings) -> dict[str, str]:
        env.update({"ENGAGE_WORKERS": "1", "ENGAGE_REUSE_PORT": "true",
                    "ENGAGE_PARENT_PID": str(os.getpid()),
                    "ENGAGE_HOST": settings.host, "ENGAGE_PORT": str(settings.port),
                    "ENGAGE_DATABASE_URL": settings.database_url,
                    "ENGAGE_REDIS_URL": settings.redis_url,
                    # one secret for all, or tokens would verify on one worker only
                    "ENGAGE_JWT_SECRET": settings.jwt_secret or secrets.token_urlsafe(32),
                    "PYTHONUNBUFFERED": "1"})
        if settings.dev_mode:
            env["ENGAGE_DEV_MODE"] = "true"
        return env

    async def _run(self, env: dict[str, str], settings: Settings) -> None:
        self.workers = [Worker(i, env) for i in range(self.count)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._stop_on_signal, nursery)
            async with trio.open_nursery() as workers:
                for worker in self.workers:
                    workers.start_soon(self._supervise, worker, nursery)
                with trio.fail_after(START_TIMEOUT):
                    for worker in self.workers:
                        await worker.ready.wait()
                pids = ", ".join(str(w.process.pid) for w in self.workers if w.process)
                print(f"{SERVING} http://{settings.host}:{settings.port} with {self.count} "
                      f"workers (pids {pids})", flush=True)
            nursery.cancel_scope.cancel()

    async def _supervise(self, worker: Worker, nursery: trio.Nursery) -> None:
        try:
            await worker.run(self)
        except RestartBudgetExceeded:
            self._stop_all()
            raise

    async def _stop_on_signal(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s: stopping %d workers", signal.Signals(signum).name,
                         self.count)
                self._stop_all()
                with trio.move_on_after(self.settings.shutdown_timeout + STOP_MARGIN):
                    for worker in self.workers:
                        if worker.process is not None:
                            await worker.process.wait()
                for worker in self.workers:
                    worker.signal(signal.SIGKILL)
                return

    def _stop_all(self) -> None:
        self.stopping = True
        for worker in self.workers:
            worker.signal(signal.SIGTERM)


def run_workers(settings: Settings) -> None:
    """Run ``settings.worker_count`` workers until a signal stops them.

    Raises:
        RestartBudgetExceeded: a worker kept dying.
        TooSlowError: the workers did not all start serving in time.
    """
    trio.run(WorkerPool(settings, settings.worker_count).run)
