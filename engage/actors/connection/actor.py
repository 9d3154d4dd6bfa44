"""The connection actor: one per WebSocket.

It owns the socket's inbound side, its subscriptions and its identity. Each
client op becomes a message to the actor that owns the data (a content actor,
the router); the reply goes back as an ``ack`` or ``error`` frame carrying the
client's ``ref``.

Its mailbox is the socket: inbound frames are its messages, handled one at a
time in its one task (no second task, no channel: an idle connection must
cost little memory). Other actors reach it only through :meth:`stop`, which
never waits. Outbound frames that many clients share (comments, counts) are
not sent by this actor: the router writes them straight to the transport's hot path
(:meth:`push`). If the transport's bounded outbox overflows, the router calls
:meth:`overflow` and this actor closes the socket as a slow consumer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from engage.actors.content.directory import ContentDirectory
from engage.actors.content.messages import GetCounts, Interact, PostComment
from engage.actors.ref import ActorRef, Callback
from engage.actors.router.messages import Drop, Ready, Seed, Subscribe, Unsubscribe
from engage.auth import Identity, verify_token
from engage.domain import OpResult, make_op, validate_content_id
from engage.domain.comments import parse_comment_id, validate_body
from engage.domain.content import feed_subject
from engage.domain.notifications import user_subject
from engage.errors import (ActorError, ClientError, StoreError, Unauthorized, ValidationError,
                           WebSocketClosed)
from engage.store.history import RedisHistory
from engage.wire import Wire, decode, encode
from engage.ws.frames import GOING_AWAY, NORMAL_CLOSURE, SLOW_CONSUMER_CLOSE

log = logging.getLogger(__name__)

#: Seconds an op waits on the actor that handles it.
OP_TIMEOUT = 10.0
#: Seconds the closing handshake may take.
CLOSE_TIMEOUT = 2.0
#: Longest ``ref`` echoed back.
MAX_REF = 64

#: Interactions one connection may have in flight; beyond it the read loop
#: waits, and further frames stay in the socket (backpressure, bounded memory).
MAX_IN_FLIGHT = 32

_INTERACTIONS = {"view": "view", "like": "like", "unlike": "unlike", "applaud": "applause"}


def _describe(exc: BaseException) -> tuple[str, str]:
    """The ``code`` and ``message`` of the error frame for ``exc``."""
    if isinstance(exc, ClientError):
        return exc.code, exc.detail
    if isinstance(exc, (StoreError, ActorError)):
        return "unavailable", "a backing service is busy or down; retry"
    return "internal", "the server failed to handle this op; it has been logged"


def _parse_since(frame: dict) -> dict | None:
    """The ``since`` of a subscribe frame, checked.

    Raises:
        ValidationError: not ``{"offset": <int >= 0>, "epoch": <string>}``.
    """
    since = frame.get("since")
    if since is not None and not (
            isinstance(since, dict) and type(since.get("offset")) is int
            and since["offset"] >= 0 and isinstance(since.get("epoch"), str)):
        raise ValidationError('since must be {"offset": <int >= 0>, "epoch": <string>}',
                              code="invalid_since")
    return since


@dataclass(frozen=True, slots=True)
class _Target:
    """A subscribable subject and how its frames name it.

    Attributes:
        subject: the router/history subject (``content:<id>``, ``feed:...``, ``user:<id>``).
        key, value: the field naming it in frames (``"content": "<id>"``, ...).
        data_field: the field carrying each history event's payload.
        in_events: whether event frames repeat ``key`` (notifications do not).
    """

    subject: str
    key: str
    value: Any
    data_field: str
    in_events: bool = True


@dataclass(frozen=True)
class ConnectionContext:
    """What every connection actor needs, shared by all of them."""

    content: ContentDirectory
    router: ActorRef
    history: RedisHistory
    jwt_secret: str
    applause_cap: int
    comment_max_chars: int
    max_subscriptions: int
    history_size: int


class ConnectionActor:
    """Serves one accepted WebSocket.

    Args:
        ws: the accepted transport (``write_nowait``, ``send``, ``receive``, ``close``).
        wire: ``"json"`` or ``"msgpack"``.
        identity: who the token named, if any.
        context: shared services.
    """

    def __init__(self, ws: Any, *, wire: Wire, identity: Identity | None,
                 context: ConnectionContext) -> None:
        self.ws = ws
        self.wire = wire
        self.identity = identity
        self.context = context
        self.subscriptions: set[str] = set()
        self._scope = trio.CancelScope()
        self._close = (NORMAL_CLOSURE, "")
        self._in_flight = 0
        self._room: trio.Event | None = None

    # -- the router's hot path -------------------------------------------------------

    def push(self, frame: bytes) -> bool:
        return self.ws.write_nowait(frame)

    def overflow(self) -> None:
        self.stop(SLOW_CONSUMER_CLOSE, "slow consumer: outbox overflowed")

    def stop(self, code: int, reason: str) -> None:
        """Close soon with ``code``; safe to call from any task, any number of times."""
        if not self._scope.cancel_called:
            self._close = (code, reason)
            self._scope.cancel()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        try:
            with self._scope:
                await self._read_loop()
        except trio.Cancelled:
            # Our supervisor is stopping us (shutdown): tell the client to come back.
            self._close = (GOING_AWAY, "server shutting down")
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
                await self._finish()
            raise
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self._finish()

    async def _finish(self) -> None:
        try:
            self.context.router.tell_nowait(Drop(self))
        except ActorError as exc:
            log.warning("connection: router not told of close: %s", exc)
        code, reason = self._close
        await self.ws.close(code, reason)

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self.ws.receive()
            except WebSocketClosed as closed:
                self._close = (closed.code or NORMAL_CLOSURE, closed.reason or "")
                return
            try:
                frame = decode(data, self.wire)
            except ValueError as exc:
                self._error(None, ValidationError(f"could not parse the frame: {exc}",
                                                  code="malformed"))
                continue
            ref = frame.get("ref") if isinstance(frame, dict) else None
            if ref is not None and not (isinstance(ref, (str, int)) and len(str(ref)) <= MAX_REF):
                self._error(None, ValidationError(f"ref must be a string or integer of at "
                                                  f"most {MAX_REF} characters", code="invalid_ref"))
                continue
            try:
                result = await self._dispatch(frame)
            except (ClientError, StoreError, ActorError) as exc:
                self._error(ref, exc)
            else:
                if result is not None:
                    self._send({"type": "ack", "ref": ref, "result": result})

    def _send(self, frame: dict) -> None:
        # The same non-blocking path as the router's, in order with it: a
        # client that lets its outbox overflow is a slow consumer either way.
        if not self.ws.write_nowait(encode(frame, self.wire)) and self.ws.slow_consumer:
            self.overflow()

    def _error(self, ref: Any, exc: BaseException) -> None:
        code, message = _describe(exc)
        self._send({"type": "error", "ref": ref, "code": code, "message": message})

    # -- ops ---------------------------------------------------------------------------------

    async def _dispatch(self, frame: Any) -> dict | None:
        if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
            raise ValidationError('every frame is an object with an "op"', code="invalid_frame")
        op = frame["op"]
        if op == "ping":
            self._send({"type": "pong", "ref": frame.get("ref")})
            return None
        if op == "auth":
            token = frame.get("token")
            if not isinstance(token, str):
                raise ValidationError("auth needs a token string", code="invalid_token")
            self.identity = verify_token(token, self.context.jwt_secret)
            await self._leave_other_users()
            return {"user": self.identity.user}
        if op == "subscribe":
            await self._subscribe(frame)
            return None
        if op == "unsubscribe":
            return await self._unsubscribe(frame)
        if op in _INTERACTIONS:
            await self._interact(_INTERACTIONS[op], frame)
            return None
        if op == "comment":
            return await self._comment(frame)
        raise ValidationError(f"unknown op {op!r}", code="unknown_op")

    def _user(self) -> str | None:
        return self.identity.user if self.identity else None

    async def _interact(self, kind: str, frame: dict) -> None:
        """Hand the op to its content actor and go on reading: the ack (or
        error) is written by the content actor's task when Redis has the op.

        Pipelining is what lets one connection keep several ops in flight
        without a task switch per reply; ``MAX_IN_FLIGHT`` bounds it, and the
        content actors' bounded mailboxes push back on the read loop.
        """
        content_id = validate_content_id(frame.get("content"))
        count = frame.get("count") if kind == "applause" else None
        op = make_op(kind, user=self._user(), viewer=frame.get("viewer") if kind == "view" else None,
                     count=count, cap=self.context.applause_cap)
        while self._in_flight >= MAX_IN_FLIGHT:
            self._room = trio.Event()
            await self._room.wait()
        ref = frame.get("ref")
        self._in_flight += 1
        try:
            await self.context.content.request(
                content_id, Interact((op,)),
                Callback(partial(self._acked, ref, content_id, kind), partial(self._refused, ref)))
        except BaseException:
            self._landed()  # never delivered: no callback will come
            raise

    def _landed(self) -> None:
        self._in_flight -= 1
        if self._room is not None:
            self._room.set()
            self._room = None

    def _acked(self, ref: Any, content_id: str, kind: str, results: list[OpResult]) -> None:
        """Runs in the content actor's task: the op is in Redis."""
        self._landed()
        self._send({"type": "ack", "ref": ref,
                    "result": {"content": content_id, **results[0].public(kind)}})

    def _refused(self, ref: Any, exc: BaseException) -> None:
        """Runs in the content actor's task: the op was not applied."""
        self._landed()
        self._error(ref, exc)

    async def _comment(self, frame: dict) -> dict:
        content_id = validate_content_id(frame.get("content"))
        user = self._user()
        if user is None:
            raise Unauthorized("sign in to comment (send {\"op\": \"auth\"} first)")
        body = validate_body(frame.get("body"), self.context.comment_max_chars)
        parent = frame.get("parent")
        parent_id = None if parent is None else parse_comment_id(parent)
        comment = await self.context.content.ask(
            content_id, PostComment(user, body, parent_id), OP_TIMEOUT)
        return {"content": content_id, "comment": comment.public()}

    async def _leave_other_users(self) -> None:
        """After ``auth`` as someone else, stop another user's notifications."""
        mine = user_subject(self.identity.user) if self.identity else None
        for subject in [s for s in self.subscriptions if s.startswith("user:") and s != mine]:
            self.subscriptions.discard(subject)
            await self.context.router.tell(Unsubscribe(subject, self))

    # -- subscriptions -------------------------------------------------------------------

    def _target(self, frame: dict) -> _Target:
        """Which subject a subscribe/unsubscribe frame names."""
        if "notifications" in frame:
            user = self._user()
            if user is None:
                raise Unauthorized('sign in to get notifications (send {"op": "auth"} first)')
            if frame["notifications"] is not True:
                raise ValidationError("notifications must be true", code="invalid_frame")
            return _Target(user_subject(user), "notifications", True, "notification",
                           in_events=False)
        if "feed" in frame:
            feed = frame["feed"]
            return _Target(feed_subject(feed), "feed", feed, "content")
        content_id = validate_content_id(frame.get("content"))
        return _Target(f"content:{content_id}", "content", content_id, "comment")

    async def _subscribe(self, frame: dict) -> None:
        """Subscribe to a content item, a feed or the user's notifications.

        The router subscription comes first (live events are buffered for us),
        then the current state and the history: nothing can fall between them.
        Then ``subscribed``, the missed events (if recovered), and ``Ready``.
        """
        target = self._target(frame)
        since = _parse_since(frame)
        if target.subject not in self.subscriptions and \
                len(self.subscriptions) >= self.context.max_subscriptions:
            raise ValidationError(
                f"at most {self.context.max_subscriptions} subscriptions per connection",
                code="too_many_subscriptions")
        watching = await self.context.router.ask(Subscribe(target.subject, self), OP_TIMEOUT)
        self.subscriptions.add(target.subject)
        state: dict = {}
        if target.key == "content":
            counts = await self.context.content.ask(target.value, GetCounts(), OP_TIMEOUT)
            state = counts.as_dict(target.value)
            del state["id"]
            await self.context.router.tell(Seed(target.subject, dict(state)))
            state["watching"] = watching
        recovery = None
        if since is None:
            offset, epoch = await self.context.history.position(target.subject)
        else:
            recovery = await self.context.history.recover(
                target.subject, since["offset"], since["epoch"], self.context.history_size)
            offset, epoch = recovery.offset, recovery.epoch
        recovered = bool(recovery and recovery.recovered)
        self._send({"type": "subscribed", "ref": frame.get("ref"),
                          target.key: target.value, **state, "offset": offset,
                          "epoch": epoch, "recovered": recovered})
        if recovery is not None and recovered:
            named = {target.key: target.value} if target.in_events else {}
            for event in recovery.events:
                self._send({"type": event.type, **named, "offset": event.offset,
                                  "epoch": epoch, target.data_field: event.data})
        await self.context.router.tell(Ready(target.subject, self, offset))

    async def _unsubscribe(self, frame: dict) -> dict:
        if "notifications" in frame and self._user() is None:
            return {"notifications": False}
        target = self._target(frame)
        if target.subject in self.subscriptions:
            self.subscriptions.discard(target.subject)
            await self.context.router.tell(Unsubscribe(target.subject, self))
        if target.key == "notifications":
            return {"notifications": False}
        return {target.key: target.value, "subscribed": False}
