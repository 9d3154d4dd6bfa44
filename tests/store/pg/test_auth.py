"""Password answers of the native Postgres client, against published vectors."""

from __future__ import annotations

import hashlib

import pytest

from engage.errors import StoreError
from engage.store.pg.auth import ScramClient, md5_password

# RFC 7677, section 3: user "user", password "pencil".
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_matches_the_rfc_7677_exchange():
    client = ScramClient("pencil", user="user", nonce=CLIENT_NONCE)
    assert client.first() == b"n,,n=user,r=" + CLIENT_NONCE.encode()
    assert client.final(SERVER_FIRST) == CLIENT_FINAL
    client.verify(SERVER_FINAL)


def test_scram_refuses_a_server_that_does_not_know_the_password():
    client = ScramClient("pencil", user="user", nonce=CLIENT_NONCE)
    client.final(SERVER_FIRST)
    with pytest.raises(StoreError, match="signature"):
        client.verify(b"v=AAAATRBi23WpRR/wcaZnhjSd24Xl9fr4smkE+L2AN5w=")


def test_scram_refuses_a_nonce_that_is_not_an_extension_of_ours():
    client = ScramClient("pencil", nonce="mine")
    with pytest.raises(StoreError, match="nonce"):
        client.final(b"r=theirs,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    with pytest.raises(StoreError, match="malformed"):
        client.final(b"r=mine-more,i=4096")


def test_md5_is_postgres_double_hash():
    inner = hashlib.md5(b"secretalice").hexdigest()
    expected = b"md5" + hashlib.md5(inner.encode() + b"\x01\x02\x03\x04").hexdigest().encode()
    assert md5_password("alice", "secret", b"\x01\x02\x03\x04") == expected
