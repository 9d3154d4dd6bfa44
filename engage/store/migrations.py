"""Schema migrations: numbered SQL files applied once each, at start-up.

Applied versions are recorded in ``schema_migrations``. A transaction-level
advisory lock serialises concurrent starters, so several processes starting
together apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

#: Arbitrary but fixed: the advisory lock key Engage migrations hold.
MIGRATION_LOCK_KEY = 0x656E67616765  # "engage"
_NAME_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The SQL files under ``engage/store/migrations``, in version order."""
    out = []
    for entry in resources.files("engage.store").joinpath("migrations").iterdir():
        match = _NAME_RE.fullmatch(entry.name)
        if match:
            out.append(Migration(int(match[1]), match[2], entry.read_text()))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return out


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded (asyncio side). Returns those applied."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version, migration.name,
            )
            applied.append(migration.version)
    return applied
