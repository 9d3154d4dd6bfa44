"""Who is asking: bearer tokens (JWT, HS256) to an :class:`Identity`."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from engage.errors import Unauthorized

ALGORITHMS = ["HS256"]
#: Seconds of clock skew tolerated on ``exp`` and ``nbf``.
CLOCK_LEEWAY = 30.0
MAX_USER_ID = 128


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user."""

    user: str
    roles: frozenset[str] = frozenset({"user"})
    expires_at: float | None = None


def parse_authorization(header: str | None, secret: str) -> Identity | None:
    """Identity from an ``Authorization`` header; ``None`` when there is none.

    Raises:
        Unauthorized: a header is present but not a valid bearer token.
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", code="bad_authorization")
    return verify_token(token.strip(), secret)


def verify_token(token: str, secret) -> Identity:
    """Check a JWT's signature and time claims and return who it names.

    Raises:
        Unauthorized: bad signature, expired, malformed, or no usable ``sub``.
    """
    if not isinstance(secret, str):  # Settings
        secret = secret.jwt_secrets[0] if secret.jwt_secrets else secret.jwt_secret
    try:
        claims = jwt.decode(token, secret, algorithms=ALGORITHMS, leeway=CLOCK_LEEWAY,
                            options={"require": ["sub"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token has expired", code="token_expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_USER_ID:
        raise Unauthorized(f"token 'sub' must be a string of 1-{MAX_USER_ID} characters",
                           code="invalid_token")
    roles = claims.get("roles", ["user"])
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("token 'roles' must be a list of strings", code="invalid_token")
    exp = claims.get("exp")
    return Identity(sub, frozenset(roles) | {"user"},
                    float(exp) if isinstance(exp, (int, float)) else None)


def issue_token(secret: str, user: str, *, roles: list[str] | None = None,
                expires_in: float | None = 3600.0) -> str:
    """Sign a token (development mode, tests and benchmarks)."""
    import time
    claims: dict = {"sub": user, "iat": int(time.time())}
    if roles:
        claims["roles"] = roles
    if expires_in is not None:
        claims["exp"] = int(time.time() + expires_in)
    return jwt.encode(claims, secret, algorithm="HS256")
