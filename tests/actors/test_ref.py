"""Mailboxes, actor references and replies, without any actor framework: the
"actor" in these tests is a few lines reading the receive channel by hand."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from engage.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef, Envelope, Mailbox, Reply
from engage.errors import ActorDeadError, AskTimeout, MailboxFull


def make(size: int = 4, name: str = "test") -> tuple[Mailbox, ActorRef]:
    mailbox = Mailbox(size)
    return mailbox, ActorRef(name, mailbox)


async def echo_actor(mailbox: Mailbox, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Replies ("echo", message) to asks; fails the reply for ("fail", exc)."""
    task_status.started()
    async for envelope in mailbox.receive_channel:
        if envelope.reply is None:
            continue
        message = envelope.message
        if isinstance(message, tuple) and message[0] == "fail":
            envelope.reply.fail(message[1])
        else:
            envelope.reply.set(("echo", message))


# -- Mailbox ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, math.inf])
def test_mailbox_must_be_bounded(size):
    with pytest.raises(ValueError, match="bounded"):
        Mailbox(size)


async def test_mailbox_keeps_messages_in_order_as_envelopes():
    mailbox, ref = make()
    await ref.tell("a")
    ref.tell_nowait("b")
    first = mailbox.receive_channel.receive_nowait()
    assert first == Envelope("a") and first.reply is None
    assert mailbox.receive_channel.receive_nowait().message == "b"
    assert mailbox.statistics().current_buffer_used == 0


async def test_drain_nowait_takes_queued_messages_up_to_limit():
    mailbox, ref = make(size=5)
    for i in range(4):
        ref.tell_nowait(i)
    assert [e.message for e in mailbox.drain_nowait(limit=3)] == [0, 1, 2]
    assert [e.message for e in mailbox.drain_nowait()] == [3]
    assert mailbox.drain_nowait() == []


async def test_drain_nowait_includes_a_sender_blocked_on_a_full_mailbox():
    mailbox, ref = make(size=1)
    ref.tell_nowait("queued")
    sent = trio.Event()

    async def blocked_sender():
        await ref.tell("blocked")
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()  # really blocked on the full box
        drained = mailbox.drain_nowait()
        assert [e.message for e in drained] == ["queued", "blocked"]
    assert sent.is_set()


async def test_drain_nowait_after_close_returns_nothing():
    mailbox, ref = make()
    ref.tell_nowait("x")
    mailbox.close()
    assert mailbox.drain_nowait() == []


# -- tell ---------------------------------------------------------------------


async def test_tell_waits_for_space_in_a_full_mailbox(autojump_clock):
    mailbox, ref = make(size=1)
    await ref.tell(1)
    done_at = []

    async def sender():
        await ref.tell(2)
        done_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.sleep(3)
        assert done_at == []
        assert mailbox.receive_channel.receive_nowait().message == 1
    assert done_at == [3.0]
    assert mailbox.receive_channel.receive_nowait().message == 2


async def test_tell_nowait_raises_mailbox_full_at_the_bound():
    mailbox, ref = make(size=2, name="counter")
    ref.tell_nowait(1)
    ref.tell_nowait(2)
    with pytest.raises(MailboxFull, match="counter"):
        ref.tell_nowait(3)
    assert [e.message for e in mailbox.drain_nowait()] == [1, 2]  # nothing lost or added


async def test_sends_to_a_closed_mailbox_raise_actor_dead():
    mailbox, ref = make(name="gone")
    assert ref.alive
    mailbox.close()
    assert not ref.alive
    with pytest.raises(ActorDeadError, match="gone"):
        ref.tell_nowait("x")
    with pytest.raises(ActorDeadError):
        await ref.tell("x")
    with pytest.raises(ActorDeadError):
        await ref.request("x")
    with pytest.raises(ActorDeadError):
        await ref.ask("x")


async def test_close_wakes_a_blocked_sender_with_actor_dead():
    mailbox, ref = make(size=1)
    ref.tell_nowait("fill")
    errors = []

    async def sender():
        try:
            await ref.tell("late")
        except ActorDeadError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.close()
    assert len(errors) == 1


def test_repr_names_the_actor():
    _, ref = make(name="content:abc")
    assert repr(ref) == "<ActorRef content:abc>"


# -- ask, request and Reply ---------------------------------------------------


async def test_ask_returns_the_reply():
    mailbox, ref = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(echo_actor, mailbox)
        assert await ref.ask("hi") == ("echo", "hi")
        assert await ref.ask(42, timeout=1.0) == ("echo", 42)
        nursery.cancel_scope.cancel()


async def test_ask_raises_the_error_the_actor_failed_with():
    mailbox, ref = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(echo_actor, mailbox)
        boom = LookupError("no such item")
        with pytest.raises(LookupError) as excinfo:
            await ref.ask(("fail", boom))
        assert excinfo.value is boom
        nursery.cancel_scope.cancel()


async def test_ask_without_a_reply_times_out(autojump_clock):
    mailbox, ref = make(name="silent")
    with pytest.raises(AskTimeout):
        await ref.ask("anyone?", timeout=2.5)
    assert trio.current_time() == pytest.approx(2.5)
    assert mailbox.drain_nowait()[0].message == "anyone?"  # it was delivered


async def test_ask_default_timeout(autojump_clock):
    _, ref = make()
    with pytest.raises(AskTimeout):
        await ref.ask("x")
    assert trio.current_time() == pytest.approx(DEFAULT_ASK_TIMEOUT)


async def test_ask_on_a_full_mailbox_times_out_without_delivering(autojump_clock):
    mailbox, ref = make(size=1, name="busy")
    ref.tell_nowait("fill")
    with pytest.raises(AskTimeout, match="mailbox full"):
        await ref.ask("q", timeout=2.0)
    assert trio.current_time() == pytest.approx(2.0)
    assert [e.message for e in mailbox.drain_nowait()] == ["fill"]


async def test_ask_timeout_covers_waiting_for_space_and_for_the_reply(autojump_clock):
    mailbox, ref = make(size=1)
    ref.tell_nowait("fill")

    async def slow_reader():
        await trio.sleep(1.5)
        mailbox.receive_channel.receive_nowait()  # frees space; never replies

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        with pytest.raises(AskTimeout, match="no reply"):
            await ref.ask("q", timeout=2.0)
    # 1.5 s waiting for space + only the remaining 0.5 s for the reply.
    assert trio.current_time() == pytest.approx(2.0)


async def test_request_returns_the_reply_slot_without_waiting():
    mailbox, ref = make()
    reply = await ref.request("q")
    assert isinstance(reply, Reply) and not reply.done
    envelope = mailbox.receive_channel.receive_nowait()
    assert envelope.message == "q" and envelope.reply is reply
    envelope.reply.set("answer")
    assert reply.done
    assert await reply.get(timeout=0) == "answer"


async def test_request_fans_out_then_collects():
    refs = [make(name=f"a{i}") for i in range(3)]
    async with trio.open_nursery() as nursery:
        for mailbox, _ in refs:
            await nursery.start(echo_actor, mailbox)
        replies = [await ref.request(i) for i, (_, ref) in enumerate(refs)]
        assert [await r.get() for r in replies] == [("echo", 0), ("echo", 1), ("echo", 2)]
        nursery.cancel_scope.cancel()


async def test_reply_is_set_once():
    reply = Reply()
    reply.set(1)
    reply.set(2)
    reply.fail(RuntimeError("late"))
    assert await reply.get() == 1

    failed = Reply()
    failed.fail(ValueError("first"))
    failed.set("ignored")
    with pytest.raises(ValueError, match="first"):
        await failed.get()


async def test_reply_get_times_out(autojump_clock):
    reply = Reply()
    with pytest.raises(AskTimeout):
        await reply.get(timeout=0.75)
    assert trio.current_time() == pytest.approx(0.75)
    assert not reply.done


async def test_reply_set_falsy_value():
    reply = Reply()
    reply.set(None)
    assert reply.done
    assert await reply.get(timeout=0) is None
