"""No secret leaks into the logs or into an answer.

``run.py`` runs as a child process with ``log_level = "debug"``, a
distinctive JWT secret and webhook secret, a database URL with a password
(ignored by the local trust authentication, but a secret all the same), and
webhook endpoints that fail: a closed port, a closed port behind credentials
and a query-string token, and a live receiver answering 500 (behind the same
credentials). The test then provokes what tends to get logged: bad tokens of
every kind (one signed with another secret, and the server's own secret sent
as a token) over HTTP and WebSocket, malformed and oversized bodies, 404s, and
a comment and a publish whose webhooks fail. After a graceful stop, no secret
and no bearer token sent may appear in the output, in any answer (HTTP bodies
and headers, upgrade refusals, WebSocket frames) or in what the webhook
receiver was sent; each secret is one test id.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from engage.auth import issue_token
from tests.conftest import BASE_DATABASE_URL
from tests.integration.test_realtime import Client
from tests.security.support import bearer, live_server, unsigned_token
from tests.support import free_port

JWT_SECRET = "jwt-" + secrets.token_hex(20)
WEBHOOK_SECRET = "whsec-" + secrets.token_hex(20)
OTHER_SECRET = "forger-" + secrets.token_hex(20)  # an attacker's signing secret
HOOK_PASSWORD = "hookpw" + secrets.token_hex(8)
HOOK_TOKEN = "hooktok" + secrets.token_hex(8)
#: Seconds the whole exposure may take.
EXPOSURE_TIMEOUT = 60


def _with_password(url: str) -> tuple[str, str]:
    """``url`` with a password in it (added unless it has one) and that password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    password = "s3cretpw" + secrets.token_hex(8)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


DATABASE_URL, DB_PASSWORD = _with_password(BASE_DATABASE_URL)


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that is up but failing: every POST gets a 500."""

    seen: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(str(self.headers).encode() + b"\n" + self.path.encode() + b"\n" + body)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Exposure:
    """Everything the server let out, and what it was given to keep."""

    def __init__(self) -> None:
        self.answers: list[str] = []   # HTTP bodies and headers, refusals, frames
        self.tokens: list[str] = []    # every bearer token sent
        self.output = ""
        self.received: list[bytes] = []

    def keep(self, text) -> None:
        self.answers.append(text if isinstance(text, str) else repr(text))


def _tokens() -> dict[str, str]:
    now = int(time.time())
    good = lambda user, *roles: issue_token(JWT_SECRET, user, roles=list(roles) or None)  # noqa
    return {
        "user": good("leaky"),
        "moderator": good("mod", "moderator"),
        "publisher": good("pub", "publisher"),
        "wrong_secret": issue_token(OTHER_SECRET, "root", roles=["admin"]),
        "expired": issue_token(JWT_SECRET, "root", roles=["admin"], expires_in=-3600),
        "not_yet_valid": issue_token(JWT_SECRET, "root", not_before=now + 3600),
        "alg_none": unsigned_token("root", "admin"),
        # leaky's claims under the signature of another token
        "tampered": good("leaky").rsplit(".", 1)[0] + "." + good("x", "admin").rsplit(".", 1)[1],
        "the_secret_itself": JWT_SECRET,
        "garbage": "abc." + secrets.token_hex(12) + ".def",
    }


async def _provoke(server, seen: Exposure) -> None:
    tokens = _tokens()
    seen.tokens = list(tokens.values())
    bad = [k for k in tokens if k not in ("user", "moderator", "publisher")]
    user, mod, pub = (bearer(tokens[k]) for k in ("user", "moderator", "publisher"))

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async def call(method, path, **kwargs):
            r = await http.request(method, path, **kwargs)
            seen.keep(r.text)
            seen.keep(json.dumps(dict(r.headers)))
            return r

        # Bad tokens, everywhere a token is read.
        for name in bad:
            headers = bearer(tokens[name])
            for method, path, body in (("POST", "/v1/content/s1/comments", {"body": "hi"}),
                                       ("PUT", "/v1/content/s1/like", None),
                                       ("POST", "/v1/events",
                                        {"events": [{"type": "like", "content": "s1"}]}),
                                       ("GET", "/v1/moderation/queue", None),
                                       ("PATCH", "/v1/comments/1", {"body": "x"}),
                                       ("POST", "/v1/content/s1/views", None)):
                r = await call(method, path, json=body, headers=headers)
                assert r.status_code == 401, (name, method, path, r.text)
        for header in ("Basic " + JWT_SECRET, "Bearer", "Token " + tokens["user"]):
            r = await call("PUT", "/v1/content/s1/like", headers={"Authorization": header})
            assert r.status_code == 401

        # Malformed, unknown, oversized, wrongly typed bodies; 404s; 403s.
        for method, path, kwargs, status in (
                ("POST", "/v1/content/s1/comments",
                 {"content": b'{"body": ', "headers": {"Content-Type": "application/json"}},
                 400),
                ("POST", "/v1/content/s1/applause", {"json": {"count": 1, "secret": 1}}, 400),
                ("POST", "/v1/content/s1/applause",
                 {"content": b"count=1", "headers": {"Content-Type": "text/plain"}}, 415),
                ("POST", "/v1/content/s1/comments", {"json": {"body": "x" * 70_000}}, 413),
                ("GET", "/nowhere", {}, 404),
                ("DELETE", "/v1/comments/987654321", {}, 404),
                ("POST", "/v1/moderation/comments/987654321/approve", {}, 403),
                ("POST", "/v1/content", {"json": {"content": "c", "title": "t",
                                                  "url": "https://x.example/", "author": "a"}},
                 403)):
            extra = dict(kwargs.pop("headers", {}))
            r = await call(method, path, headers={**user, **extra}, **kwargs)
            assert r.status_code == status, (method, path, r.text)
        r = await call("GET", "/v1/moderation/bans/nobody", headers=mod)
        assert r.status_code == 404

        # A comment and a publish: their webhooks fail.
        r = await call("POST", "/v1/content/s1/comments", json={"body": "hello"}, headers=user)
        assert r.status_code == 201, r.text
        r = await call("POST", "/v1/content", headers=pub,
                       json={"content": "s2", "title": "T", "url": "https://x.example/s2",
                             "author": "pub"})
        assert r.status_code == 202, r.text

    # WebSocket: refused upgrades, a bad auth op, a comment, broken frames.
    for name in bad:
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"{server.ws}?token={tokens[name]}"):
                pass
        assert refused.value.status_code == 401, name
        seen.keep(refused.value.body)
        seen.keep(refused.value.headers)
    async with open_websocket_url(f"{server.ws}?token={tokens['user']}") as ws:
        client = Client(ws)
        for name in bad:
            reply = await client.op({"op": "auth", "token": tokens[name]})
            assert reply["type"] == "error", reply
        reply = await client.op({"op": "comment", "content": "s1", "body": "over ws"})
        assert reply["type"] == "ack", reply
        await ws.send_message("{not json")
        await client.op({"op": "ping"})
        await client.op({"op": "like", "content": "s1", "token": tokens["moderator"]})
        seen.answers += [json.dumps(f) for f in client.seen]


async def _wait_for(server, text: str, count: int, timeout: float) -> None:
    with trio.move_on_after(timeout):
        while server.output().count(text) < count:
            await trio.sleep(0.1)


@pytest.fixture(scope="module")
def exposure():
    """Run the server, provoke it, stop it; what came out."""
    receiver = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    closed = free_port()  # bound and released: nothing listens there
    hooks = [f"http://127.0.0.1:{closed}/hook",
             f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{closed}/hook2?token={HOOK_TOKEN}",
             f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{receiver.server_port}/hook3"
             f"?token={HOOK_TOKEN}"]
    seen = Exposure()
    try:
        with live_server(jwt_secret=JWT_SECRET, database_url=DATABASE_URL, log_level="debug",
                         webhook_urls=",".join(hooks), webhook_secrets=WEBHOOK_SECRET,
                         webhook_max_attempts="2", webhook_timeout="2") as server:
            async def run():
                with trio.fail_after(EXPOSURE_TIMEOUT):
                    await _provoke(server, seen)
                    # Two events (comment.created, content.published; the WS
                    # comment makes a third) x three endpoints, each tried
                    # twice: wait for the final failures.
                    await _wait_for(server, "failed for good", 9, 20)
            trio.run(run)
            assert server.stop() == 0
            seen.output = server.output()
    finally:
        receiver.shutdown()
        receiver.server_close()
    seen.received = list(_Receiver.seen)
    return seen


def test_the_server_was_chatty_and_the_webhooks_failed(exposure):
    """The rest means something only if debug logging was on and the
    failures it is about were logged."""
    out = exposure.output
    assert " DEBUG " in out
    assert out.count("failed for good") >= 9, out[-5000:]
    assert "/hook2" in out and "/hook3" in out  # named, without what they hide
    assert len(exposure.received) >= 6  # the live receiver was tried: 3 events x 2
    assert len(exposure.answers) > 100


SECRETS = {
    "jwt_secret": lambda e: [JWT_SECRET],
    "webhook_secret": lambda e: [WEBHOOK_SECRET],
    "database_password": lambda e: [DB_PASSWORD],
    "webhook_url_password": lambda e: [HOOK_PASSWORD],
    "webhook_url_token": lambda e: [HOOK_TOKEN],
    "forger_secret": lambda e: [OTHER_SECRET],
    # Whole tokens, and their signatures alone (a token cut short is still a leak).
    "bearer_tokens": lambda e: [t for t in e.tokens if t != JWT_SECRET]
    + [t.rsplit(".", 1)[1] for t in e.tokens if t.count(".") == 2 and len(t.rsplit(".", 1)[1]) > 8],
}


@pytest.mark.parametrize("name", list(SECRETS))
def test_not_in_the_log(exposure, name):
    leaked = [s for s in SECRETS[name](exposure) if s in exposure.output]
    where = [line for line in exposure.output.splitlines() if any(s in line for s in leaked)]
    assert not leaked, "\n".join(where[:5])


@pytest.mark.parametrize("name", list(SECRETS))
def test_not_in_any_answer(exposure, name):
    leaked = [s for s in SECRETS[name](exposure) if any(s in a for a in exposure.answers)]
    assert not leaked, [a for a in exposure.answers if any(s in a for s in leaked)][:3]


@pytest.mark.parametrize("name", ["jwt_secret", "webhook_secret", "database_password"])
def test_not_sent_to_the_webhook_receiver(exposure, name):
    """The receiver gets a signature, never the secret that made it."""
    (secret,) = SECRETS[name](exposure)
    assert not any(secret.encode() in r for r in exposure.received)
