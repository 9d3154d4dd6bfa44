"""The client-to-server WebSocket ops (docs/protocol.md), one struct each.

A frame is decoded straight into one of these by its ``op`` tag; an unknown
``op``, an unknown field or a wrong type is an ``error`` frame, never a
dropped connection. Value rules (content id syntax, applause range, text)
are checked afterwards by :mod:`engage.domain`, as for HTTP.
"""

from __future__ import annotations

from typing import Annotated, Union

import msgspec

from engage.errors import ValidationError
from engage.schemas.base import decode_json, decode_msgpack, error_from

#: Longest ``ref`` a client may attach (echoed back in replies).
MAX_REF = 64

Ref = Union[Annotated[str, msgspec.Meta(max_length=MAX_REF)],
            Annotated[int, msgspec.Meta(ge=-(10 ** 18), le=10 ** 18)], None]


class Since(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where a reconnecting client left off: the last ``offset`` in ``epoch``."""

    offset: Annotated[int, msgspec.Meta(ge=0)]
    epoch: Annotated[str, msgspec.Meta(max_length=64)]


class ClientOp(msgspec.Struct, tag_field="op", forbid_unknown_fields=True, frozen=True,
               kw_only=True):
    """Base of every op; any op may carry a ``ref`` that its reply echoes."""

    ref: Ref = None


class Auth(ClientOp, tag="auth"):
    """Sign in, or replace an expiring token."""

    token: Annotated[str, msgspec.Meta(max_length=8192)]


class Subscribe(ClientOp, tag="subscribe"):
    """Follow one subject: a ``content`` id, a ``feed``, or ``notifications: true``."""

    content: str | None = None
    feed: str | None = None
    notifications: bool | None = None
    since: Since | None = None


class Unsubscribe(ClientOp, tag="unsubscribe"):
    """Stop following a subject named as in :class:`Subscribe`."""

    content: str | None = None
    feed: str | None = None
    notifications: bool | None = None


class View(ClientOp, tag="view"):
    content: str
    viewer: str | None = None


class Like(ClientOp, tag="like"):
    content: str


class Unlike(ClientOp, tag="unlike"):
    content: str


class Applaud(ClientOp, tag="applaud"):
    content: str
    count: int = 1


class Comment(ClientOp, tag="comment"):
    content: str
    body: str
    parent: str | int | None = None


class Ping(ClientOp, tag="ping"):
    pass


AnyOp = Union[Auth, Subscribe, Unsubscribe, View, Like, Unlike, Applaud, Comment, Ping]
OP_NAMES = ("auth", "subscribe", "unsubscribe", "view", "like", "unlike", "applaud",
            "comment", "ping")


def decode_op(data: str | bytes, msgpack: bool) -> AnyOp:
    """The op in one client message.

    Raises:
        ValidationError: ``malformed`` (not JSON / msgpack, or the wrong frame
            type for the wire), ``unknown_op``, ``invalid_frame``,
            ``unknown_field`` or a field's own code.
    """
    if msgpack:
        if isinstance(data, str):
            raise ValidationError("expected a binary msgpack frame", code="malformed")
        return _check(decode_msgpack, data)
    if isinstance(data, bytes):
        raise ValidationError("expected a JSON text frame", code="malformed")
    return _check(decode_json, data)


def _check(decode, data) -> AnyOp:
    try:
        return decode(data, AnyOp, default_code="invalid_frame")
    except ValidationError as exc:
        if exc.code == "malformed_json":
            exc.code = "malformed"
        elif "`op`" in exc.detail and "missing" not in exc.detail:
            raise ValidationError(f"unknown op; one of {', '.join(OP_NAMES)}",
                                  code="unknown_op") from None
        elif "missing required field `op`" in exc.detail or "Expected `object`" in exc.detail:
            raise ValidationError('every frame is an object with an "op"',
                                  code="invalid_frame") from None
        raise


__all__ = ["AnyOp", "Applaud", "Auth", "ClientOp", "Comment", "Like", "MAX_REF", "OP_NAMES",
           "Ping", "Since", "Subscribe", "Unlike", "Unsubscribe", "View", "decode_op",
           "error_from"]
