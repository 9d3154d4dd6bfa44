"""Complete server-to-client WebSocket frames, built once and shared.

RFC 6455 server frames are never masked, so the bytes of one framed event are
the same for every socket that receives it: the publisher frames an event
once and writes the same ``bytes`` object to every subscriber. No extension
(permessage-deflate) is ever negotiated, so frames are plain and final.

The header is tiny and written here directly (wsproto's ``FrameProtocol``
would give the same bytes at several times the cost)::

    byte 0   FIN (0x80) | opcode
    byte 1   payload length < 126, or 126 + 2-byte length, or 127 + 8-byte length
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_FIN = 0x80
#: RFC 6455 5.5: control frames carry at most 125 bytes of payload.
MAX_CONTROL_PAYLOAD = 125

# -- close codes (RFC 6455 7.4 and Engage's own, see docs/protocol.md) --------------------

NORMAL_CLOSURE = 1000
#: The server is shutting down or restarting.
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
#: Never sent: a peer that vanished without a close frame.
ABNORMAL_CLOSURE = 1006
#: The peer broke a rule of ours (a fragmented message not finished in time).
POLICY_VIOLATION = 1008
#: A message was larger than the connection's ``max_message_bytes`` or in too many frames.
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
#: The client read too slowly and its bounded outbox overflowed.
SLOW_CONSUMER_CLOSE = 4008
#: The server lost its event stream (Redis pub/sub) and may have missed events:
#: reconnect and resubscribe with ``since`` (RFC 6455's "service restart").
SERVICE_RESTART = 1012
#: Nothing (not even a pong) arrived for ``ws_idle_timeout`` seconds.
HEARTBEAT_TIMEOUT = 4009
#: The connection's token expired and no fresh one came within ``ws_auth_grace``.
TOKEN_EXPIRED_CLOSE = 4401

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_CODE = struct.Struct("!H")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame.

    Args:
        opcode: one of the ``OP_*`` constants.
        payload: the frame's payload, already encoded.

    Returns:
        The complete frame, header and payload.
    """
    n = len(payload)
    if n < 126:
        return _SHORT.pack(_FIN | opcode, n) + payload
    if n < 0x10000:
        return _MEDIUM.pack(_FIN | opcode, 126, n) + payload
    return _LONG.pack(_FIN | opcode, 127, n) + payload


def text_frame(text: str) -> bytes:
    """A text message frame carrying ``text`` as UTF-8."""
    return frame(OP_TEXT, text.encode("utf-8"))


def binary_frame(data: bytes) -> bytes:
    """A binary message frame carrying ``data``."""
    return frame(OP_BINARY, bytes(data))


def close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte code and a UTF-8 reason.

    The reason is cut (on a character boundary) so the payload fits in a
    control frame. ``code=None`` gives an empty payload (no status).
    """
    if code is None:
        return b""
    encoded = reason.encode("utf-8")
    limit = MAX_CONTROL_PAYLOAD - _CODE.size
    if len(encoded) > limit:
        encoded = encoded[:limit].decode("utf-8", "ignore").encode("utf-8")
    return _CODE.pack(code) + encoded


def close_frame(code: int | None = NORMAL_CLOSURE, reason: str = "") -> bytes:
    """A close frame with ``code`` and ``reason`` (cut to fit 125 bytes)."""
    return frame(OP_CLOSE, close_payload(code, reason))


def _control(opcode: int, payload: bytes) -> bytes:
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError(f"control frame payload is {len(payload)} bytes; "
                         f"at most {MAX_CONTROL_PAYLOAD} allowed")
    return frame(opcode, bytes(payload))


def ping_frame(payload: bytes = b"") -> bytes:
    """A ping frame. Raises ValueError if ``payload`` exceeds 125 bytes."""
    return _control(OP_PING, payload)


def pong_frame(payload: bytes = b"") -> bytes:
    """A pong frame. Raises ValueError if ``payload`` exceeds 125 bytes."""
    return _control(OP_PONG, payload)
