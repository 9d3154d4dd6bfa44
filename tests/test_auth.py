"""Bearer tokens: algorithms, keys and rotation, time and audience claims, roles.

Pure unit tests: keys are made here with ``cryptography`` and JWKS files are
written to ``tmp_path``; no server is involved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from engage.auth import (CLOCK_LEEWAY, Identity, TokenVerifier, issue_token,
                         parse_authorization, verifier_for, verify_token)
from engage.errors import ConfigError, Unauthorized
from engage.settings import Settings

OLD, NEW = "old-secret-0123456789abcdef0123456789", "new-secret-0123456789abcdef0123456789"


# -- helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key2():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key, kid: str | None = None, **extra) -> dict:
    public = private_key.public_key()
    kind = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    jwk = kind.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return jwk


def write_jwks(path, *jwks: dict) -> str:
    path.write_text(json.dumps({"keys": list(jwks)}))
    return str(path)


def claims(user: str = "alice", **extra) -> dict:
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + 600, **extra}


def sign(key, alg: str, kid: str | None = None, **claim_values) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**claim_values), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(secret: bytes, payload: dict, alg="HS256", kid: str | None = None) -> str:
    """An HMAC-signed token made by hand: PyJWT refuses to sign with a PEM."""
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def refused(verifier: TokenVerifier, token: str, code: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(token)
    assert info.value.code == code, info.value.detail
    assert info.value.status == 401
    return info.value


# -- HS256 and rotation ---------------------------------------------------------


def test_hs256_old_and_new_secret_both_verify_during_rotation():
    verifier = TokenVerifier([NEW, OLD])
    assert verifier.verify(issue_token(NEW, "alice")).user == "alice"
    assert verifier.verify(issue_token(OLD, "bob")).user == "bob"
    refused(verifier, issue_token("some-other-secret-0123456789abcdef", "eve"), "invalid_token")


def test_settings_secrets_are_comma_separated():
    verifier = verifier_for(Settings(jwt_secret=f"{NEW}, {OLD}"))
    assert verifier.verify(issue_token(OLD, "alice")).user == "alice"
    assert verifier.verify(issue_token(NEW, "alice")).user == "alice"


def test_identity_carries_expiry_and_default_role():
    token = issue_token(NEW, "alice", expires_in=100)
    identity = TokenVerifier([NEW]).verify(token)
    assert identity.roles == {"user"}
    assert identity.expires_at == jwt.decode(token, NEW, algorithms=["HS256"])["exp"]
    no_exp = TokenVerifier([NEW]).verify(issue_token(NEW, "alice", expires_in=None))
    assert no_exp.expires_at is None


def test_subject_is_required_and_bounded():
    verifier = TokenVerifier([NEW])
    refused(verifier, jwt.encode({"exp": int(time.time()) + 60}, NEW, algorithm="HS256"),
            "invalid_token")
    refused(verifier, issue_token(NEW, "x" * 129), "invalid_token")
    refused(verifier, issue_token(NEW, ""), "invalid_token")


def test_malformed_tokens():
    verifier = TokenVerifier([NEW])
    for token in ("", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x"):
        refused(verifier, token, "invalid_token")


# -- RS256 / ES256 from a JWKS file -----------------------------------------------


def test_rs256_and_es256_with_kid(tmp_path, rsa_key, ec_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"), public_jwk(ec_key, "e1"))
    verifier = TokenVerifier(jwks_file=path)
    assert verifier.key_ids == ["r1", "e1"]
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"
    assert verifier.verify(sign(ec_key, "ES256", "e1", user="bob")).user == "bob"


def test_kid_picks_the_key_and_an_unknown_kid_is_refused(tmp_path, rsa_key, rsa_key2):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"), public_jwk(rsa_key2, "r2"))
    verifier = TokenVerifier(jwks_file=path)
    # Rotation: both keys verify at once.
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"
    assert verifier.verify(sign(rsa_key2, "RS256", "r2")).user == "alice"
    refused(verifier, sign(rsa_key, "RS256", "r9"), "unknown_key")
    # The right kid with the wrong key's signature is a bad signature.
    refused(verifier, sign(rsa_key2, "RS256", "r1"), "invalid_token")


def test_kidless_tokens_try_every_key_of_their_type(tmp_path, rsa_key, rsa_key2, ec_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"),
                      public_jwk(rsa_key2, "r2"), public_jwk(ec_key, "e1"))
    verifier = TokenVerifier(jwks_file=path)
    assert verifier.verify(sign(rsa_key2, "RS256")).user == "alice"
    assert verifier.verify(sign(ec_key, "ES256")).user == "alice"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(verifier, sign(other, "RS256"), "invalid_token")


def test_a_key_without_kid_serves_any_kid(tmp_path, rsa_key):
    verifier = TokenVerifier(jwks_file=write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key)))
    assert verifier.verify(sign(rsa_key, "RS256", "whatever")).user == "alice"


def test_a_missing_key_type_is_unknown_key(tmp_path, rsa_key, ec_key):
    verifier = TokenVerifier(jwks_file=write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key)))
    refused(verifier, sign(ec_key, "ES256"), "unknown_key")
    # An ES256 token naming the RSA key's kid still finds no EC key.
    verifier = TokenVerifier(jwks_file=write_jwks(tmp_path / "j2.json", public_jwk(rsa_key, "k")))
    refused(verifier, sign(ec_key, "ES256", "k"), "unknown_key")
    # No JWKS at all: public-key tokens are refused, HS256 ones still work.
    secrets_only = TokenVerifier([NEW])
    refused(secrets_only, sign(rsa_key, "RS256"), "unknown_key")
    keys_only = TokenVerifier(jwks_file=write_jwks(tmp_path / "j3.json", public_jwk(rsa_key)))
    refused(keys_only, issue_token(NEW, "alice"), "unknown_key")


def test_hs256_and_jwks_together(tmp_path, rsa_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    verifier = verifier_for(Settings(jwt_secret=NEW, jwt_jwks_file=path))
    assert verifier.verify(issue_token(NEW, "alice")).user == "alice"
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"


def test_unusable_jwks_entries_are_skipped(tmp_path, rsa_key):
    p384 = ec.generate_private_key(ec.SECP384R1())
    oct_key = {"kty": "oct", "k": b64(b"a-shared-secret-in-the-jwks-0123456789"), "kid": "h"}
    path = write_jwks(tmp_path / "jwks.json", oct_key, public_jwk(p384, "p384"),
                      public_jwk(rsa_key, "enc", use="enc"),
                      public_jwk(rsa_key, "r512", alg="RS512"), public_jwk(rsa_key, "r1"))
    verifier = TokenVerifier(jwks_file=path)
    assert verifier.key_ids == ["r1"]
    refused(verifier, sign(rsa_key, "RS256", "enc"), "unknown_key")
    # The oct key is never an HMAC secret here.
    refused(verifier, forge_hs256(b"a-shared-secret-in-the-jwks-0123456789", claims()),
            "unknown_key")


# -- algorithm confusion --------------------------------------------------------------


def test_hs256_signed_with_the_public_key_pem_is_refused(tmp_path, rsa_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = forge_hs256(pem, claims(roles=["admin"]))
    # With secrets configured, the PEM is simply not one of them ...
    refused(TokenVerifier([NEW], jwks_file=path), forged, "invalid_token")
    # ... and with none, HS256 is not accepted at all.
    refused(TokenVerifier(jwks_file=path), forged, "unknown_key")
    forged_kid = forge_hs256(pem, claims(), kid="r1")
    refused(TokenVerifier([NEW], jwks_file=path), forged_kid, "invalid_token")


def test_a_public_key_cannot_be_configured_as_a_secret(rsa_key):
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="jwt_secret #1 looks like a public key"):
        TokenVerifier([pem.decode()])


def test_alg_none_and_other_algorithms_are_refused(tmp_path, rsa_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    verifier = TokenVerifier([NEW], jwks_file=path)
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert "none" in refused(verifier, unsigned, "invalid_token").detail
    for alg in ("None", "NONE", "nOnE", ""):
        refused(verifier, forge_hs256(b"", claims(), alg=alg).rsplit(".", 1)[0] + ".",
                "invalid_token")
    refused(verifier, jwt.encode(claims(), NEW, algorithm="HS512"), "invalid_token")
    refused(verifier, jwt.encode(claims(), rsa_key, algorithm="RS512",
                                 headers={"kid": "r1"}), "invalid_token")
    refused(verifier, jwt.encode(claims(), rsa_key, algorithm="PS256",
                                 headers={"kid": "r1"}), "invalid_token")
    # alg of the wrong JSON type
    refused(verifier, forge_hs256(NEW.encode(), claims(), alg=["HS256"]), "invalid_token")


# -- time, audience and issuer -------------------------------------------------------


def test_exp_with_leeway():
    verifier = TokenVerifier([NEW])
    assert verifier.verify(issue_token(NEW, "alice", expires_in=-CLOCK_LEEWAY / 3)).user == "alice"
    refused(verifier, issue_token(NEW, "alice", expires_in=-CLOCK_LEEWAY - 60), "token_expired")


def test_nbf_with_leeway():
    verifier = TokenVerifier([NEW])
    now = time.time()
    assert verifier.verify(issue_token(NEW, "a", not_before=now + CLOCK_LEEWAY / 3)).user == "a"
    refused(verifier, issue_token(NEW, "a", not_before=now + CLOCK_LEEWAY + 60),
            "token_not_yet_valid")


def test_an_expired_token_is_expired_even_with_several_secrets():
    # The first secret fails the signature, the second finds it expired.
    refused(TokenVerifier([NEW, OLD]), issue_token(OLD, "a", expires_in=-3600), "token_expired")


def test_audience_and_issuer_are_required_when_configured():
    verifier = verifier_for(Settings(jwt_secret=NEW, jwt_audience="engage",
                                     jwt_issuer="https://id.example.com/"))

    def token(**kw):
        return issue_token(NEW, "alice", **kw)

    good = {"audience": "engage", "issuer": "https://id.example.com/"}
    assert verifier.verify(token(**good)).user == "alice"
    refused(verifier, token(audience="other", issuer=good["issuer"]), "invalid_audience")
    refused(verifier, token(issuer=good["issuer"]), "invalid_audience")
    refused(verifier, token(audience="engage", issuer="https://evil.example.com/"),
            "invalid_issuer")
    refused(verifier, token(audience="engage"), "invalid_issuer")
    many = jwt.encode(claims(aud=["other", "engage"], iss=good["issuer"]), NEW, algorithm="HS256")
    assert verifier.verify(many).user == "alice"


def test_audience_and_issuer_are_ignored_when_not_configured():
    verifier = TokenVerifier([NEW])
    assert verifier.verify(issue_token(NEW, "a", audience="x", issuer="y")).user == "a"


# -- roles ------------------------------------------------------------------------


def test_roles_list_string_and_unknown_names():
    verifier = TokenVerifier([NEW])
    assert verifier.verify(issue_token(NEW, "a", roles=["publisher", "superuser"])).roles \
        == {"user", "publisher"}
    as_string = jwt.encode(claims(roles="moderator"), NEW, algorithm="HS256")
    assert verifier.verify(as_string).roles == {"user", "moderator"}
    spaced = jwt.encode(claims(roles="moderator publisher"), NEW, algorithm="HS256")
    assert verifier.verify(spaced).roles == {"user", "moderator", "publisher"}
    for bad in (7, {"admin": True}, ["admin", 1]):
        refused(verifier, jwt.encode(claims(roles=bad), NEW, algorithm="HS256"), "invalid_token")


def test_custom_roles_claim():
    claim = "https://example.com/roles"
    verifier = verifier_for(Settings(jwt_secret=NEW, jwt_roles_claim=claim))
    token = jwt.encode(claims(**{claim: ["admin"], "roles": ["moderator"]}), NEW, algorithm="HS256")
    assert verifier.verify(token).roles == {"user", "admin"}
    assert verifier.verify(issue_token(NEW, "a", roles=["moderator"])).roles == {"user"}


def test_role_implications():
    admin = Identity("a", frozenset({"user", "admin"}))
    assert all(admin.has(r) for r in ("user", "publisher", "moderator", "admin"))
    moderator = Identity("m", frozenset({"user", "moderator"}))
    assert moderator.has("moderator") and moderator.has("user")
    assert not moderator.has("publisher") and not moderator.has("admin")
    publisher = Identity("p", frozenset({"user", "publisher"}))
    assert publisher.has("publisher") and not publisher.has("moderator")
    assert Identity("u").has("user") and not Identity("u").has("publisher")


# -- JWKS reload ------------------------------------------------------------------


def test_jwks_is_reloaded_when_the_file_changes(tmp_path, rsa_key, rsa_key2):
    now = [1000.0]
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    verifier = TokenVerifier(jwks_file=path, recheck_interval=5.0, clock=lambda: now[0])
    new_token = sign(rsa_key2, "RS256", "r2")
    refused(verifier, new_token, "unknown_key")

    write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"), public_jwk(rsa_key2, "r2"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    now[0] += 1.0  # not yet time to look again
    refused(verifier, new_token, "unknown_key")
    now[0] += 5.0
    assert verifier.verify(new_token).user == "alice"
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"

    # The old key is retired.
    write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key2, "r2"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    now[0] += 5.0
    refused(verifier, sign(rsa_key, "RS256", "r1"), "unknown_key")


def test_a_broken_jwks_update_keeps_the_previous_keys(tmp_path, rsa_key, caplog):
    now = [0.0]
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    verifier = TokenVerifier(jwks_file=path, recheck_interval=1.0, clock=lambda: now[0])
    (tmp_path / "jwks.json").write_text('{"keys": [')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    now[0] += 2.0
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"
    assert "keeping the previous JWKS keys" in caplog.text
    os.unlink(path)
    now[0] += 2.0
    assert verifier.verify(sign(rsa_key, "RS256", "r1")).user == "alice"


# -- configuration ------------------------------------------------------------------


def test_configuration_errors(tmp_path, rsa_key):
    with pytest.raises(ConfigError, match="no way to verify tokens"):
        TokenVerifier.from_settings(Settings())
    with pytest.raises(ConfigError, match="cannot read jwt_jwks_file"):
        TokenVerifier.from_settings(Settings(jwt_jwks_file=str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    for text, message in [("{not json", "not valid JSON"), ('["x"]', '"keys"'),
                          ('{"keys": []}', "no usable"), ('{"keys": [1]}', "not a JSON object"),
                          ('{"keys": [{"kty": "RSA", "n": "AQAB"}]}', "not a valid RSA")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            TokenVerifier.from_settings(Settings(jwt_secret=NEW, jwt_jwks_file=str(bad)))
    private = RSAAlgorithm.to_jwk(rsa_key, as_dict=True)
    write_jwks(bad, private)
    with pytest.raises(ConfigError, match="private key") as info:
        TokenVerifier(jwks_file=str(bad))
    assert private["d"] not in str(info.value)


def test_verifier_for_is_cached_per_settings(tmp_path):
    a = Settings(jwt_secret=NEW)
    assert verifier_for(a) is verifier_for(a)
    assert verifier_for(a) is verifier_for(Settings(jwt_secret=NEW))  # equal settings
    assert verifier_for(a) is not verifier_for(Settings(jwt_secret=OLD))


def test_module_wrappers():
    settings = Settings(jwt_secret=f"{NEW},{OLD}")
    token = issue_token(OLD, "alice", roles=["publisher"])
    assert verify_token(token, settings).roles == {"user", "publisher"}
    assert verify_token(token, OLD).user == "alice"  # a plain secret, for tests
    refused(TokenVerifier([NEW]), token, "invalid_token")
    with pytest.raises(Unauthorized):
        verify_token(token, NEW)
    assert parse_authorization(f"Bearer {token}", settings).user == "alice"
    assert parse_authorization(f"bearer  {token} ", settings).user == "alice"
    assert parse_authorization(None, settings) is None
    assert parse_authorization("", Settings()) is None  # anonymous needs no keys
    for header in ("Basic abc", "Bearer ", "Bearer"):
        with pytest.raises(Unauthorized) as info:
            parse_authorization(header, settings)
        assert info.value.code == "bad_authorization"


# -- details never leak ----------------------------------------------------------------


def test_no_detail_repeats_the_token_or_a_secret(tmp_path, rsa_key, ec_key):
    path = write_jwks(tmp_path / "jwks.json", public_jwk(rsa_key, "r1"))
    verifier = verifier_for(Settings(jwt_secret=f"{NEW},{OLD}", jwt_jwks_file=path,
                                     jwt_audience="engage", jwt_issuer="iss"))
    wrong = "wrong-secret-0123456789abcdef0123456789"
    tokens = [
        issue_token(wrong, "alice"),
        issue_token(NEW, "alice", expires_in=-3600, audience="engage", issuer="iss"),
        issue_token(NEW, "alice", not_before=time.time() + 3600, audience="engage",
                    issuer="iss"),
        issue_token(NEW, "alice", audience="nope", issuer="iss"),
        issue_token(NEW, "alice", audience="engage", issuer="nope"),
        issue_token(NEW, "alice"),
        issue_token(NEW, "x" * 500, audience="engage", issuer="iss"),
        sign(rsa_key, "RS256", "r9"),
        sign(ec_key, "ES256"),
        jwt.encode(claims(), None, algorithm="none"),
        forge_hs256(NEW.encode(), claims(), alg="<script>" * 10),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtc3ViamVjdCJ9.c2lnbmF0dXJl",
        "not-a-token-at-all-" + NEW,
    ]
    codes = set()
    for token in tokens:
        with pytest.raises(Unauthorized) as info:
            verifier.verify(token)
        detail = info.value.detail
        codes.add(info.value.code)
        assert detail and len(detail) < 200
        for part in [token, *token.split("."), NEW, OLD, wrong, "secret-subject", "<script>"]:
            if len(part) >= 8:
                assert part not in detail, (info.value.code, detail)
    assert codes == {"invalid_token", "token_expired", "token_not_yet_valid",
                     "invalid_audience", "invalid_issuer", "unknown_key"}
