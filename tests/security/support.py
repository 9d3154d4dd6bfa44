"""Helpers for the security tests, which run against real servers.

Most modules here ask hundreds of small questions (one parametrized test per
cell of a matrix), so rather than a server per test they share one
``run.py`` child process per module (:func:`live_server`), on a database and
Redis prefix of its own. A thread drains the child's output the whole time,
so a chatty log level cannot fill the pipe and stall it, and the tests can
read everything it printed.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import httpx

from engage.auth import issue_token
from tests.conftest import BASE_DATABASE_URL, BASE_REDIS_URL, JWT_SECRET, _database_url
from tests.support import ServerProcess, admin_execute, delete_prefix, server_env

#: Seconds any one security test may take.
TEST_TIMEOUT = 20


class LiveServer:
    """A started ``run.py`` child whose output is collected by a thread."""

    def __init__(self, process: ServerProcess, database_url: str, redis_prefix: str) -> None:
        self.process = process
        self.database_url = database_url
        self.redis_prefix = redis_prefix
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/v1/ws"

    def _drain(self) -> None:
        proc = self.process.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                self.process.output.append(line)

    def output(self) -> str:
        with self._lock:
            return "".join(self.process.output)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for the exit and for the last of the output."""
        proc = self.process.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reader.join(5)
        return proc.returncode


@contextmanager
def live_server(*, jwt_secret: str = JWT_SECRET, database_url: str | None = None,
                max_files: int | None = None, **settings: str) -> Iterator[LiveServer]:
    """A ``run.py`` child on a fresh database and Redis prefix, stopped and
    cleaned up afterwards. ``settings`` are ``ENGAGE_*`` values by setting
    name; ``database_url`` may name the fresh database differently (its last
    path segment is replaced by the new database's name); ``max_files`` sets
    the child's descriptor limit."""
    name = f"engage_test_{uuid.uuid4().hex[:12]}"
    prefix = f"engage-test-{uuid.uuid4().hex[:12]}:"
    admin_execute(BASE_DATABASE_URL, f'CREATE DATABASE "{name}"')
    url = _database_url(name)
    if database_url is not None:
        url = database_url.rpartition("/")[0] + "/" + name
    process = ServerProcess(server_env(url, BASE_REDIS_URL, prefix, jwt_secret, **settings),
                            max_files=max_files)
    server = None
    try:
        process.start()
        server = LiveServer(process, url, prefix)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.proc is not None and process.proc.poll() is None:
            process.proc.kill()  # it never said it was serving
            process.proc.wait()
        delete_prefix(BASE_REDIS_URL, prefix)
        admin_execute(BASE_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(user: str, *roles: str, **kwargs) -> str:
    """A good HS256 token for ``user`` with ``roles``."""
    return issue_token(JWT_SECRET, user, roles=list(roles) or None, **kwargs)


def _b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(user: str, *roles: str, alg: str = "none") -> str:
    """An ``alg: none`` token (no signature) claiming ``roles``."""
    claims = {"sub": user, "iat": int(time.time()), "exp": int(time.time()) + 3600}
    if roles:
        claims["roles"] = list(roles)
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."


def tampered_token(user: str, *roles: str) -> str:
    """A good token for plain ``user`` whose payload was rewritten to claim
    ``roles``, keeping the original signature."""
    header, _, signature = token_for(user).split(".")
    claims = {"sub": user, "iat": int(time.time()), "exp": int(time.time()) + 3600,
              "roles": list(roles)}
    return f"{header}.{_b64(claims)}.{signature}"


def client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=10.0)
