"""Where a subject's history stands, as the router tracks it: joins and
catch-ups answered from memory, and every case that must go to the history."""

from __future__ import annotations

import msgpack
import trio

from engage.actors.router.messages import Ready, Subscribe, Subscribed, Unsubscribe
from engage.actors.router.subject import LINGER_SECONDS, RECENT_EVENTS, Lingering, Subject
from engage.wire import SharedFrame
from tests.actors.test_router import Sink, payloads, router


def frame(offset: int) -> SharedFrame:
    return SharedFrame({"type": "comment", "offset": offset})


def test_the_position_is_unknown_until_an_event_or_a_joiner_says_it():
    subject = Subject()
    assert subject.missed_since((3, "e1")) is None
    subject.learn(5, "")  # no epoch: not a position
    assert subject.position is None
    subject.learn(5, "e1")
    assert subject.position == (5, "e1")
    subject.learn(2, "e1")  # the first one counts: later ones may be older
    assert subject.position == (5, "e1")
    assert subject.missed_since((5, "e1")) == []
    assert subject.missed_since((4, "e1")) is None  # we never held event 5


def test_missed_events_come_from_memory_while_they_are_all_held():
    subject = Subject()
    subject.learn(10, "e1")
    for offset in range(11, 16):
        subject.remember(offset, "e1", frame(offset))
    assert subject.position == (15, "e1")
    assert [o for o, _ in subject.missed_since((12, "e1"))] == [13, 14, 15]
    assert [o for o, _ in subject.missed_since((10, "e1"))] == [11, 12, 13, 14, 15]
    assert subject.missed_since((9, "e1")) is None  # older than we hold
    assert subject.missed_since((16, "e1")) is None  # ahead of us: the history decides
    assert subject.missed_since((12, "e0")) is None  # another history


def test_only_the_last_events_are_held():
    subject = Subject()
    for offset in range(1, RECENT_EVENTS + 11):
        subject.remember(offset, "e1", frame(offset))
    assert subject.missed_since((9, "e1")) is None  # event 10 is no longer held
    assert len(subject.missed_since((10, "e1"))) == RECENT_EVENTS


def test_a_gap_or_a_new_epoch_forgets_what_no_longer_leads_up_to_now():
    subject = Subject()
    for offset in (1, 2, 3):
        subject.remember(offset, "e1", frame(offset))
    subject.remember(5, "e1", frame(5))  # 4 never came through
    assert subject.missed_since((3, "e1")) is None
    assert [o for o, _ in subject.missed_since((4, "e1"))] == [5]
    subject.remember(1, "e2", frame(1))  # the history was lost and begun again
    assert subject.position == (1, "e2")
    assert subject.missed_since((5, "e1")) is None
    assert subject.missed_since((1, "e2")) == []


def _event(subject: str, offset: int, epoch: str = "e1") -> dict:
    return {b"s": subject.encode(), b"t": b"comment", b"o": offset, b"e": epoch.encode(),
            b"d": msgpack.packb({"id": str(offset)})}


async def test_a_join_on_a_live_subject_is_answered_from_memory():
    r = router()
    r._subjects["content:a"] = Subject()  # as if pub/sub had confirmed the channel
    r._conn = object()
    first, second, late = Sink(), Sink(), Sink()
    joined = await r._handle(Subscribe("content:a", first))
    assert isinstance(joined, Subscribed)
    assert (joined.position, joined.counts, joined.missed) == (None, None, None)
    await r._handle(Ready("content:a", first, 7, "e1"))  # it read offset 7 from the history
    for offset in (8, 9):
        outgoing: dict = {}
        r._route(_event("content:a", offset), outgoing)
        r._deliver(r._subjects["content:a"], outgoing["content:a"])
    assert [p["offset"] for w in first.writes for p in payloads(w, "json")] == [8, 9]

    joined = await r._handle(Subscribe("content:a", second))
    assert (joined.position, joined.missed) == ((9, "e1"), None)
    caught_up = await r._handle(Subscribe("content:a", late, (7, "e1")))
    assert caught_up.position == (9, "e1")
    assert [o for o, _ in caught_up.missed] == [8, 9]
    outgoing = {}
    r._route(_event("content:a", 10), outgoing)  # arrives while they catch up: buffered
    r._deliver(r._subjects["content:a"], outgoing["content:a"])
    assert second.writes == [] and late.writes == []
    await r._handle(Ready("content:a", late, 9, "e1"))
    assert [p["offset"] for w in late.writes for p in payloads(w, "json")] == [10]


def test_lingering_subjects_expire_oldest_first_and_within_a_limit():
    lingering = Lingering(seconds=5.0, limit=3)
    assert lingering.add("a", 0.0) == []
    assert lingering.add("b", 1.0) == []
    assert lingering.add("c", 2.0) == []
    assert lingering.add("d", 3.0) == ["a"]  # over the limit: the oldest goes now
    lingering.discard("b")  # a subscriber came back
    assert lingering.expired(6.9) == []
    assert lingering.expired(7.0) == ["c"]
    assert lingering.add("c", 7.0) == []
    assert lingering.expired(8.0) == ["d"]
    assert lingering.expired(11.9) == []
    assert lingering.expired(12.0) == ["c"]
    assert len(lingering) == 0


async def test_a_subject_left_by_its_last_subscriber_lingers_warm(autojump_clock):
    r = router()
    r._subjects["content:a"] = Subject()
    r._conn = object()  # as if pub/sub were up
    first, again = Sink(), Sink()
    await r._handle(Subscribe("content:a", first))
    await r._handle(Ready("content:a", first, 7, "e1"))
    await r._handle(Unsubscribe("content:a", first))
    assert "content:a" in r._subjects and r.statistics()["lingering"] == 1
    joined = await r._handle(Subscribe("content:a", again, (7, "e1")))
    assert (joined.position, joined.missed) == ((7, "e1"), [])  # warm: from memory
    assert r.statistics()["lingering"] == 0
    await r._handle(Unsubscribe("content:a", again))
    r._conn = None  # _forget must not try to unsubscribe for real
    for subject in r._lingering.expired(trio.current_time() + LINGER_SECONDS):
        r._forget(subject)
    assert "content:a" not in r._subjects
