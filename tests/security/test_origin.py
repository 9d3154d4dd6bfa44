"""The WebSocket upgrade's Origin check, against a real server.

A browser page may open ``/v1/ws`` only from the server's own origin or one
listed in ``allowed_origins``, compared exactly (scheme, host and port);
anything else is an HTTP 403 problem+json answer to the upgrade request,
with no ``101`` and no WebSocket. Clients that send no ``Origin`` (not
browsers) are let in. Refusals are read off a raw socket, so the test sees
exactly what the server wrote.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import trio
from trio_websocket import open_websocket_url

from tests.integration.test_realtime import Client, ws_url
from tests.security.support import TEST_TIMEOUT, token_for

GOOD = "http://good.example"
APP = "https://app.good.example:8443"


@pytest.fixture
def settings(settings):
    return settings.replace(allowed_origins=f"{GOOD}, {APP}/")


async def _upgrade(server: str, headers: list[tuple[str, str]], query: str = "") -> bytes:
    """Send an upgrade request for ``/v1/ws``; everything the server writes
    until it closes (or, after a ``101``, the head of its answer)."""
    host = server.removeprefix("http://")
    address, port = host.rsplit(":", 1)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET /v1/ws{query} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in headers)]
    stream = await trio.open_tcp_stream(address, int(port))
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return answer
            answer += chunk
            if answer.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in answer:
                return answer


def _refused(answer: bytes) -> dict:
    """The problem document of a 403 refusal (asserting it is one)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 403 Forbidden", answer
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/problem+json"
    assert "upgrade" not in headers and "sec-websocket-accept" not in headers
    assert int(headers["content-length"]) == len(body)  # and then the server closed
    problem = json.loads(body)
    assert problem["status"] == 403 and problem["code"] == "origin_not_allowed", problem
    return problem


async def _allowed(server: str, origin: str | None) -> None:
    headers = [("Origin", origin)] if origin is not None else []
    async with open_websocket_url(ws_url(server), extra_headers=headers) as ws:
        assert (await Client(ws).op({"op": "ping"}))["type"] == "pong"


def _own(server: str, scheme: str = "http") -> str:
    return f"{scheme}://{server.removeprefix('http://')}"


ALLOWED = {
    "own_origin": lambda s: _own(s),
    # Behind a TLS-terminating proxy the page is https while we see plain HTTP.
    "own_host_over_https": lambda s: _own(s, "https"),
    "listed": lambda s: GOOD,
    "listed_with_port": lambda s: APP,
    "no_origin": lambda s: None,
}

REFUSED = {
    "foreign": lambda s: "http://evil.example",
    "foreign_trailing_slash": lambda s: "http://evil.example/",
    "null": lambda s: "null",
    "scheme_mismatch": lambda s: "https://good.example",
    "scheme_mismatch_with_port": lambda s: "http://app.good.example:8443",
    "suffix_match": lambda s: "http://good.example.evil.com",
    "prefix_match": lambda s: "http://evilgood.example",
    "hyphen_prefix": lambda s: "http://evil-good.example",
    "subdomain": lambda s: "http://sub.good.example",
    "port_mismatch": lambda s: "http://good.example:8080",
    "default_port_vs_listed_port": lambda s: "https://app.good.example",
    "explicit_default_port": lambda s: "http://good.example:80",
    "userinfo_trick": lambda s: "http://good.example@evil.example",
    "path_appended": lambda s: "http://good.example/evil",
    "own_host_other_port": lambda s: "http://127.0.0.1:1",
    "own_port_other_host_name": lambda s: "http://localhost:" + s.rsplit(":", 1)[1],
    "file_scheme": lambda s: "file://",
    "empty": lambda s: "",
}


@pytest.mark.parametrize("case", list(ALLOWED))
async def test_allowed_origin(server, case):
    with trio.fail_after(TEST_TIMEOUT):
        await _allowed(server, ALLOWED[case](server))


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_origin_gets_403_before_any_websocket(server, case):
    with trio.fail_after(TEST_TIMEOUT):
        problem = _refused(await _upgrade(server, [("Origin", REFUSED[case](server))]))
        assert "allowed_origins" in problem["detail"]


async def test_a_second_origin_header_does_not_sneak_past(server):
    with trio.fail_after(TEST_TIMEOUT):
        for pair in ((GOOD, "http://evil.example"), ("http://evil.example", GOOD)):
            _refused(await _upgrade(server, [("Origin", o) for o in pair]))


async def test_the_origin_is_checked_before_the_token(server):
    """A foreign page holding a good token (even a moderator's) is refused for
    its origin; the token is not even looked at."""
    with trio.fail_after(TEST_TIMEOUT):
        token = token_for("mod", "moderator")
        _refused(await _upgrade(server, [("Origin", "http://evil.example")],
                                f"?token={token}"))
        # From an allowed origin the same request is upgraded.
        answer = await _upgrade(server, [("Origin", GOOD)], f"?token={token}")
        assert answer.startswith(b"HTTP/1.1 101"), answer


async def test_refused_upgrades_open_no_connection(server, system):
    """Refusals never reach the connection directory; an accepted upgrade does."""
    with trio.fail_after(TEST_TIMEOUT):
        for _ in range(20):
            _refused(await _upgrade(server, [("Origin", "http://evil.example")]))
            assert len(system.connections) == 0
        async with open_websocket_url(ws_url(server), extra_headers=[("Origin", GOOD)]) as ws:
            await Client(ws).op({"op": "ping"})
            assert len(system.connections) == 1
