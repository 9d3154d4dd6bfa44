"""Moderation rules as plain code: word lists, the screening decision, the
states a comment goes through, and bans. No I/O.

A comment is in one of these states::

    held ──approve──> visible ──hide──> hidden
      │                  ^                │
      └─reject─> rejected └────restore────┘

    any state but deleted ──delete──> deleted

Only ``visible`` comments are shown, counted, published live and announced
to notifications and webhooks. ``deleted`` is not a stored status: it is a
comment whose ``deleted_at`` is set (whatever its status was before).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

from engage.errors import Conflict, Forbidden, UnprocessableContent, ValidationError

HELD = "held"
VISIBLE = "visible"
HIDDEN = "hidden"
REJECTED = "rejected"
DELETED = "deleted"
#: Statuses a stored comment can have (``deleted`` is ``deleted_at``, not a status).
STATUSES = (HELD, VISIBLE, HIDDEN, REJECTED)

MODES = ("none", "all", "first")

#: action -> {from state: to state}. ``edit`` keeps the state; screening may
#: then turn a visible comment into a held one.
TRANSITIONS: dict[str, dict[str, str]] = {
    "approve": {HELD: VISIBLE},
    "reject": {HELD: REJECTED},
    "hide": {VISIBLE: HIDDEN},
    "restore": {HIDDEN: VISIBLE},
    "delete": {HELD: DELETED, VISIBLE: DELETED, HIDDEN: DELETED, REJECTED: DELETED},
    "edit": {HELD: HELD, VISIBLE: VISIBLE},
}

#: Longest ban, in seconds (ten years): beyond it, ban expiry arithmetic overflows nothing.
MAX_BAN_SECONDS = 10 * 365 * 86400
MAX_BAN_REASON = 500
MAX_USER_ID = 128

# -- word lists -------------------------------------------------------------------------

# Characters that continue a word: \w (letters, digits, underscore in every
# script) and combining marks, so "bad" does not match inside "bad́" either.
_WORD_CHARS = r"\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_NOT_BEFORE = rf"(?<![{_WORD_CHARS}])"
_NOT_AFTER = rf"(?![{_WORD_CHARS}])"
#: What separates the words of a phrase in a text: any run of non-word characters.
_SEPARATOR = rf"[^{_WORD_CHARS}]+"
_WORD_RE = re.compile(rf"[{_WORD_CHARS}]")


def normalize(text: str) -> str:
    """Compatibility-normalised and case-folded: ``"Ｂａｄ"``, ``"BAD"`` -> ``"bad"``."""
    return unicodedata.normalize("NFKC", text).casefold()


class WordList:
    """Entries (words or phrases) matched on whole words, ignoring case.

    ``"spam"`` matches ``"SPAM!"`` and ``"(spam)"`` but not ``"spammer"`` or
    ``"antispam"``. An entry of several words (``"buy now"``) matches those
    words in order with any spaces or punctuation between them
    (``"Buy - NOW"``). Matching is unicode-aware: letters of every script,
    digits and combining marks count as word characters, and text is
    NFKC-normalised and case-folded on both sides. Scripts written without
    spaces between words (Chinese, Japanese, Thai) only match where the entry
    stands apart from other letters.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        patterns = []
        for entry in entries:
            parts = normalize(entry).split()
            if not parts:
                continue
            pattern = _SEPARATOR.join(re.escape(p) for p in parts)
            # Like \b: a boundary is needed only where the entry has a word character.
            if _WORD_RE.match(parts[0][0]):
                pattern = _NOT_BEFORE + pattern
            if _WORD_RE.match(parts[-1][-1]):
                pattern += _NOT_AFTER
            patterns.append(pattern)
        self._patterns = tuple(dict.fromkeys(patterns))
        self._pattern = re.compile("|".join(self._patterns)) if self._patterns else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __len__(self) -> int:
        return len(self._patterns)

    def find(self, text: str) -> str | None:
        """The first listed word or phrase in ``text`` (normalised), or ``None``."""
        if self._pattern is None:
            return None
        match = self._pattern.search(normalize(text))
        return None if match is None else match.group(0)

    def matches(self, text: str) -> bool:
        return self.find(text) is not None


# -- screening --------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How new and edited comments are screened.

    Attributes:
        mode: ``"none"`` (only word lists hold), ``"all"`` (hold every
            comment) or ``"first"`` (hold a user's comments until one of
            theirs has been approved).
        hold: words that send a comment to the moderation queue.
        block: words that refuse a comment outright.
    """

    mode: str = "none"
    hold: WordList = field(default_factory=lambda: WordList(()))
    block: WordList = field(default_factory=lambda: WordList(()))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"moderation mode must be one of {MODES}, not {self.mode!r}")

    @classmethod
    def from_lists(cls, mode: str, hold: Iterable[str], block: Iterable[str]) -> "Policy":
        return cls(mode, WordList(hold), WordList(block))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What screening decided: ``action`` is ``"publish"``, ``"hold"`` or ``"block"``."""

    action: str
    reason: str  # "clean", "hold_word", "block_word", "mode_all", "mode_first"

    @property
    def status(self) -> str:
        """The status a comment with this verdict is stored with."""
        if self.action == "block":
            raise ValueError("a blocked comment is not stored")
        return HELD if self.action == "hold" else VISIBLE


def screen(policy: Policy, body: str, *, trusted: bool) -> Verdict:
    """Decide what happens to a comment ``body`` by a user (``trusted``: one of
    their comments has been approved). Block words win over everything, then
    hold words, then the mode."""
    if policy.block.matches(body):
        return Verdict("block", "block_word")
    if policy.hold.matches(body):
        return Verdict("hold", "hold_word")
    if policy.mode == "all":
        return Verdict("hold", "mode_all")
    if policy.mode == "first" and not trusted:
        return Verdict("hold", "mode_first")
    return Verdict("publish", "clean")


def check_not_blocked(verdict: Verdict) -> None:
    """Raises UnprocessableContent (422 ``blocked_content``) for a blocked verdict.

    The detail names neither the body nor the word: the block list stays the
    moderators' own.
    """
    if verdict.action == "block":
        raise UnprocessableContent(
            "this comment contains a word or phrase that is not allowed here; "
            "it was not saved", code="blocked_content")


# -- transitions -------------------------------------------------------------------------


def state_of(status: str, deleted: bool) -> str:
    """A stored comment's state: its status, or ``deleted``."""
    return DELETED if deleted else status


def transition(state: str, action: str) -> str:
    """The state after ``action`` from ``state``.

    Raises:
        Conflict: 409 ``invalid_transition`` when ``action`` is not allowed from ``state``.
    """
    allowed = TRANSITIONS.get(action)
    if allowed is None:
        raise ValueError(f"unknown moderation action {action!r}")
    target = allowed.get(state)
    if target is None:
        froms = " or ".join(sorted(allowed))
        raise Conflict(f"cannot {action} a {state} comment (only {froms})",
                       code="invalid_transition")
    return target


def live_effect(before: str, after: str) -> str | None:
    """What live views see when a comment goes from ``before`` to ``after``:
    ``"comment"`` (it appears), ``"comment_deleted"`` (it disappears) or
    ``None`` (nothing they could see changed; an edit of a visible comment
    that stays visible is a ``comment_updated`` and is decided by the caller)."""
    if before != VISIBLE and after == VISIBLE:
        return "comment"
    if before == VISIBLE and after != VISIBLE:
        return "comment_deleted"
    return None


def has_moderator_role(roles: Iterable[str]) -> bool:
    """Moderators and admins may moderate."""
    roles = set(roles)
    return "moderator" in roles or "admin" in roles


# -- bans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ban:
    """A user who may not comment until ``until``."""

    user: str
    until: datetime
    reason: str
    by: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return now < self.until

    def public(self) -> dict:
        return {"user": self.user, "until": _iso(self.until), "reason": self.reason,
                "by": self.by, "created_at": _iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class Standing:
    """What screening needs to know about a commenter."""

    ban: Ban | None = None
    trusted: bool = False


def check_not_banned(standing: Standing, now: datetime) -> None:
    """Raises Forbidden (403 ``banned``) while the user's ban lasts."""
    ban = standing.ban
    if ban is not None and ban.active(now):
        raise Forbidden(f"you may not comment or edit comments until {_iso(ban.until)}",
                        code="banned")


def parse_ban(body: dict) -> tuple[int, str]:
    """``{"seconds": int > 0, "reason": str}`` -> (seconds, reason).

    Raises:
        ValidationError: ``invalid_seconds`` or ``invalid_reason``.
    """
    seconds = body.get("seconds")
    if (not isinstance(seconds, int) or isinstance(seconds, bool)
            or not 1 <= seconds <= MAX_BAN_SECONDS):
        raise ValidationError(f"seconds must be an integer from 1 to {MAX_BAN_SECONDS}",
                              code="invalid_seconds")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_BAN_REASON or "\x00" in reason:
        raise ValidationError(f"reason must be a string of at most {MAX_BAN_REASON} characters "
                              f"(no NUL)", code="invalid_reason")
    return seconds, reason.strip()


def validate_user_id(user: str) -> str:
    # No NUL: Postgres text cannot hold it (no token's sub can be stored with one).
    if not 1 <= len(user) <= MAX_USER_ID or "\x00" in user:
        raise ValidationError(f"user ids are 1-{MAX_USER_ID} characters, without NUL",
                              code="invalid_user")
    return user


def ban_until(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
