"""The demo page and engage.js in real headless Chromium."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from tests.browser.conftest import chromium_path

XSS = "<img src=x onerror=alert(1)>"
DRIVER = Path(__file__).with_name("driver.py")


async def _scenario(name: str, server: str, content: str, **args) -> dict:
    payload = json.dumps({"server": server, "content": content, "chromium": chromium_path(),
                          **args})
    done = await trio.run_process([sys.executable, str(DRIVER), name, payload],
                                  capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


async def test_like_applause_and_live_counts(server, client):
    with trio.fail_after(60):
        result = await _scenario("counts_and_buttons", server, "b1")
        assert result["pressed"] == "true" and result["dialogs"] == []
        counts = (await client.get("/v1/content/b1")).json()
        assert (counts["views"], counts["likes"], counts["applause"]) == (1, 1, 2)


async def test_comments_appear_live_and_render_as_text(server, client, token):
    with trio.fail_after(60):
        tokens = {"other": token("other"), "attacker": token("attacker"),
                  "nasty": token("<script>alert(1)</script>")}
        result = await _scenario("live_comments", server, "b2", tokens=tokens)
        assert "hello from someone else" in result["text"]  # arrived without a reload
        assert XSS in result["text"] and XSS + " typed" in result["text"]
        assert "<script>alert(1)</script>" in result["text"]  # the author's name, as text
        assert result["imgs"] == 0 and result["scripts"] == 0
        assert result["dialogs"] == []
        stored = (await client.get("/v1/content/b2/comments?sort=oldest")).json()["items"]
        assert stored[-1]["body"] == XSS + " typed"  # the form's comment was persisted


async def test_reconnect_catches_up_exactly_once(server, token):
    with trio.fail_after(90):
        result = await _scenario("reconnect", server, "b3", tokens={"poster": token("poster")})
        assert len(result["ids"]) == 4 and len(set(result["ids"])) == 4
        assert result["bodies"] == ["missed 0", "missed 0", "missed 1", "missed 2"]
