"""Frames on the wire: JSON text by default, msgpack binary on ``engage.msgpack``.

An outgoing event is encoded at most once per wire format and the same bytes
go to every subscriber that speaks it (:class:`SharedFrame`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgpack
import msgspec

from engage.ws.frames import OP_TEXT, binary_frame, frame

Wire = Literal["json", "msgpack"]
MSGPACK_SUBPROTOCOL = "engage.msgpack"
#: Compact UTF-8 JSON, like ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
#: at a fifth of its cost (every ack of an ingested op is one; §16).
_JSON = msgspec.json.Encoder()


def encode(obj: Any, wire: Wire) -> bytes:
    """A complete WebSocket frame carrying ``obj``."""
    if wire == "msgpack":
        return binary_frame(msgpack.packb(obj))
    return frame(OP_TEXT, _JSON.encode(obj))


def decode(data: str | bytes, wire: Wire) -> Any:
    """Parse one client message. Raises ValueError on malformed input."""
    if wire == "msgpack":
        if isinstance(data, str):
            raise ValueError("expected a binary msgpack frame")
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError,
                TypeError) as exc:
            raise ValueError(f"malformed msgpack: {exc}") from None
    if isinstance(data, bytes):
        raise ValueError("expected a JSON text frame")
    return json.loads(data)


class SharedFrame:
    """One event, framed lazily and at most once per wire format."""

    __slots__ = ("obj", "_json", "_msgpack")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def bytes_for(self, wire: Wire) -> bytes:
        if wire == "msgpack":
            if self._msgpack is None:
                self._msgpack = encode(self.obj, "msgpack")
            return self._msgpack
        if self._json is None:
            self._json = encode(self.obj, "json")
        return self._json
