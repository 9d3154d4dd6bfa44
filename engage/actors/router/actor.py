"""The router actor: one Redis pub/sub connection per process, fanned out to
every local WebSocket that wants a subject.

* It subscribes to a subject's channel only while some local connection wants
  it, and unsubscribes a few seconds after the last one leaves (a reload
  or a reconnect comes back to a warm subject).
* Each event is decoded once and framed at most once per wire format; the
  same bytes are written to every subscriber (:class:`~engage.wire.SharedFrame`).
* Writes go straight to each connection's transport without a task switch
  (``sink.push``); a connection whose outbox overflows is told to close as a
  slow consumer, and never slows the others.
* A subscriber that is catching up from history has live events buffered
  until it says ``Ready``; the buffer is bounded.
* It knows where each subject's history stands and holds its last events
  (:mod:`.subject`), so a join or a catch-up on a live subject is answered
  from memory, without Redis.
* ``counts`` are coalesced: at most one frame per subject per
  ``counts_interval`` (longer in rooms of thousands), with ``watching``
  from the presence actor.
* Plain ``PUBLISH <prefix>publish`` messages (a CMS publishing content, at
  most once) are forwarded to the publisher actor as they arrive.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import msgpack
import trio

from engage.actors.publisher.messages import PublishPayload
from engage.actors.router.messages import (Drop, Ready, Seed, Subscribe, Subscribed,
                                           Unsubscribe, Watching)
from engage.actors.router.subject import Lingering, Subject
from engage.actors.ref import ActorRef, Envelope, Mailbox
from engage.errors import ActorError, StoreError
from engage.store.keys import Keys
from engage.store.pubsub import PubSubConnection, connect_pubsub
from engage.wire import SharedFrame, Wire
from engage.ws.frames import SERVICE_RESTART

log = logging.getLogger(__name__)

ROUTER_MAILBOX_SIZE = 16384
#: Back-off between attempts to reach Redis pub/sub, in seconds.
RECONNECT_MIN_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
#: Live events held for one subscriber while it catches up from history.
MAX_CATCHUP_BUFFER = 1000
#: Fields of a ``counts`` frame taken from the published snapshot.
COUNT_FIELDS = ("views", "unique_viewers", "likes", "applause", "comments")
#: Counts-frame writes a second one subject may cost (see ``_counts_loop``).
COUNTS_WRITES_PER_SECOND = 10_000
COMMENT_EVENTS = frozenset({"comment", "comment_updated", "comment_deleted"})


class Sink(Protocol):
    """What the router writes to: a connection actor."""

    wire: Wire

    def push(self, frame: bytes) -> bool:
        """Queue ``frame`` without waiting; False if the client is too slow."""

    def overflow(self) -> None:
        """The client fell too far behind: close it as a slow consumer."""

    def stop(self, code: int, reason: str) -> None:
        """Close the client soon with ``code``."""


def subject_content(subject: str) -> str:
    return subject.split(":", 1)[1]


class RouterActor:
    """Routes pub/sub events to local subscribers.

    Args:
        redis_url: where to open the pub/sub connection.
        keys: channel names.
        counts_interval: least seconds between two counts frames per subject.
        presence: told the local subscriber count of each subject as it changes.
    """

    def __init__(self, redis_url: str, keys: Keys, *, counts_interval: float,
                 presence: ActorRef | None = None) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.counts_interval = counts_interval
        self.presence = presence
        self.mailbox = Mailbox(ROUTER_MAILBOX_SIZE)
        self.ref = ActorRef("router", self.mailbox)
        self._subjects: dict[str, Subject] = {}
        self._by_sink: dict[Any, set[str]] = {}
        self._dirty: set[str] = set()
        self._lingering = Lingering()
        self._conn: PubSubConnection | None = None
        self._nursery: trio.Nursery | None = None
        self.delivered = 0
        #: Told each plain ``PUBLISH`` on the publish channel; set by build_system.
        self.publisher: ActorRef | None = None
        self._publish_channel = keys.publish_stream.encode()

    def statistics(self) -> dict[str, int]:
        return {"subjects": len(self._subjects), "sinks": len(self._by_sink),
                "lingering": len(self._lingering), "delivered": self.delivered}

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        # A restart starts empty: the supervisor (rest_for_one) restarts every
        # connection after us, and their clients resubscribe and catch up.
        self._subjects.clear()
        self._by_sink.clear()
        self._dirty.clear()
        self._lingering.clear()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._counts_loop)
            nursery.start_soon(self._mailbox_loop)
            task_status.started(self.ref)
            await self._connection_loop()

    async def _connection_loop(self) -> None:
        """Keep one pub/sub connection up. When it drops, events may have been
        missed, so every local client is told to reconnect and catch up."""
        delay = RECONNECT_MIN_DELAY
        while True:
            try:
                conn = await connect_pubsub(self.redis_url)
            except StoreError as exc:
                log.warning("router: redis pub/sub unavailable, retrying in %.1f s: %s",
                            delay, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            delay = RECONNECT_MIN_DELAY
            self._conn = conn
            try:
                if self.publisher is not None:
                    await conn.subscribe(self._publish_channel, wait=False)
                await self._read_loop(conn)
            except StoreError as exc:
                log.warning("router: lost redis pub/sub: %s; clients will reconnect", exc)
            finally:
                self._conn = None
                conn.release_waiters()
                with trio.CancelScope(shield=True):
                    await conn.aclose()
            self._drop_everyone()

    def _drop_everyone(self) -> None:
        for sink in list(self._by_sink):
            sink.stop(SERVICE_RESTART, "event stream interrupted: reconnect and catch up")
        for subject in list(self._subjects):
            self._tell_presence(subject, 0)
        self._subjects.clear()
        self._by_sink.clear()
        self._dirty.clear()
        self._lingering.clear()

    def _channel(self, subject: str) -> bytes:
        return self.keys.channel(subject).encode()

    # -- mailbox -------------------------------------------------------------------

    async def _mailbox_loop(self) -> None:
        receive = self.mailbox.receive_channel
        while True:
            envelope: Envelope = await receive.receive()
            message = envelope.message
            try:
                result = await self._handle(message)
            except StoreError as exc:  # pub/sub is down: the asker hears, we go on
                if envelope.reply is not None:
                    envelope.reply.fail(exc)
                continue
            if envelope.reply is not None:
                envelope.reply.set(result)

    async def _handle(self, message: Any) -> Any:
        if isinstance(message, Subscribe):
            return await self._subscribe(message.subject, message.sink, message.since)
        if isinstance(message, Ready):
            self._ready(message.subject, message.sink, message.offset, message.epoch)
        elif isinstance(message, Unsubscribe):
            self._unsubscribe(message.subject, message.sink)
        elif isinstance(message, Drop):
            for subject in list(self._by_sink.get(message.sink, ())):
                self._unsubscribe(subject, message.sink)
        elif isinstance(message, Seed):
            state = self._subjects.get(message.subject)
            if state is not None and state.counts is None:
                state.counts = dict(message.counts)
        elif isinstance(message, Watching):
            state = self._subjects.get(message.subject)
            if state is not None and state.watching != message.count:
                state.watching = message.count
                self._mark(message.subject, state)
        else:
            log.error("router: unexpected message %r", message)
        return None

    async def _subscribe(self, subject: str, sink: Any,
                         since: tuple[int, str] | None) -> Subscribed:
        state = self._subjects.get(subject)
        if state is None:
            conn = self._conn
            if conn is None:
                raise StoreError("redis pub/sub is not connected")
            state = self._subjects[subject] = Subject()
            await conn.subscribe(self._channel(subject))
            if self._conn is not conn:  # lost while we waited: the state was dropped
                raise StoreError("redis pub/sub connection lost")
        elif not state.sinks and self._conn is None:
            raise StoreError("redis pub/sub is not connected")
        fresh = sink not in state.sinks
        if not state.sinks:
            self._lingering.discard(subject)
        state.sinks[sink] = []  # buffer until Ready, also when re-subscribing to catch up
        if fresh:
            self._by_sink.setdefault(sink, set()).add(subject)
            self._tell_presence(subject, len(state.sinks))
        # No await from here to the reply: the position, the missed events
        # and the start of the sink's buffer are one instant.
        counts = state.counts
        return Subscribed(
            state.watching, state.position,
            None if counts is None else {k: counts.get(k, 0) for k in COUNT_FIELDS},
            None if since is None else state.missed_since(since))

    def _ready(self, subject: str, sink: Any, offset: int, epoch: str) -> None:
        state = self._subjects.get(subject)
        buffered = state.sinks.get(sink) if state else None
        if state is None or buffered is None:
            return
        state.learn(offset, epoch)
        state.sinks[sink] = None
        for event_offset, frame in buffered:
            if event_offset > offset and not self._push(sink, frame):
                return

    def _unsubscribe(self, subject: str, sink: Any) -> None:
        state = self._subjects.get(subject)
        if state is None or sink not in state.sinks:
            return
        del state.sinks[sink]
        subjects = self._by_sink.get(sink)
        if subjects is not None:
            subjects.discard(subject)
            if not subjects:
                del self._by_sink[sink]
        self._tell_presence(subject, len(state.sinks))
        if not state.sinks:
            for gone in self._lingering.add(subject, trio.current_time()):
                self._forget(gone)

    def _forget(self, subject: str) -> None:
        """Leave a subject that lingered without subscribers."""
        state = self._subjects.get(subject)
        if state is None or state.sinks:
            return
        del self._subjects[subject]
        self._dirty.discard(subject)
        if self._conn is not None:
            self._conn_unsubscribe(subject)

    def _conn_unsubscribe(self, subject: str) -> None:
        conn = self._conn

        async def send() -> None:
            try:
                await conn.unsubscribe(self._channel(subject))
            except StoreError as exc:
                log.warning("router: unsubscribe %s failed: %s", subject, exc)

        # Fire and forget, so the mailbox never waits on Redis for a leave.
        if conn is not None and self._nursery is not None:
            self._nursery.start_soon(send)

    def _tell_presence(self, subject: str, count: int) -> None:
        if self.presence is None or subject.startswith("user:"):  # nobody "watches" a user
            return
        # Imported here: the presence package imports the router's messages.
        from engage.actors.presence.messages import LocalCount
        try:
            self.presence.tell_nowait(LocalCount(subject, count))
        except Exception as exc:  # presence is best effort; routing must go on
            log.warning("router: presence not told: %s", exc)

    # -- delivery ----------------------------------------------------------------------

    def _push(self, sink: Any, frame: SharedFrame) -> bool:
        if sink.push(frame.bytes_for(sink.wire)):
            self.delivered += 1
            return True
        sink.overflow()
        return False

    async def _read_loop(self, conn: PubSubConnection) -> None:
        async for batch in conn.batches():
            outgoing: dict[str, list[tuple[int, SharedFrame]]] = {}
            for channel, data in batch:
                if channel == self._publish_channel:
                    self._forward_publish(data)
                    continue
                try:
                    event = msgpack.unpackb(data, raw=True)
                    self._route(event, outgoing)
                except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
                    log.error("router: dropped a malformed event: %r", exc)
            for subject, frames in outgoing.items():
                state = self._subjects.get(subject)
                if state is not None:
                    self._deliver(state, frames)

    def _forward_publish(self, data: bytes) -> None:
        try:
            self.publisher.tell_nowait(PublishPayload(data))  # type: ignore[union-attr]
        except ActorError as exc:  # PUBLISH is at most once: dropped, and said so
            log.error("router: a PUBLISH on %s was dropped: %s",
                      self._publish_channel.decode(), exc)

    def _route(self, event: dict, outgoing: dict[str, list[tuple[int, SharedFrame]]]) -> None:
        """Apply one event: state changes at once, frames into ``outgoing``
        (by subject, in order) for :meth:`_deliver`."""
        subject = event[b"s"].decode()
        state = self._subjects.get(subject)
        if state is None:
            return
        kind = event[b"t"].decode()
        if kind in COMMENT_EVENTS:
            offset, epoch = event[b"o"], event[b"e"].decode()
            frame = SharedFrame({
                "type": kind, "content": subject_content(subject), "offset": offset,
                "epoch": epoch, "comment": msgpack.unpackb(event[b"d"])})
        elif kind == "published":  # subjects feed:all and feed:author:<id>
            offset, epoch = event[b"o"], event[b"e"].decode()
            frame = SharedFrame({
                "type": kind, "feed": subject_content(subject), "offset": offset,
                "epoch": epoch, "content": msgpack.unpackb(event[b"d"])})
        elif kind == "notification" and subject.startswith("user:"):  # one user's, private
            offset, epoch = event[b"o"], event[b"e"].decode()
            frame = SharedFrame({
                "type": kind, "offset": offset, "epoch": epoch,
                "notification": msgpack.unpackb(event[b"d"])})
        else:
            self._route_state(subject, state, kind, event)
            return
        state.remember(offset, epoch, frame)
        outgoing.setdefault(subject, []).append((offset, frame))

    def _route_state(self, subject: str, state: Subject, kind: str, event: dict) -> None:
        """A counts or presence event: the subject's state, no frame yet."""
        if kind == "counts":
            rev = event[b"r"]
            if rev > state.rev:
                state.rev = rev
                state.counts = {k.decode(): v for k, v in event[b"d"].items()}
                self._mark(subject, state)
        elif kind == "presence":
            if state.watching != event[b"w"]:
                state.watching = event[b"w"]
                self._mark(subject, state)
        else:
            log.debug("router: ignoring event type %s", kind)

    def _deliver(self, state: Subject, frames: list[tuple[int, SharedFrame]]) -> None:
        """Write ``frames`` (one subject's, in order) to its live sinks;
        buffer them for those catching up.

        Frames that arrived together go to each socket in one write: the
        ``send`` per socket is most of the fan-out's cost, so under load (when
        events arrive faster than one at a time) this divides it by the batch.
        The joined bytes are built once per wire format, like a single frame.
        """
        # No copy of the sinks: nothing here changes them (overflow only marks a
        # connection to close later), and 20,000 item tuples a message kept the
        # garbage collector busy in the middle of the loop.
        if len(frames) == 1:
            frame = frames[0][1]
            for sink, buffered in state.sinks.items():
                if buffered is None:
                    self._push(sink, frame)
                elif len(buffered) < MAX_CATCHUP_BUFFER:
                    buffered.append(frames[0])
                else:
                    sink.overflow()
            return
        joined: dict[str, bytes] = {}
        for sink, buffered in state.sinks.items():
            if buffered is None:
                data = joined.get(sink.wire)
                if data is None:
                    data = joined[sink.wire] = b"".join(f.bytes_for(sink.wire)
                                                        for _, f in frames)
                if sink.push(data):
                    self.delivered += len(frames)
                else:
                    sink.overflow()
            elif len(buffered) + len(frames) <= MAX_CATCHUP_BUFFER:
                buffered.extend(frames)
            else:
                sink.overflow()

    def _mark(self, subject: str, state: Subject) -> None:
        state.dirty = True
        self._dirty.add(subject)

    async def _counts_loop(self) -> None:
        """Emit coalesced counts frames, at most one per subject per interval,
        and in a big room at most :data:`COUNTS_WRITES_PER_SECOND` writes a
        second: 20,000 subscribers get one every 2 s, not four a second
        (watching changes with every join and leave, so without the budget
        a busy room's idle cost grows with its size times the tick rate)."""
        while True:
            await trio.sleep(self.counts_interval)
            now = trio.current_time()
            for subject in self._lingering.expired(now):
                self._forget(subject)
            dirty, self._dirty = self._dirty, set()
            for subject in dirty:
                state = self._subjects.get(subject)
                if state is None or not state.dirty or state.counts is None:
                    continue
                if now < state.counts_due:
                    self._dirty.add(subject)  # still owed, on a later tick
                    continue
                state.dirty = False
                state.counts_due = now + len(state.sinks) / COUNTS_WRITES_PER_SECOND
                frame = SharedFrame(self.counts_frame(subject, state))
                for sink, buffered in state.sinks.items():
                    if buffered is None:
                        self._push(sink, frame)

    @staticmethod
    def counts_frame(subject: str, state: Subject) -> dict:
        counts = state.counts or {}
        return {"type": "counts", "content": subject_content(subject),
                **{k: counts.get(k, 0) for k in COUNT_FIELDS}, "watching": state.watching}
