"""FrameReader: client frames in, messages and control frames out (no I/O)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from engage.ws.reader import (Close, FrameReader, Ping, Pong, ProtocolViolation, unmask,
                              valid_close_code)

LIMIT = 64 * 1024


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None,
                 rsv: int = 0, masked: bool = True) -> bytes:
    """A client frame, built by hand so tests can also build broken ones."""
    mask = os.urandom(4) if mask is None else mask
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    flag = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, flag | n)
    elif n < 0x10000:
        head = struct.pack("!BBH", b0, flag | 126, n)
    else:
        head = struct.pack("!BBQ", b0, flag | 127, n)
    if not masked:
        return head + payload
    return head + mask + unmask(payload, mask)


def read_all(reader: FrameReader) -> list:
    out = []
    while (event := reader.next()) is not None:
        out.append(event)
    return out


def test_unmask_is_its_own_inverse_and_matches_the_definition():
    mask = b"\x01\x02\x03\x04"
    data = bytes(range(256)) * 3 + b"xyz"
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(data, mask) == expected
    assert unmask(expected, mask) == data
    assert unmask(b"", mask) == b""


def test_text_binary_and_control_frames():
    reader = FrameReader(LIMIT)
    reader.feed(client_frame(0x1, "héllo".encode()) + client_frame(0x2, b"\x00\xff")
                + client_frame(0x9, b"p") + client_frame(0xA, b"q"))
    assert read_all(reader) == ["héllo", b"\x00\xff", Ping(b"p"), Pong(b"q")]


def test_lengths_of_every_header_size():
    reader = FrameReader(LIMIT)
    for n in (0, 125, 126, 65535, 65536):
        if n > LIMIT:
            continue
        reader.feed(client_frame(0x2, b"a" * n))
        assert read_all(reader) == [b"a" * n]
    big = FrameReader(1 << 20)
    big.feed(client_frame(0x2, b"b" * 70_000))
    assert read_all(big) == [b"b" * 70_000]


def test_byte_by_byte_feeding():
    data = client_frame(0x1, b"split", fin=False) + client_frame(0x9, b"") \
        + client_frame(0x0, b" me") + client_frame(0x1, b"x" * 300)
    reader = FrameReader(LIMIT)
    events = []
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
        events += read_all(reader)
    assert events == [Ping(b""), "split me", "x" * 300]


def test_close_frames():
    reader = FrameReader(LIMIT)
    reader.feed(client_frame(0x8, struct.pack("!H", 1000) + b"bye") + client_frame(0x1, b"late"))
    assert read_all(reader) == [Close(1000, "bye")]
    assert reader.closed
    empty = FrameReader(LIMIT)
    empty.feed(client_frame(0x8, b""))
    assert read_all(empty) == [Close(1005, "")]


@pytest.mark.parametrize("data, code", [
    (client_frame(0x1, b"x", masked=False), 1002),
    (client_frame(0x1, b"x", rsv=0x40), 1002),
    (client_frame(0x3, b"x"), 1002),
    (client_frame(0xB, b"x"), 1002),
    (client_frame(0x0, b"x"), 1002),
    (client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), 1002),
    (client_frame(0x9, b"x", fin=False), 1002),
    (client_frame(0x9, b"x" * 126), 1002),
    (client_frame(0x8, b"\x03"), 1002),
    (client_frame(0x8, struct.pack("!H", 1005)), 1002),
    (client_frame(0x8, struct.pack("!H", 999)), 1002),
    (client_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
    (client_frame(0x1, b"\xc3\x28"), 1007),
])
def test_violations(data, code):
    reader = FrameReader(LIMIT)
    reader.feed(data)
    with pytest.raises(ProtocolViolation) as caught:
        read_all(reader)
    assert caught.value.code == code


def test_too_big_is_refused_from_the_header_before_the_payload_arrives():
    reader = FrameReader(1000)
    frame = client_frame(0x2, b"z" * 5000)
    reader.feed(frame[:8])  # header and mask only
    with pytest.raises(ProtocolViolation) as caught:
        reader.next()
    assert caught.value.code == 1009


def test_fragments_count_together_against_the_limit():
    reader = FrameReader(1000)
    reader.feed(client_frame(0x2, b"a" * 600, fin=False))
    assert reader.next() is None
    reader.feed(client_frame(0x0, b"b" * 600))
    with pytest.raises(ProtocolViolation) as caught:
        reader.next()
    assert caught.value.code == 1009


def test_close_code_ranges():
    assert all(valid_close_code(c) for c in (1000, 1001, 1003, 1007, 1011, 3000, 4999))
    assert not any(valid_close_code(c) for c in (0, 999, 1004, 1005, 1006, 1015, 2000, 5000))


messages = st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(messages=messages, chunk=st.integers(min_value=1, max_value=64),
       fragment=st.integers(min_value=1, max_value=50))
def test_agrees_with_wsproto_client_framing(messages, chunk, fragment):
    """Frames made by wsproto's client side parse back to the same messages,
    fragmented and fed in arbitrary chunks."""
    client = FrameProtocol(client=True, extensions=[])
    data = b""
    for message in messages:
        raw = message.encode() if isinstance(message, str) else message
        opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
        parts = [raw[i:i + fragment] for i in range(0, len(raw), fragment)] or [raw]
        for i, part in enumerate(parts):
            data += client._serialize_frame(opcode if i == 0 else Opcode.CONTINUATION,
                                            part, fin=i == len(parts) - 1)
    reader = FrameReader(LIMIT, max_fragments=300)  # up to 300 one-byte fragments
    got = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i:i + chunk])
        got += read_all(reader)
    assert got == messages


def test_a_message_in_too_many_frames_is_refused_even_when_empty():
    reader = FrameReader(LIMIT, max_fragments=4)
    reader.feed(client_frame(0x1, b"a", fin=False) + client_frame(0x0, b"", fin=False) * 3)
    assert read_all(reader) == [] and reader.fragmenting
    reader.feed(client_frame(0x0, b"", fin=False))
    with pytest.raises(ProtocolViolation) as caught:
        reader.next()
    assert caught.value.code == 1009


def test_fragments_within_the_bound_are_joined_and_the_count_resets():
    reader = FrameReader(LIMIT, max_fragments=4)
    for _ in range(3):  # the count is per message
        reader.feed(client_frame(0x1, b"ab", fin=False) + client_frame(0x0, b"cd", fin=False)
                    + client_frame(0x0, b"", fin=False) + client_frame(0x0, b"e", fin=True))
        assert read_all(reader) == ["abcde"]
        assert not reader.fragmenting
