"""Comments through HTTP: durable, threaded, paginated, editable in a window."""

from __future__ import annotations

import trio

from tests.support import fetch


async def test_post_list_thread_and_paginate(client, auth):
    with trio.fail_after(30):
        ids = []
        for i in range(5):
            r = await client.post("/v1/content/t1/comments", json={"body": f"top {i}"},
                                  headers=auth(f"u{i}"))
            assert r.status_code == 201, r.text
            c = r.json()
            assert set(c) == {"id", "author", "body", "parent", "created_at", "edited_at",
                              "status"}
            assert c["status"] == "visible"
            assert c["author"] == f"u{i}" and c["parent"] is None and c["edited_at"] is None
            ids.append(c["id"])
        r1 = (await client.post("/v1/content/t1/comments", json={"body": "re", "parent": ids[1]},
                                headers=auth("x"))).json()
        r2 = (await client.post("/v1/content/t1/comments", json={"body": "re re", "parent": r1["id"]},
                                headers=auth("y"))).json()
        assert r2["parent"] == r1["id"]

        page = (await client.get("/v1/content/t1/comments?limit=2")).json()
        assert [c["body"] for c in page["items"]] == ["top 4", "top 3"]
        assert page["next"]
        page2 = (await client.get(f"/v1/content/t1/comments?limit=2&cursor={page['next']}")).json()
        assert [c["body"] for c in page2["items"]] == ["top 2", "top 1"]
        assert [r["body"] for r in page2["items"][1]["replies"]] == ["re", "re re"]
        page3 = (await client.get(f"/v1/content/t1/comments?limit=2&cursor={page2['next']}")).json()
        assert [c["body"] for c in page3["items"]] == ["top 0"] and page3["next"] is None

        oldest = (await client.get("/v1/content/t1/comments?sort=oldest&limit=10")).json()
        assert [c["body"] for c in oldest["items"]] == [f"top {i}" for i in range(5)]

        counts = (await client.get("/v1/content/t1")).json()
        assert counts["comments"] == 7


async def test_edit_and_delete_rules(client, auth, settings):
    with trio.fail_after(30):
        c = (await client.post("/v1/content/t2/comments", json={"body": "hello"},
                               headers=auth("ann"))).json()
        r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "hello!"},
                               headers=auth("bob"))
        assert r.status_code == 403 and r.json()["code"] == "not_author"
        r = await client.patch(f"/v1/comments/{c['id']}", json={"body": "hello!"},
                               headers=auth("ann"))
        assert r.status_code == 200 and r.json()["body"] == "hello!" and r.json()["edited_at"]
        assert (await client.delete(f"/v1/comments/{c['id']}", headers=auth("bob"))).status_code == 403
        assert (await client.delete(f"/v1/comments/{c['id']}", headers=auth("ann"))).status_code == 204
        assert (await client.delete(f"/v1/comments/{c['id']}", headers=auth("ann"))).status_code == 404
        assert (await client.get("/v1/content/t2")).json()["comments"] == 0

        old = (await client.post("/v1/content/t2/comments", json={"body": "old"},
                                 headers=auth("ann"))).json()
        fetch(settings.database_url,
              "UPDATE comments SET created_at = now() - interval '6 minutes' WHERE id = $1",
              int(old["id"]))
        r = await client.patch(f"/v1/comments/{old['id']}", json={"body": "new"}, headers=auth("ann"))
        assert r.status_code == 403 and r.json()["code"] == "edit_window_closed"


async def test_comment_validation(client, auth):
    with trio.fail_after(30):
        h = auth("v")
        cases = [
            ({"body": ""}, 400, "invalid_body"),
            ({"body": "   "}, 400, "invalid_body"),
            ({"body": 5}, 400, "invalid_body"),
            ({"body": "x" * 5001}, 400, "body_too_long"),
            ({"body": "bell\x07"}, 400, "invalid_characters"),
            ({"body": "hi", "parent": "abc"}, 400, "invalid_comment_id"),
            ({"body": "hi", "parent": "999999"}, 404, "parent_not_found"),
            ({"body": "hi", "extra": 1}, 400, "unknown_field"),
        ]
        for body, status, code in cases:
            r = await client.post("/v1/content/t3/comments", json=body, headers=h)
            assert (r.status_code, r.json()["code"]) == (status, code), body
        r = await client.post("/v1/content/t3/comments", json={"body": "hi"})
        assert r.status_code == 401
        r = await client.get("/v1/content/t3/comments?sort=sideways")
        assert r.json()["code"] == "invalid_sort"
        r = await client.get("/v1/content/t3/comments?cursor=zzz")
        assert r.json()["code"] == "invalid_cursor"
        r = await client.post("/v1/content/t3/comments", json={"body": "<img src=x onerror=alert(1)>"},
                              headers=h)
        assert r.status_code == 201 and r.json()["body"] == "<img src=x onerror=alert(1)>"
