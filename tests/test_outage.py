"""Outage: one log line when a dependency goes down, one when it is back."""

from __future__ import annotations

import logging

import trio

from engage import metrics
from engage.outage import Outage


def _value(what: str) -> float:
    return metrics.DEPENDENCY_FAILURES.labels(what)._value.get()


async def test_an_outage_is_two_lines_however_many_failures(caplog, autojump_clock):
    log = logging.getLogger("test.outage")
    outage = Outage("test: redis", log)
    before = _value("test: redis")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        outage.ok()  # nothing to say while all is well
        for _ in range(288):
            outage.failed(ConnectionError("refused"))
            await trio.sleep(8 / 288)
        assert outage.down
        outage.ok()
        outage.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["test: redis: down (refused); retrying quietly until it is back",
                     "test: redis: back after 8.0 s (288 failed attempts)"]
    assert _value("test: redis") - before == 288
    assert metrics.DEPENDENCY_DOWN.labels("test: redis")._value.get() == 0
    assert not outage.down and outage.failures == 0


async def test_a_second_outage_is_logged_again(caplog, autojump_clock):
    outage = Outage("test: postgres", logging.getLogger("test.outage2"))
    with caplog.at_level(logging.INFO, logger="test.outage2"):
        for _ in range(2):
            outage.failed(OSError("down"))
            await trio.sleep(1)
            outage.ok()
    assert len(caplog.records) == 4
