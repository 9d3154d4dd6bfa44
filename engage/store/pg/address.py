"""Where Postgres is, parsed from a ``postgresql://`` URL, and how to reach it.

The native client speaks the URLs Engage is configured with: one host (a
name, an address or a Unix-socket directory, also as ``?host=``), a port,
user, password, database, and ``sslmode`` ``disable``, ``allow``,
``prefer`` (libpq's and asyncpg's default: TLS when the server offers it),
``require``, ``verify-ca`` or ``verify-full`` (with ``sslrootcert``).
Anything else (several hosts, client certificates, service files) raises
:class:`~engage.errors.StoreError`, and the caller keeps asyncpg for it.
"""

from __future__ import annotations

import getpass
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote, urlparse

import trio

from engage.errors import StoreError

#: The SSLRequest message: length 8, code 80877103.
SSL_REQUEST: Final = struct.pack("!ii", 8, 80877103)
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Query parameters understood; any other makes the URL unsupported here.
_KNOWN = {"host", "port", "user", "password", "dbname", "sslmode", "sslrootcert",
          "application_name", "connect_timeout"}


@dataclass(frozen=True)
class PgAddress:
    """One Postgres server and the session to open on it."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str | None = None
    database: str = "postgres"
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    application_name: str = "engage"

    @property
    def socket_path(self) -> str | None:
        """The Unix socket, when ``host`` is a directory (libpq's rule)."""
        if self.host.startswith("/"):
            return os.path.join(self.host, f".s.PGSQL.{self.port}")
        return None

    @classmethod
    def from_url(cls, url: str) -> "PgAddress":
        """Parse ``url``.

        Raises:
            StoreError: not a ``postgres[ql]://`` URL this client can follow.
        """
        parsed = urlparse(url)
        if parsed.scheme not in ("postgres", "postgresql"):
            raise StoreError(f"unsupported postgres url scheme {parsed.scheme!r}")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - _KNOWN
        if unknown:
            raise StoreError(f"postgres url parameters {sorted(unknown)} need asyncpg")
        netloc = parsed.netloc.rpartition("@")[2]
        if "," in netloc:
            raise StoreError("several postgres hosts need asyncpg")
        try:
            port = int(query.get("port") or parsed.port or 5432)
        except ValueError as exc:
            raise StoreError(f"bad postgres port in {url!r}") from exc
        host = query.get("host") or (unquote(parsed.hostname) if parsed.hostname else None)
        user = query.get("user") or (unquote(parsed.username) if parsed.username else None)
        user = user or os.environ.get("PGUSER") or getpass.getuser()
        password = query.get("password") or (
            unquote(parsed.password) if parsed.password else os.environ.get("PGPASSWORD"))
        database = query.get("dbname") or unquote(parsed.path.lstrip("/")) or user
        sslmode = query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"
        if sslmode not in SSL_MODES:
            raise StoreError(f"unknown sslmode {sslmode!r}")
        return cls(host=host or "127.0.0.1", port=port, user=user, password=password,
                   database=database, sslmode=sslmode, sslrootcert=query.get("sslrootcert"),
                   application_name=query.get("application_name", "engage"))

    def ssl_context(self) -> ssl.SSLContext:
        """libpq's meaning of the modes: ``require`` encrypts without checking
        the certificate; ``verify-ca`` checks it; ``verify-full`` the name too."""
        if self.sslmode in ("verify-ca", "verify-full"):
            context = ssl.create_default_context(cafile=self.sslrootcert)
            context.check_hostname = self.sslmode == "verify-full"
            return context
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    async def open_stream(self) -> trio.abc.Stream:
        """A connected stream, TLS negotiated as ``sslmode`` says.

        Raises:
            OSError, trio.BrokenResourceError: unreachable or the handshake failed.
            StoreError: the server refused TLS that ``sslmode`` requires.
        """
        path = self.socket_path
        stream: trio.abc.Stream
        if path is not None:
            return await trio.open_unix_socket(path)  # libpq never uses TLS here
        stream = await trio.open_tcp_stream(self.host, self.port)
        if self.sslmode in ("disable", "allow"):
            return stream
        try:
            await stream.send_all(SSL_REQUEST)
            answer = await stream.receive_some(1)
            if answer != b"S":
                if self.sslmode == "prefer":
                    return stream
                raise StoreError(f"postgres at {self.host}:{self.port} does not offer TLS "
                                 f"(sslmode={self.sslmode})")
            tls = trio.SSLStream(stream, self.ssl_context(), server_hostname=self.host)
            await tls.do_handshake()
            return tls
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
