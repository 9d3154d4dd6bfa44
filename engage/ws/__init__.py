"""Engage's WebSocket layer, built for one-to-many fan-out.

::

    frames.py     complete server frames (text, binary, close, ping, pong), built once
    handshake.py  request head parsing and plain HTTP refusals (problem+json)
    outbox.py     FrameWriter: the write_nowait hot path and the bounded outbox
    transport.py  WebSocketConnection: handshake, receive, closing handshake
    endpoint.py   the /v1/ws gateway: origin, token and wire checks, then a connection actor
    frontdoor.py  serve_front: one port, WebSocket upgrades here, the rest to engage.http1
"""

from engage.errors import WebSocketClosed
from engage.ws.frames import (GOING_AWAY, MESSAGE_TOO_BIG, NORMAL_CLOSURE, SLOW_CONSUMER_CLOSE,
                              binary_frame, close_frame, ping_frame, pong_frame, text_frame)
from engage.ws.frontdoor import FrontConfig, serve_front
from engage.ws.transport import WebSocketConnection

__all__ = [
    "FrontConfig", "GOING_AWAY", "MESSAGE_TOO_BIG", "NORMAL_CLOSURE", "SLOW_CONSUMER_CLOSE",
    "WebSocketClosed", "WebSocketConnection", "binary_frame", "close_frame", "ping_frame",
    "pong_frame", "serve_front", "text_frame",
]
