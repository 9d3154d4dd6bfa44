"""Moderation rules without servers: word matching, screening, transitions, bans."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engage.domain.comments import Comment, check_can_delete
from engage.domain.moderation import (
    DELETED, HELD, HIDDEN, REJECTED, STATUSES, TRANSITIONS, VISIBLE, Ban, Policy, Standing,
    WordList, check_not_banned, check_not_blocked, has_moderator_role, live_effect, parse_ban,
    screen, state_of, transition, validate_user_id)
from engage.errors import Conflict, Forbidden, UnprocessableContent, ValidationError

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


# -- word lists -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "spam", "SPAM", "Spam!", "this is spam.", "(spam)", "spam, again", "«spam»", "a\nspam\n",
    "x-spam-y", "'spam'", "#spam",
])
def test_a_word_matches_whole_words_in_any_case_and_punctuation(text):
    assert WordList(["spam"]).matches(text)


@pytest.mark.parametrize("text", [
    "spammer", "antispam", "spam2", "spam_bot", "s p a m", "sp am", "", "nothing here",
])
def test_a_word_does_not_match_inside_other_words(text):
    assert not WordList(["spam"]).matches(text)


def test_entries_are_case_insensitive_and_trimmed():
    words = WordList(["  SpAm  ", "", "   "])
    assert len(words) == 1 and words.matches("spam") and words.matches("SPAM")
    assert not WordList([]) and not WordList([" ", ""]).matches("anything")


def test_unicode_letters_are_word_characters():
    words = WordList(["café", "straße", "дурак"])
    assert words.matches("Un CAFÉ, s'il vous plaît")
    assert not words.matches("cafés")  # é then s: still one word
    assert words.matches("STRASSE")  # case folding: ß == ss
    assert words.matches("Ты ДУРАК!")
    assert not words.matches("дураки")
    assert WordList(["naïve"]).matches("so naïve.")
    assert not WordList(["naïve"]).matches("naïveté")
    assert not WordList(["cafe"]).matches("café")  # accents matter: not the same word


def test_normalisation_and_combining_marks():
    words = WordList(["cafe\u0301"])  # decomposed é in the list
    assert words.matches("un café")  # composed é in the text
    assert WordList(["bad"]).matches("ＢＡＤ")  # full-width letters fold to ASCII
    assert not WordList(["bad"]).matches("bad\u0301")  # a combining mark continues the word


def test_phrases_match_words_in_order_with_any_separator():
    words = WordList(["buy now"])
    for text in ("Buy now!", "BUY   NOW", "buy-now", "please buy,\nnow", "buy... now"):
        assert words.matches(text), text
    for text in ("buy", "now", "now buy", "buynow", "buy nowhere", "rebuy now", "buy it now"):
        assert not words.matches(text), text


def test_entries_with_punctuation():
    words = WordList(["c++", "f*ck"])
    assert words.matches("I write C++ daily") and words.matches("f*ck!")
    assert not words.matches("fuck") and not words.matches("c")
    assert WordList(["$$$"]).matches("win $$$ now") and WordList(["$$$"]).matches("win$$$")


def test_regex_characters_are_literal():
    words = WordList(["a.b", "(x)"])
    assert words.matches("a.b") and not words.matches("axb")
    assert words.matches("(x)") and not words.matches("x")


def test_find_returns_the_normalised_match():
    assert WordList(["Buy Now"]).find("OK, BUY - NOW please") == "buy - now"
    assert WordList(["spam"]).find("fine") is None


# -- screening -------------------------------------------------------------------------


def policy(mode="none", hold=(), block=()):
    return Policy.from_lists(mode, hold, block)


def test_mode_none_publishes_clean_comments():
    verdict = screen(policy(), "hello", trusted=False)
    assert (verdict.action, verdict.status) == ("publish", VISIBLE)


def test_hold_words_hold_and_block_words_block_in_every_mode():
    for mode in ("none", "all", "first"):
        p = policy(mode, hold=["maybe"], block=["never"])
        assert screen(p, "maybe so", trusted=True).action == "hold"
        assert screen(p, "maybe NEVER", trusted=True).action == "block"  # block wins
        assert screen(p, "never", trusted=False).reason == "block_word"


def test_mode_all_holds_everything():
    p = policy("all")
    for trusted in (False, True):
        verdict = screen(p, "hello", trusted=trusted)
        assert (verdict.action, verdict.reason, verdict.status) == ("hold", "mode_all", HELD)


def test_mode_first_holds_until_trusted():
    p = policy("first", hold=["maybe"])
    assert screen(p, "hello", trusted=False).reason == "mode_first"
    assert screen(p, "hello", trusted=True).action == "publish"
    assert screen(p, "maybe", trusted=True).reason == "hold_word"  # words still apply


def test_a_blocked_verdict_is_a_422_that_does_not_echo_the_body():
    p = policy(block=["never"])
    verdict = screen(p, "secret text never shown", trusted=False)
    with pytest.raises(UnprocessableContent) as caught:
        check_not_blocked(verdict)
    assert caught.value.status == 422 and caught.value.code == "blocked_content"
    assert "secret" not in caught.value.detail and "never" not in caught.value.detail
    with pytest.raises(ValueError):
        verdict.status
    check_not_blocked(screen(p, "fine", trusted=False))  # nothing raised


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        Policy("sometimes")


# -- transitions --------------------------------------------------------------------------


@pytest.mark.parametrize("state,action,target", [
    (HELD, "approve", VISIBLE), (HELD, "reject", REJECTED), (VISIBLE, "hide", HIDDEN),
    (HIDDEN, "restore", VISIBLE), (HELD, "delete", DELETED), (VISIBLE, "delete", DELETED),
    (HIDDEN, "delete", DELETED), (REJECTED, "delete", DELETED), (HELD, "edit", HELD),
    (VISIBLE, "edit", VISIBLE),
])
def test_allowed_transitions(state, action, target):
    assert transition(state, action) == target


def test_every_other_transition_is_a_409():
    allowed = {(s, a) for a, table in TRANSITIONS.items() for s in table}
    refused = 0
    for state in (*STATUSES, DELETED):
        for action in TRANSITIONS:
            if (state, action) in allowed:
                continue
            with pytest.raises(Conflict) as caught:
                transition(state, action)
            assert caught.value.status == 409 and caught.value.code == "invalid_transition"
            refused += 1
    assert refused == 5 * 6 - 10
    with pytest.raises(ValueError):
        transition(HELD, "promote")


def test_specific_refusals():
    for state, action in ((VISIBLE, "approve"), (DELETED, "restore"), (REJECTED, "approve"),
                          (HIDDEN, "hide"), (HELD, "hide"), (REJECTED, "restore"),
                          (DELETED, "delete"), (HIDDEN, "edit"), (REJECTED, "edit")):
        with pytest.raises(Conflict):
            transition(state, action)


def test_state_and_live_effects():
    assert state_of(VISIBLE, True) == DELETED and state_of(HELD, False) == HELD
    assert live_effect(HELD, VISIBLE) == "comment" and live_effect(HIDDEN, VISIBLE) == "comment"
    assert live_effect(VISIBLE, HIDDEN) == "comment_deleted"
    assert live_effect(VISIBLE, DELETED) == "comment_deleted"
    assert live_effect(HELD, REJECTED) is None and live_effect(HELD, DELETED) is None
    assert live_effect(HIDDEN, DELETED) is None


def test_comment_status_in_public_shape():
    c = Comment(1, "x", "ann", "hi", None, None, NOW, status=HELD)
    assert c.public()["status"] == HELD and not c.visible and c.state == HELD
    d = Comment(1, "x", "ann", "hi", None, None, NOW, deleted=True)
    assert d.state == DELETED and not d.visible
    assert Comment(1, "x", "ann", "hi", None, None, NOW).visible


def test_moderators_delete_any_time_authors_within_the_window():
    old = Comment(1, "x", "ann", "hi", None, None, NOW - timedelta(days=1))
    check_can_delete(old, "mod", NOW, 300, moderator=True)
    with pytest.raises(Forbidden):
        check_can_delete(old, "ann", NOW, 300)
    with pytest.raises(Forbidden):
        check_can_delete(old, "mod", NOW, 300)
    fresh = Comment(1, "x", "ann", "hi", None, None, NOW)
    check_can_delete(fresh, "ann", NOW, 300)


def test_roles():
    assert has_moderator_role({"user", "moderator"}) and has_moderator_role(["admin"])
    assert not has_moderator_role({"user"}) and not has_moderator_role(set())


# -- bans -----------------------------------------------------------------------------


def test_a_ban_in_force_refuses_with_its_end():
    ban = Ban("bob", NOW + timedelta(hours=1), "spam", "mod", NOW)
    with pytest.raises(Forbidden) as caught:
        check_not_banned(Standing(ban), NOW)
    assert caught.value.code == "banned" and "2026-01-01T01:00:00.000Z" in caught.value.detail
    check_not_banned(Standing(ban), NOW + timedelta(hours=2))  # over
    check_not_banned(Standing(), NOW)
    assert ban.public() == {"user": "bob", "until": "2026-01-01T01:00:00.000Z",
                            "reason": "spam", "by": "mod",
                            "created_at": "2026-01-01T00:00:00.000Z"}


def test_ban_bodies():
    assert parse_ban({"seconds": 60, "reason": " spam "}) == (60, "spam")
    assert parse_ban({"seconds": 1}) == (1, "")
    for body in ({}, {"seconds": 0}, {"seconds": -5}, {"seconds": 1.5}, {"seconds": "60"},
                 {"seconds": True}, {"seconds": 10 ** 12}):
        with pytest.raises(ValidationError) as caught:
            parse_ban(body)
        assert caught.value.code == "invalid_seconds"
    for reason in (5, None, "x" * 501):
        with pytest.raises(ValidationError) as caught:
            parse_ban({"seconds": 5, "reason": reason})
        assert caught.value.code == "invalid_reason"
    assert validate_user_id("bob") == "bob"
    with pytest.raises(ValidationError):
        validate_user_id("x" * 129)
