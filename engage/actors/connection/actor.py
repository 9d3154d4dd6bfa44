"""The connection actor: one per WebSocket.

It owns the socket's inbound side, its subscriptions and its identity. Each
client op is decoded against its schema (:mod:`engage.schemas.ws`) and
becomes a message to the actor that owns the data (a content actor, the
router); the reply goes back as an ``ack`` or ``error`` frame carrying the
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
import time
from functools import partial
from collections.abc import Callable
from typing import Any

import trio

from engage.actors.connection.context import ConnectionContext, Target, describe
from engage.actors.content.messages import GetCounts, Interact, PostComment
from engage.actors.ref import Callback
from engage.actors.router.messages import Drop, Ready, Seed, Subscribe, Unsubscribe
from engage.auth import Identity, verify_token
from engage.domain import OpResult, make_op, validate_content_id
from engage.domain.comments import Comment, parse_comment_id, validate_body
from engage.domain.content import feed_subject
from engage.domain.notifications import user_subject
from engage.domain.ratelimit import LocalLimiter
from engage.errors import (ActorError, ClientError, StoreError, TooManyRequests, Unauthorized,
                           ValidationError, WebSocketClosed)
from engage.schemas import ws as ops
from engage.schemas.base import loose
from engage.wire import SharedFrame, Wire, encode
from engage.ws.frames import (GOING_AWAY, NORMAL_CLOSURE, SLOW_CONSUMER_CLOSE,
                              TOKEN_EXPIRED_CLOSE)

log = logging.getLogger(__name__)

#: Seconds an op waits on the actor that handles it.
OP_TIMEOUT = 10.0
#: Seconds the closing handshake may take.
CLOSE_TIMEOUT = 2.0
#: Interactions one connection may have in flight; beyond it the read loop
#: waits, and further frames stay in the socket (backpressure, bounded memory).
MAX_IN_FLIGHT = 32

_INTERACTIONS = {ops.View: "view", ops.Like: "like", ops.Unlike: "unlike",
                 ops.Applaud: "applause"}


class ConnectionActor:
    """Serves one accepted WebSocket.

    Args:
        ws: the accepted transport (``write_nowait``, ``send``, ``receive``, ``close``).
        wire: ``"json"`` or ``"msgpack"``.
        identity: who the token named, if any.
        context: shared services.
    """

    def __init__(self, ws: Any, *, wire: Wire, identity: Identity | None,
                 context: ConnectionContext, address: str = "unknown") -> None:
        self.ws = ws
        self.address = address
        self.wire = wire
        self.identity = identity
        #: Called after ``auth`` changes the identity (the directory watches expiries).
        self.on_identity: Callable[[], None] | None = None
        self.context = context
        self.subscriptions: set[str] = set()
        self._scope = trio.CancelScope()
        self._close = (NORMAL_CLOSURE, "")
        self._in_flight = 0
        self._room: trio.Event | None = None
        self._expiry_told = False
        self._frames = LocalLimiter(context.frame_rate) if context.frame_rate else None

    # -- the router's hot path -------------------------------------------------------

    def push(self, frame: bytes) -> bool:
        return self.ws.write_nowait(frame)

    def overflow(self) -> None:
        self.stop(SLOW_CONSUMER_CLOSE, "slow consumer: outbox overflowed")

    def check_token(self, now: float) -> float | None:
        """Called by the directory with the wall-clock time when the token may
        have expired; returns when to call again (None: no need).

        Once the token has expired the client hears so (an ``error`` frame
        with code ``token_expired``) and has ``ws_auth_grace`` seconds to send
        ``{"op": "auth"}`` with a fresh one; its writes are refused meanwhile.
        After that the socket is closed with ``TOKEN_EXPIRED_CLOSE``.
        """
        identity = self.identity
        if identity is None or identity.expires_at is None:
            return None
        if now < identity.expires_at:
            return identity.expires_at
        grace = self.context.settings.ws_auth_grace
        if now >= identity.expires_at + grace:
            self.stop(TOKEN_EXPIRED_CLOSE, "token expired; reconnect with a fresh one")
            return None
        if not self._expiry_told:
            self._expiry_told = True
            self._send({"type": "error", "ref": None, "code": "token_expired",
                        "message": f'the token has expired: send {{"op": "auth", "token": ...}} '
                                   f'with a fresh one within {grace:g} s or the connection '
                                   f'closes with {TOKEN_EXPIRED_CLOSE}'})
        return identity.expires_at + grace

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
        msgpack = self.wire == "msgpack"
        while True:
            try:
                data = await self.ws.receive()
            except WebSocketClosed as closed:
                self._close = (closed.code or NORMAL_CLOSURE, closed.reason or "")
                return
            op = None
            try:
                if self._frames is not None:
                    retry_after = self._frames.check()
                    if retry_after:
                        raise TooManyRequests(
                            f"too many frames on this connection; retry in {retry_after:.2f} s",
                            retry_after=retry_after)
                op = ops.decode_op(data, msgpack)
                result = await self._dispatch(op)
            except (ClientError, StoreError, ActorError) as exc:
                self._error(op.ref if op is not None else _loose_ref(data, msgpack), exc)
            else:
                if result is not None:
                    self._send({"type": "ack", "ref": op.ref, "result": result})

    def _send(self, frame: dict) -> None:
        self._send_bytes(encode(frame, self.wire))

    def _send_bytes(self, data: bytes) -> None:
        # The same non-blocking path as the router's, in order with it: a
        # client that lets its outbox overflow is a slow consumer either way.
        if not self.ws.write_nowait(data) and self.ws.slow_consumer:
            self.overflow()

    def _error(self, ref: Any, exc: BaseException) -> None:
        code, message, extra = describe(exc)
        self._send({"type": "error", "ref": ref, "code": code, "message": message, **extra})

    # -- ops ---------------------------------------------------------------------------------

    async def _dispatch(self, op: ops.AnyOp) -> dict | None:
        kind = _INTERACTIONS.get(type(op))
        if kind is not None:
            await self._interact(kind, op)
            return None
        if isinstance(op, ops.Subscribe):
            await self._subscribe(op)
            return None
        if isinstance(op, ops.Unsubscribe):
            return await self._unsubscribe(op)
        if isinstance(op, ops.Comment):
            await self._comment(op)
            return None
        if isinstance(op, ops.Ping):
            self._send({"type": "pong", "ref": op.ref})
            return None
        assert isinstance(op, ops.Auth)
        self.identity = verify_token(op.token, self.context.settings)
        self._expiry_told = False
        if self.on_identity is not None:
            self.on_identity()
        await self._leave_other_users()
        return {"user": self.identity.user}

    def _user(self) -> str | None:
        """Who is signed in (for reads; see :meth:`_writer`)."""
        return self.identity.user if self.identity else None

    def _expired(self) -> bool:
        identity = self.identity
        return identity is not None and identity.expires_at is not None \
            and time.time() >= identity.expires_at

    def _writer(self) -> str | None:
        """Who is signed in, for a write: an expired token writes nothing.

        Raises:
            Unauthorized: the token has expired (code ``token_expired``).
        """
        if self._expired():
            raise Unauthorized('the token has expired: send {"op": "auth"} with a fresh one',
                               code="token_expired")
        return self._user()

    async def _interact(self, kind: str, op: ops.View | ops.Like | ops.Unlike | ops.Applaud
                        ) -> None:
        """Hand the op to its content actor and go on reading: the ack (or
        error) is written by the content actor's task when Redis has the op.

        Pipelining is what lets one connection keep several ops in flight
        without a task switch per reply; ``MAX_IN_FLIGHT`` bounds it, and the
        content actors' bounded mailboxes push back on the read loop.
        """
        content_id = validate_content_id(op.content)
        # A view is not refused for an expired token: it counts as anonymous.
        user = (None if self._expired() else self._user()) if kind == "view" else self._writer()
        interaction = make_op(kind, user=user,
                              viewer=op.viewer if isinstance(op, ops.View) else None,
                              count=op.count if isinstance(op, ops.Applaud) else None,
                              cap=self.context.settings.applause_cap, address=self.address)
        await self._pipeline(content_id, Interact((interaction,)), op.ref,
                             partial(self._acked, op.ref, content_id, kind))

    async def _pipeline(self, content_id: str, message: Interact | PostComment, ref: Any,
                        on_value: Callable[[Any], None]) -> None:
        """Deliver ``message`` with a :class:`Callback` and return: ``on_value``
        (or :meth:`_refused`) runs in the content actor's task when it is done.
        At most ``MAX_IN_FLIGHT`` per connection; then the read loop waits."""
        while self._in_flight >= MAX_IN_FLIGHT:
            self._room = trio.Event()
            await self._room.wait()
        self._in_flight += 1
        try:
            await self.context.content.request(
                content_id, message, Callback(on_value, partial(self._refused, ref)))
        except BaseException:
            self._landed()  # never delivered: no callback will come
            raise

    def _landed(self) -> None:
        self._in_flight -= 1
        if self._room is not None:
            self._room.set()
            self._room = None

    def _acked(self, ref: Any, content_id: str, kind: str, results: list[OpResult]) -> None:
        """Runs in the content actor's task: the op is in Redis (or refused)."""
        self._landed()
        if isinstance(results[0], ClientError):  # a rate limit or a ban
            self._error(ref, results[0])
            return
        self._send({"type": "ack", "ref": ref,
                    "result": {"content": content_id, **results[0].public(kind)}})

    def _refused(self, ref: Any, exc: BaseException) -> None:
        """Runs in the content actor's task: the op was not applied."""
        self._landed()
        self._error(ref, exc)

    async def _comment(self, op: ops.Comment) -> None:
        """Pipelined like the interactions: the content actor stores a run of
        comments together (one limit check, one standing query, one insert,
        one publish) and its task writes each ``ack``; one socket can post as
        fast as the item's actor stores."""
        content_id = validate_content_id(op.content)
        user = self._writer()
        if user is None:
            raise Unauthorized('sign in to comment (send {"op": "auth"} first)')
        body = validate_body(op.body, self.context.settings.comment_max_chars)
        parent_id = None if op.parent is None else parse_comment_id(op.parent)
        limits = self.context.limits
        comment_limits = () if limits is None else tuple(
            limits.comment_limits(user, self.address))
        await self._pipeline(content_id, PostComment(user, body, parent_id, comment_limits),
                             op.ref, partial(self._comment_stored, op.ref, content_id))

    def _comment_stored(self, ref: Any, content_id: str, comment: Comment) -> None:
        """Runs in the content actor's task: the comment is stored (visible or held)."""
        self._landed()
        self._send({"type": "ack", "ref": ref,
                    "result": {"content": content_id, "comment": comment.public()}})

    async def _leave_other_users(self) -> None:
        """After ``auth`` as someone else, stop another user's notifications."""
        mine = user_subject(self.identity.user) if self.identity else None
        for subject in [s for s in self.subscriptions if s.startswith("user:") and s != mine]:
            self.subscriptions.discard(subject)
            await self.context.router.tell(Unsubscribe(subject, self))

    # -- subscriptions -------------------------------------------------------------------

    def _target(self, op: ops.Subscribe | ops.Unsubscribe) -> Target:
        """Which subject a subscribe/unsubscribe op names (exactly one of them)."""
        named = [n for n in (op.content, op.feed, op.notifications) if n is not None]
        if len(named) != 1:
            raise ValidationError('name exactly one of "content", "feed" or "notifications"',
                                  code="invalid_frame")
        if op.notifications is not None:
            user = self._user()
            if user is None:
                raise Unauthorized('sign in to get notifications (send {"op": "auth"} first)')
            if op.notifications is not True:
                raise ValidationError("notifications must be true", code="invalid_frame")
            return Target(user_subject(user), "notifications", True, "notification",
                          in_events=False)
        if op.feed is not None:
            return Target(feed_subject(op.feed), "feed", op.feed, "content")
        content_id = validate_content_id(op.content)
        return Target(f"content:{content_id}", "content", content_id, "comment")

    async def _subscribe(self, op: ops.Subscribe) -> None:
        """Subscribe to a content item, a feed or the user's notifications.

        The router subscription comes first (live events are buffered for us),
        then the current state and the history: nothing can fall between them.
        Then ``subscribed``, the missed events (if recovered), and ``Ready``.
        When the subject is live here, the router's answer has all of it (its
        counts, its position and the missed events it still holds) and the
        join costs no Redis round trip; otherwise the content actor and the
        history answer, as for the subject's first subscriber.
        """
        target = self._target(op)
        settings = self.context.settings
        if target.subject not in self.subscriptions and \
                len(self.subscriptions) >= settings.max_subscriptions:
            raise ValidationError(
                f"at most {settings.max_subscriptions} subscriptions per connection",
                code="too_many_subscriptions")
        since = None if op.since is None else (op.since.offset, op.since.epoch)
        joined = await self.context.router.ask(Subscribe(target.subject, self, since),
                                               OP_TIMEOUT)
        self.subscriptions.add(target.subject)
        state: dict = {}
        if target.key == "content":
            if joined.counts is not None:  # live here: the router's latest counts (a copy)
                state = joined.counts
            else:
                counts = await self.context.content.ask(target.value, GetCounts(), OP_TIMEOUT)
                state = counts.as_dict(target.value)
                del state["id"]
                await self.context.router.tell(Seed(target.subject, dict(state)))
            state["watching"] = joined.watching
        missed: list = []
        if joined.position is not None and (since is None or joined.missed is not None):
            (offset, epoch), missed = joined.position, joined.missed or []
            recovered = since is not None
        elif since is None:
            offset, epoch = await self.context.history.position(target.subject)
            recovered = False
        else:
            recovery = await self.context.history.recover(
                target.subject, since[0], since[1], settings.history_size)
            offset, epoch, recovered = recovery.offset, recovery.epoch, recovery.recovered
            if recovered:
                named = {target.key: target.value} if target.in_events else {}
                missed = [(event.offset, {"type": event.type, **named, "offset": event.offset,
                                          "epoch": epoch, target.data_field: event.data})
                          for event in recovery.events]
        self._send({"type": "subscribed", "ref": op.ref, target.key: target.value, **state,
                    "offset": offset, "epoch": epoch, "recovered": recovered})
        for _, event in missed:
            if isinstance(event, SharedFrame):  # the router's, already encoded
                self._send_bytes(event.bytes_for(self.wire))
            else:
                self._send(event)
        await self.context.router.tell(Ready(target.subject, self, offset, epoch))

    async def _unsubscribe(self, op: ops.Unsubscribe) -> dict:
        if op.notifications is not None and self._user() is None:
            return {"notifications": False}
        target = self._target(op)
        if target.subject in self.subscriptions:
            self.subscriptions.discard(target.subject)
            await self.context.router.tell(Unsubscribe(target.subject, self))
        if target.key == "notifications":
            return {"notifications": False}
        return {target.key: target.value, "subscribed": False}


def _loose_ref(data: str | bytes, msgpack: bool) -> Any:
    """The ``ref`` of a frame that failed its schema, if it had a usable one."""
    frame = loose(data, msgpack)
    ref = frame.get("ref") if isinstance(frame, dict) else None
    if isinstance(ref, bool) or not isinstance(ref, (str, int)) or len(str(ref)) > ops.MAX_REF:
        return None
    return ref
