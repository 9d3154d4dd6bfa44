"""Drives one headless Chromium page for a test, one JSON command per line.

The test process runs trio (and trio-asyncio, whose event loop policy would
capture the asyncio loop Playwright's sync API makes in any thread), so the
browser lives in a process of its own. The test writes commands to stdin and
reads one reply line per command from stdout, so it can act over HTTP with its
own fixtures between browser steps.

Usage: ``python driver.py <chromium path> <user data dir>``. Commands::

    {"op": "init", "js": ...}                        (runs before the page's scripts)
    {"op": "goto", "url": ...}
    {"op": "eval", "js": ..., "arg": ...}           -> the value (JSON)
    {"op": "wait", "js": ..., "arg": ..., "timeout_ms": ms}
    {"op": "click", "selector": ...}
    {"op": "fill", "selector": ..., "value": ...}
    {"op": "events"}                                -> {"dialogs": [...], "errors": [...]}
    {"op": "quit"}

Replies are ``@@ {"ok": true, "value": ...}`` or ``@@ {"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DEFAULT_TIMEOUT_MS = 8_000
MARK = "@@ "


def reply(**fields) -> None:
    sys.stdout.write(MARK + json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    chromium, user_data_dir = sys.argv[1], sys.argv[2]
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir, executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(DEFAULT_TIMEOUT_MS)
            # Record (and dismiss) any alert() an injected script manages to run.
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            reply(ok=True, value="ready")
            for line in sys.stdin:
                if not line.strip():
                    continue
                cmd = json.loads(line)
                op = cmd["op"]
                if op == "quit":
                    reply(ok=True, value=None)
                    break
                try:
                    value = None
                    if op == "init":
                        page.add_init_script(cmd["js"])
                    elif op == "goto":
                        page.goto(cmd["url"])
                    elif op == "eval":
                        value = page.evaluate(cmd["js"], cmd.get("arg"))
                    elif op == "wait":
                        page.wait_for_function(cmd["js"], arg=cmd.get("arg"),
                                               timeout=cmd.get("timeout_ms", DEFAULT_TIMEOUT_MS))
                    elif op == "click":
                        page.click(cmd["selector"])
                    elif op == "fill":
                        page.fill(cmd["selector"], cmd["value"])
                    elif op == "events":
                        value = {"dialogs": list(dialogs), "errors": list(errors)}
                    else:
                        raise ValueError(f"unknown op {op!r}")
                except Exception as exc:  # reported to the test, which fails with it
                    reply(ok=False, error=f"{type(exc).__name__}: {exc}")
                else:
                    reply(ok=True, value=value)
        finally:
            context.close()


if __name__ == "__main__":
    main()
