"""Three ``run.py`` instances behind real nginx, configured by deploy/nginx/engage.conf.

The test fills in the ports (and serves plain HTTP: TLS termination is
nginx's own business). Clients connect from other loopback addresses
(127.0.0.2, ...) so that the address Engage sees can be told apart from
nginx's (127.0.0.1, the one trusted proxy).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import BASE_REDIS_URL
from tests.support import ROOT, ServerProcess, free_port, server_env

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = ROOT / "deploy" / "nginx" / "engage.conf"
JWT_SECRET = "nginx-secret-nginx-secret-nginx-0123"


def _site(ports: list[int], listen: int) -> str:
    """deploy/nginx/engage.conf with our instances, our port, and no TLS."""
    text = CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in ports)
    text, n = re.subn(r"(    server 10\.0\.0\.\d+:8080[^\n]*\n)+", servers, text)
    assert n == 2, "the upstream blocks of deploy/nginx/engage.conf changed shape"
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen};")
    return "\n".join(line for line in text.splitlines() if "ssl_certificate" not in line)


def _nginx_conf(tmp: Path, site: str) -> str:
    temp = " ".join(f"{kind}_temp_path {tmp}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"daemon off; worker_processes 1; pid {tmp}/nginx.pid;\n"
            f"error_log {tmp}/error.log warn;\n"
            f"events {{ worker_connections 4096; }}\n"
            f"http {{ access_log off; {temp}\n{site}\n}}\n")


@pytest.fixture
def nginx_front(database_url, redis_prefix, tmp_path):
    """Three instances and nginx in front; yields nginx's URL."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed (scripts/test installs it when run as root)")
    env = server_env(database_url, BASE_REDIS_URL, redis_prefix, JWT_SECRET,
                     trusted_proxies="127.0.0.1", rate_limits="true",
                     rate_ip="2/60s burst 2", max_connections_per_ip="0")
    instances = [ServerProcess(env).start() for _ in range(3)]
    port = free_port()
    (tmp_path / "nginx.conf").write_text(
        _nginx_conf(tmp_path, _site([i.port for i in instances], port)))
    nginx = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert nginx.poll() is None, nginx.stdout.read().decode()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(10)
        for instance in instances:
            instance.stop()


def _from(address: str, url: str) -> httpx.Client:
    """A client whose connections come from ``address`` (a loopback alias)."""
    return httpx.Client(base_url=url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


def _token(user: str) -> str:
    from engage.auth import issue_token
    return issue_token(JWT_SECRET, user, expires_in=600)


def test_http_and_websocket_through_nginx_with_the_clients_address(nginx_front):
    url = nginx_front
    instances = set()
    for _ in range(12):  # round robin over the upstream
        with _from("127.0.0.5", url) as client:
            instances.add(client.get("/healthz").json()["instance"])
    assert len(instances) == 3

    # Engage keys its per-address limit on the client behind nginx, not on
    # nginx: 127.0.0.2 runs out (2 per minute) while 127.0.0.3 does not.
    with _from("127.0.0.2", url) as client:
        codes = [client.post("/v1/content/xff/views").status_code for _ in range(4)]
    assert codes[:2] == [202, 202] and 429 in codes[2:], codes
    with _from("127.0.0.3", url) as client:
        assert client.post("/v1/content/xff/views").status_code == 202

    async def live_comment() -> dict:
        ws_url = url.replace("http://", "ws://") + "/v1/ws"
        with trio.fail_after(20):
            return await _subscribe_and_post(ws_url)

    async def _subscribe_and_post(ws_url: str) -> dict:
        async with open_websocket_url(ws_url) as ws:
            await ws.send_message(json.dumps({"op": "subscribe", "content": "behind"}))
            while json.loads(await ws.get_message())["type"] != "subscribed":
                pass
            with _from("127.0.0.6", url) as client:
                r = await trio.to_thread.run_sync(lambda: client.post(
                    "/v1/content/behind/comments", json={"body": "through nginx"},
                    headers={"Authorization": f"Bearer {_token('poster')}"}))
            assert r.status_code == 201, r.text
            while (frame := json.loads(await ws.get_message()))["type"] != "comment":
                pass
            return frame

    frame = trio.run(live_comment)
    assert frame["comment"]["body"] == "through nginx"
