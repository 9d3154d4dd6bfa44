"""Script in comment bodies and in user names stays text, in real Chromium.

Every payload is posted as a comment body by a user whose token's ``sub`` is
a payload too, and must show up on the demo page as exactly that text, whether
the comment was loaded over HTTP, arrived live over the WebSocket (new or
edited), or came back as the ack of the page's own post. Nothing may run: the
payloads set ``window.__xss``, which must stay undefined; no dialog opens, no
page error is thrown, and the Content-Security-Policy reports no violation
(an injected ``onerror`` or ``<script>`` would be blocked by it, but trying
would show there). The list holds only the page's own elements.
"""

from __future__ import annotations

from urllib.parse import quote

import trio

from tests.browser.test_demo_page import ITEMS, LIST, no_dialogs_or_errors, open_demo, post

TEST_TIMEOUT = 30
#: Each payload, if it ever ran, would set window.__xss.
PAYLOADS = [
    "<img src=x onerror=window.__xss=1>",
    '"><script>window.__xss=1</script>',
    "javascript:window.__xss=1",
    '<a href="javascript:window.__xss=1">click me</a>',
    "<svg onload=window.__xss=1>",
    "<iframe srcdoc=\"<script>parent.__xss=1</script>\"></iframe>",
    "</li></ul><script>window.__xss=1</script>",
    "<style>*{display:none}</style><b onmouseover=window.__xss=1>hover</b>",
    "{{constructor.constructor('window.__xss=1')()}} ${window.__xss=1}",
    "&lt;b&gt;not decoded&lt;/b&gt; &amp; &#60;script&#62;",
]

WATCH = """
    // Whatever the Content-Security-Policy blocks is a sign something was injected.
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
        window.__violations.push(e.violatedDirective + " " + e.blockedURI + " " + e.sample);
    });
"""
COUNT = "() => document.querySelectorAll(\"[data-engage='comment-list'] li\").length"
VISIBLE = """() => [...document.querySelectorAll("[data-engage='comment-list'] li")].map((li) => {
    const body = li.querySelector('.engage-body');
    const meta = li.querySelector('.engage-meta');
    return {body: body.innerText, meta: meta.innerText,
            shown: body.checkVisibility() && meta.checkVisibility()
                   && body.getBoundingClientRect().height > 0};
})"""


def _name(i: int) -> str:
    """The author of the comment carrying payload ``i``: a payload as well."""
    return PAYLOADS[(i + 1) % len(PAYLOADS)]


async def _nothing_ran(page) -> None:
    await trio.sleep(0.5)  # time for anything injected to load, fail and fire
    assert await page.eval("() => typeof window.__xss") == "undefined"
    assert await page.eval("() => window.__violations") == []
    tags = await page.eval(f"() => [...document.querySelectorAll(\"{LIST} *\")]"
                           ".map(e => e.tagName.toLowerCase())")
    assert set(tags) <= {"li", "div", "ul"}, tags
    assert await page.eval("() => document.body.querySelectorAll('a, iframe, img, svg, style, "
                           "script:not([src])').length") == 0
    await no_dialogs_or_errors(page)


async def _shown_literally(page, expected: list[tuple[str, str]]) -> None:
    """The list shows ``(author, body)`` pairs, in order, as visible text."""
    items = await page.eval(ITEMS)
    assert [i["body"] for i in items] == [body for _, body in expected]
    for item, (author, _) in zip(items, expected):
        assert item["meta"].startswith(author + " · "), (item, author)
    visible = await page.eval(VISIBLE)
    assert all(v["shown"] for v in visible), visible
    # innerText is what a reader sees (white-space: pre-wrap keeps it as typed).
    assert [v["body"] for v in visible] == [body for _, body in expected]


async def test_payloads_loaded_over_http_render_as_text(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        expected = []
        for i, payload in enumerate(PAYLOADS):
            await post(client, auth, "x1", _name(i), payload)
            expected.append((_name(i), payload))
        await page.init_script(WATCH)
        await open_demo(page, "x1")
        assert await page.eval(COUNT) == len(PAYLOADS)
        await _shown_literally(page, expected)
        await _nothing_ran(page)


async def test_payloads_arriving_live_render_as_text(page, client, auth):
    with trio.fail_after(TEST_TIMEOUT):
        await page.init_script(WATCH)
        await open_demo(page, "x2")
        expected = []
        for i, payload in enumerate(PAYLOADS):
            await post(client, auth, "x2", _name(i), payload)
            expected.append((_name(i), payload))
        await page.wait("n => document.querySelectorAll(\"[data-engage='comment-list'] li\")"
                        ".length === n", len(PAYLOADS))
        await page.wait("b => [...document.querySelectorAll('.engage-body')]"
                        ".some(e => e.textContent === b)", PAYLOADS[-1])
        await _shown_literally(page, expected)
        await _nothing_ran(page)


async def test_payloads_in_live_edits_render_as_text(page, client, auth):
    """``comment_updated`` frames take the same path: still text."""
    with trio.fail_after(TEST_TIMEOUT):
        author = PAYLOADS[1]
        comment = await post(client, auth, "x3", author, "harmless at first")
        await page.init_script(WATCH)
        await open_demo(page, "x3")
        for payload in PAYLOADS:
            r = await client.patch(f"/v1/comments/{comment['id']}", json={"body": payload},
                                   headers=auth(author))
            assert r.status_code == 200, r.text
            await page.wait("b => document.querySelector('.engage-body').textContent === b",
                            payload)
            await _shown_literally(page, [(author, payload)])
        await _nothing_ran(page)


async def test_the_pages_own_user_with_a_payload_name(page, client, token):
    """Signed in (``?token=``) as a user whose name is markup, posting markup
    through the form: the ack and the live event render it as text."""
    with trio.fail_after(TEST_TIMEOUT):
        name = PAYLOADS[0]
        await page.init_script(WATCH)
        await page.goto(f"/?content=x4&token={token(name)}")
        await page.wait("() => window.engage && window.engage.ws "
                        "&& window.engage.ws.readyState === 1")
        await page.wait_text("status", "open")
        for body in PAYLOADS[1:4]:
            await page.fill("[data-engage='comment-body']", body)
            await page.click("[data-engage='comment-form'] button[type='submit']")
            await page.wait("b => [...document.querySelectorAll('.engage-body')]"
                            ".some(e => e.textContent === b)", body)
        await trio.sleep(0.3)  # the live copy of the last one has arrived too
        await _shown_literally(page, [(name, body) for body in PAYLOADS[1:4]])
        stored = (await client.get("/v1/content/x4/comments",
                                   params={"sort": "oldest"})).json()["items"]
        assert [(c["author"], c["body"]) for c in stored] == [(name, b) for b in PAYLOADS[1:4]]
        await _nothing_ran(page)


async def test_a_payload_in_the_content_parameter_is_shown_as_text(page):
    """``?content=`` is echoed into the heading; the server refuses the id,
    and whatever the page makes of that must not run either."""
    with trio.fail_after(TEST_TIMEOUT):
        payload = PAYLOADS[1]
        await page.init_script(WATCH)
        await page.goto("/?content=" + quote(payload, safe=""))
        await page.wait("p => document.querySelector(\"[data-engage='content-id']\")"
                        ".textContent === p", payload)
        assert await page.eval("() => document.querySelector(\"[data-engage='content-id']\")"
                               ".children.length") == 0
        await trio.sleep(1.0)  # the subscribe is refused; give the page time to react
        await _nothing_ran(page)


async def test_the_demo_page_forbids_inline_script(client):
    """Defence in depth behind the text-only rendering: the page's CSP runs
    only its own script files."""
    with trio.fail_after(TEST_TIMEOUT):
        r = await client.get("/")
        assert r.status_code == 200
        policy = {d.split()[0]: d.split()[1:]
                  for d in r.headers["content-security-policy"].split(";") if d.strip()}
        assert policy["script-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy.get("default-src", [])
        assert policy["base-uri"] == ["'none'"]
