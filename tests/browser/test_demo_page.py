"""The demo page and engage.js in real headless Chromium.

Each test drives the page through the ``page`` fixture (conftest.py) and acts
as other users over HTTP with ``client`` in between.
"""

from __future__ import annotations

import trio

XSS = "<img src=x onerror=alert(1)>"
SCRIPT_NAME = "<script>alert(1)</script>"
TEST_TIMEOUT = 20
LIST = "[data-engage='comment-list']"

LIST_TEXT = "() => document.querySelector(\"[data-engage='comment-list']\").textContent"
LIST_HAS = ("f => document.querySelector(\"[data-engage='comment-list']\")"
            ".textContent.includes(f)")
ITEMS = ("() => [...document.querySelectorAll(\"[data-engage='comment-list'] li\")]"
         ".map(li => ({id: li.dataset.commentId,"
         " body: li.querySelector('.engage-body').textContent,"
         " meta: li.querySelector('.engage-meta').textContent}))")


async def open_demo(page, content: str) -> None:
    """Load ``/?content=`` and wait until the client is connected and mounted."""
    await page.goto(f"/?content={content}")
    # demo.js sets window.engage once the comments are loaded and the buttons wired.
    await page.wait("() => window.engage && window.engage.ws && window.engage.ws.readyState === 1")
    await page.wait_text("status", "open")
    assert await page.text("content-id") == content
    assert (await page.text("user")).startswith("dev-")  # got a development-mode token


async def post(client, auth, content: str, user: str, body: str) -> dict:
    response = await client.post(f"/v1/content/{content}/comments", json={"body": body},
                                 headers=auth(user))
    assert response.status_code == 201, response.text
    return response.json()


async def stored_comments(client, content: str) -> list[dict]:
    response = await client.get(f"/v1/content/{content}/comments", params={"sort": "oldest"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def no_dialogs_or_errors(page) -> None:
    events = await page.events()
    assert events["dialogs"] == [], events
    assert events["errors"] == [], events


async def test_counts_like_and_applause(page, client):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b1")
        await page.wait_text("views", "1")  # the page counted its own view
        assert await page.text("likes") == "0" and await page.text("applause") == "0"

        await page.click("[data-engage='like-button']")
        await page.wait_text("likes", "1")
        assert await page.eval(
            "() => document.querySelector(\"[data-engage='like-button']\")"
            ".getAttribute('aria-pressed')") == "true"
        await page.click("[data-engage='applause-button']")
        await page.wait_text("applause", "1")
        await page.click("[data-engage='applause-button']")
        await page.wait_text("applause", "2")
        assert await page.text("error") == ""

        counts = (await client.get("/v1/content/b1")).json()
        assert (counts["views"], counts["likes"], counts["applause"]) == (1, 1, 2)

        # Clicking the pressed like button takes the like back.
        await page.click("[data-engage='like-button']")
        await page.wait_text("likes", "0")
        await no_dialogs_or_errors(page)


async def test_live_counts_watching_and_views(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b2")
        await page.wait("() => Number(document.querySelector(\"[data-engage='watching']\")"
                        ".textContent) >= 1")
        await page.wait_text("views", "1")

        # Someone else's view, like and applause arrive as live counts.
        assert (await client.post("/v1/content/b2/views", headers=auth("other"))).status_code == 202
        await page.wait_text("views", "2")
        assert (await client.put("/v1/content/b2/like", headers=auth("other"))).status_code == 200
        await page.wait_text("likes", "1")
        response = await client.post("/v1/content/b2/applause", json={"count": 3},
                                     headers=auth("other"))
        assert response.status_code == 200
        await page.wait_text("applause", "3")

        # A second subscriber (another client on the page) is counted as watching.
        watching = int(await page.text("watching"))
        await page.eval("""async (content) => {
            const { EngageClient } = await import("/static/engage.js");
            window.second = new EngageClient();
            window.second.subscribe(content, {});
        }""", "b2")
        await page.wait("n => Number(document.querySelector(\"[data-engage='watching']\")"
                        ".textContent) >= n", watching + 1)
        await no_dialogs_or_errors(page)


async def test_comment_from_someone_else_appears_without_reload(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await post(client, auth, "b3", "first", "posted before the page loaded")
        await open_demo(page, "b3")
        assert "posted before the page loaded" in await page.eval(LIST_TEXT)
        await page.eval("() => { window.notReloaded = true; }")

        comment = await post(client, auth, "b3", "other", "hello from someone else")
        await page.wait(LIST_HAS, "hello from someone else")
        items = await page.eval(ITEMS)
        assert [i["body"] for i in items] == ["posted before the page loaded",
                                              "hello from someone else"]
        assert items[1]["id"] == comment["id"] and items[1]["meta"].startswith("other · ")
        assert await page.eval("() => window.notReloaded === true")  # the same document
        await no_dialogs_or_errors(page)


async def test_comment_posted_through_the_form_is_shown_and_persisted(page, client):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b4")
        user = await page.text("user")
        await page.fill("[data-engage='comment-body']", "written in the browser")
        await page.click("[data-engage='comment-form'] button[type='submit']")
        await page.wait(LIST_HAS, "written in the browser")
        await page.wait("() => document.querySelector(\"[data-engage='comment-body']\")"
                        ".value === ''")  # the box is cleared after the ack

        stored = await stored_comments(client, "b4")
        assert [(c["author"], c["body"]) for c in stored] == [(user, "written in the browser")]
        # Rendered once, although both the ack and the live event carry it.
        await trio.sleep(0.5)
        items = await page.eval(ITEMS)
        assert [(i["id"], i["body"]) for i in items] == [(stored[0]["id"], "written in the browser")]
        assert await page.text("error") == ""
        await no_dialogs_or_errors(page)


async def test_markup_in_bodies_and_names_renders_as_text(page, client, auth, token):
    with trio.fail_after(TEST_TIMEOUT):
        await post(client, auth, "b5", "attacker", XSS + " (loaded)")  # over HTTP on load
        await open_demo(page, "b5")
        await post(client, auth, "b5", "attacker", XSS)  # live
        await post(client, auth, "b5", SCRIPT_NAME, "my name is markup")  # author's name
        await page.fill("[data-engage='comment-body']", XSS + " typed")
        await page.click("[data-engage='comment-form'] button[type='submit']")
        for text in (XSS + " (loaded)", "my name is markup", XSS + " typed"):
            await page.wait(LIST_HAS, text)
        await trio.sleep(0.3)  # give anything injected a chance to run

        items = await page.eval(ITEMS)
        bodies = [i["body"] for i in items]
        assert bodies == [XSS + " (loaded)", XSS, "my name is markup", XSS + " typed"]
        assert items[2]["meta"].startswith(SCRIPT_NAME + " · ")
        assert SCRIPT_NAME in await page.eval(LIST_TEXT)
        # Nothing was parsed as markup: no elements but our own li/div/ul.
        tags = await page.eval(f"() => [...document.querySelectorAll(\"{LIST} *\")]"
                               ".map(e => e.tagName.toLowerCase())")
        assert set(tags) <= {"li", "div", "ul"}, tags
        assert await page.eval(f"() => document.querySelectorAll(\"{LIST} img, {LIST} script\")"
                               ".length") == 0
        await no_dialogs_or_errors(page)

        stored = await stored_comments(client, "b5")
        assert [c["body"] for c in stored][-1] == XSS + " typed"
        assert stored[2]["author"] == SCRIPT_NAME


GATE_RECONNECT = """() => {
    // Hold the client's next reconnect until the test releases it, and record
    // the subscribed frames it gets.
    const e = window.engage;
    window.subscribedFrames = [];
    const dispatch = e._dispatch.bind(e);
    e._dispatch = (f) => {
        if (f.type === "subscribed") window.subscribedFrames.push(f);
        dispatch(f);
    };
    window.realConnect = e._connect;
    window.gated = false;
    e._connect = () => { window.gated = true; };
}"""
RELEASE_RECONNECT = "() => { const e = window.engage; delete e._connect; e._connect(); }"


async def test_reconnect_catches_up_missed_comments_exactly_once(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b6")
        await post(client, auth, "b6", "poster", "before")
        await page.wait(LIST_HAS, "before")

        await page.eval(GATE_RECONNECT)
        await page.eval("() => window.engage.ws.close()")  # drop the socket
        await page.wait("() => window.gated")  # closed; the reconnect is waiting
        assert await page.text("status") == "closed"
        for i in (1, 2, 3):
            await post(client, auth, "b6", "poster", f"missed {i}")
        await page.eval(RELEASE_RECONNECT)

        await page.wait_text("status", "open")
        await page.wait("() => document.querySelectorAll(\"[data-engage='comment-list'] li\")"
                        ".length >= 4")
        await post(client, auth, "b6", "poster", "after")  # live again
        await page.wait(LIST_HAS, "after")
        await trio.sleep(0.3)  # anything repeated would show by now

        items = await page.eval(ITEMS)
        assert [i["body"] for i in items] == ["before", "missed 1", "missed 2", "missed 3",
                                              "after"]
        assert len({i["id"] for i in items}) == 5
        # It caught up from the history (not by reloading the list over HTTP).
        frames = await page.eval("() => window.subscribedFrames")
        assert [f["recovered"] for f in frames] == [True], frames
        await no_dialogs_or_errors(page)


async def test_op_queued_while_disconnected_is_sent_once_and_resolves(page, client):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b7")
        await page.eval(GATE_RECONNECT)
        await page.eval("() => window.engage.ws.close()")
        await page.wait("() => window.gated")
        # Comment while disconnected: the frame waits in the queue.
        await page.eval("""() => {
            window.outcome = null;
            window.engage.comment("b7", "queued while offline").then(
                (r) => { window.outcome = "ok:" + r.comment.id; },
                (err) => { window.outcome = "error:" + err.code; });
        }""")
        # The next attempt fails before it opens; the one after that succeeds.
        await page.eval("""() => {
            const e = window.engage;
            e._connect = () => {
                delete e._connect;
                e._connect();
                e.ws.close();
            };
            e._connect();
        }""")
        await page.wait("() => window.outcome !== null", timeout_ms=12000)
        outcome = await page.eval("() => window.outcome")
        await page.wait_text("status", "open")
        await trio.sleep(0.5)
        stored = await stored_comments(client, "b7")
        # It was never sent on the socket that failed, so it must not be reported
        # as failed: it goes out once on the next connection and resolves.
        assert len(stored) == 1, (outcome, stored)
        assert outcome == f"ok:{stored[0]['id']}", (outcome, stored)
        await no_dialogs_or_errors(page)


async def test_reconnect_after_a_lost_history_reloads_the_list(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await open_demo(page, "b8")
        await post(client, auth, "b8", "poster", "before")
        await page.wait(LIST_HAS, "before")
        await page.eval(GATE_RECONNECT)
        await page.eval("() => window.engage.ws.close()")
        await page.wait("() => window.gated")
        for i in (1, 2):
            await post(client, auth, "b8", "poster", f"missed {i}")
        # As if the server's history had been lost: the epoch no longer matches.
        await page.eval("() => { window.engage.subs.get('b8').epoch = 'lost'; }")
        await page.eval(RELEASE_RECONNECT)

        await page.wait("() => document.querySelectorAll(\"[data-engage='comment-list'] li\")"
                        ".length >= 3")
        await post(client, auth, "b8", "poster", "after")
        await page.wait(LIST_HAS, "after")
        await trio.sleep(0.3)
        items = await page.eval(ITEMS)
        assert [i["body"] for i in items] == ["before", "missed 1", "missed 2", "after"]
        assert len({i["id"] for i in items}) == 4
        frames = await page.eval("() => window.subscribedFrames")
        assert [f["recovered"] for f in frames] == [False], frames
        await no_dialogs_or_errors(page)


HOLD_COMMENT_FETCH = """
    // Hold the page's first comments request until the test releases it.
    const realFetch = window.fetch;
    let release;
    window.fetchHeld = false;
    window.releaseFetch = () => release();
    const gate = new Promise((resolve) => { release = resolve; });
    window.fetch = async (url, options) => {
        if (String(url).includes("/comments")) { window.fetchHeld = true; await gate; }
        return realFetch(url, options);
    };
    // And note when the subscription is confirmed.
    window.subscribedSeen = false;
    const RealWebSocket = window.WebSocket;
    window.WebSocket = class extends RealWebSocket {
        constructor(...args) {
            super(...args);
            this.addEventListener("message", (e) => {
                if (JSON.parse(e.data).type === "subscribed") window.subscribedSeen = true;
            });
        }
    };
"""


async def test_comment_arriving_while_the_list_loads_keeps_the_order(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        for i in (1, 2):
            await post(client, auth, "b9", "poster", f"older {i}")
        await page.init_script(HOLD_COMMENT_FETCH)
        await page.goto("/?content=b9")
        await page.wait("() => window.fetchHeld")
        # Subscribed and waiting for the list: a new comment arrives live first.
        await page.wait("() => window.subscribedSeen")
        await post(client, auth, "b9", "poster", "newest")
        await page.wait(LIST_HAS, "newest")
        await page.eval("() => window.releaseFetch()")
        await page.wait("() => window.engage && window.engage.ws")  # mounted
        items = await page.eval(ITEMS)
        assert [i["body"] for i in items] == ["older 1", "older 2", "newest"]
        await no_dialogs_or_errors(page)


DELAY_SUBSCRIBE = """
    // A slow network: subscribe frames leave 500 ms late.
    const realSend = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        if (String(data).includes('"subscribe"')) setTimeout(() => realSend.call(this, data), 500);
        else realSend.call(this, data);
    };
"""


async def test_comment_right_after_the_page_is_ready_is_not_missed(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await post(client, auth, "b10", "poster", "before")
        await page.init_script(DELAY_SUBSCRIBE)
        await open_demo(page, "b10")  # ready: the list is loaded
        await post(client, auth, "b10", "poster", "just after")
        await page.wait(LIST_HAS, "just after")
        items = await page.eval(ITEMS)
        assert [i["body"] for i in items] == ["before", "just after"]
        await no_dialogs_or_errors(page)
