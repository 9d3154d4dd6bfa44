"""Runs one browser scenario in its own process and prints a JSON result.

The test process runs trio-asyncio, whose event loop policy would capture the
asyncio loop that Playwright's sync API makes in any thread; a process of its
own keeps the two apart. Usage: ``python driver.py <scenario> <json args>``.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
XSS = "<img src=x onerror=alert(1)>"
PAGE_TIMEOUT_MS = 15_000


def post_comment(server: str, content: str, token: str, body: str) -> None:
    request = urllib.request.Request(
        f"{server}/v1/content/{content}/comments", method="POST",
        data=json.dumps({"body": body}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.status


def text_is(page, name: str, value: str) -> None:
    page.wait_for_function(
        "([n, v]) => document.querySelector(`[data-engage=\"${n}\"]`).textContent === v",
        arg=[name, value])


def list_contains(page, fragment: str) -> None:
    page.wait_for_function(
        "f => document.querySelector('[data-engage=\"comment-list\"]').textContent.includes(f)",
        arg=fragment)


def counts_and_buttons(page, args) -> dict:
    text_is(page, "views", "1")  # the page counted its own view
    page.wait_for_function(
        "() => Number(document.querySelector('[data-engage=\"watching\"]').textContent) >= 1")
    page.click('[data-engage="like-button"]')
    text_is(page, "likes", "1")
    page.click('[data-engage="applause-button"]')
    page.click('[data-engage="applause-button"]')
    text_is(page, "applause", "2")
    return {"pressed": page.get_attribute('[data-engage="like-button"]', "aria-pressed")}


def live_comments(page, args) -> dict:
    server, content, tokens = args["server"], args["content"], args["tokens"]
    post_comment(server, content, tokens["other"], "hello from someone else")
    list_contains(page, "hello from someone else")
    post_comment(server, content, tokens["attacker"], XSS)
    post_comment(server, content, tokens["nasty"], "by a nasty name")
    page.fill('[data-engage="comment-body"]', XSS + " typed")
    page.click('[data-engage="comment-form"] button[type="submit"]')
    list_contains(page, "by a nasty name")
    list_contains(page, "typed")
    page.wait_for_timeout(300)  # give any injected handler a chance to fire
    return {
        "text": page.locator('[data-engage="comment-list"]').inner_text(),
        "imgs": page.locator('[data-engage="comment-list"] img').count(),
        "scripts": page.locator('[data-engage="comment-list"] script').count(),
    }


def reconnect(page, args) -> dict:
    server, content, token = args["server"], args["content"], args["tokens"]["poster"]
    post_comment(server, content, token, "missed 0")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-engage=\"comment-list\"] li').length === 1")
    # The client knows its offset once subscribed; then drop the socket (it backs off).
    page.wait_for_function(
        "c => window.engage.subs.get(c) && window.engage.subs.get(c).offset !== null",
        arg=content)
    page.evaluate("() => window.engage.ws.close()")
    for i in range(3):
        post_comment(server, content, token, f"missed {i}")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-engage=\"comment-list\"] li').length >= 4",
        timeout=40_000)
    page.wait_for_timeout(500)  # anything repeated would show up by now
    return {
        "ids": page.eval_on_selector_all('[data-engage="comment-list"] li',
                                         "els => els.map(e => e.dataset.commentId)"),
        "bodies": page.eval_on_selector_all('[data-engage="comment-list"] .engage-body',
                                            "els => els.map(e => e.textContent)"),
    }


SCENARIOS = {"counts_and_buttons": counts_and_buttons, "live_comments": live_comments,
             "reconnect": reconnect}


def main() -> None:
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args["chromium"], args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{args['server']}/?content={args['content']}")
            page.wait_for_function("() => window.engage && window.engage.ws "
                                   "&& window.engage.ws.readyState === 1")
            result = SCENARIOS[scenario](page, args)
        finally:
            browser.close()
    print(json.dumps({**result, "dialogs": dialogs}))


if __name__ == "__main__":
    main()
