"""Webhook signatures and retry schedule, no I/O."""

from __future__ import annotations

import json
import random

from engage.domain.webhooks import (FIRST_RETRY_DELAY, MAX_RETRY_DELAY, payload, retry_delay,
                                    sign, verify)


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
