"""Postgres password authentication: MD5 and SCRAM-SHA-256 (RFC 5802, 7677).

Pure functions; the connection sends what they return. SCRAM without channel
binding (``n,,``), as libpq does when it is not asked for it. The password
is used as UTF-8 without SASLprep normalisation, which only matters for
passwords with unusual Unicode (the same limit asyncpg had before 0.22).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from engage.errors import StoreError

SCRAM: str = "SCRAM-SHA-256"
_GS2_HEADER = "n,,"


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """The answer to AuthenticationMD5Password (``md5`` + hex digest)."""
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()


class ScramClient:
    """One SCRAM-SHA-256 exchange: :meth:`first`, :meth:`final`, :meth:`verify`."""

    def __init__(self, password: str, *, user: str = "", nonce: str | None = None) -> None:
        # Postgres takes the user from the startup message and ignores this one.
        self.password = password.encode()
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n={user},r={self.nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        """The client-first message."""
        return (_GS2_HEADER + self._first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        """The client-final message (with the proof) for the server-first one.

        Raises:
            StoreError: the server's message is malformed or its nonce is not ours.
        """
        text = server_first.decode()
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        except (KeyError, ValueError) as exc:
            raise StoreError(f"postgres: malformed SCRAM challenge {text!r}") from exc
        if not nonce.startswith(self.nonce):
            raise StoreError("postgres: SCRAM nonce mismatch")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(_GS2_HEADER.encode()).decode()},r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        """Check the server proved it knows the password too.

        Raises:
            StoreError: it did not.
        """
        text = server_final.decode()
        expected = "v=" + base64.b64encode(self._server_signature).decode()
        if not hmac.compare_digest(text.split(",")[0], expected):
            raise StoreError("postgres: the server's SCRAM signature does not match")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()
