"""Signed webhooks to local receivers: delivery, rotation, retries (500s and
refused connections), failure records, and an API a hanging receiver cannot slow."""

from __future__ import annotations

import json
import time

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from engage.domain.webhooks import verify
from tests.support import free_port

SECRETS = ["new-secret", "old-secret"]


class Receiver:
    """A site owner's endpoint on 127.0.0.1 that can be told to fail or hang."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, bytes]] = []
        self.failures_left = 0
        self.always_fail = False
        self.hang = 0.0
        self.hanging = 0  # requests held open right now

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def app(self) -> QuartTrio:
        app = QuartTrio("receiver")

        @app.post("/hook")
        async def hook():
            if self.hang:
                self.hanging += 1
                try:
                    await trio.sleep(self.hang)
                finally:
                    self.hanging -= 1
            if self.always_fail or self.failures_left > 0:
                self.failures_left -= 1
                return "down", 500
            self.received.append((request.headers.get("Engage-Signature", ""),
                                  await request.get_data()))
            return "", 204

        return app

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def unique(self) -> dict[str, dict]:
        """Events by id, as a receiver deduplicating on ``id`` keeps them."""
        return {e["id"]: e for e in self.events()}

    async def serve(self, nursery: trio.Nursery) -> None:
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        await nursery.start(serve, self.app(), config)


@pytest.fixture
def endpoints(request):
    """How many receivers the test wants (``indirect`` parametrization); 1 by default."""
    return getattr(request, "param", 1)


@pytest.fixture
def receivers(endpoints):
    return [Receiver() for _ in range(endpoints)]


@pytest.fixture
def receiver(receivers):
    return receivers[0]


@pytest.fixture
def settings(settings, receivers):
    return settings.replace(webhook_urls=",".join(r.url for r in receivers),
                            webhook_secrets=",".join(SECRETS),
                            webhook_max_attempts=3, webhook_timeout=1.0)


@pytest.fixture
async def receiving(receivers, nursery):
    for receiver in receivers:
        await receiver.serve(nursery)
    return receivers[0]


async def _until(predicate, timeout=15.0):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def test_signed_comment_created_reaches_the_receiver(receiving, client, auth):
    r = await client.post("/v1/content/w1/comments", json={"body": "hi"}, headers=auth("ann"))
    assert r.status_code == 201
    await _until(lambda: receiving.received)
    header, body = receiving.received[0]
    event = json.loads(body)
    assert event["type"] == "comment.created" and event["id"]
    assert event["data"]["comment"] == r.json() and event["data"]["content"] == "w1"
    assert event["created_at"].endswith("Z")
    assert header.count("v1=") == 2  # rotation: one per secret
    for secret in SECRETS:
        assert verify(header, body, [secret], now=time.time())
    assert not verify(header, body, ["wrong"], now=time.time())


async def test_receiver_down_for_a_while_gets_everything_once(receiving, client, auth, system):
    receiving.failures_left = 4  # the first tries fail; retries back off and then land
    ids = []
    for i in range(2):
        r = await client.post("/v1/content/w2/comments", json={"body": f"c{i}"},
                              headers=auth("ann"))
        ids.append(r.json()["id"])
    await _until(lambda: len(receiving.unique()) >= 2, timeout=30)
    await trio.sleep(1.0)  # nothing more should arrive
    assert len(receiving.received) == 2  # each exactly once
    comments = [e["data"]["comment"]["id"] for e in receiving.events()]
    assert sorted(comments) == sorted(ids)
    rows = await system.webhooks.store.deliveries()
    assert [r["status"] for r in rows] == ["delivered", "delivered"]
    assert sum(r["attempts"] for r in rows) >= 4  # the failures were recorded as attempts


async def test_a_receiver_refusing_connections_gets_everything_once_it_is_back(
        receiver, client, auth, system, nursery):
    system.webhooks.max_attempts = 10  # enough tries to outlast the outage
    ids = []
    for i in range(3):
        r = await client.post("/v1/content/w6/comments", json={"body": f"c{i}"},
                              headers=auth("ann"))
        assert r.status_code == 201
        ids.append(r.json()["id"])

    async def refused_twice():
        rows = await system.webhooks.store.deliveries()
        return len(rows) == 3 and all(r["attempts"] >= 2 for r in rows)

    with trio.fail_after(15):  # nothing listens on the port yet
        while not await refused_twice():
            await trio.sleep(0.1)
    rows = await system.webhooks.store.deliveries()
    assert {r["status"] for r in rows} == {"pending"}
    assert all(r["last_error"].startswith("ConnectError") for r in rows)

    await receiver.serve(nursery)
    await _until(lambda: len(receiver.unique()) == 3, timeout=30)
    await trio.sleep(1.0)  # nothing more should arrive
    assert len(receiver.received) == 3  # each event exactly once
    assert sorted(e["data"]["comment"]["id"] for e in receiver.events()) == sorted(ids)
    rows = await system.webhooks.store.deliveries()
    assert {r["status"] for r in rows} == {"delivered"}


@pytest.mark.parametrize("endpoints", [2], indirect=True)
async def test_every_endpoint_gets_every_event_once(receivers, receiving, client, auth,
                                                    system):
    receivers[1].failures_left = 2  # one endpoint failing does not hold up the other
    ids = []
    for i in range(4):
        r = await client.post("/v1/content/w7/comments", json={"body": f"c{i}"},
                              headers=auth("ann"))
        ids.append(r.json()["id"])
    await _until(lambda: all(len(r.unique()) == 4 for r in receivers), timeout=30)
    await trio.sleep(1.0)
    for receiver in receivers:
        assert len(receiver.received) == 4
        assert sorted(e["data"]["comment"]["id"] for e in receiver.events()) == sorted(ids)
        for header, body in receiver.received:
            assert verify(header, body, SECRETS[:1])
    assert receivers[0].unique().keys() == receivers[1].unique().keys()  # same event ids
    rows = await system.webhooks.store.deliveries()
    assert len(rows) == 8 and {r["status"] for r in rows} == {"delivered"}


async def test_gives_up_after_max_attempts_and_records_it(receiving, client, auth, system):
    receiving.always_fail = True
    await client.post("/v1/content/w3/comments", json={"body": "x"}, headers=auth("ann"))

    async def failed():
        rows = await system.webhooks.store.deliveries()
        return rows and rows[0]["status"] == "failed"

    with trio.fail_after(30):
        while not await failed():
            await trio.sleep(0.1)
    (row,) = await system.webhooks.store.deliveries()
    assert row["attempts"] == 3 and row["last_error"] == "HTTP 500"


async def test_a_hanging_receiver_does_not_slow_the_api(receiving, client, auth, system):
    system.webhooks.timeout = 20.0  # the POSTs hang for as long as the test runs
    receiving.hang = 30.0
    r = await client.post("/v1/content/w4/comments", json={"body": "first"},
                          headers=auth("ann"))
    assert r.status_code == 201
    await _until(lambda: receiving.hanging >= 1)  # a webhook POST is stuck now
    with trio.fail_after(10):
        for i in range(5):
            start = time.monotonic()
            r = await client.post("/v1/content/w4/comments", json={"body": f"{i}"},
                                  headers=auth("ann"))
            assert r.status_code == 201
            assert time.monotonic() - start < 1.0  # not waiting on the webhook
    assert receiving.hanging >= 1 and not receiving.received


async def test_content_published_is_delivered(receiving, client, token):
    headers = {"Authorization": f"Bearer {token('cms', roles=['publisher'])}"}
    r = await client.post("/v1/content", json={"content": "w5", "title": "T",
                                               "url": "https://x.example/w5", "author": "a1"},
                          headers=headers)
    assert r.status_code == 202, r.text
    await _until(lambda: any(e["type"] == "content.published" for e in receiving.events()))
    (event,) = [e for e in receiving.events() if e["type"] == "content.published"]
    assert event["data"]["id"] == "w5" and event["data"]["title"] == "T"
