"""Notification rules: who is told what, applause coalescing and its bound,
the rate cap, and the HTTP parameters."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.domain.notifications import (
    APPLAUSE_NAMES_SHOWN,
    MAX_GROUP_EVENTS,
    RATE_WINDOW,
    ApplauseCoalescer,
    Notification,
    RateCap,
    decode_notification_cursor,
    milestone_draft,
    new_content_drafts,
    parse_read_body,
    parse_unread,
    reply_comment_id,
    reply_draft,
    validate_notification_page,
    validate_user_id,
)
from engage.errors import ValidationError


def _created(author="bob", parent="7", parent_author="ann", body="hi"):
    return {"content": "c1", "parent_author": parent_author,
            "comment": {"id": "9", "author": author, "body": body, "parent": parent,
                        "created_at": "2024-01-01T00:00:00.000Z", "edited_at": None}}


# -- who is told what ----------------------------------------------------------------


def test_reply_goes_to_the_parent_author():
    draft = reply_draft("1-0", _created())
    assert draft.user == "ann" and draft.kind == "reply" and draft.source_event == "1-0"
    assert draft.data["comment"]["author"] == "bob" and draft.data["content"] == "c1"
    assert reply_comment_id(draft) == 9


@pytest.mark.parametrize("event", [
    _created(author="ann"),                      # replying to oneself
    _created(parent=None, parent_author=None),   # a top-level comment
    _created(parent_author=None),                # parent's author unknown
])
def test_no_reply_notification(event):
    assert reply_draft("1-0", event) is None


def test_reply_body_is_an_excerpt():
    draft = reply_draft("1-0", _created(body="x" * 1000))
    assert len(draft.data["comment"]["body"]) == 280 and draft.data["comment"]["body"][-1] == "…"


def test_malformed_reply_event_raises():
    with pytest.raises(KeyError):
        reply_draft("1-0", {"content": "c"})


def test_milestone_goes_to_the_author_only_if_known():
    data = {"content": "c1", "metric": "likes", "value": 10}
    draft = milestone_draft("2-0", data, "ann", "Title")
    assert draft.user == "ann" and draft.data == {"content": "c1", "title": "Title",
                                                  "metric": "likes", "value": 10}
    assert milestone_draft("2-0", data, None) is None
    with pytest.raises(ValueError):
        milestone_draft("2-0", {**data, "metric": "views"}, "ann")


def test_new_content_goes_to_followers_but_not_the_author():
    data = {"id": "p1", "title": "T", "url": "https://x/p1", "author": "ann",
            "published_at": "2024-01-01T00:00:00.000Z", "tags": []}
    drafts = new_content_drafts("3-0", data, ["bob", "ann", "cy"])
    assert [d.user for d in drafts] == ["bob", "cy"]
    assert drafts[0].data["content"] == "p1" and drafts[0].kind == "new_content"


# -- coalescing ---------------------------------------------------------------------------


def test_a_burst_within_a_window_is_one_notification():
    co = ApplauseCoalescer(10.0)
    for i in range(500):
        co.add(recipient="ann", content="c1", user=f"u{i % 50}", claps=3, event_id=f"{i}-0",
               now=i * 0.004)  # 500 events over 2 s
    assert co.due(9.9) == [] and co.next_due() == 10.0
    (group,) = co.due(10.0)
    draft = group.draft()
    assert draft.user == "ann" and draft.source_event == "0-0"
    assert draft.data["people"] == 50 and draft.data["events"] == 500
    assert draft.data["claps"] == 1500 and len(draft.data["users"]) == APPLAUSE_NAMES_SHOWN
    assert len(co) == 0 and co.next_due() is None


def test_groups_are_per_author_and_content():
    co = ApplauseCoalescer(1.0)
    co.add(recipient="ann", content="a", user="x", claps=1, event_id="1", now=0)
    co.add(recipient="ann", content="b", user="x", claps=1, event_id="2", now=0)
    co.add(recipient="bob", content="c", user="x", claps=1, event_id="3", now=0.5)
    assert len(co.due(1.0)) == 2 and len(co) == 1 and co.held_events == 1


def test_a_full_group_is_due_at_once():
    co = ApplauseCoalescer(10.0)
    for i in range(MAX_GROUP_EVENTS):
        co.add(recipient="ann", content="a", user="x", claps=1, event_id=str(i), now=0)
    assert len(co.due(0.0)) == 1


@given(st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), min_size=1,
                max_size=300),
       st.floats(min_value=0.1, max_value=20))
def test_coalescing_bound(times, window):
    """Applause over T seconds gives at most floor(T / window) + 1 notifications,
    and every event is in exactly one of them."""
    times = sorted(times)
    co = ApplauseCoalescer(window)
    groups = []
    for i, t in enumerate(times):
        groups += co.due(t)
        co.add(recipient="ann", content="a", user=f"u{i % 7}", claps=2, event_id=str(i), now=t)
    groups += co.due(float("inf"))
    span = times[-1] - times[0]
    assert len(groups) <= int(span // window) + 1
    assert sum(g.events for g in groups) == len(times)
    assert sum(g.draft().data["claps"] for g in groups) == 2 * len(times)


# -- the rate cap -----------------------------------------------------------------------


def test_rate_cap_is_a_sliding_minute():
    cap = RateCap(3)
    assert [cap.allow("ann", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert cap.allow("bob", 3)  # per user
    assert not cap.allow("ann", RATE_WINDOW - 0.1)
    assert cap.allow("ann", RATE_WINDOW + 0.1)  # the first one left the window
    cap.give_back("ann")
    assert cap.allow("ann", RATE_WINDOW + 0.2)


def test_rate_cap_zero_means_none_and_sweep_forgets_idle_users():
    assert all(RateCap(0).allow("ann", t) for t in range(100))
    cap = RateCap(2)
    cap.allow("ann", 0)
    cap.sweep(RATE_WINDOW + 1)
    assert len(cap) == 0


# -- HTTP parameters --------------------------------------------------------------------


def test_parameters():
    assert validate_notification_page(None) == 20
    assert validate_notification_page("100") == 100
    for bad in ("0", "101", "x"):
        with pytest.raises(ValidationError):
            validate_notification_page(bad)
    assert parse_unread(None) is False and parse_unread("true") is True
    with pytest.raises(ValidationError):
        parse_unread("yes")
    assert decode_notification_cursor("42") == 42
    with pytest.raises(ValidationError):
        decode_notification_cursor("-1")
    assert parse_read_body({"all": True}) is None
    assert parse_read_body({"ids": ["3", 1, "3"]}) == [1, 3]
    for bad in ({}, {"all": False}, {"ids": []}, {"ids": ["x"]}, {"ids": [True]},
                {"ids": ["1"], "all": True}):
        with pytest.raises(ValidationError):
            parse_read_body(bad)
    assert validate_user_id("ann") == "ann"
    for bad in ("", "a b", "x" * 129, 5):
        with pytest.raises(ValidationError):
            validate_user_id(bad)


def test_public_shape():
    n = Notification(5, "ann", "reply", {"x": 1}, datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert n.public() == {"id": "5", "kind": "reply", "created_at": "2024-01-02T00:00:00.000Z",
                          "read": False, "data": {"x": 1}}
