"""Strict schemas (msgspec) for every HTTP request body and WebSocket op."""

from engage.schemas.base import Body, decode_json, decode_msgpack, error_from, loose
from engage.schemas.http import (ApplauseBody, BanBody, CommentBody, CommentEdit, EmptyBody,
                                 Event, EventsBody, PublishBody, ReadBody, ViewBody)
from engage.schemas.ws import AnyOp, ClientOp, Since, decode_op

__all__ = ["AnyOp", "ApplauseBody", "BanBody", "Body", "ClientOp", "CommentBody", "CommentEdit",
           "EmptyBody", "Event", "EventsBody", "PublishBody", "ReadBody", "Since", "ViewBody",
           "decode_json", "decode_msgpack", "decode_op", "error_from", "loose"]
