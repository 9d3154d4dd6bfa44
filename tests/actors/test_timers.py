"""The heartbeat's heap of deadlines (engage/actors/connection/timers.py)."""

from __future__ import annotations

from engage.actors.connection.timers import Timers


def test_keys_come_out_when_due_earliest_first():
    timers: Timers[str] = Timers()
    for due, key in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2"), (9.0, "z")]:
        timers.add(due, key)
    assert list(timers.pop_due(0.5)) == []
    assert list(timers.pop_due(2.0)) == ["a", "b", "b2"]  # ties in the order added
    assert timers.next_due() == 3.0 and len(timers) == 2
    assert list(timers.pop_due(10.0)) == ["c", "z"]
    assert timers.next_due() is None


def test_a_key_re_added_while_popping_comes_out_again_only_when_due():
    timers: Timers[int] = Timers()
    timers.add(1.0, 7)
    seen = []
    for key in timers.pop_due(1.0):
        seen.append(key)
        timers.add(1.0 + 25.0, key)  # the next ping
    assert seen == [7]
    assert list(timers.pop_due(25.9)) == []
    assert list(timers.pop_due(26.0)) == [7]
