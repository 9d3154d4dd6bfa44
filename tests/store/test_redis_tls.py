"""TLS Redis (``rediss://``): pub/sub, the native counter connection and a whole
server work over it, or nothing says ready (issue 13: no silent half-start)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import trio

from engage.store.pubsub import RedisAddress, connect_pubsub
from engage.store.resp import RespConnection
from tests.support import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="openssl is needed to make a certificate")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server speaking only TLS, with a self-signed certificate for localhost."""
    where = tmp_path_factory.mktemp("redis-tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(where)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "--tls", "--cacert", str(cert), "-p", str(port),
                          "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.fail("redis-server with TLS did not start")
        time.sleep(0.1)
    yield f"rediss://localhost:{port}/0?ssl_ca_certs={cert}", port
    server.terminate()
    server.wait(10)


def test_rediss_urls_are_parsed_like_redis_py_does():
    address = RedisAddress.from_url("rediss://u:p@cache.example:6380/2?ssl_ca_certs=/ca.pem")
    assert (address.tls, address.host, address.port, address.db, address.ca_certs,
            address.verify) == (True, "cache.example", 6380, 2, "/ca.pem", True)
    relaxed = RedisAddress.from_url("rediss://h/0?ssl_cert_reqs=none")
    assert relaxed.verify is False and relaxed.check_hostname is False
    assert RedisAddress.from_url("redis://h:1/0").tls is False


async def test_the_native_connection_and_pub_sub_speak_tls(tls_redis):
    url, _ = tls_redis
    with trio.fail_after(15):
        conn = RespConnection(url)
        try:
            assert await conn.pipeline([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]
        finally:
            await conn.aclose()
        sub = await connect_pubsub(url)
        async with trio.open_nursery() as nursery:
            got = []

            async def listen():
                async for channel, data in sub.messages():
                    got.append((channel, data))
                    return

            nursery.start_soon(listen)
            await sub.subscribe(b"chan", wait=True)
            publisher = RespConnection(url)
            await publisher.pipeline([("PUBLISH", "chan", "hello")])
            await publisher.aclose()
        await sub.aclose()
        assert got == [(b"chan", b"hello")]


async def test_a_certificate_that_does_not_verify_is_refused(tls_redis):
    _, port = tls_redis
    with trio.fail_after(15):
        from engage.errors import StoreError
        untrusted = RespConnection(f"rediss://localhost:{port}/0")  # the system's CAs only
        with pytest.raises(StoreError):
            await untrusted.pipeline([("PING",)])


async def test_a_whole_server_on_tls_redis_counts_and_delivers_live(tls_redis, database_url):
    import httpx
    from trio_websocket import open_websocket_url

    from engage.auth import issue_token
    from tests.conftest import JWT_SECRET
    from tests.support import ServerProcess, server_env

    url, _ = tls_redis
    server = ServerProcess(server_env(database_url, url, "tls-test:", JWT_SECRET))
    server.start()
    try:
        with trio.fail_after(20):
            token = issue_token(JWT_SECRET, "ann")
            async with httpx.AsyncClient(base_url=server.url) as client, \
                    open_websocket_url(server.url.replace("http", "ws") + "/v1/ws") as ws:
                assert (await client.get("/readyz")).status_code == 200
                await ws.send_message('{"op":"subscribe","content":"t1","ref":1}')
                while '"subscribed"' not in await ws.get_message():
                    pass
                r = await client.post("/v1/content/t1/views")
                assert r.status_code == 202 and r.json() == {"views": 1}
                r = await client.post("/v1/content/t1/comments", json={"body": "over tls"},
                                      headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 201
                while '"over tls"' not in await ws.get_message():
                    pass  # the live comment came through pub/sub over TLS
    finally:
        server.stop()
