"""The upgrade check and the 101 reply (RFC 6455 section 4.2), unit and over a socket."""

from __future__ import annotations

import json

import pytest
import trio

from engage.ws.handshake import UpgradeRefused, accept_response, check_upgrade, parse_head
from tests.ws.support import TEST_TIMEOUT, serving
from tests.ws.test_transport import echo

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


def _head(*lines: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} /v1/ws?x=1 HTTP/1.1", *lines]).encode()


GOOD = ("Host: example.test", "Upgrade: websocket", "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13")


def test_the_accept_key_is_rfc_6455s_example():
    reply = accept_response(KEY, None)
    assert reply.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in reply
    assert reply.endswith(b"\r\n\r\n") and b"Sec-WebSocket-Protocol" not in reply
    assert b"Sec-WebSocket-Protocol: engage.json\r\n" in accept_response(KEY, "engage.json")


def test_a_good_upgrade():
    upgrade = check_upgrade(parse_head(_head(*GOOD, "Sec-WebSocket-Protocol: a, b ,c")))
    assert upgrade.target == "/v1/ws?x=1"
    assert upgrade.key == KEY
    assert upgrade.subprotocols == ("a", "b", "c")


@pytest.mark.parametrize("lines, method, status, text", [
    (GOOD, "POST", 400, "GET"),
    (GOOD[1:], "GET", 400, "Host"),
    (GOOD[:4], "GET", 426, "Sec-WebSocket-Version"),
    ((*GOOD[:4], "Sec-WebSocket-Version: 8"), "GET", 426, "13"),
    ((*GOOD[:3], *GOOD[4:]), "GET", 400, "Sec-WebSocket-Key"),
    ((*GOOD[:3], "Sec-WebSocket-Key: c2hvcnQ=", *GOOD[4:]), "GET", 400, "16 bytes"),
    ((*GOOD[:3], "Sec-WebSocket-Key: not base64!", *GOOD[4:]), "GET", 400, "16 bytes"),
])
def test_refusals(lines, method, status, text):
    with pytest.raises(UpgradeRefused) as refused:
        check_upgrade(parse_head(_head(*lines, method=method)))
    assert refused.value.status == status
    assert text in str(refused.value)
    if status == 426:
        assert refused.value.headers == (("Sec-WebSocket-Version", "13"),)


async def _exchange(port: int, head: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head + b"\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(4096):
            data += chunk
            if b"\r\n\r\n" in data and data.startswith(b"HTTP/1.1 101"):
                break
        return data


async def test_over_a_socket_an_old_version_gets_426_and_a_good_key_its_accept():
    with trio.fail_after(TEST_TIMEOUT):
        async with serving(echo) as port:
            refused = await _exchange(port, _head(*GOOD[:4], "Sec-WebSocket-Version: 8"))
            head, _, body = refused.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 426 ")
            assert b"sec-websocket-version: 13" in head.lower()
            assert json.loads(body)["code"] == "bad_upgrade"
            accepted = await _exchange(port, _head(*GOOD))
            assert accepted.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in accepted
