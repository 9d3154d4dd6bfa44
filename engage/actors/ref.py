"""Mailboxes, references and replies: how actors talk.

An actor owns a bounded :class:`Mailbox`. Other code holds an :class:`ActorRef`
to it and either ``tell``s (fire and forget) or ``ask``s (wait for a reply).
The mailbox outlives restarts of the actor that reads it, so a supervisor can
restart a crashed actor without invalidating the references others hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

import outcome
import trio

from engage.actors.watchdog import Watchdog
from engage.errors import ActorDeadError, AskTimeout, MailboxFull

T = TypeVar("T")

#: Default time an ``ask`` waits for its reply, in seconds.
DEFAULT_ASK_TIMEOUT = 5.0


class Reply(Generic[T]):
    """A one-shot slot for the answer to an ``ask``.

    The actor that handles the message calls :meth:`set` or :meth:`fail` once;
    the asker awaits :meth:`get`. A waiting asker is parked and rescheduled
    directly; its timeout is kept by the run's :class:`Watchdog`, not by a
    cancel scope per wait (engage/actors/watchdog.py says why).
    """

    __slots__ = ("_done", "_value", "_error", "_task", "_deadline", "_timeout")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        #: The task parked in :meth:`get`, and when it gives up.
        self._task: trio.lowlevel.Task | None = None
        self._deadline = math.inf
        self._timeout = 0.0

    @property
    def done(self) -> bool:
        return self._done

    def set(self, value: T) -> None:
        if not self._done:
            self._value = value
            self._finish()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
            self._finish()

    def _finish(self) -> None:
        self._done = True
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def get(self, timeout: float = DEFAULT_ASK_TIMEOUT) -> T:
        """Wait for the answer.

        Raises:
            AskTimeout: no answer within ``timeout`` seconds.
            Exception: whatever the actor passed to :meth:`fail`.
        """
        if not self._done:  # often already answered: no park at all
            await self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    async def _wait(self, timeout: float) -> None:
        if self._task is not None:
            raise RuntimeError("another task is already waiting on this reply")
        self._task = trio.lowlevel.current_task()
        self._timeout = timeout
        self._deadline = deadline = trio.current_time() + timeout
        Watchdog.current().add(deadline, self)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._task = None  # cancelled: a late answer wakes nobody
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _expire(self, deadline: float) -> None:
        """The watchdog's call at ``deadline``: give up the wait that set it."""
        if self._task is not None and deadline == self._deadline:
            task, self._task = self._task, None
            trio.lowlevel.reschedule(task, outcome.Error(
                AskTimeout(f"no reply within {self._timeout} s")))


class Callback:
    """A reply slot that calls back instead of waking a waiting task.

    For callers that pipeline requests and must not wait on each one (a
    connection acknowledging its client's likes): the answering actor runs
    ``on_value`` or ``on_error`` in its own task, once, at once. Both must be
    quick, must not raise and must not block; typically they write a frame
    with a non-blocking write.
    """

    __slots__ = ("_on_value", "_on_error", "done")

    def __init__(self, on_value: Callable[[Any], None],
                 on_error: Callable[[BaseException], None]) -> None:
        self._on_value = on_value
        self._on_error = on_error
        self.done = False

    def set(self, value: Any) -> None:
        if not self.done:
            self.done = True
            self._on_value(value)

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self._on_error(error)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as it sits in a mailbox, with the reply slot if it was asked."""

    message: Any
    reply: Reply | Callback | None = None

    def answer(self, result: Any) -> None:
        """Give the asker ``result`` (nothing to do for a ``tell``)."""
        if self.reply is not None:
            self.reply.set(result)

    def refuse(self, error: BaseException) -> None:
        """Give the asker ``error`` (nothing to do for a ``tell``)."""
        if self.reply is not None:
            self.reply.fail(error)


class Mailbox:
    """A bounded memory channel pair. Created once per actor identity."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size == math.inf:
            raise ValueError("mailboxes are bounded: size must be a positive integer")
        self.size = size
        self.send_channel, self.receive_channel = trio.open_memory_channel[Envelope](size)

    def close(self) -> None:
        """Refuse further messages; senders then get :class:`ActorDeadError`."""
        self.receive_channel.close()

    def drain_nowait(self, limit: int | None = None) -> list[Envelope]:
        """Take what is queued (up to ``limit``), including senders blocked on a
        full box.

        Runs without yielding, so nothing can slip in between this and a
        following :meth:`close`.
        """
        out: list[Envelope] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self.receive_channel.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return out

    def statistics(self) -> trio.MemoryChannelStatistics:
        return self.send_channel.statistics()

    async def tick(self, timeout: float, accepts: type) -> Envelope | None:
        """Wait up to ``timeout`` seconds for a request to act now.

        For actors that work periodically and can also be asked to work at
        once: returns the request, or ``None`` when the period ended. Any
        other message is refused (its asker gets ``TypeError``) and ends the
        wait too.
        """
        envelope = None
        with trio.move_on_after(timeout):
            envelope = await self.receive_channel.receive()
        if envelope is not None and not isinstance(envelope.message, accepts):
            envelope.refuse(TypeError(f"cannot handle {envelope.message!r}"))
            return None
        return envelope


class ActorRef:
    """A handle to an actor's mailbox.

    Args:
        name: for logs and errors.
        mailbox: the mailbox the actor reads.
    """

    __slots__ = ("name", "_mailbox")

    def __init__(self, name: str, mailbox: Mailbox) -> None:
        self.name = name
        self._mailbox = mailbox

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"

    async def tell(self, message: Any) -> None:
        """Send without waiting for a reply; waits while the mailbox is full.

        When the mailbox has room this does not yield to the scheduler (it is
        not a checkpoint): a hot path pays no task switch per message.
        """
        await self._send(Envelope(message))

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting at all.

        Raises:
            MailboxFull: the mailbox is at its bound.
            ActorDeadError: the actor has stopped.
        """
        try:
            self._mailbox.send_channel.send_nowait(Envelope(message))
        except trio.WouldBlock:
            raise MailboxFull(f"{self.name}: mailbox full ({self._mailbox.size})") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorDeadError(self.name) from None

    async def request(self, message: Any, reply: Reply | Callback | None = None
                      ) -> Reply | Callback:
        """Deliver ``message`` and return its reply slot without waiting on it.

        Lets one caller fan a request out to many actors and then collect,
        or (with a :class:`Callback`) be called back with the answer.
        """
        if reply is None:
            reply = Reply()
        await self._send(Envelope(message, reply))
        return reply

    async def ask(self, message: Any, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and wait for the actor's reply.

        The timeout covers both waiting for mailbox space and the reply.
        """
        deadline = trio.current_time() + timeout
        reply: Reply = Reply()
        envelope = Envelope(message, reply)
        try:  # most asks find room: no cancel scope for the send (one is a tenth of a view)
            self._mailbox.send_channel.send_nowait(envelope)
        except trio.WouldBlock:
            sent = False
            with trio.move_on_at(deadline):
                await self._send(envelope)
                sent = True
            if not sent:
                raise AskTimeout(f"{self.name}: mailbox full for {timeout} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorDeadError(self.name) from None
        return await reply.get(max(0.0, deadline - trio.current_time()))

    async def _send(self, envelope: Envelope) -> None:
        channel = self._mailbox.send_channel
        try:
            # Most sends find room: skip the scheduling round trip of send().
            channel.send_nowait(envelope)
            return
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorDeadError(self.name) from None
        try:
            await channel.send(envelope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorDeadError(self.name) from None

    @property
    def alive(self) -> bool:
        return self._mailbox.statistics().open_receive_channels > 0
