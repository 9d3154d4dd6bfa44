"""A WebSocket message split into endless fragments: bounded in frames, time and memory.

The attack: a text frame with FIN=0, then empty continuation frames for ever.
The message never reaches the size limit and bytes keep arriving, so neither
the 1009 close nor the idle timeout applies. The server must close such a
connection (1009 for too many frames, 1008 for too slow) and its memory must
not grow with what the attacker sends.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

import pytest

from tests.security.support import live_server

pytestmark = pytest.mark.slow

MASK = b"\x01\x02\x03\x04"


def _frame(opcode: int, payload: bytes = b"", *, fin: bool) -> bytes:
    """A masked client frame (payloads here are short)."""
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + MASK + masked


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _close_code(data: bytes) -> int | None:
    """The code of the first close frame in what the server sent."""
    pos = 0
    while pos + 2 <= len(data):
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        head = 2 if n < 126 else 4
        if n == 126:
            n = struct.unpack("!H", data[pos + 2:pos + 4])[0]
        if opcode == 0x8:
            return struct.unpack("!H", data[pos + head:pos + head + 2])[0]
        pos += head + n
    return None


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _drain(sock: socket.socket, until: float) -> bytes:
    data = b""
    sock.settimeout(max(0.01, until - time.monotonic()))
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def test_a_flood_of_empty_fragments_is_cut_short_and_memory_stays_flat():
    with live_server(rate_limits="true") as server:
        pid = server.process.proc.pid
        before = _rss_kib(pid)
        empty = _frame(0x0, fin=False) * 10_000  # 60 kB of empty continuations per write
        for _ in range(20):  # one attacker after another, each trying to send 60 MB
            sock = _connect(server.url)
            sock.sendall(_frame(0x1, b"{", fin=False))
            sent = 0
            try:
                for _ in range(1000):
                    sock.sendall(empty)
                    sent += len(empty)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            sock.close()
            assert sent < 10_000_000, "the server kept reading the flood"
        grown = _rss_kib(pid) - before
        assert grown < 20 * 1024, f"RSS grew by {grown} KiB"


def test_too_many_fragments_close_with_1009():
    with live_server() as server:
        sock = _connect(server.url)
        # 65 frames: one over the default ws_max_fragments (64)
        sock.sendall(_frame(0x1, b"{", fin=False) + _frame(0x0, fin=False) * 64)
        answer = _drain(sock, time.monotonic() + 3)
        sock.close()
        assert _close_code(answer) == 1009, answer[:100]


def test_a_message_that_never_ends_is_closed_with_1008():
    with live_server(ws_max_fragments="100000", ws_message_timeout="1") as server:
        sock = _connect(server.url)
        sock.sendall(_frame(0x1, b"{", fin=False))
        started = time.monotonic()
        closed_after = None
        try:
            while time.monotonic() - started < 5:
                sock.sendall(_frame(0x0, fin=False))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
        answer = _drain(sock, time.monotonic() + 2)
        sock.close()
        assert _close_code(answer) == 1008, answer[:100]
        assert closed_after is None or closed_after < 3.0


def test_a_message_in_a_few_fragments_still_works():
    with live_server() as server:
        sock = _connect(server.url)
        text = b'{"op":"ping","ref":7}'
        parts = [text[:5], text[5:10], text[10:]]
        sock.sendall(_frame(0x1, parts[0], fin=False) + _frame(0x0, parts[1], fin=False)
                     + _frame(0x0, parts[2], fin=True))
        sock.settimeout(5)
        reply = sock.recv(4096)
        sock.close()
        assert b'"pong"' in reply and b'"ref":7' in reply
