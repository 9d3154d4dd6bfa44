"""run.py as an operator meets it: start-up failures in one line, quick stops."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import BASE_REDIS_URL, JWT_SECRET
from tests.support import ROOT, ServerProcess, free_port, server_env

pytestmark = pytest.mark.slow


def _run_once(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_busy_port_is_one_line_and_exit_status_2(database_url, redis_prefix):
    import os
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **server_env(database_url, BASE_REDIS_URL, redis_prefix,
                                          JWT_SECRET),
               "ENGAGE_HOST": "127.0.0.1", "ENGAGE_PORT": str(port)}
        done = _run_once(env)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("engage:")]
    assert errors == [f"engage: cannot serve on 127.0.0.1:{port}: [Errno 98] Address "
                      f"already in use"], done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr


def test_an_unreachable_database_is_one_line_and_exit_status_2(redis_prefix):
    import os
    env = {**os.environ, **server_env(f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                                      BASE_REDIS_URL, redis_prefix, JWT_SECRET),
           "ENGAGE_HOST": "127.0.0.1", "ENGAGE_PORT": str(free_port())}
    done = _run_once(env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("engage: postgres: cannot connect")
    assert "Traceback" not in done.stderr


def test_sigterm_with_idle_keep_alive_connections_stops_within_a_second(database_url,
                                                                       redis_prefix):
    server = ServerProcess(server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET))
    server.start()
    idle = []
    try:
        for _ in range(5):  # answered, then kept open by the client
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            idle.append(sock)
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 1.5  # the final flush included
    finally:
        for sock in idle:
            sock.close()
