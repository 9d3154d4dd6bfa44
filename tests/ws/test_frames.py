"""Frames built by engage.ws.frames match wsproto's encoder byte for byte."""

from __future__ import annotations

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from engage.ws.frames import (binary_frame, close_frame, ping_frame, pong_frame, text_frame)


def _wsproto(opcode: Opcode, payload: bytes) -> bytes:
    proto = FrameProtocol(client=False, extensions=[])
    return bytes(proto._serialize_frame(opcode, payload))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_data_frames_match_wsproto(size):
    data = bytes(range(256)) * (size // 256 + 1)
    assert binary_frame(data[:size]) == _wsproto(Opcode.BINARY, data[:size])
    assert text_frame("é" * size) == _wsproto(Opcode.TEXT, ("é" * size).encode())


def test_control_frames():
    assert ping_frame(b"hb") == _wsproto(Opcode.PING, b"hb")
    assert pong_frame(b"hb") == _wsproto(Opcode.PONG, b"hb")
    assert close_frame(1000, "bye") == bytes(FrameProtocol(False, []).close(1000, "bye"))
    with pytest.raises(ValueError):
        ping_frame(b"x" * 126)


def test_close_reason_is_cut_to_fit_on_a_character_boundary():
    frame = close_frame(4008, "é" * 200)
    assert len(frame) == 2 + 2 + 122  # 61 two-byte characters fit in 123 bytes
    frame[4:].decode("utf-8")  # still valid UTF-8
    assert close_frame(None) == b"\x88\x00"
