"""Who is asking: bearer tokens (JWT) to an :class:`Identity`.

Accepted algorithms, each checked only against its own kind of key so a token
cannot choose how its signature is read (algorithm confusion):

* ``HS256``: the HMAC secrets of ``jwt_secret`` (comma-separated; all verify,
  so a secret can be rotated without a flag day);
* ``RS256`` / ``ES256``: the RSA / EC (P-256) public keys of the JWKS file
  ``jwt_jwks_file``, picked by ``kid``. The file is re-read when it changes.

Anything else, ``none`` included, is refused. See docs/security.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import jwt
from jwt.algorithms import HMACAlgorithm

from engage.domain.text import check_text
from engage.errors import ConfigError, Unauthorized, ValidationError
from engage.settings import Settings

log = logging.getLogger(__name__)

#: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
CLOCK_LEEWAY = 30.0
#: Seconds a verified token is remembered (its exp and nbf still apply on every use).
VERIFIED_TTL = 60.0
#: Most verified tokens remembered; the oldest makes room.
VERIFIED_CACHE_SIZE = 10_000
#: Seconds between two looks at the JWKS file's mtime: a stat per request
#: would be wasted work, and a rotation can wait this long to be seen.
JWKS_RECHECK_INTERVAL = 5.0
MAX_USER_ID = 128

#: The roles Engage knows; any other name in a token is ignored.
ROLES = frozenset({"user", "publisher", "moderator", "admin"})
HMAC_ALGORITHMS = frozenset({"HS256"})
#: Public-key algorithm -> the JWK key type (``kty``) that may verify it.
KEY_ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}
#: The only EC curve ES256 is defined on.
ES256_CURVE = "P-256"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user.

    Attributes:
        user: the token's ``sub``.
        roles: known roles named by the token, always including ``"user"``.
        expires_at: the token's ``exp`` (Unix seconds), ``None`` if it has none.
    """

    user: str
    roles: frozenset[str] = frozenset({"user"})
    expires_at: float | None = None

    def has(self, role: str) -> bool:
        """May this identity act as ``role``? ``admin`` may do anything; no
        other role implies another (a moderator is not a publisher)."""
        return role in self.roles or "admin" in self.roles


@dataclass(frozen=True, slots=True)
class _PublicKey:
    kid: str | None
    algorithm: str  # "RS256" or "ES256"
    key: Any  # a cryptography public key


class TokenVerifier:
    """Verifies bearer tokens against HMAC secrets and a JWKS file.

    Args:
        secrets: HS256 secrets; each one verifies.
        jwks_file: path of a JWKS (``{"keys": [...]}``) of RSA / EC public keys.
        audience: when set, tokens must carry it in ``aud``.
        issuer: when set, tokens must carry it in ``iss``.
        roles_claim: the claim holding the roles (a string or a list of strings).
        recheck_interval: seconds between checks of the JWKS file's mtime.
        clock: monotonic clock for those checks (tests replace it).

    Raises:
        ConfigError: no secret and no JWKS file, a secret that is really a
            public key or JWK, or a JWKS file that is unreadable or has no
            usable key.
    """

    def __init__(self, secrets: Sequence[str] = (), *, jwks_file: str | None = None,
                 audience: str | None = None, issuer: str | None = None,
                 roles_claim: str = "roles",
                 recheck_interval: float = JWKS_RECHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._secrets = tuple(secrets)
        for index, secret in enumerate(self._secrets, 1):
            _check_secret(index, secret)
        self._jwks_file = jwks_file or None
        self._audience = audience or None
        self._issuer = issuer or None
        self._roles_claim = roles_claim
        self._recheck_interval = recheck_interval
        self._clock = clock
        self._keys: tuple[_PublicKey, ...] = ()
        #: token -> (identity, usable from, usable until) in Unix seconds.
        self._verified: dict[str, tuple[Identity, float, float]] = {}
        self._file_stamp: tuple | None = None
        self._next_check = 0.0
        if self._jwks_file is not None:
            self._file_stamp = _stamp(self._jwks_file)
            self._keys = _load_jwks(self._jwks_file)
            self._next_check = clock() + recheck_interval
        if not self._secrets and self._jwks_file is None:
            raise ConfigError("no way to verify tokens: set jwt_secret (HS256) "
                              "and/or jwt_jwks_file (RS256 / ES256)")
        require = ["sub"]
        if self._audience:
            require.append("aud")
        if self._issuer:
            require.append("iss")
        self._options = {"require": require, "verify_aud": self._audience is not None}

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        """A verifier for ``settings``' ``jwt_*`` keys.

        Raises:
            ConfigError: see the class.
        """
        return cls(settings.jwt_secrets, jwks_file=settings.jwt_jwks_file,
                   audience=settings.jwt_audience, issuer=settings.jwt_issuer,
                   roles_claim=settings.jwt_roles_claim or "roles")

    @property
    def key_ids(self) -> list[str | None]:
        """``kid`` of each JWKS key in use (for logs and tests)."""
        self._maybe_reload()
        return [k.kid for k in self._keys]

    def verify(self, token: str) -> Identity:
        """Check a token's signature and claims and return who it names.

        A client sends the same token with every request, and checking the
        signature was a fifth of the CPU of a like: a verified token is
        remembered for :data:`VERIFIED_TTL` seconds (until a JWKS reload),
        and only its time window (``nbf``/``exp`` with the leeway) is
        checked again while it is.

        Raises:
            Unauthorized: with code ``invalid_token``, ``unknown_key``,
                ``token_expired``, ``token_not_yet_valid``, ``invalid_audience``
                or ``invalid_issuer``. The detail never repeats the token.
        """
        self._maybe_reload()
        known = self._verified.get(token)
        if known is not None:
            identity, usable_from, usable_until = known
            if usable_from <= time.time() < usable_until:
                return identity
            del self._verified[token]  # outside its window: verify again, for the error
        identity, not_before = self._verify(token)
        now = time.time()
        usable_until = now + VERIFIED_TTL
        if identity.expires_at is not None:
            usable_until = min(usable_until, identity.expires_at + CLOCK_LEEWAY)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, not_before - CLOCK_LEEWAY, usable_until)
        return identity

    def _verify(self, token: str) -> tuple[Identity, float]:
        """The full check: the identity and the token's ``nbf`` (or -inf)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("malformed token (expected a JWT: header.payload.signature)",
                               code="invalid_token") from None
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str):
            alg = None  # refused below; a list or object would not even hash
        if alg in HMAC_ALGORITHMS:
            # A kid names a JWKS key; secrets have none, so it is not looked at.
            if not self._secrets:
                raise Unauthorized("HS256 tokens are not accepted here (no jwt_secret)",
                                   code="unknown_key")
            keys: Iterable[Any] = self._secrets
        elif alg in KEY_ALGORITHMS:
            keys = [k.key for k in self._candidates(alg, kid)]
        else:
            raise Unauthorized(f"token algorithm {_shown(alg)} is not accepted "
                               f"(use HS256, RS256 or ES256)", code="invalid_token")
        claims = self._decode(token, alg, keys)
        nbf = claims.get("nbf")
        not_before = float(nbf) if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) \
            else -math.inf
        return Identity(_subject(claims), self._roles(claims), _expiry(claims)), not_before

    def parse_authorization(self, header: str | None) -> Identity | None:
        """Identity from an ``Authorization`` header; ``None`` when there is none.

        Raises:
            Unauthorized: a header is present but not a valid bearer token.
        """
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'", code="bad_authorization")
        return self.verify(token.strip())

    # -- internals ------------------------------------------------------------

    def _candidates(self, alg: str, kid: Any) -> list[_PublicKey]:
        usable = [k for k in self._keys if k.algorithm == alg]
        if not usable:
            raise Unauthorized(f"{alg} tokens are not accepted here (no {KEY_ALGORITHMS[alg]} "
                               f"key is configured)", code="unknown_key")
        if kid is None:
            return usable  # no kid: any key of the right type may have signed it
        named = [k for k in usable if k.kid == kid]
        # Keys published without a kid stay candidates for any kid.
        named = named or [k for k in usable if k.kid is None]
        if not named:
            raise Unauthorized(f"the token's key id (kid) is not among the configured "
                               f"{alg} keys", code="unknown_key")
        return named

    def _decode(self, token: str, alg: str, keys: Iterable[Any]) -> dict:
        # PyJWT checks the signature before any claim, so an expiry (or other
        # claim) error means this key signed the token: no use trying others.
        for key in keys:
            try:
                return jwt.decode(token, key, algorithms=[alg], leeway=CLOCK_LEEWAY,
                                  audience=self._audience, issuer=self._issuer,
                                  options=self._options)
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise Unauthorized("token has expired", code="token_expired") from None
            except jwt.ImmatureSignatureError:
                raise Unauthorized("token is not valid yet (nbf / iat in the future)",
                                   code="token_not_yet_valid") from None
            except jwt.InvalidAudienceError:
                raise Unauthorized("token audience (aud) is not this service",
                                   code="invalid_audience") from None
            except jwt.InvalidIssuerError:
                raise Unauthorized("token issuer (iss) is not the configured one",
                                   code="invalid_issuer") from None
            except jwt.MissingRequiredClaimError as exc:
                code = {"aud": "invalid_audience", "iss": "invalid_issuer"}.get(
                    exc.claim, "invalid_token")
                raise Unauthorized(f"token has no {exc.claim!r} claim", code=code) from None
            except jwt.InvalidTokenError as exc:
                # PyJWT's own messages can quote decoded bytes; name the kind only.
                raise Unauthorized(f"invalid token ({_describe(exc)})",
                                   code="invalid_token") from None
        raise Unauthorized("token signature does not match any configured key",
                           code="invalid_token")

    def _roles(self, claims: dict) -> frozenset[str]:
        raw = claims.get(self._roles_claim, [])
        if isinstance(raw, str):
            raw = raw.split()  # "publisher moderator", as OAuth scopes are written
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            raise Unauthorized(f"token {self._roles_claim!r} must be a string or a list "
                               f"of strings", code="invalid_token")
        # Unknown names are ignored, not refused: an identity provider may put
        # roles for other services in the same claim.
        return (frozenset(raw) & ROLES) | {"user"}

    def _maybe_reload(self) -> None:
        if self._jwks_file is None or self._clock() < self._next_check:
            return
        self._next_check = self._clock() + self._recheck_interval
        try:
            stamp = _stamp(self._jwks_file)
            if stamp == self._file_stamp:
                return
            # Remember the stamp even if loading fails, so a broken file is
            # reported once, not at every check; fixing it changes the stamp.
            self._file_stamp = stamp
            self._keys = _load_jwks(self._jwks_file)
            self._verified.clear()  # a key may be gone: nothing it signed is trusted now
        except ConfigError as exc:
            # A half-written or broken file must not lock everyone out.
            log.error("keeping the previous JWKS keys: %s", exc)
            return
        log.info("reloaded %s: key ids %s", self._jwks_file, [k.kid for k in self._keys])


# -- module-level API -----------------------------------------------------------


@lru_cache(maxsize=16)
def _verifier_for(settings: Settings) -> TokenVerifier:
    return TokenVerifier.from_settings(settings)


_last: tuple[Settings, TokenVerifier] | None = None


def verifier_for(settings: Settings) -> TokenVerifier:
    """The :class:`TokenVerifier` for ``settings``, built once per Settings.

    Raises:
        ConfigError: see :class:`TokenVerifier`.
    """
    global _last
    # Hashing a Settings hashes every field; a process has one Settings, so
    # an identity check answers nearly every call without it.
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    verifier = _verifier_for(settings)
    _last = (settings, verifier)
    return verifier


def parse_authorization(header: str | None, settings: Settings) -> Identity | None:
    """Identity from an ``Authorization`` header; ``None`` when there is none.

    Raises:
        Unauthorized: a header is present but not a valid bearer token.
        ConfigError: the token settings are unusable.
    """
    if not header:
        return None  # anonymous: no need for a verifier at all
    return verifier_for(settings).parse_authorization(header)


def verify_token(token: str, settings: Settings | str) -> Identity:
    """Check a JWT and return who it names (see :meth:`TokenVerifier.verify`).

    Args:
        token: the JWT.
        settings: the Settings; a plain ``str`` is taken as one HS256 secret,
            a convenience for tests and tools (no JWKS, audience or issuer).

    Raises:
        Unauthorized: the token is not valid.
        ConfigError: the token settings are unusable.
    """
    if isinstance(settings, str):
        return TokenVerifier([settings]).verify(token)
    return verifier_for(settings).verify(token)


def issue_token(secret: str, user: str, *, roles: list[str] | None = None,
                expires_in: float | None = 3600.0, audience: str | None = None,
                issuer: str | None = None, not_before: float | None = None) -> str:
    """Sign an HS256 token (development mode, tests and benchmarks).

    Args:
        secret: the HMAC secret (one secret, not a comma-separated list).
        user: the ``sub``.
        roles: the ``roles`` claim, if any.
        expires_in: seconds until ``exp``; ``None`` for no ``exp``.
        audience: the ``aud``, if any.
        issuer: the ``iss``, if any.
        not_before: ``nbf`` as Unix seconds, if any.
    """
    now = time.time()
    claims: dict[str, Any] = {"sub": user, "iat": int(now)}
    if roles:
        claims["roles"] = roles
    if expires_in is not None:
        claims["exp"] = int(now + expires_in)
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    if not_before is not None:
        claims["nbf"] = int(not_before)
    return jwt.encode(claims, secret, algorithm="HS256")


# -- helpers ------------------------------------------------------------------


def _check_secret(index: int, secret: str) -> None:
    # PyJWT refuses PEM / JWK-looking HMAC keys at every decode; say so once,
    # at start-up, without repeating the secret.
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except jwt.InvalidKeyError:
        raise ConfigError(f"jwt_secret #{index} looks like a public key or a JWK, not an "
                          f"HMAC secret; put public keys in jwt_jwks_file") from None


def _stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read jwt_jwks_file {path}: {exc.strerror}") from None
    # The inode changes on an atomic rename even within one mtime tick.
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _load_jwks(path: str) -> tuple[_PublicKey, ...]:
    """The usable public keys of the JWKS file at ``path``.

    Raises:
        ConfigError: unreadable, not a JWKS, a bad or private key, or no usable key.
    """
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as exc:
        raise ConfigError(f"cannot read jwt_jwks_file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"jwt_jwks_file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ConfigError(f'jwt_jwks_file {path} must be a JSON object {{"keys": [...]}}')
    keys = []
    for index, jwk in enumerate(data["keys"]):
        key = _public_key(path, index, jwk)
        if key is not None:
            keys.append(key)
    if not keys:
        raise ConfigError(f"jwt_jwks_file {path} has no usable RSA or EC (P-256) key")
    return tuple(keys)


def _public_key(path: str, index: int, jwk: Any) -> _PublicKey | None:
    where = f"jwt_jwks_file {path}, key #{index}"
    if not isinstance(jwk, dict):
        raise ConfigError(f"{where}: not a JSON object")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ConfigError(f"{where}: kid must be a string")
    kty, alg, use = jwk.get("kty"), jwk.get("alg"), jwk.get("use")
    algorithm = {"RSA": "RS256", "EC": "ES256"}.get(kty)
    if algorithm is None or (alg is not None and alg != algorithm) or use not in (None, "sig") \
            or (kty == "EC" and jwk.get("crv") != ES256_CURVE):
        # Skipped, not refused: a shared JWKS may hold keys for other services.
        log.warning("%s (kid %s): skipped, only RSA keys for RS256 and EC P-256 keys "
                    "for ES256 signatures are used", where, kid)
        return None
    if "d" in jwk:
        raise ConfigError(f"{where} (kid {kid}) holds a private key; the file must "
                          f"hold public keys only")
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
    except jwt.PyJWTError as exc:
        # Not str(exc): PyJWT quotes the whole JWK in some of its messages.
        raise ConfigError(f"{where} (kid {kid}): not a valid {kty} public key "
                          f"({type(exc).__name__})") from None
    return _PublicKey(kid, algorithm, key)


def _subject(claims: dict) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_USER_ID:
        raise Unauthorized(f"token 'sub' must be a string of 1-{MAX_USER_ID} characters",
                           code="invalid_token")
    try:  # the user id is shown as the author's name: the same text rules as a comment
        check_text(sub, "sub", max_chars=MAX_USER_ID, multiline=False)
    except ValidationError as exc:
        raise Unauthorized(f"token 'sub': {exc.detail}", code="invalid_token") from None
    return sub


def _expiry(claims: dict) -> float | None:
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _shown(alg: Any) -> str:
    """``alg`` quoted if it is short and plain, so the detail stays useful
    without repeating arbitrary attacker-chosen text."""
    if isinstance(alg, str) and len(alg) <= 16 and alg.isalnum():
        return repr(alg)
    return "(unrecognised)"


_DESCRIPTIONS: dict[type, str] = {
    jwt.DecodeError: "malformed header, payload or claim",
    jwt.InvalidIssuedAtError: "'iat' is not a number",
    jwt.InvalidAlgorithmError: "algorithm not allowed",
    jwt.exceptions.InvalidSubjectError: "'sub' is not a string",
    jwt.InvalidKeyError: "unusable key",
}


def _describe(exc: Exception) -> str:
    for kind, text in _DESCRIPTIONS.items():
        if isinstance(exc, kind):
            return text
    return type(exc).__name__
