"""Browser tests drive Debian's Chromium through Playwright's sync API.

Playwright's own browser download cannot work offline, so the tests use
``/usr/bin/chromium`` (or ``ENGAGE_CHROMIUM``); scripts/test installs it.
Each scenario runs in a process of its own (driver.py): trio-asyncio's event
loop policy in the test process would capture Playwright's asyncio loop.
"""

from __future__ import annotations

import os
import shutil

import pytest

def chromium_path() -> str:
    path = os.environ.get("ENGAGE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: run scripts/test (it installs Debian's "
                    "chromium) or set ENGAGE_CHROMIUM")
    return path


@pytest.fixture
def settings(settings):
    """The demo page gets its token from the development-mode endpoint."""
    return settings.replace(dev_mode=True)
