"""Helpers for tests: admin SQL, Redis clean-up, ports, child server processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import redis

ROOT = Path(__file__).resolve().parent.parent


def _run_asyncio(coro_fn):
    """Run an asyncio coroutine to completion on a fresh thread.

    A trio-asyncio loop may be running in this thread, so asyncio.run() here
    would refuse; a thread of its own has no loop.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def admin_execute(dsn: str, sql: str) -> None:
    """Run one statement outside any transaction (CREATE/DROP DATABASE)."""
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    _run_asyncio(go)


def fetch(dsn: str, sql: str, *args) -> list:
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return _run_asyncio(go)


def delete_prefix(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
        return len(keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str, redis_url: str, redis_prefix: str, jwt_secret: str,
               **settings: str) -> dict[str, str]:
    """Environment for a ``run.py`` child on the test's database and prefix.

    ``settings`` are more ``ENGAGE_*`` variables, by setting name
    (``flush_interval="0.3"``). Rate limits are off unless ``rate_limits="true"``:
    tests drive many clients from one address.
    """
    env = {"ENGAGE_DATABASE_URL": database_url, "ENGAGE_REDIS_URL": redis_url,
           "ENGAGE_REDIS_PREFIX": redis_prefix, "ENGAGE_JWT_SECRET": jwt_secret,
           "ENGAGE_LOG_LEVEL": "warning", "ENGAGE_RATE_LIMITS": "false"}
    env.update({f"ENGAGE_{name.upper()}": value for name, value in settings.items()})
    return env


class ServerProcess:
    """``python run.py`` as a child process, for restart and kill -9 tests."""

    def __init__(self, env: dict[str, str], port: int | None = None, *,
                 max_files: int | None = None) -> None:
        self.port = port or free_port()
        #: RLIMIT_NOFILE (soft and hard) for the child, e.g. to starve it of descriptors.
        self.max_files = max_files
        self.env = {**os.environ, **env, "ENGAGE_PORT": str(self.port),
                    "ENGAGE_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        max_files = self.max_files

        def limit_files() -> None:
            if max_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=limit_files if max_files is not None else None)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("Engage serving on"):
                return self
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output.append(out or "")
        return self.proc.returncode

    def kill(self) -> None:
        """``kill -9``: no clean-up of any kind."""
        self.stop(signal.SIGKILL)
