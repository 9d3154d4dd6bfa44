"""Ask timeouts kept by the run's watchdog: parked askers wake with their
answer, at their own deadline, or with trio's cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from engage.actors.ref import Reply
from engage.actors.watchdog import Watchdog
from engage.errors import AskTimeout


async def test_each_waiter_times_out_at_its_own_deadline(autojump_clock):
    woke: dict[float, float] = {}

    async def wait(timeout: float) -> None:
        with pytest.raises(AskTimeout, match=f"within {timeout} s"):
            await Reply().get(timeout)
        woke[timeout] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for timeout in (3.0, 1.0, 2.0, 0.5):  # out of order: a later ask can end first
            nursery.start_soon(wait, timeout)
    assert woke == pytest.approx({3.0: 3.0, 1.0: 1.0, 2.0: 2.0, 0.5: 0.5})


async def test_an_answer_before_the_deadline_wins_and_the_deadline_is_harmless(autojump_clock):
    reply: Reply = Reply()

    async def answer() -> None:
        await trio.sleep(1)
        reply.set("yes")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        assert await reply.get(5) == "yes"
    assert trio.current_time() == pytest.approx(1)
    await trio.sleep(10)  # the watchdog passes the old deadline: nothing happens
    assert Watchdog.current().statistics() == {"deadlines": 0}
    assert await reply.get(0) == "yes"


async def test_a_cancelled_waiter_leaves_and_a_late_answer_wakes_nobody(autojump_clock):
    reply: Reply = Reply()
    with trio.move_on_after(1) as scope:
        await reply.get(5)
    assert scope.cancelled_caught and not reply.done
    reply.set("late")  # must not reschedule the task that left
    await trio.sleep(10)  # nor must the old deadline
    assert await reply.get(0) == "late"


async def test_waiting_again_after_a_timeout_uses_the_new_deadline(autojump_clock):
    reply: Reply = Reply()
    with pytest.raises(AskTimeout):
        await reply.get(1)

    async def answer() -> None:
        await trio.sleep(2)
        reply.fail(LookupError("gone"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with pytest.raises(LookupError):
            await reply.get(5)
    assert trio.current_time() == pytest.approx(3)


async def test_two_tasks_cannot_wait_on_one_reply():
    reply: Reply = Reply()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reply.get, 5)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="already waiting"):
            await reply.get(5)
        reply.set(1)


async def test_thousands_of_waiters_answered_in_any_order():
    replies = [Reply() for _ in range(5000)]
    got: list[int] = []

    async def wait(reply: Reply) -> None:
        got.append(await reply.get(5))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for reply in replies:
                nursery.start_soon(wait, reply)
            await trio.testing.wait_all_tasks_blocked()
            for i, reply in enumerate(reversed(replies)):
                reply.set(i)
    assert sorted(got) == list(range(5000))
