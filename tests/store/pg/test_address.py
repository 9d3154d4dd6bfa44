"""Which Postgres URLs the native client follows, and which it leaves to asyncpg."""

from __future__ import annotations

import pytest

from engage.errors import StoreError
from engage.store.pg import PgAddress


def test_a_full_url():
    address = PgAddress.from_url(
        "postgresql://al%40ice:p%3Ass@db.example:6543/engage?sslmode=require")
    assert (address.host, address.port, address.user, address.password, address.database,
            address.sslmode) == ("db.example", 6543, "al@ice", "p:ss", "engage", "require")
    assert address.socket_path is None


def test_defaults_follow_libpq(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.setenv("PGUSER", "carol")
    address = PgAddress.from_url("postgres://")
    assert (address.host, address.port, address.user, address.database, address.sslmode,
            address.password) == ("127.0.0.1", 5432, "carol", "carol", "prefer", None)


def test_a_unix_socket_directory_as_host():
    address = PgAddress.from_url("postgresql:///engage?host=/var/run/postgresql&port=5433")
    assert address.socket_path == "/var/run/postgresql/.s.PGSQL.5433"
    assert address.database == "engage"


@pytest.mark.parametrize("url", [
    "mysql://localhost/db",
    "postgresql://a,b/db",
    "postgresql://h/db?sslcert=/c.pem",
    "postgresql://h/db?sslmode=sometimes",
    "postgresql://h:notaport/db",
])
def test_what_needs_asyncpg_is_refused(url):
    with pytest.raises(StoreError):
        PgAddress.from_url(url)
