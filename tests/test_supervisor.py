"""Supervision: restart types, strategies, the restart budget, ordered start and
stop, shutdown deadlines, escalation, and the dynamic (keyed) supervisor.

Everything runs on trio's autojumping mock clock, so "seconds" below are
virtual and the tests take milliseconds.
"""

from __future__ import annotations

import collections

import pytest
import trio
import trio.testing

from engage.errors import RestartBudgetExceeded, TooManyChildren
from engage.supervisor import (
    DEFAULT_SHUTDOWN,
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    shutdown_scope,
)

# A generous wall of virtual time for tests that could hang if a bug returns.
HANG = 1000


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside (possibly nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        assert len(exc.exceptions) == 1, f"expected one exception, got {exc!r}"
        exc = exc.exceptions[0]
    return exc


class Probe:
    """Makes scripted children and records what happens to them.

    ``events`` holds ``(what, name)`` in order, ``timeline`` the same with the
    virtual time, ``live[name]`` how many instances of a child run right now and
    ``starts[name]`` how often it was started.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.timeline: list[tuple[float, str, str]] = []
        self.live: collections.Counter[str] = collections.Counter()
        self.starts: collections.Counter[str] = collections.Counter()

    def note(self, what: str, name: str) -> None:
        self.events.append((what, name))
        self.timeline.append((trio.current_time(), what, name))

    def of(self, name: str) -> list[str]:
        return [what for what, who in self.events if who == name]

    def start_fn(self, name: str, *plan: tuple[str, float], ready_after: float = 0.0,
                 cleanup: float = 0.0):
        """A child whose n-th run follows ``plan[n]``: ``("crash", delay)`` or
        ``("exit", delay)``; runs beyond the plan wait until cancelled.

        ``ready_after`` delays ``started()``; ``cleanup`` is a shielded pause
        after cancellation (an orderly, slow stop).
        """

        async def start(*, task_status):
            run = self.starts[name]
            self.starts[name] += 1
            if ready_after:
                await trio.sleep(ready_after)
            self.live[name] += 1
            self.note("start", name)
            task_status.started(f"{name}/{run}")
            try:
                if run < len(plan):
                    what, delay = plan[run]
                    await trio.sleep(delay)
                    self.note(what, name)
                    if what == "crash":
                        raise RuntimeError(f"{name} crashed")
                    return
                await trio.sleep_forever()
            except trio.Cancelled:
                if cleanup:
                    with trio.CancelScope(shield=True):
                        await trio.sleep(cleanup)
                self.note("stop", name)
                raise
            finally:
                self.live[name] -= 1

        return start

    def spec(self, name: str, *plan: tuple[str, float], restart: str = "permanent",
             shutdown: float = DEFAULT_SHUTDOWN, **kwargs) -> ChildSpec:
        return ChildSpec(name, self.start_fn(name, *plan, **kwargs), restart=restart,
                         shutdown=shutdown)


async def settle(seconds: float = 0.0) -> None:
    """Let virtual time pass, then let every task run until it blocks."""
    if seconds:
        await trio.sleep(seconds)
    await trio.testing.wait_all_tasks_blocked()


# -- construction --------------------------------------------------------------


def test_child_spec_rejects_bad_values():
    async def noop(*, task_status):
        task_status.started()

    with pytest.raises(ValueError, match="restart"):
        ChildSpec("a", noop, restart="sometimes")
    with pytest.raises(ValueError, match="shutdown"):
        ChildSpec("a", noop, shutdown=-1)
    assert ChildSpec("a", noop).restart == "permanent"


def test_supervisor_rejects_bad_configuration():
    probe = Probe()
    with pytest.raises(ValueError, match="unique"):
        Supervisor([probe.spec("a"), probe.spec("a")])
    with pytest.raises(ValueError, match="strategy"):
        Supervisor([probe.spec("a")], strategy="one_for_all")
    with pytest.raises(ValueError, match="budget"):
        Supervisor([probe.spec("a")], max_restarts=-1)
    with pytest.raises(ValueError, match="budget"):
        DynamicSupervisor(max_seconds=0)


# -- restart types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "outcome", "restarted"),
    [
        ("permanent", "exit", True),
        ("permanent", "crash", True),
        ("transient", "exit", False),
        ("transient", "crash", True),
        ("temporary", "exit", False),
        ("temporary", "crash", False),
    ],
)
async def test_restart_types(autojump_clock, restart, outcome, restarted):
    probe = Probe()
    sup = Supervisor([probe.spec("x", (outcome, 1.0), restart=restart), probe.spec("sibling")])
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            assert await nursery.start(sup.run) is sup
            await settle(10)
            if restarted:
                assert probe.of("x") == ["start", outcome, "start"]
                assert sup.which_children()[0] == ("x", "x/1", True)
            else:
                assert probe.of("x") == ["start", outcome]
                assert sup.which_children()[0][2] is False
            assert probe.of("sibling") == ["start"]  # never disturbed
            nursery.cancel_scope.cancel()
    assert probe.live == {"x": 0, "sibling": 0}


# -- strategies ---------------------------------------------------------------


async def test_one_for_one_restarts_only_the_child_that_ended(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b", ("crash", 1.0)), probe.spec("c")],
                     strategy="one_for_one")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(5)
            assert probe.events == [("start", "a"), ("start", "b"), ("start", "c"),
                                    ("crash", "b"), ("start", "b")]
            assert sup.child("b") == "b/1"
            assert sup.child("a") == "a/0" and sup.child("c") == "c/0"
            nursery.cancel_scope.cancel()


async def test_rest_for_one_stops_later_siblings_in_reverse_and_restarts_in_order(
        autojump_clock):
    probe = Probe()
    sup = Supervisor(
        [probe.spec("a"), probe.spec("b", ("crash", 1.0)), probe.spec("c"), probe.spec("d")],
        strategy="rest_for_one")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(5)
            assert probe.events[4:] == [
                ("crash", "b"),
                ("stop", "d"), ("stop", "c"),          # later siblings, reverse order
                ("start", "b"), ("start", "c"), ("start", "d"),  # then in order
            ]
            assert probe.of("a") == ["start"]  # earlier siblings untouched
            # Exactly one instance of each child: no duplicate restarts.
            assert probe.live == {"a": 1, "b": 1, "c": 1, "d": 1}
            assert probe.starts == {"a": 1, "b": 2, "c": 2, "d": 2}
            assert [value for _, value, _ in sup.which_children()] == ["a/0", "b/1", "c/1", "d/1"]
            nursery.cancel_scope.cancel()
    assert set(probe.live.values()) == {0}


async def test_rest_for_one_with_the_last_child_restarts_only_it(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b", ("crash", 1.0))], strategy="rest_for_one")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(5)
            assert probe.events == [("start", "a"), ("start", "b"), ("crash", "b"), ("start", "b")]
            nursery.cancel_scope.cancel()


async def test_rest_for_one_restarts_a_stopped_sibling_once(autojump_clock):
    """Regression: the exit of a sibling stopped by rest_for_one used to be
    taken, after its restart, for a fresh exit and restarted again, leaving a
    second, orphaned instance that the supervisor could never stop."""
    probe = Probe()
    sup = Supervisor([probe.spec("a", ("crash", 1.0)), probe.spec("b"), probe.spec("c")],
                     strategy="rest_for_one", max_restarts=10)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(5)
            assert probe.starts == {"a": 2, "b": 2, "c": 2}
            assert probe.live == {"a": 1, "b": 1, "c": 1}
            nursery.cancel_scope.cancel()
    assert probe.live == {"a": 0, "b": 0, "c": 0}


async def test_rest_for_one_with_simultaneous_crashes_leaves_one_instance_each(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("a", ("crash", 1.0)), probe.spec("b", ("crash", 1.0)),
                      probe.spec("c")], strategy="rest_for_one", max_restarts=10)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(5)
            assert probe.live == {"a": 1, "b": 1, "c": 1}
            assert all(running for _, _, running in sup.which_children())
            nursery.cancel_scope.cancel()
    assert probe.live == {"a": 0, "b": 0, "c": 0}


# -- restart budget -----------------------------------------------------------


async def test_restart_budget_exceeded_escalates_out_of_run(autojump_clock):
    probe = Probe()
    crashy = [("crash", 1.0)] * 10
    sup = Supervisor([probe.spec("steady"), probe.spec("x", *crashy)],
                     max_restarts=2, max_seconds=10.0)
    with trio.fail_after(HANG):
        with pytest.raises(RestartBudgetExceeded) as excinfo:  # bare, not in a group
            await sup.run()
    error = excinfo.value
    assert isinstance(error.__cause__, RuntimeError)  # the crash that broke the budget
    # Initial start plus the two restarts the budget allows; the third crash escalates.
    assert probe.starts["x"] == 3
    assert trio.current_time() == pytest.approx(3.0)
    # The supervisor stopped its other children before giving up.
    assert probe.of("steady") == ["start", "stop"]
    assert probe.live == {"steady": 0, "x": 0}


async def test_restart_budget_zero_escalates_on_first_restart(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("x", ("exit", 1.0))], max_restarts=0)
    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            await sup.run()
    assert isinstance(leaf(excinfo.value), RestartBudgetExceeded)
    assert probe.starts["x"] == 1


async def test_restart_budget_not_exceeded_when_restarts_are_spread_out(autojump_clock):
    probe = Probe()
    # Ten crashes, 3 s apart: never more than 2 restarts inside any 5 s window.
    sup = Supervisor([probe.spec("x", *[("crash", 3.0)] * 10)], max_restarts=2, max_seconds=5.0)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(60)
            assert probe.starts["x"] == 11
            assert probe.live["x"] == 1
            nursery.cancel_scope.cancel()


async def test_restart_budget_counts_a_burst_after_a_quiet_period(autojump_clock):
    """Old restarts age out of the window, but a fresh burst still trips it."""
    probe = Probe()
    plan = [("crash", 10.0), ("crash", 10.0), ("crash", 0.5), ("crash", 0.5), ("crash", 0.5)]
    sup = Supervisor([probe.spec("x", *plan)], max_restarts=2, max_seconds=5.0)
    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            await sup.run()
    assert isinstance(leaf(excinfo.value), RestartBudgetExceeded)
    # crashes at 10, 20 (spread out), then 20.5 and 21: the third restart
    # inside 5 s (at 21: restarts at 20, 20.5, 21) escalates.
    assert trio.current_time() == pytest.approx(21.0)
    assert probe.starts["x"] == 4


# -- ordered start and stop ---------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse_one_by_one(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("a", ready_after=1.0, cleanup=1.0),
                      probe.spec("b", ready_after=1.0, cleanup=1.0),
                      probe.spec("c", ready_after=1.0, cleanup=1.0)])
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            # Each child starts only once the one before it is ready.
            assert probe.timeline == [(1.0, "start", "a"), (2.0, "start", "b"),
                                      (3.0, "start", "c")]
            assert trio.current_time() == pytest.approx(3.0)
            nursery.cancel_scope.cancel()
    # Each child is stopped only after the one after it has finished stopping.
    assert probe.timeline[3:] == [(4.0, "stop", "c"), (5.0, "stop", "b"), (6.0, "stop", "a")]


async def test_which_children_and_child_lookup(autojump_clock):
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b", ("exit", 1.0), restart="temporary")])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert sup.which_children() == [("a", "a/0", True), ("b", "b/0", True)]
        await settle(2)
        assert sup.which_children() == [("a", "a/0", True), ("b", "b/0", False)]
        with pytest.raises(KeyError):
            sup.child("nope")
        nursery.cancel_scope.cancel()


# -- shutdown deadlines -------------------------------------------------------


def test_shutdown_scope_outside_a_supervisor_uses_the_default_budget():
    async def main():
        scope = shutdown_scope()
        assert scope.shield is True
        assert scope.deadline == pytest.approx(trio.current_time() + DEFAULT_SHUTDOWN)

    trio.run(main, clock=trio.testing.MockClock())


async def test_child_overrunning_shutdown_is_cut_by_shutdown_scope(autojump_clock):
    seen = {}

    async def stubborn(*, task_status):
        seen["budget"] = shutdown_scope().deadline - trio.current_time()
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with shutdown_scope() as scope:
                await trio.sleep(100)  # a final flush that never finishes
            seen["cut"] = scope.cancelled_caught
            seen["stopped_at"] = trio.current_time()

    sup = Supervisor([ChildSpec("s", stubborn, shutdown=2.0)])
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await settle(1)
            nursery.cancel_scope.cancel()
    assert seen["budget"] == pytest.approx(2.0)  # the child sees its own spec's budget
    assert seen["cut"] is True
    assert seen["stopped_at"] == pytest.approx(3.0)
    assert trio.current_time() == pytest.approx(3.0)


async def test_shielded_cleanup_without_shutdown_scope_is_waited_for(autojump_clock):
    """A child that shields its clean-up by hand overruns its shutdown; the
    supervisor logs that and waits rather than orphaning it."""
    finished = trio.Event()

    async def slow_stop(*, task_status):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(7)
            finished.set()

    sup = Supervisor([ChildSpec("s", slow_stop, shutdown=2.0)])
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.cancel_scope.cancel()
    assert finished.is_set()
    assert trio.current_time() == pytest.approx(7.0)


# -- start failures and escalation --------------------------------------------


async def test_start_failure_makes_run_raise_and_stops_started_children(autojump_clock):
    probe = Probe()

    async def broken(*, task_status):
        raise ValueError("cannot start")

    sup = Supervisor([probe.spec("a"), ChildSpec("b", broken), probe.spec("c")])
    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            await sup.run()
    error = leaf(excinfo.value)
    assert isinstance(error, ValueError) and str(error) == "cannot start"
    assert probe.events == [("start", "a"), ("stop", "a")]  # c never started


async def test_child_returning_without_started_is_a_start_failure(autojump_clock):
    async def forgetful(*, task_status):
        return

    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            await Supervisor([ChildSpec("f", forgetful)]).run()
    assert isinstance(leaf(excinfo.value), RuntimeError)


async def test_cancelling_during_a_slow_start_does_not_wait_for_it(autojump_clock):
    """Regression: a starting child used to be shielded already, so cancelling
    the supervisor waited for the start to finish (forever, for a hung one)."""
    probe = Probe()

    async def hung(*, task_status):
        await trio.sleep_forever()

    sup = Supervisor([probe.spec("a"), ChildSpec("hung", hung)])
    with trio.fail_after(HANG):
        with trio.move_on_after(1.0) as scope:
            await sup.run()
    assert scope.cancelled_caught
    assert trio.current_time() == pytest.approx(1.0)
    assert probe.events == [("start", "a"), ("stop", "a")]


def _nested(probe: Probe, runs: list[int]):
    """A start function running a fresh inner supervisor each time."""

    async def start(*, task_status):
        runs.append(1)
        inner = Supervisor([probe.spec("leaf", *[("crash", 1.0)] * 100)],
                           max_restarts=1, max_seconds=10.0, name="inner")
        await inner.run(task_status=task_status)

    return start


async def test_nested_supervisor_escalates_to_its_parent(autojump_clock):
    probe = Probe()
    runs: list[int] = []
    outer = Supervisor([probe.spec("sibling"), ChildSpec("inner", _nested(probe, runs))],
                       max_restarts=1, max_seconds=100.0, name="outer")
    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            await outer.run()
    error = leaf(excinfo.value)
    assert isinstance(error, RestartBudgetExceeded)
    assert "outer" in str(error)
    # The outer supervisor restarted the inner one once (its own budget), and
    # then gave up because the inner one escalated again.
    assert len(runs) == 2
    cause = leaf(error.__cause__)
    assert isinstance(cause, RestartBudgetExceeded) and "inner" in str(cause)
    # Each inner run: start + one restart of the leaf, then escalation.
    assert probe.starts["leaf"] == 4
    assert probe.of("sibling") == ["start", "stop"]
    assert set(probe.live.values()) == {0}


async def test_nested_supervisor_is_restarted_by_its_parent(autojump_clock):
    probe = Probe()
    runs: list[int] = []
    outer = Supervisor([ChildSpec("inner", _nested(probe, runs))],
                       max_restarts=100, max_seconds=100.0, name="outer")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run)
            await settle(5.5)
            # The inner supervisor gives up every 2 s (2 leaf crashes); the
            # outer one starts a fresh one each time.
            assert len(runs) == 3
            assert probe.live["leaf"] == 1
            nursery.cancel_scope.cancel()
    assert probe.live["leaf"] == 0


# -- DynamicSupervisor --------------------------------------------------------


async def test_dynamic_start_child_keys_children_and_reuses_running_ones(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        assert await nursery.start(sup.run) is sup
        assert sup.lookup("a") is None and len(sup) == 0
        assert await sup.start_child("a", probe.start_fn("a")) == "a/0"
        assert await sup.start_child("b", probe.start_fn("b")) == "b/0"
        # Same key again: the running child's value, and no second start.
        assert await sup.start_child("a", probe.start_fn("a")) == "a/0"
        assert probe.starts == {"a": 1, "b": 1}
        assert sup.lookup("a") == "a/0"
        assert sorted(sup.keys()) == ["a", "b"] and len(sup) == 2
        assert sup.statistics()["children"] == 2
        nursery.cancel_scope.cancel()
    assert probe.live == {"a": 0, "b": 0}


async def test_dynamic_concurrent_start_child_for_one_key_starts_once(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor()
    results = []

    async def caller():
        results.append(await sup.start_child("k", probe.start_fn("k", ready_after=1.0)))

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            async with trio.open_nursery() as callers:
                for _ in range(5):
                    callers.start_soon(caller)
            assert results == ["k/0"] * 5
            assert probe.starts["k"] == 1 and probe.live["k"] == 1
            nursery.cancel_scope.cancel()


async def test_dynamic_concurrent_start_retries_after_a_failed_start(autojump_clock):
    sup = DynamicSupervisor()
    attempts = []

    async def flaky(*, task_status):
        attempts.append(1)
        await trio.sleep(1)
        if len(attempts) == 1:
            raise OSError("first start fails")
        task_status.started("ok")
        await trio.sleep_forever()

    outcomes = []

    async def caller():
        try:
            outcomes.append(await sup.start_child("k", flaky))
        except OSError:
            outcomes.append("failed")

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            async with trio.open_nursery() as callers:
                callers.start_soon(caller)
                await trio.testing.wait_all_tasks_blocked()
                callers.start_soon(caller)
            assert outcomes == ["failed", "ok"]
            assert len(attempts) == 2
            assert sup.lookup("k") == "ok"
            nursery.cancel_scope.cancel()


async def test_dynamic_max_children(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(max_children=2)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("a", probe.start_fn("a", ("exit", 5.0)))
            await sup.start_child("b", probe.start_fn("b"))
            with pytest.raises(TooManyChildren):
                await sup.start_child("c", probe.start_fn("c"))
            assert probe.starts["c"] == 0
            # An existing key is still served at the limit.
            assert await sup.start_child("b", probe.start_fn("b")) == "b/0"
            # Once a child ends, there is room again.
            await settle(6)
            assert await sup.start_child("c", probe.start_fn("c")) == "c/0"
            nursery.cancel_scope.cancel()


async def test_dynamic_max_children_counts_starts_in_flight(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(max_children=1)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.start_soon(sup.start_child, "a", probe.start_fn("a", ready_after=1.0))
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(TooManyChildren):
                await sup.start_child("b", probe.start_fn("b"))
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("restart", "outcome"),
    [("transient", "exit"), ("temporary", "exit"), ("temporary", "crash")],
)
async def test_dynamic_registry_drops_a_key_when_its_child_ends(autojump_clock, restart, outcome):
    probe = Probe()
    sup = DynamicSupervisor(restart=restart)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("k", probe.start_fn("k", (outcome, 1.0)))
            await sup.start_child("other", probe.start_fn("other"))
            await settle(2)
            assert sup.lookup("k") is None
            assert sup.keys() == ["other"]
            assert probe.starts["k"] == 1  # not restarted
            # The key is free for a new child.
            assert await sup.start_child("k", probe.start_fn("k")) == "k/1"
            nursery.cancel_scope.cancel()


async def test_dynamic_transient_child_restarted_under_the_same_key(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(restart="transient")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            assert await sup.start_child("k", probe.start_fn("k", ("crash", 1.0))) == "k/0"
            await settle(2)
            assert sup.keys() == ["k"]
            assert sup.lookup("k") == "k/1"
            assert probe.live["k"] == 1
            nursery.cancel_scope.cancel()
    assert probe.live["k"] == 0


async def test_dynamic_restart_budget_escalates_and_drops_the_key(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(max_restarts=2, max_seconds=10.0)
    with trio.fail_after(HANG):
        with pytest.raises(BaseException) as excinfo:
            async with trio.open_nursery() as nursery:
                await nursery.start(sup.run)
                await sup.start_child("k", probe.start_fn("k", *[("crash", 1.0)] * 10))
                await sup.start_child("calm", probe.start_fn("calm"))
    assert isinstance(leaf(excinfo.value), RestartBudgetExceeded)
    assert probe.starts["k"] == 3
    assert "k" not in sup.keys()
    assert probe.live == {"k": 0, "calm": 0}


async def test_dynamic_release_frees_the_key_while_the_old_child_runs(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(restart="transient")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("k", probe.start_fn("k", ("crash", 3.0)))
            sup.release("k")
            assert sup.lookup("k") is None and sup.keys() == []
            assert sup.statistics()["released"] == 1
            assert probe.live["k"] == 1  # the old child keeps running
            # A fresh child under the same key, alongside the old one.
            assert await sup.start_child("k", probe.start_fn("k")) == "k/1"
            assert probe.live["k"] == 2
            # The released child ending (even crashing) neither restarts it nor
            # disturbs the key's new owner.
            await settle(5)
            assert probe.starts["k"] == 2 and probe.live["k"] == 1
            assert sup.lookup("k") == "k/1"
            assert sup.statistics()["released"] == 0
            sup.release("missing")  # no-op
            nursery.cancel_scope.cancel()


async def test_dynamic_released_children_are_stopped_with_the_supervisor(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor()
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("old", probe.start_fn("old", cleanup=1.0))
            await sup.start_child("new", probe.start_fn("new", cleanup=1.0))
            sup.release("old")
            nursery.cancel_scope.cancel()
    assert probe.of("old") == ["start", "stop"]
    assert probe.of("new") == ["start", "stop"]
    assert probe.live == {"old": 0, "new": 0}
    # One by one, not all at once.
    assert trio.current_time() == pytest.approx(2.0)


async def test_dynamic_terminate_child(autojump_clock):
    probe = Probe()
    sup = DynamicSupervisor(restart="permanent")
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("k", probe.start_fn("k"))
            await sup.start_child("other", probe.start_fn("other"))
            await sup.terminate_child("k")
            assert probe.of("k") == ["start", "stop"]  # cancelled and waited for
            assert sup.lookup("k") is None
            await settle()
            assert sup.keys() == ["other"]
            assert probe.starts["k"] == 1  # even a permanent child stays stopped
            await sup.terminate_child("missing")  # no-op
            assert await sup.start_child("k", probe.start_fn("k")) == "k/1"
            nursery.cancel_scope.cancel()


async def test_dynamic_start_failure_raises_and_leaves_the_key_free(autojump_clock):
    sup = DynamicSupervisor()

    async def broken(*, task_status):
        raise KeyError("bad")

    probe = Probe()
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            with pytest.raises(KeyError):
                await sup.start_child("k", broken)
            assert sup.keys() == [] and sup.lookup("k") is None
            assert await sup.start_child("k", probe.start_fn("k")) == "k/0"
            nursery.cancel_scope.cancel()


async def test_dynamic_cancelled_start_child_does_not_hang(autojump_clock):
    """Regression: a start_child whose caller was cancelled during a slow start
    used to hang forever (the starting child was already shielded and trio does
    not move a started task out of a cancelled start)."""
    probe = Probe()
    sup = DynamicSupervisor()
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            with trio.move_on_after(0.5) as scope:
                await sup.start_child("k", probe.start_fn("k", ready_after=1.0))
            assert scope.cancelled_caught
            assert trio.current_time() == pytest.approx(0.5)
            assert sup.keys() == [] and probe.live["k"] == 0
            # The key can be started again.
            assert await sup.start_child("k", probe.start_fn("k")) == "k/1"
            nursery.cancel_scope.cancel()
    assert probe.live["k"] == 0
