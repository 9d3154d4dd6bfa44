"""Strict decoding: msgspec structs in, :class:`~engage.errors.ValidationError` out.

Every request body and every WebSocket op has a struct (``engage.schemas.http``,
``engage.schemas.ws``). Decoding checks structure and types, refuses unknown
fields, and turns msgspec's message into a client error with a stable
``code`` (taken from the field at fault where that field has a code of its
own, so clients keep seeing ``invalid_count`` rather than a generic code).
Semantic rules (content id syntax, text checks, ranges that depend on config)
stay in :mod:`engage.domain`.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from engage.errors import UnsupportedMediaType, ValidationError

T = TypeVar("T")

#: Error codes for a field at fault; other fields get the caller's default code.
FIELD_CODES = {
    "content": "invalid_content_id", "count": "invalid_count", "viewer": "invalid_viewer",
    "since": "invalid_since", "body": "invalid_body", "parent": "invalid_comment_id",
    "ref": "invalid_ref", "token": "invalid_token", "feed": "invalid_feed",
    "notifications": "invalid_frame", "ids": "invalid_body", "all": "invalid_body",
    "events": "invalid_body", "seconds": "invalid_seconds", "reason": "invalid_reason",
}

TOO_DEEP = "the document is nested too deeply"
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_AT_FIELD = re.compile(r"at `\$\.([A-Za-z_]+)")
_MISSING = re.compile(r"missing required field `([^`]*)`")


class Body(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every strict request body: unknown fields are refused."""


def error_from(exc: msgspec.ValidationError, default_code: str) -> ValidationError:
    """A client error for msgspec's complaint, with a code a client can act on."""
    message = str(exc)
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        return ValidationError(f"unknown field {unknown.group(1)!r}", code="unknown_field")
    at = _AT_FIELD.search(message) or _MISSING.search(message)
    code = FIELD_CODES.get(at.group(1), default_code) if at else default_code
    return ValidationError(message.replace("`$.", "`").replace("`$`", "the body"), code=code)


#: One decoder per schema and format. ``msgspec.json.decode(raw, type=...)``
#: keeps what it learns of a type only for structs: for a union such as the
#: WebSocket ops it analysed the type again on every call, a fifth of an
#: ingested op's CPU (docs/decisions.md §16).
#: Keyed by ``id(schema)``: hashing a union is itself slow. Each entry holds
#: its schema, so that id cannot be reused by another object while cached;
#: schemas are module-level types, so the caches stay small.
_JSON_DECODERS: dict[int, tuple[Any, msgspec.json.Decoder]] = {}
_MSGPACK_DECODERS: dict[int, tuple[Any, msgspec.msgpack.Decoder]] = {}


def _json_decoder(schema: Any) -> msgspec.json.Decoder:
    entry = _JSON_DECODERS.get(id(schema))
    if entry is None:
        entry = _JSON_DECODERS[id(schema)] = (schema, msgspec.json.Decoder(schema))
    return entry[1]


def _msgpack_decoder(schema: Any) -> msgspec.msgpack.Decoder:
    entry = _MSGPACK_DECODERS.get(id(schema))
    if entry is None:
        entry = _MSGPACK_DECODERS[id(schema)] = (schema, msgspec.msgpack.Decoder(schema))
    return entry[1]


def decode_json(raw: bytes | str, schema: type[T], *, default_code: str = "invalid_body") -> T:
    """Decode and check a JSON document against ``schema``.

    Raises:
        ValidationError: malformed JSON (``malformed_json``) or a document that
            does not fit (``unknown_field``, a field's code, or ``default_code``).
    """
    try:
        return _json_decoder(schema).decode(raw)
    except msgspec.ValidationError as exc:
        raise error_from(exc, default_code) from None
    except msgspec.DecodeError as exc:
        raise ValidationError(f"malformed JSON: {exc}", code="malformed_json") from None
    except UnicodeDecodeError:
        raise ValidationError("the body is not valid UTF-8", code="malformed_json") from None
    except RecursionError:  # msgspec's nesting limit, inside a list[Any] for one
        raise ValidationError(TOO_DEEP, code=default_code) from None


def decode_msgpack(raw: bytes, schema: type[T], *, default_code: str = "invalid_body") -> T:
    """Like :func:`decode_json` for msgpack (``malformed`` when it does not parse)."""
    try:
        return _msgpack_decoder(schema).decode(raw)
    except msgspec.ValidationError as exc:
        raise error_from(exc, default_code) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"malformed msgpack: {exc}", code="malformed") from None
    except RecursionError:
        raise ValidationError(TOO_DEEP, code=default_code) from None


def loose(raw: bytes | str, msgpack: bool = False) -> Any:
    """The document without a schema, or ``None`` if it does not parse (for
    echoing a ``ref`` from a frame that failed its schema)."""
    try:
        return msgspec.msgpack.decode(raw) if msgpack else msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError, RecursionError):
        return None


def decode_body(raw: bytes, media_type: str | None, schema: type[T], *,
                required: bool = True) -> T | None:
    """An HTTP request body decoded against ``schema``; None if empty and not ``required``.

    Args:
        raw: the body.
        media_type: its ``Content-Type`` without parameters, lower-cased.

    Raises:
        ValidationError: missing, malformed, or not fitting the schema.
        UnsupportedMediaType: a body that is not ``application/json``.
    """
    if not raw:
        if required:
            raise ValidationError("request body must be a JSON object", code="missing_body")
        return None
    if media_type != "application/json":
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    return decode_json(raw, schema)
