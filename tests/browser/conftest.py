"""Browser tests drive Debian's Chromium through Playwright's sync API.

Playwright's own browser download cannot work offline, so the tests use
``/usr/bin/chromium`` (or ``ENGAGE_CHROMIUM``); scripts/test installs it.
The browser runs in a process of its own (driver.py) that takes one command
per line: trio-asyncio's event loop policy in the test process would capture
Playwright's asyncio loop, and a worker thread would block on it. The test
itself stays in trio, so it can use ``client`` and ``auth`` between steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio

DRIVER = Path(__file__).with_name("driver.py")
START_TIMEOUT = 15.0
COMMAND_TIMEOUT = 15.0


def chromium_path() -> str:
    path = os.environ.get("ENGAGE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: run scripts/test (it installs Debian's "
                    "chromium) or set ENGAGE_CHROMIUM")
    return path


class BrowserError(AssertionError):
    """A browser command failed (a wait timed out, a selector was missing...)."""


class Page:
    """The test's handle on the page in the driver process."""

    def __init__(self, process: trio.Process, server: str, log: Path):
        self.process = process
        self.server = server
        self.log = log
        self._buffer = b""

    async def _line(self) -> dict:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                text = line.decode()
                if text.startswith("@@ "):
                    return json.loads(text[3:])
                continue  # anything else on stdout is not ours
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise BrowserError("the browser driver exited:\n" + self.stderr())
            self._buffer += chunk

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def command(self, op: str, timeout: float = COMMAND_TIMEOUT, **fields):
        await self.process.stdin.send_all((json.dumps({"op": op, **fields}) + "\n").encode())
        with trio.fail_after(timeout):
            answer = await self._line()
        if not answer["ok"]:
            raise BrowserError(f"{op} {fields}: {answer['error']}")
        return answer["value"]

    # -- the verbs the tests use ---------------------------------------------------

    async def init_script(self, js: str) -> None:
        await self.command("init", js=js)

    async def goto(self, path: str) -> None:
        await self.command("goto", url=self.server + path)

    async def eval(self, js: str, arg=None):
        return await self.command("eval", js=js, arg=arg)

    async def wait(self, js: str, arg=None, timeout_ms: int = 8000) -> None:
        await self.command("wait", timeout=timeout_ms / 1000 + 5, js=js, arg=arg,
                           timeout_ms=timeout_ms)

    async def click(self, selector: str) -> None:
        await self.command("click", selector=selector)

    async def fill(self, selector: str, value: str) -> None:
        await self.command("fill", selector=selector, value=value)

    async def text(self, name: str) -> str:
        """textContent of ``[data-engage=name]``."""
        return await self.eval("n => document.querySelector(`[data-engage='${n}']`).textContent",
                               name)

    async def wait_text(self, name: str, value: str) -> None:
        await self.wait("([n, v]) => document.querySelector(`[data-engage='${n}']`)"
                        ".textContent === v", [name, value])

    async def events(self) -> dict:
        return await self.command("events")


@pytest.fixture
def settings(settings):
    """The demo page gets its token from the development-mode endpoint."""
    return settings.replace(dev_mode=True)


@pytest.fixture
async def page(server, tmp_path):
    """A fresh headless Chromium page (in its own process) for ``server``."""
    log = tmp_path / "driver.log"
    profile = tmp_path / "chromium-profile"
    with open(log, "wb") as err:
        process = await trio.lowlevel.open_process(
            [sys.executable, str(DRIVER), chromium_path(), str(profile)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    handle = Page(process, server, log)
    try:
        with trio.fail_after(START_TIMEOUT):
            await handle._line()  # "ready": Chromium is up
        yield handle
    finally:
        with trio.move_on_after(5) as cleanup:
            cleanup.shield = True
            try:
                await handle.process.stdin.send_all(b'{"op": "quit"}\n')
                await handle.process.wait()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        if handle.process.returncode is None:
            handle.process.kill()
            with trio.move_on_after(5) as reap:
                reap.shield = True
                await handle.process.wait()
        for stream in (handle.process.stdin, handle.process.stdout):
            await stream.aclose()
