"""Moderation end to end against a running server: held comments and the
queue, approve / reject / hide / restore seen live, roles, bans, removing a
user's comments, pre-moderation modes, edits re-screened, and no
notifications for comments nobody may see."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import open_websocket_url

from engage.actors import PostComment
from engage.errors import Forbidden
from tests.integration.test_notifications import _drained
from tests.integration.test_realtime import Client, ws_url
from tests.support import fetch

HOLD = "maybe, buy now"
BLOCK = "forbidden"


@pytest.fixture
def mode():
    """The moderation mode of the test's server (parametrize to change it)."""
    return "none"


@pytest.fixture
def settings(settings, mode):
    return settings.replace(moderation_mode=mode, moderation_hold_words=HOLD,
                            moderation_block_words=BLOCK)


@pytest.fixture
def mod(token):
    """Headers for the moderator ``mod``."""
    return {"Authorization": f"Bearer {token('mod', roles=['moderator'])}"}


async def _post(client, auth, user: str, content: str, body: str, status: int = 201,
                **extra) -> dict:
    r = await client.post(f"/v1/content/{content}/comments", json={"body": body, **extra},
                          headers=auth(user))
    assert r.status_code == status, r.text
    return r.json()


async def _ids(client, content: str) -> list[str]:
    r = await client.get(f"/v1/content/{content}/comments", params={"sort": "oldest"})
    assert r.status_code == 200
    return [c["id"] for c in r.json()["items"]]


async def _count(client, content: str) -> int:
    return (await client.get(f"/v1/content/{content}")).json()["comments"]


async def _act(client, mod, cid: str, action: str, status: int = 200) -> dict:
    r = await client.post(f"/v1/moderation/comments/{cid}/{action}", headers=mod)
    assert r.status_code == status, r.text
    return r.json()


async def _queue(client, mod, **params) -> dict:
    r = await client.get("/v1/moderation/queue", params=params, headers=mod)
    assert r.status_code == 200, r.text
    return r.json()


async def test_held_until_approved_then_live(server, client, auth, mod):
    with trio.fail_after(30):
        async with open_websocket_url(ws_url(server)) as ws:
            live = Client(ws)
            await live.op({"op": "subscribe", "content": "m1"})
            held = await _post(client, auth, "ann", "m1", "Maybe later?", 202)
            assert held["status"] == "held" and held["body"] == "Maybe later?"
            phrase = await _post(client, auth, "ann", "m1", "BUY, now!", 202)
            assert phrase["status"] == "held"
            clean = await _post(client, auth, "bob", "m1", "maybeish is not a hold word")
            assert clean["status"] == "visible"
            # The first comment frame is the clean one: the held ones never went out.
            assert (await live.until(type="comment"))["comment"]["id"] == clean["id"]
            assert await _ids(client, "m1") == [clean["id"]]
            assert await _count(client, "m1") == 1

            queue = await _queue(client, mod)
            assert [c["id"] for c in queue["items"]] == [held["id"], phrase["id"]]
            assert queue["items"][0]["content"] == "m1" and queue["next"] is None
            first = await _queue(client, mod, limit=1)
            assert [c["id"] for c in first["items"]] == [held["id"]] and first["next"]
            second = await _queue(client, mod, limit=1, cursor=first["next"])
            assert [c["id"] for c in second["items"]] == [phrase["id"]]
            assert second["next"] is None

            approved = await _act(client, mod, held["id"], "approve")
            assert approved["status"] == "visible" and approved["id"] == held["id"]
            frame = await live.until(type="comment")
            assert frame["comment"]["id"] == held["id"]
            assert frame["comment"]["status"] == "visible"
            assert await _ids(client, "m1") == [held["id"], clean["id"]]
            assert await _count(client, "m1") == 2

            rejected = await _act(client, mod, phrase["id"], "reject")
            assert rejected["status"] == "rejected"
            assert (await _queue(client, mod))["items"] == []
            assert await _ids(client, "m1") == [held["id"], clean["id"]]

            # Invalid transitions and unknown comments.
            for cid, action in ((held["id"], "approve"), (phrase["id"], "approve"),
                                (phrase["id"], "restore"), (clean["id"], "restore"),
                                (phrase["id"], "hide")):
                problem = await _act(client, mod, cid, action, 409)
                assert problem["code"] == "invalid_transition", (cid, action)
            assert (await _act(client, mod, "99999999", "approve", 404))["code"] == \
                "comment_not_found"
            assert (await _act(client, mod, clean["id"], "promote", 404))["code"] == "not_found"
            assert (await _act(client, mod, "abc", "hide", 400))["code"] == "invalid_comment_id"


async def test_block_words_refuse_without_storing(client, auth, mod):
    with trio.fail_after(20):
        body = "a long secret message that is FORBIDDEN here"
        r = await client.post("/v1/content/m2/comments", json={"body": body},
                              headers=auth("ann"))
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "blocked_content" and problem["status"] == 422
        assert "secret" not in problem["detail"] and "forbidden" not in problem["detail"].lower()
        await _post(client, auth, "ann", "m2", "forbiddenness is a fine word")
        assert len(await _ids(client, "m2")) == 1
        assert (await _queue(client, mod))["items"] == []


async def test_moderation_routes_need_the_role(client, auth, token, mod):
    with trio.fail_after(30):
        c = await _post(client, auth, "ann", "m3", "hello")
        routes = [("GET", "/v1/moderation/queue", None),
                  ("POST", f"/v1/moderation/comments/{c['id']}/approve", None),
                  ("POST", f"/v1/moderation/comments/{c['id']}/reject", None),
                  ("POST", f"/v1/moderation/comments/{c['id']}/hide", None),
                  ("POST", f"/v1/moderation/comments/{c['id']}/restore", None),
                  ("PUT", "/v1/moderation/bans/bob", {"seconds": 60, "reason": "x"}),
                  ("GET", "/v1/moderation/bans/bob", None),
                  ("DELETE", "/v1/moderation/bans/bob", None),
                  ("DELETE", "/v1/moderation/users/ann/comments", None)]
        for method, path, body in routes:
            r = await client.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.text)
            r = await client.request(method, path, json=body, headers=auth("ann"))
            assert r.status_code == 403 and r.json()["code"] == "missing_role", (method, path)
        # Nothing happened, and admins pass the role check.
        assert await _ids(client, "m3") == [c["id"]]
        admin = {"Authorization": f"Bearer {token('root', roles=['admin'])}"}
        assert (await client.get("/v1/moderation/queue", headers=admin)).status_code == 200
        assert (await client.get("/v1/moderation/bans/bob", headers=mod)).status_code == 404


async def test_hide_and_restore_are_seen_live_and_counted(server, client, auth, mod):
    with trio.fail_after(30):
        c = await _post(client, auth, "ann", "m4", "a visible comment")
        async with open_websocket_url(ws_url(server)) as ws:
            live = Client(ws)
            sub = await live.op({"op": "subscribe", "content": "m4"})
            assert sub["comments"] == 1
            hidden = await _act(client, mod, c["id"], "hide")
            assert hidden["status"] == "hidden"
            gone = await live.until(type="comment_deleted")
            assert gone["comment"] == {"id": c["id"], "parent": None}
            await live.until(type="counts", comments=0)
            assert await _ids(client, "m4") == [] and await _count(client, "m4") == 0
            assert (await _act(client, mod, c["id"], "hide", 409))["code"] == "invalid_transition"

            restored = await _act(client, mod, c["id"], "restore")
            assert restored["status"] == "visible"
            back = await live.until(type="comment")
            assert back["comment"]["id"] == c["id"] and back["comment"]["body"] == c["body"]
            await live.until(type="counts", comments=1)
            assert await _ids(client, "m4") == [c["id"]]

            r = await client.delete(f"/v1/comments/{c['id']}", headers=mod)
            assert r.status_code == 204
            await live.until(type="comment_deleted")
            assert (await _act(client, mod, c["id"], "restore", 409))["code"] == \
                "invalid_transition"
            assert await _count(client, "m4") == 0


async def test_bans(server, system, client, auth, token, mod, settings, stores):
    with trio.fail_after(30):
        mine = await _post(client, auth, "bob", "m5", "before the ban")
        r = await client.put("/v1/moderation/bans/bob", json={"seconds": 600, "reason": "spam"},
                             headers=mod)
        assert r.status_code == 200, r.text
        ban = r.json()
        assert ban["user"] == "bob" and ban["reason"] == "spam" and ban["by"] == "mod"
        assert (await client.get("/v1/moderation/bans/bob", headers=mod)).json() == ban
        key = f"{settings.redis_prefix}ban:bob"
        assert await stores.bridge.call(stores.redis.get, key) == b"spam"
        assert 590_000 < await stores.bridge.call(stores.redis.pttl, key) <= 600_000

        r = await client.post("/v1/content/m5/comments", json={"body": "after"},
                              headers=auth("bob"))
        assert r.status_code == 403 and r.json()["code"] == "banned"
        assert ban["until"] in r.json()["detail"]
        r = await client.patch(f"/v1/comments/{mine['id']}", json={"body": "edited"},
                               headers=auth("bob"))
        assert r.status_code == 403 and r.json()["code"] == "banned"
        assert (await client.get("/v1/content/m5/comments")).status_code == 200  # may read
        # The check is in the content actor, so every door (WebSocket too) has it.
        with pytest.raises(Forbidden) as caught:
            await system.content.ask("m5", PostComment("bob", "through the actor"))
        assert caught.value.code == "banned"
        async with open_websocket_url(ws_url(server, token=token("bob"))) as ws:
            reply = await Client(ws).op({"op": "comment", "content": "m5", "body": "ws"})
            assert reply["type"] == "error" and reply["code"] == "banned"
        assert await _ids(client, "m5") == [mine["id"]]

        for body, code in (({"seconds": 0}, "invalid_seconds"),
                           ({"seconds": "1"}, "invalid_seconds"),
                           ({"seconds": 5, "reason": 7}, "invalid_reason"),
                           ({"seconds": 5, "until": 7}, "unknown_field")):
            r = await client.put("/v1/moderation/bans/bob", json=body, headers=mod)
            assert r.status_code == 400 and r.json()["code"] == code, body

        assert (await client.delete("/v1/moderation/bans/bob", headers=mod)).status_code == 204
        r = await client.get("/v1/moderation/bans/bob", headers=mod)
        assert r.status_code == 404 and r.json()["code"] == "ban_not_found"
        assert await stores.bridge.call(stores.redis.exists, key) == 0
        await _post(client, auth, "bob", "m5", "after the ban")
        assert (await client.delete("/v1/moderation/bans/bob", headers=mod)).status_code == 204


async def test_removing_all_of_a_users_comments(server, client, auth, mod):
    with trio.fail_after(30):
        keep = await _post(client, auth, "ann", "m6", "keep me")
        spam = [await _post(client, auth, "spammer", content, "spam spam")
                for content in ("m6", "m6", "m7")]
        await _post(client, auth, "spammer", "m8", "maybe spam", 202)  # held
        async with open_websocket_url(ws_url(server)) as ws:
            live = Client(ws)
            await live.op({"op": "subscribe", "content": "m6"})
            r = await client.delete("/v1/moderation/users/spammer/comments", headers=mod)
            assert r.status_code == 200, r.text
            assert r.json() == {"user": "spammer", "deleted": 4, "contents": 3}
            gone = {(await live.until(type="comment_deleted"))["comment"]["id"]
                    for _ in range(2)}
            assert gone == {spam[0]["id"], spam[1]["id"]}
            await live.until(type="counts", comments=1)
        assert await _ids(client, "m6") == [keep["id"]] and await _ids(client, "m7") == []
        assert await _count(client, "m6") == 1 and await _count(client, "m7") == 0
        assert (await _queue(client, mod))["items"] == []
        r = await client.delete("/v1/moderation/users/spammer/comments", headers=mod)
        assert r.json()["deleted"] == 0


@pytest.mark.parametrize("mode", ["first"])
async def test_mode_first_holds_until_one_is_approved(client, auth, mod):
    with trio.fail_after(30):
        one = await _post(client, auth, "newbie", "m9", "hello", 202)
        two = await _post(client, auth, "newbie", "m9", "hello again", 202)
        assert one["status"] == two["status"] == "held"
        await _act(client, mod, one["id"], "approve")
        three = await _post(client, auth, "newbie", "m9", "trusted now")
        assert three["status"] == "visible"
        assert await _ids(client, "m9") == [one["id"], three["id"]]
        assert [c["id"] for c in (await _queue(client, mod))["items"]] == [two["id"]]
        assert (await _post(client, auth, "newbie", "m9", "maybe", 202))["status"] == "held"
        assert (await _post(client, auth, "other", "m9", "hi", 202))["status"] == "held"


@pytest.mark.parametrize("mode", ["all"])
async def test_mode_all_holds_everyone(client, auth, mod):
    with trio.fail_after(30):
        c = await _post(client, auth, "ann", "m10", "hello", 202)
        await _act(client, mod, c["id"], "approve")
        assert (await _post(client, auth, "ann", "m10", "again", 202))["status"] == "held"
        # and an edit of the approved comment goes back to the queue
        r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "changed"},
                               headers=auth("ann"))
        assert r.status_code == 202 and r.json()["status"] == "held"


async def test_only_authors_edit_moderators_may_delete(client, auth, mod, settings):
    with trio.fail_after(30):
        c = await _post(client, auth, "ann", "m11", "mine")
        for headers in (auth("bob"), mod):
            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "theirs"},
                                   headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "not_author"
        assert (await client.delete(f"/v1/comments/{c['id']}", headers=auth("bob"))).status_code \
            == 403
        assert (await client.delete(f"/v1/comments/{c['id']}", headers=mod)).status_code == 204
        assert await _ids(client, "m11") == []

        old = await _post(client, auth, "ann", "m11", "old")
        fetch(settings.database_url,
              "UPDATE comments SET created_at = now() - interval '1 day' WHERE id = $1",
              int(old["id"]))
        r = await client.delete(f"/v1/comments/{old['id']}", headers=auth("ann"))
        assert r.status_code == 403 and r.json()["code"] == "edit_window_closed"
        assert (await client.delete(f"/v1/comments/{old['id']}", headers=mod)).status_code == 204
        assert (await client.delete(f"/v1/comments/{old['id']}", headers=mod)).status_code == 404


async def test_edits_are_screened_again(server, client, auth, mod):
    with trio.fail_after(30):
        c = await _post(client, auth, "ann", "m12", "first words")
        async with open_websocket_url(ws_url(server)) as ws:
            live = Client(ws)
            await live.op({"op": "subscribe", "content": "m12"})
            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "now forbidden"},
                                   headers=auth("ann"))
            assert r.status_code == 422 and r.json()["code"] == "blocked_content"
            listed = (await client.get("/v1/content/m12/comments")).json()["items"]
            assert [x["body"] for x in listed] == ["first words"]  # not saved

            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "fine words"},
                                   headers=auth("ann"))
            assert r.status_code == 200 and r.json()["status"] == "visible"
            updated = await live.until(type="comment_updated")
            assert updated["comment"]["body"] == "fine words"

            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "maybe words"},
                                   headers=auth("ann"))
            assert r.status_code == 202 and r.json()["status"] == "held"
            gone = await live.until(type="comment_deleted")
            assert gone["comment"]["id"] == c["id"]
            await live.until(type="counts", comments=0)
            assert await _ids(client, "m12") == []
            assert [x["id"] for x in (await _queue(client, mod))["items"]] == [c["id"]]

            # A held comment stays held, whatever the new text, until a moderator decides.
            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "clean words"},
                                   headers=auth("ann"))
            assert r.status_code == 202 and r.json()["status"] == "held"
            await _act(client, mod, c["id"], "approve")
            back = await live.until(type="comment")
            assert back["comment"]["body"] == "clean words"

            await _act(client, mod, c["id"], "hide")
            await live.until(type="comment_deleted")
            r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "sneaky"},
                                   headers=auth("ann"))
            assert r.status_code == 409 and r.json()["code"] == "invalid_transition"


async def test_no_notifications_for_held_rejected_or_hidden_comments(client, auth, mod, settings,
                                                                     stores):
    with trio.fail_after(30):
        def rows():
            return fetch(settings.database_url,
                         "SELECT data FROM notifications WHERE user_id = 'ann' AND kind = 'reply'")

        async def events(kind: str) -> list[str]:
            """Ids of the comments in the event log's ``kind`` events."""
            entries = await stores.bridge.call(stores.redis.xrange, stores.events.key)
            data = [json.loads(f[b"data"]) for _, f in entries if f[b"type"] == kind.encode()]
            return [d["comment"]["id"] if "comment" in d else d["comment_id"] for d in data]

        parent = await _post(client, auth, "ann", "m13", "a question")
        held = await _post(client, auth, "bob", "m13", "maybe an answer", 202,
                           parent=parent["id"])
        rejected = await _post(client, auth, "cy", "m13", "buy now", 202, parent=parent["id"])
        await _act(client, mod, rejected["id"], "reject")
        await _drained(stores)
        assert rows() == []
        assert await events("comment.created") == [parent["id"]]

        await _act(client, mod, held["id"], "approve")  # announced now
        while len(rows()) < 1:
            await trio.sleep(0.05)
        await _act(client, mod, held["id"], "hide")
        await _act(client, mod, held["id"], "restore")
        await _drained(stores)
        assert len(rows()) == 1  # hide and restore announce nothing new
        assert await events("comment.created") == [parent["id"], held["id"]]
        assert await events("comment.deleted") == [held["id"]]  # the hide: cancels in-flight
