"""Every error Engage raises on purpose, in one short hierarchy.

``EngageError`` is the root. The HTTP gateway maps ``ClientError`` subclasses to
``application/problem+json`` responses using their ``status`` and ``code``;
anything else is a server fault (500) and is logged, never shown.
"""

from __future__ import annotations


class EngageError(Exception):
    """Base class of every error raised on purpose by Engage."""


# -- actors and supervision -------------------------------------------------


class ActorError(EngageError):
    """Something went wrong talking to an actor."""


class ActorDeadError(ActorError):
    """The actor has stopped: its mailbox is closed and will never be read."""


class MailboxFull(ActorError):
    """A ``*_nowait`` send found the actor's bounded mailbox full."""


class AskTimeout(ActorError):
    """An ``ask`` got no reply within its timeout."""


class RestartBudgetExceeded(EngageError):
    """A supervisor restarted children more than ``max_restarts`` times in
    ``max_seconds``; it gives up and escalates to its parent."""


class TooManyChildren(ActorError):
    """A dynamic supervisor is already at ``max_children``."""


# -- stores -------------------------------------------------------------------


class StoreError(EngageError):
    """A backing store (Redis or Postgres) failed or is unreachable."""


class PostgresServerError(StoreError):
    """Postgres refused a statement (the connection stays usable).

    Attributes:
        sqlstate: The five-character SQLSTATE code, e.g. ``23505``.
    """

    def __init__(self, message: str, *, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConfigError(EngageError):
    """The configuration is invalid or incomplete."""


# -- client-facing ------------------------------------------------------------


class ClientError(EngageError):
    """The client sent something we will not act on.

    Attributes:
        status: HTTP status code for the problem response.
        code: stable machine-readable code a client can branch on.
        detail: human-readable explanation of this occurrence.
    """

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ValidationError(ClientError):
    """The request was well-formed but a field is invalid."""

    code = "invalid"
    title = "Invalid request"


class Unauthorized(ClientError):
    """No valid credentials were presented."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(ClientError):
    """The credentials are valid but not allowed to do this."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"
    title = "Not found"


class PayloadTooLarge(ClientError):
    status = 413
    code = "too_large"
    title = "Payload too large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class TooManyRequests(ClientError):
    """Over a rate limit; ``retry_after`` seconds until the next attempt can pass."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class Unavailable(ClientError):
    """A dependency is down or the server is overloaded; retry later."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"


class Conflict(ClientError):
    """The request conflicts with the resource's current state (a moderation
    action its comment's state does not allow, for one)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class UnprocessableContent(ClientError):
    """Well-formed and valid, but refused for what it says (a blocked word)."""

    status = 422
    code = "unprocessable"
    title = "Unprocessable content"


# -- WebSocket ----------------------------------------------------------------


class WebSocketClosed(EngageError):
    """The WebSocket is closed (by the peer, by us, or because the TCP
    connection was lost) and no more messages will be received.

    Attributes:
        code: the close code (1006 if the connection was lost without a close frame).
        reason: the close reason, possibly empty.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason

