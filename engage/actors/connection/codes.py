"""WebSocket close codes Engage uses (documented in docs/protocol.md)."""

NORMAL = 1000
#: The server is shutting down or restarting; reconnect with backoff.
GOING_AWAY = 1001
#: A frame broke the protocol badly enough that we stop talking.
PROTOCOL_ERROR = 1002
#: A message was larger than ``ws_max_message_bytes``.
MESSAGE_TOO_BIG = 1009
#: An unexpected server fault.
INTERNAL_ERROR = 1011
#: The server lost its event stream (Redis pub/sub); reconnect and catch up.
SERVICE_RESTART = 1012
#: The client read too slowly and its outbox overflowed; reconnect and catch up.
SLOW_CONSUMER = 4008
#: Nothing (not even a pong) arrived for ``ws_idle_timeout`` seconds.
HEARTBEAT_TIMEOUT = 4009
