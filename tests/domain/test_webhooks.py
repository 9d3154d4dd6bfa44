"""Webhook signatures and retry schedule, no I/O."""

from __future__ import annotations

import json
import random
import time

from engage.domain.webhooks import (DEFAULT_TOLERANCE, FIRST_RETRY_DELAY, MAX_RETRY_DELAY,
                                    payload, redact_url, retry_delay, sign, verify)


def test_signature_verifies_and_rejects_tampering():
    body = payload("comment.created", "1-0", 1_700_000_000.5, {"x": 1})
    assert json.loads(body) == {"type": "comment.created", "id": "1-0",
                                "created_at": "2023-11-14T22:13:20.500Z", "data": {"x": 1}}
    header = sign(body, ["s1"], 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and header.count("v1=") == 1
    assert verify(header, body, ["s1"], now=1_700_000_010)
    assert not verify(header, body + b" ", ["s1"], now=1_700_000_010)
    assert not verify(header, body, ["other"], now=1_700_000_010)
    assert not verify(header, body, ["s1"], now=1_700_001_000)  # too old
    assert not verify("garbage", body, ["s1"], now=1_700_000_000)
    assert not verify("t=\u00b2," + header.split(",", 1)[1], body, ["s1"], now=2)  # not ASCII


def test_rotation_signs_with_every_secret():
    body = b'{"a":1}'
    header = sign(body, ["new", "old"], 100)
    assert header.count("v1=") == 2
    assert verify(header, body, ["old"], now=100)  # a receiver not yet rotated
    assert verify(header, body, ["new"], now=100)  # one already rotated
    assert sign(body, ["new"], 100) in header  # the first secret signs as usual


def test_retry_delay_grows_with_jitter_and_is_capped():
    rng = random.Random(1)
    first = [retry_delay(1, jitter=rng) for _ in range(50)]
    assert all(FIRST_RETRY_DELAY / 2 <= d <= FIRST_RETRY_DELAY for d in first)
    assert len(set(first)) > 40  # jittered
    assert all(8 <= retry_delay(5, jitter=rng) <= 16 for _ in range(20))
    assert all(retry_delay(40, jitter=rng) <= MAX_RETRY_DELAY for _ in range(20))


def test_verify_as_a_receiver_calls_it():
    body = b'{"type":"comment.created"}'
    now = int(time.time())
    header = sign(body, ["s1", "s0"], now)
    assert verify(header, body, ["s0"], 60)  # positional tolerance, the real clock
    assert verify(header.replace(",", ", "), body, ["s1"])  # spaces after commas
    assert not verify(sign(body, ["s1"], now - 120), body, ["s1"], 60)
    assert verify(sign(body, ["s1"], now - 120), body, ["s1"])  # DEFAULT_TOLERANCE
    assert DEFAULT_TOLERANCE >= 120
    assert not verify(header, body, [])
    assert not verify("t=1,t=2,v1=ab", body, ["s1"], now=1)  # one timestamp only
    assert not verify(f"t={now}", body, ["s1"])  # no signature at all


def test_redact_url_keeps_no_credentials_or_query():
    assert redact_url("https://user:pw@hooks.example.com:8443/in?token=abc#x") == \
        "https://hooks.example.com:8443/in"
    assert redact_url("http://127.0.0.1/hook") == "http://127.0.0.1/hook"
