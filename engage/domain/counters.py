"""Counter rules, with no I/O: validation, applause clamping, the shape of an
interaction and of a flush batch.

The same rules run atomically inside Redis (``engage/store/lua/apply.lua``),
because several processes may touch one item at once; this module is what the
gateway validates against and what the flush path parses with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Sequence

from engage.errors import Unauthorized, ValidationError

CONTENT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Longest accepted viewer id (anonymous viewers pick their own).
MAX_VIEWER_ID = 128
#: Separator inside Redis pending-hash fields; content ids can never contain it.
FIELD_SEP = "\x1f"

Kind = Literal["view", "like", "unlike", "applause"]
KINDS: tuple[Kind, ...] = ("view", "like", "unlike", "applause")
#: One-letter codes used on the wire to Redis.
KIND_CODES = {"view": "v", "like": "l", "unlike": "u", "applause": "a"}


def validate_content_id(content_id: object) -> str:
    """Return ``content_id`` if it is 1–128 characters of ``[A-Za-z0-9._:-]``."""
    if not isinstance(content_id, str) or not CONTENT_ID_RE.fullmatch(content_id):
        raise ValidationError(
            "content id must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
            code="invalid_content_id",
        )
    return content_id


def clamp_applause(current: int, requested: int, cap: int) -> int:
    """How much of ``requested`` applause a user at ``current`` may still add."""
    return max(0, min(requested, cap - current))


class Op(NamedTuple):
    """One interaction on one item (a named tuple, like :class:`OpResult`:
    every ingested op makes one, and a frozen dataclass's ``__init__`` cost
    three times as much).

    Attributes:
        kind: ``view``, ``like``, ``unlike`` or ``applause``.
        who: user id (likes, applause) or viewer id (views); ``""`` for an
            anonymous view without a viewer id.
        count: views or claps to add; 1 for likes.
        address: the client's IP address, for per-address rate limits; ``""``
            when the op is not limited per address (events from a site's backend).
    """

    kind: Kind
    who: str = ""
    count: int = 1
    address: str = ""


def make_op(kind: object, *, user: str | None, viewer: object = None,
            count: object = None, cap: int, address: str = "") -> Op:
    """Validate one interaction as a client described it (from ``address``).

    Raises:
        ValidationError: unknown kind, bad count or viewer id.
        Unauthorized: a like or applause without a user.
    """
    if kind not in KINDS:
        raise ValidationError(f"type must be one of {', '.join(KINDS)}", code="invalid_type")
    if kind == "view":
        if count is not None:
            raise ValidationError("views take no count", code="invalid_count")
        who = user or ""
        if viewer is not None and user is None:
            if not isinstance(viewer, str) or not 1 <= len(viewer) <= MAX_VIEWER_ID \
                    or not viewer.isprintable():
                raise ValidationError(
                    f"viewer must be a string of 1-{MAX_VIEWER_ID} printable characters",
                    code="invalid_viewer",
                )
            who = "anon" + FIELD_SEP + viewer
        return Op("view", who, 1, address)
    if user is None:
        raise Unauthorized(f"{kind} needs a signed-in user (Authorization: Bearer <token>)")
    if kind == "applause":
        if count is None:
            count = 1
        if type(count) is not int or not 1 <= count <= cap:
            raise ValidationError(f"count must be an integer from 1 to {cap}", code="invalid_count")
        return Op("applause", user, count, address)
    if count is not None:
        raise ValidationError(f"{kind} takes no count", code="invalid_count")
    return Op(kind, user, 1, address)  # type: ignore[arg-type]


def coalesce_anonymous_views(ops: Sequence[Op]) -> list[tuple[Op, int]]:
    """Fold each run of anonymous views (no user, no viewer id, one address) into one op.

    Such views only add to a counter, so ``n`` of them in a row are one
    ``Op("view", "", n)``: the Redis script does one step instead of ``n``.

    Returns:
        ``(op, how many of the original ops it stands for)`` in order.
    """
    out: list[tuple[Op, int]] = []
    for op in ops:
        if op.kind == "view" and not op.who and out and out[-1][0].kind == "view" \
                and not out[-1][0].who and out[-1][0].address == op.address:
            last, n = out[-1]
            out[-1] = (Op("view", "", last.count + op.count, op.address), n + 1)
        else:
            out.append((op, 1))
    return out


@dataclass(frozen=True, slots=True)
class Counts:
    """The public counters of one item."""

    views: int = 0
    unique_viewers: int = 0
    likes: int = 0
    applause: int = 0
    comments: int = 0

    def as_dict(self, content_id: str) -> dict:
        return {"id": content_id, "views": self.views, "unique_viewers": self.unique_viewers,
                "likes": self.likes, "applause": self.applause, "comments": self.comments}


class OpResult(NamedTuple):
    """The item's totals right after one op, and the caller's own state.

    ``mine`` is the user's applause total for ``applause`` ops; ``liked`` is the
    like state after ``like``/``unlike``. A tuple rather than a frozen
    dataclass: a batch makes one per interaction, and tuples are made fastest.
    """

    views: int
    likes: int
    applause: int
    liked: bool | None = None
    mine: int | None = None

    def public(self, kind: Kind) -> dict:
        if kind == "view":
            return {"views": self.views}
        if kind in ("like", "unlike"):
            return {"liked": bool(self.liked), "likes": self.likes}
        return {"applause": self.applause, "mine": self.mine}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An item's persisted state, as loaded from Postgres to refill Redis."""

    views: int = 0
    likes: int = 0
    applause: int = 0
    hll: bytes | None = None
    likers: tuple[str, ...] = ()
    applauders: tuple[tuple[str, int], ...] = ()
    comments: int = 0


@dataclass
class FlushBatch:
    """Pending changes handed off from Redis for one Postgres transaction.

    Attributes:
        id: unique batch id, recorded in Postgres so a retry applies once.
        deltas: content id -> [views, likes, applause] to add.
        likes: (content id, user) -> (liked, sequence); the highest sequence wins.
        applause: (content id, user) -> the user's total (only ever grows).
        hll_dirty: content ids whose HyperLogLog changed.
        events: interactions folded into this batch.
    """

    id: str
    deltas: dict[str, list[int]] = field(default_factory=dict)
    likes: dict[tuple[str, str], tuple[bool, int]] = field(default_factory=dict)
    applause: dict[tuple[str, str], int] = field(default_factory=dict)
    hll_dirty: set[str] = field(default_factory=set)
    events: int = 0

    @property
    def items(self) -> int:
        """Distinct content items touched."""
        return len(set(self.deltas) | self.hll_dirty | {c for c, _ in self.likes}
                   | {c for c, _ in self.applause})


_DELTA_INDEX = {"v": 0, "l": 1, "a": 2}


def parse_batch(batch_id: str, fields: dict[bytes, bytes]) -> FlushBatch:
    """Turn a handed-off Redis pending hash into a :class:`FlushBatch`.

    Field layout (written by ``apply.lua``), with ``|`` standing for ``\\x1f``:
    ``v|c``, ``l|c``, ``a|c`` deltas; ``L|c|user`` = ``"0:seq"``/``"1:seq"``;
    ``A|c|user`` = total; ``H|c`` = 1; ``#events`` = count.
    """
    batch = FlushBatch(batch_id)
    for raw_key, raw_value in fields.items():
        key = raw_key.decode()
        value = raw_value.decode()
        if key == "#events":
            batch.events = int(value)
            continue
        tag, rest = key[0], key[2:]
        if tag in _DELTA_INDEX:
            batch.deltas.setdefault(rest, [0, 0, 0])[_DELTA_INDEX[tag]] += int(value)
        elif tag == "L":
            content, user = rest.split(FIELD_SEP, 1)
            state, seq = value.split(":", 1)
            batch.likes[(content, user)] = (state == "1", int(seq))
        elif tag == "A":
            content, user = rest.split(FIELD_SEP, 1)
            batch.applause[(content, user)] = int(value)
        elif tag == "H":
            batch.hll_dirty.add(rest)
        else:
            raise ValueError(f"unknown pending field {key!r}")
    return batch
