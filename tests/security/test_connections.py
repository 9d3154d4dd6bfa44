"""Connections an attacker holds open: the server closes them, caps them and stays reachable.

Each test runs a real ``run.py`` child. The attacker's sockets come from
other loopback addresses (127.0.0.2, 127.0.0.3...: every 127/8 address is
this machine), so the per-address cap can tell them from the honest client
on 127.0.0.1.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.security.support import live_server

pytestmark = pytest.mark.slow

#: The child's descriptor limit in the starvation tests: small enough to reach.
MAX_FILES = 400


def _open(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _read_answer(sock: socket.socket) -> bytes:
    """One whole response (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server ends the connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _healthy(url: str) -> None:
    """The honest client still gets answers, and a WebSocket."""
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200

    async def ws() -> None:
        with trio.fail_after(10):
            async with open_websocket_url(url.replace("http://", "ws://") + "/v1/ws") as conn:
                await conn.send_message('{"op":"ping","ref":1}')
                assert '"pong"' in await conn.get_message()

    trio.run(ws)


def test_the_server_closes_connections_after_their_answers():
    requests = {
        "close": b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "http10": b"GET /healthz HTTP/1.0\r\n\r\n",
        "not found, close": b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "keep-alive": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "401, keep-alive": b"PUT /v1/content/a/like HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 0\r\n\r\n",
    }
    with live_server(http_keep_alive_timeout="1") as server:
        port = _port(server.url)
        for name, request in requests.items():
            socks = [_open("127.0.0.2", port) for _ in range(20)]
            for sock in socks:
                sock.sendall(request)
                assert _read_answer(sock).startswith(b"HTTP/1.1 "), name
            started = time.monotonic()
            # Closing answers end at once; keep-alive ones after the 1 s idle timeout.
            limit = 3.0 if "keep-alive" in name else 1.0
            assert all(_closed_by_server(s, limit) for s in socks), name
            if "keep-alive" in name:
                assert time.monotonic() - started > 0.5, "closed before the idle timeout"
            for sock in socks:
                sock.close()
        _healthy(server.url)


def test_an_attacker_holding_connections_cannot_starve_the_server_of_descriptors():
    """With 400 descriptors, one address opening 600 connections and keeping
    them gets its cap's worth; the rest are answered 429 and closed; the
    honest client is served throughout and no accept ever fails."""
    with live_server(max_files=MAX_FILES, max_connections_per_ip="100",
                     http_keep_alive_timeout="30") as server:
        port = _port(server.url)
        held, refused = [], 0
        for _ in range(600):
            sock = _open("127.0.0.2", port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_answer(sock)
            if answer.startswith(b"HTTP/1.1 200"):
                held.append(sock)  # answered; the attacker keeps it open
            else:
                assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
                assert b'"too_many_connections"' in answer
                assert _closed_by_server(sock, 2.0)
                refused += 1
                sock.close()
        assert len(held) == 100 and refused == 500
        _healthy(server.url)
        for sock in held:
            sock.close()
        log = server.output()
    assert "Too many open files" not in log
    assert "accept failing" not in log


def test_a_flood_beyond_the_descriptor_limit_is_refused_cleanly():
    """No per-address cap: the process cap (fitted below 400 descriptors)
    answers 503 instead of running out; once the flood ends, all is well."""
    with live_server(max_files=MAX_FILES, max_connections_per_ip="0",
                     http_keep_alive_timeout="30") as server:
        port = _port(server.url)
        socks, full = [], 0
        for i in range(MAX_FILES):
            sock = _open(f"127.0.0.{2 + i % 50}", port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_answer(sock)
            if answer.startswith(b"HTTP/1.1 503"):
                assert b'"server_full"' in answer
                full += 1
                sock.close()
            else:
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                socks.append(sock)
        assert full > 0 and socks
        assert len(socks) + full == MAX_FILES
        for sock in socks:
            sock.close()
        time.sleep(0.5)
        _healthy(server.url)
        log = server.output()
    assert "Too many open files" not in log


def test_conflicting_framing_is_refused_and_nothing_behind_it_is_answered():
    smuggled = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    with live_server() as server:
        sock = _open("127.0.0.1", _port(server.url))
        sock.sendall(smuggled)
        everything = b""
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            everything += chunk
        sock.close()
    assert everything.startswith(b"HTTP/1.1 400 Bad Request")
    assert everything.count(b"HTTP/1.1 ") == 1, everything
    assert b"connection: close" in everything.lower()
    assert b"application/problem+json" in everything
