"""The counter path through HTTP, against real Redis and Postgres."""

from __future__ import annotations

import trio

from engage.actors import FlushNow
from tests.support import fetch


async def test_exact_counts_views_likes_applause(client, auth, system, settings):
    with trio.fail_after(60):
        async def views(n):
            for _ in range(n):
                r = await client.post("/v1/content/post-1/views")
                assert r.status_code == 202
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(views, 100)  # 2,000 anonymous views

        async def liker(i):
            h = auth(f"user-{i}")
            for _ in range(2):  # repeated likes are idempotent
                r = await client.put("/v1/content/post-1/like", headers=h)
                assert r.status_code == 200 and r.json()["liked"] is True
            if i % 10 == 0:  # 30 of them unlike
                r = await client.delete("/v1/content/post-1/like", headers=h)
                assert r.json()["liked"] is False
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(liker, i)

        h = auth("clapper")
        mine = []
        for _ in range(60):
            r = await client.post("/v1/content/post-1/applause", json={"count": 1}, headers=h)
            assert r.status_code == 200
            mine.append(r.json()["mine"])
        assert mine[-1] == 50 and max(mine) == 50

        body = (await client.get("/v1/content/post-1")).json()
        assert body == {"id": "post-1", "views": 2000, "unique_viewers": 0,
                        "likes": 270, "applause": 50, "comments": 0}

        await system.flush.ref.ask(FlushNow())
        (row,) = fetch(settings.database_url,
                       "SELECT views, likes, applause FROM content_counters WHERE id = 'post-1'")
        assert tuple(row) == (2000, 270, 50)


async def test_unknown_content_reads_zero(client):
    with trio.fail_after(10):
        r = await client.get("/v1/content/never-seen")
        assert r.status_code == 200
        assert r.json() == {"id": "never-seen", "views": 0, "unique_viewers": 0,
                            "likes": 0, "applause": 0, "comments": 0}


async def test_unique_viewers_from_viewer_ids(client, auth):
    with trio.fail_after(20):
        for i in range(50):
            await client.post("/v1/content/u1/views", json={"viewer": f"v{i % 10}"})
        await client.post("/v1/content/u1/views", headers=auth("someone"))
        await client.post("/v1/content/u1/views", headers=auth("someone"))
        body = (await client.get("/v1/content/u1")).json()
        # Within view_dedup_window each viewer id and user counts once in views.
        assert body["views"] == 11
        assert body["unique_viewers"] == 11  # HyperLogLog is exact at this size
        for _ in range(3):  # no viewer id: every view counts
            await client.post("/v1/content/u1/views")
        assert (await client.get("/v1/content/u1")).json()["views"] == 14


async def test_bad_input_gets_problem_json(client, auth):
    with trio.fail_after(20):
        cases = [
            (client.post("/v1/content/bad%20id/views"), 400, "invalid_content_id"),
            (client.post("/v1/content/" + "x" * 129 + "/views"), 400, "invalid_content_id"),
            (client.put("/v1/content/a/like"), 401, "unauthorized"),
            (client.post("/v1/content/a/applause", json={"count": 1}), 401, "unauthorized"),
            (client.put("/v1/content/a/like", headers={"Authorization": "Bearer nope"}),
             401, "invalid_token"),
            (client.post("/v1/content/a/applause", content=b"{not json",
                         headers={**auth("u"), "Content-Type": "application/json"}),
             400, "malformed_json"),
            (client.post("/v1/content/a/applause", json={"count": 0}, headers=auth("u")),
             400, "invalid_count"),
            (client.post("/v1/content/a/applause", json={"count": 51}, headers=auth("u")),
             400, "invalid_count"),
            (client.post("/v1/content/a/applause", json={"count": "3"}, headers=auth("u")),
             400, "invalid_count"),
            (client.post("/v1/content/a/applause", json={"count": 1, "x": 1}, headers=auth("u")),
             400, "unknown_field"),
            (client.post("/v1/events", json={"events": []}), 400, "batch_size"),
            (client.post("/v1/events", json={"events": [{}] * 1001}), 400, "batch_size"),
            (client.get("/v1/nothing-here"), 404, "not_found"),
        ]
        for request, status, code in cases:
            r = await request
            assert r.status_code == status, (code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            body = r.json()
            assert body["status"] == status and body["code"] == code and body["detail"]
        r = await client.get("/healthz")
        assert r.status_code == 200


async def test_events_batch_reports_each_item(client, auth):
    with trio.fail_after(20):
        events = [{"type": "view", "content": "e1"}] * 5 + [
            {"type": "like", "content": "e1"},
            {"type": "applause", "content": "e2", "count": 60},
            {"type": "applause", "content": "e2", "count": 30},
            {"type": "applause", "content": "e2", "count": 30},
            {"type": "view", "content": "bad id"},
        ]
        r = await client.post("/v1/events", json={"events": events}, headers=auth("u1"))
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["ok"] for x in results] == [True] * 6 + [False, True, True, False]
        assert results[4]["views"] == 1  # one signed-in user's views count once per window
        assert results[5] == {"ok": True, "liked": True, "likes": 1}
        assert results[6]["code"] == "invalid_count"
        assert results[8] == {"ok": True, "applause": 50, "mine": 50}
        assert results[9]["code"] == "invalid_content_id"

        r = await client.post("/v1/events", json=[{"type": "like", "content": "e1"}])
        assert r.json()["results"][0]["status"] == 401
