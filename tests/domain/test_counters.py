"""Counter rules: content ids, interaction validation, applause clamping and
the flush-batch wire format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.domain.counters import (
    FIELD_SEP,
    MAX_VIEWER_ID,
    Counts,
    FlushBatch,
    Op,
    OpResult,
    clamp_applause,
    make_op,
    parse_batch,
    validate_content_id,
)
from engage.errors import Unauthorized, ValidationError

CAP = 50

# -- validate_content_id ------------------------------------------------------


@pytest.mark.parametrize("content_id", [
    "a", "post-1", "blog.x", "ns:item_42", "A.B-C_d:9", "x" * 128,
])
def test_valid_content_ids_are_returned_unchanged(content_id):
    assert validate_content_id(content_id) is content_id


@pytest.mark.parametrize("content_id", [
    "", "x" * 129, "has space", "slash/inside", "uni\u00e9", "new\nline", "trail\n",
    "sep" + FIELD_SEP + "x", None, 123, b"bytes", ["a"],
])
def test_invalid_content_ids_are_rejected(content_id):
    with pytest.raises(ValidationError) as excinfo:
        validate_content_id(content_id)
    assert excinfo.value.code == "invalid_content_id"
    assert excinfo.value.status == 400


# -- make_op: kinds and views -------------------------------------------------


@pytest.mark.parametrize("kind", ["share", "View", "", None, 1, ("view",)])
def test_unknown_kind_is_rejected_before_anything_else(kind):
    with pytest.raises(ValidationError) as excinfo:
        make_op(kind, user=None, cap=CAP)  # no user, yet not Unauthorized
    assert excinfo.value.code == "invalid_type"


def test_anonymous_view_without_viewer():
    assert make_op("view", user=None, cap=CAP) == Op("view", "", 1)


def test_view_by_signed_in_user_ignores_viewer_id():
    assert make_op("view", user="alice", viewer="v-123", cap=CAP) == Op("view", "alice", 1)


@pytest.mark.parametrize("viewer", ["v", "v-123", "x" * MAX_VIEWER_ID])
def test_anonymous_view_with_viewer_id_is_namespaced(viewer):
    op = make_op("view", user=None, viewer=viewer, cap=CAP)
    assert op == Op("view", "anon" + FIELD_SEP + viewer, 1)


@pytest.mark.parametrize("viewer", ["", "x" * (MAX_VIEWER_ID + 1), 7, ["v"], b"v"])
def test_bad_viewer_id_is_rejected(viewer):
    with pytest.raises(ValidationError) as excinfo:
        make_op("view", user=None, viewer=viewer, cap=CAP)
    assert excinfo.value.code == "invalid_viewer"


@pytest.mark.parametrize("count", [1, 2, 0, "1"])
def test_views_take_no_count(count):
    with pytest.raises(ValidationError) as excinfo:
        make_op("view", user="alice", count=count, cap=CAP)
    assert excinfo.value.code == "invalid_count"


# -- make_op: likes and applause ----------------------------------------------


@pytest.mark.parametrize("kind", ["like", "unlike", "applause"])
def test_likes_and_applause_need_a_user(kind):
    with pytest.raises(Unauthorized) as excinfo:
        make_op(kind, user=None, count="not even checked", cap=CAP)
    assert excinfo.value.status == 401
    assert excinfo.value.code == "unauthorized"


@pytest.mark.parametrize("kind", ["like", "unlike"])
def test_like_and_unlike(kind):
    assert make_op(kind, user="bob", cap=CAP) == Op(kind, "bob", 1)


@pytest.mark.parametrize("kind", ["like", "unlike"])
@pytest.mark.parametrize("count", [1, 2])
def test_like_and_unlike_take_no_count(kind, count):
    with pytest.raises(ValidationError) as excinfo:
        make_op(kind, user="bob", count=count, cap=CAP)
    assert excinfo.value.code == "invalid_count"


def test_applause_defaults_to_one_clap():
    assert make_op("applause", user="carol", cap=CAP) == Op("applause", "carol", 1)


@pytest.mark.parametrize("count", [1, 7, CAP])
def test_applause_count_within_bounds(count):
    assert make_op("applause", user="carol", count=count, cap=CAP) == Op("applause", "carol", count)


@pytest.mark.parametrize("count", [0, -1, CAP + 1, 10**9])
def test_applause_count_out_of_bounds(count):
    with pytest.raises(ValidationError, match=f"1 to {CAP}") as excinfo:
        make_op("applause", user="carol", count=count, cap=CAP)
    assert excinfo.value.code == "invalid_count"


@pytest.mark.parametrize("count", [True, False, "3", 3.0, 2.5, [3]])
def test_applause_count_must_be_a_real_int(count):
    with pytest.raises(ValidationError) as excinfo:
        make_op("applause", user="carol", count=count, cap=CAP)
    assert excinfo.value.code == "invalid_count"


def test_applause_bound_follows_the_cap():
    assert make_op("applause", user="c", count=3, cap=3).count == 3
    with pytest.raises(ValidationError):
        make_op("applause", user="c", count=4, cap=3)


# -- clamp_applause -----------------------------------------------------------


@pytest.mark.parametrize(("current", "requested", "cap", "expected"), [
    (0, 10, 50, 10),
    (45, 10, 50, 5),
    (50, 10, 50, 0),
    (60, 10, 50, 0),   # already over a lowered cap: nothing, never negative
    (0, 0, 50, 0),
    (49, 1, 50, 1),
])
def test_clamp_applause_examples(current, requested, cap, expected):
    assert clamp_applause(current, requested, cap) == expected


@given(cap=st.integers(min_value=1, max_value=10_000), data=st.data())
def test_clamp_applause_properties(cap, data):
    current = data.draw(st.integers(min_value=0, max_value=2 * cap), label="current")
    requested = data.draw(st.integers(min_value=0, max_value=2 * cap), label="requested")
    added = clamp_applause(current, requested, cap)
    assert 0 <= added <= requested
    if current <= cap:
        assert current + added <= cap  # never past the cap
        # and as much as allowed: all of it, or up to exactly the cap
        assert added == requested or current + added == cap
    else:
        assert added == 0


# -- OpResult.public and Counts -----------------------------------------------


def test_op_result_public_shapes():
    result = OpResult(views=10, likes=3, applause=40, liked=True, mine=12)
    assert result.public("view") == {"views": 10}
    assert result.public("like") == {"liked": True, "likes": 3}
    assert result.public("unlike") == {"liked": True, "likes": 3}
    assert result.public("applause") == {"applause": 40, "mine": 12}


def test_op_result_public_liked_defaults_to_false():
    result = OpResult(views=0, likes=0, applause=0)
    assert result.public("unlike") == {"liked": False, "likes": 0}
    assert result.public("applause") == {"applause": 0, "mine": None}


def test_counts_as_dict():
    assert Counts(views=5, unique_viewers=2, likes=1, applause=9, comments=3).as_dict("p") == {
        "id": "p", "views": 5, "unique_viewers": 2, "likes": 1, "applause": 9, "comments": 3}


# -- parse_batch --------------------------------------------------------------


def f(*parts: str) -> bytes:
    return FIELD_SEP.join(parts).encode()


def test_parse_batch_reads_every_field_kind():
    fields = {
        f("v", "post-1"): b"7",
        f("l", "post-1"): b"-1",
        f("a", "post-1"): b"12",
        f("v", "post-2"): b"1",
        f("L", "post-1", "alice"): b"1:41",
        f("L", "post-1", "bob"): b"0:42",
        f("A", "post-3", "carol"): b"30",
        f("H", "post-4"): b"1",
        b"#events": b"23",
    }
    batch = parse_batch("batch-1", fields)
    assert batch.id == "batch-1"
    assert batch.events == 23
    assert batch.deltas == {"post-1": [7, -1, 12], "post-2": [1, 0, 0]}
    assert batch.likes == {("post-1", "alice"): (True, 41), ("post-1", "bob"): (False, 42)}
    assert batch.applause == {("post-3", "carol"): 30}
    assert batch.hll_dirty == {"post-4"}
    assert batch.items == 4


def test_parse_batch_user_ids_may_contain_the_separator():
    """Anonymous viewer ids are namespaced with the separator; only the first
    one splits content from user."""
    user = "anon" + FIELD_SEP + "v1"
    batch = parse_batch("b", {f("L", "c", user): b"1:1", f("A", "c", user): b"2"})
    assert batch.likes == {("c", user): (True, 1)}
    assert batch.applause == {("c", user): 2}


def test_parse_batch_content_ids_with_colons():
    batch = parse_batch("b", {f("v", "ns:item"): b"3", f("L", "ns:item", "u"): b"1:10"})
    assert batch.deltas == {"ns:item": [3, 0, 0]}
    assert batch.likes == {("ns:item", "u"): (True, 10)}


def test_parse_batch_empty():
    batch = parse_batch("empty", {})
    assert batch == FlushBatch("empty")
    assert batch.items == 0 and batch.events == 0


@pytest.mark.parametrize("key", [b"x\x1fpost", b"Zpost", b"?"])
def test_parse_batch_rejects_unknown_fields(key):
    with pytest.raises(ValueError, match="unknown pending field"):
        parse_batch("b", {key: b"1"})


def test_parse_batch_rejects_malformed_values():
    with pytest.raises(ValueError):
        parse_batch("b", {f("v", "c"): b"seven"})
    with pytest.raises(ValueError):
        parse_batch("b", {f("L", "c", "u"): b"1"})  # no sequence


def test_flush_batch_items_counts_distinct_content():
    batch = FlushBatch("b", deltas={"a": [1, 0, 0]}, likes={("a", "u"): (True, 1),
                                                             ("b", "u"): (False, 2)},
                       applause={("c", "u"): 1}, hll_dirty={"a", "d"})
    assert batch.items == 4


def test_runs_of_anonymous_views_are_folded_and_nothing_else():
    from engage.domain.counters import coalesce_anonymous_views
    ops = [Op("view"), Op("view"), Op("view", "u1"), Op("view"), Op("like", "u1"),
           Op("view"), Op("view"), Op("view")]
    folded = coalesce_anonymous_views(ops)
    assert folded == [(Op("view", "", 2), 2), (Op("view", "u1"), 1), (Op("view"), 1),
                      (Op("like", "u1"), 1), (Op("view", "", 3), 3)]
    assert sum(n for _, n in folded) == len(ops)
    assert coalesce_anonymous_views([]) == []


def test_parse_events_groups_by_content_and_answers_bad_items_alone():
    from engage.domain.ingest import parse_events
    events = [{"type": "view", "content": "a"}, {"type": "like", "content": "b"},
              {"type": "view", "content": ["not", "a", "string"]}, "junk",
              {"type": "view", "content": "a", "viewer": "v1"},
              {"type": "view", "content": "a", "extra": 1},
              {"type": "applause", "content": "b", "count": 99}]
    groups, errors = parse_events(events, user="ann", cap=50)
    assert groups == {"a": [(0, Op("view", "ann")), (4, Op("view", "ann"))],
                      "b": [(1, Op("like", "ann"))]}
    assert {i: e["code"] for i, e in errors.items()} == {
        2: "invalid_content_id", 3: "invalid_event", 5: "unknown_field", 6: "invalid_count"}
    groups, errors = parse_events([{"type": "like", "content": "a"}], user=None, cap=50)
    assert groups == {} and errors[0]["status"] == 401
