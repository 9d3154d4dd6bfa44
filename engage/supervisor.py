"""OTP-style supervision for trio tasks.

A :class:`Supervisor` runs a fixed, ordered list of children described by
:class:`ChildSpec`. A :class:`DynamicSupervisor` runs children started on
demand and keyed by id (one content actor per content id, one connection actor
per socket).

The vocabulary is Erlang/OTP's:

* ``restart``: ``"permanent"`` children are always restarted, ``"transient"``
  ones only after a crash, ``"temporary"`` ones never.
* ``strategy``: ``"one_for_one"`` restarts only the child that ended;
  ``"rest_for_one"`` also stops and restarts every child started after it.
* Restart budget: more than ``max_restarts`` restarts within ``max_seconds``
  and the supervisor stops its children and raises
  :class:`~engage.errors.RestartBudgetExceeded` to its parent.
* Children start in order and stop in reverse order. Each child gets
  ``shutdown`` seconds to finish after it is cancelled; it can read that budget
  with :func:`shutdown_scope` to bound its final, shielded clean-up.

A child's ``start`` is any ``async def f(*, task_status)`` that calls
``task_status.started(value)`` once it is ready; ``value`` (usually an
:class:`~engage.actors.ActorRef`) is what :meth:`Supervisor.which_children`
and :meth:`DynamicSupervisor.lookup` return.
"""

from __future__ import annotations

import collections
import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable, Literal, Sequence

import trio

from engage.errors import RestartBudgetExceeded, TooManyChildren

log = logging.getLogger(__name__)

Restart = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "rest_for_one"]
StartFn = Callable[..., Awaitable[Any]]

#: Seconds a child gets to finish after it is told to stop.
DEFAULT_SHUTDOWN = 5.0
#: Default restart budget: at most this many restarts ...
DEFAULT_MAX_RESTARTS = 3
#: ... within this many seconds.
DEFAULT_MAX_SECONDS = 5.0

_shutdown_budget: contextvars.ContextVar[float] = contextvars.ContextVar(
    "engage_shutdown_budget", default=DEFAULT_SHUTDOWN
)


def shutdown_scope() -> trio.CancelScope:
    """A shielded cancel scope that expires after this child's shutdown budget.

    Use it for the one piece of clean-up that must run even while the task is
    being cancelled (the final flush), so that a stop still has a deadline.
    """
    return trio.CancelScope(shield=True, deadline=trio.current_time() + _shutdown_budget.get())


@dataclass(frozen=True)
class ChildSpec:
    """How to start and stop one supervised child.

    Attributes:
        id: unique name among its siblings.
        start: ``async def start(*, task_status)``; calls ``task_status.started(value)``.
        restart: ``"permanent"``, ``"transient"`` or ``"temporary"``.
        shutdown: seconds the child gets to finish once cancelled.
    """

    id: Hashable
    start: StartFn
    restart: Restart = "permanent"
    shutdown: float = DEFAULT_SHUTDOWN

    def __post_init__(self) -> None:
        if self.restart not in ("permanent", "transient", "temporary"):
            raise ValueError(f"unknown restart type {self.restart!r}")
        if self.shutdown < 0:
            raise ValueError("shutdown must be >= 0 seconds")


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    value: Any = None
    running: bool = False
    stopping: bool = False
    scope: trio.CancelScope | None = None
    done: trio.Event = field(default_factory=trio.Event)
    restarts: int = 0
    #: Bumped on every start, so an exit of an earlier run can be told apart.
    generation: int = 0


class _TaskStatus:
    """Forwards ``started()``, remembers that it happened and, once the child
    has really moved into the supervisor's nursery, shields it."""

    __slots__ = ("_inner", "_nursery", "_scope", "_task", "started_called")

    def __init__(self, inner: trio.TaskStatus, scope: trio.CancelScope,
                 nursery: trio.Nursery) -> None:
        self._inner = inner
        self._scope = scope
        self._nursery = nursery
        self._task = trio.lowlevel.current_task()
        self.started_called = False

    def started(self, value: Any = None) -> None:
        self.started_called = True
        self._inner.started(value)
        # Not moved when the caller of start() was cancelled meanwhile: then the
        # child must stay cancellable, or start() would wait for it forever.
        if self._task.parent_nursery is self._nursery:
            self._scope.shield = True


class _Base:
    """Child lifecycle shared by both supervisor kinds."""

    def __init__(self, name: str, max_restarts: int, max_seconds: float) -> None:
        if max_restarts < 0 or max_seconds <= 0:
            raise ValueError("restart budget needs max_restarts >= 0 and max_seconds > 0")
        self.name = name
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._nursery: trio.Nursery | None = None
        self._restart_times: collections.deque[float] = collections.deque()
        self._exits: collections.deque[tuple[_Child, BaseException | None, int]] = (
            collections.deque())
        self._wakeup = trio.Event()

    # -- starting and stopping one child -------------------------------------

    async def _start_child(self, child: _Child) -> Any:
        assert self._nursery is not None, "supervisor is not running"
        # Shielded once started (see _TaskStatus) so that cancelling the
        # supervisor does not hit every child at once: the supervisor stops them
        # itself, one by one, in reverse order. Not shielded while starting, so
        # that cancelling the caller of start can interrupt a slow start.
        child.scope = trio.CancelScope()
        child.done = trio.Event()
        child.stopping = False
        child.generation += 1
        child.value = await self._nursery.start(self._child_main, child)
        child.running = True
        return child.value

    async def _child_main(self, child: _Child, *, task_status: trio.TaskStatus) -> None:
        _shutdown_budget.set(child.spec.shutdown)
        generation = child.generation
        assert child.scope is not None and self._nursery is not None
        status = _TaskStatus(task_status, child.scope, self._nursery)
        error: BaseException | None = None
        try:
            with child.scope:
                await child.spec.start(task_status=status)
        except Exception as exc:
            if not status.started_called:
                raise  # surfaces from nursery.start() as a start failure
            error = exc
        finally:
            child.running = False
            child.done.set()
        if status.started_called:
            self._exits.append((child, error, generation))
            self._wakeup.set()

    async def _stop_child(self, child: _Child) -> None:
        if not child.running or child.scope is None:
            return
        child.stopping = True
        child.scope.cancel()
        with trio.move_on_after(child.spec.shutdown):
            await child.done.wait()
        if not child.done.is_set():
            log.error("%s: child %r overran its %.1f s shutdown; waiting for it",
                      self.name, child.spec.id, child.spec.shutdown)
            await child.done.wait()

    # -- restart policy -------------------------------------------------------

    @staticmethod
    def _wants_restart(child: _Child, error: BaseException | None) -> bool:
        restart = child.spec.restart
        if restart == "permanent":
            return True
        if restart == "transient":
            return error is not None
        return False

    def _charge_restart(self, cause: BaseException | None) -> None:
        now = trio.current_time()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] < now - self.max_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            raise RestartBudgetExceeded(
                f"{self.name}: more than {self.max_restarts} restarts in {self.max_seconds} s"
            ) from cause

    async def _restart_with_budget(self, child: _Child, cause: BaseException | None) -> None:
        """Restart ``child``, charging the budget for each attempt."""
        while True:
            self._charge_restart(cause)
            child.restarts += 1
            try:
                await self._start_child(child)
                return
            except Exception as exc:
                log.warning("%s: restart of %r failed: %r", self.name, child.spec.id, exc)
                cause = exc

    async def _next_exits(self) -> list[tuple[_Child, BaseException | None, int]]:
        await self._wakeup.wait()
        self._wakeup = trio.Event()
        out = list(self._exits)
        self._exits.clear()
        return out

    def _log_exit(self, child: _Child, error: BaseException | None) -> None:
        if error is None:
            log.info("%s: child %r exited", self.name, child.spec.id)
        else:
            log.error("%s: child %r crashed", self.name, child.spec.id,
                      exc_info=(type(error), error, error.__traceback__))


class Supervisor(_Base):
    """Runs a fixed, ordered list of children.

    Args:
        children: started in this order, stopped in reverse.
        strategy: ``"one_for_one"`` or ``"rest_for_one"``.
        max_restarts: restart budget count.
        max_seconds: restart budget window.
        name: used in logs.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        name: str = "supervisor",
    ) -> None:
        super().__init__(name, max_restarts, max_seconds)
        if strategy not in ("one_for_one", "rest_for_one"):
            raise ValueError(f"unknown strategy {strategy!r}")
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError("child ids must be unique")
        self.strategy = strategy
        self._children = [_Child(spec) for spec in children]

    def which_children(self) -> list[tuple[Hashable, Any, bool]]:
        """``(id, started value, running)`` for each child, in start order."""
        return [(c.spec.id, c.value, c.running) for c in self._children]

    def child(self, child_id: Hashable) -> Any:
        """The value the running child ``child_id`` passed to ``started()``."""
        for c in self._children:
            if c.spec.id == child_id:
                return c.value
        raise KeyError(child_id)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, supervise them, stop them in reverse.

        Raises:
            RestartBudgetExceeded: too many restarts (escalation to our parent).
            Exception: a child failed to start; the ones started are stopped first.
        """
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for child in self._children:
                    await self._start_child(child)
                task_status.started(self)
                await self._supervise()
            except Exception as exc:
                failure = exc  # raised below, bare rather than in an ExceptionGroup
            finally:
                with trio.CancelScope(shield=True):
                    for child in reversed(self._children):
                        await self._stop_child(child)
        if failure is not None:
            raise failure

    async def _supervise(self) -> None:
        while True:
            for child, error, generation in await self._next_exits():
                if child.stopping or generation != child.generation:
                    continue  # stopped on purpose, or an earlier run already restarted
                self._log_exit(child, error)
                if not self._wants_restart(child, error):
                    continue
                if self.strategy == "one_for_one":
                    await self._restart_with_budget(child, error)
                else:
                    await self._restart_rest(child, error)

    async def _restart_rest(self, child: _Child, error: BaseException | None) -> None:
        index = self._children.index(child)
        later = self._children[index + 1:]
        was_running = [c for c in later if c.running]
        for sibling in reversed(later):
            await self._stop_child(sibling)
        await self._restart_with_budget(child, error)
        for sibling in later:
            # As in OTP: temporary children are never restarted.
            if sibling in was_running and sibling.spec.restart != "temporary":
                await self._start_child(sibling)


class DynamicSupervisor(_Base):
    """Runs children started on demand, keyed by id.

    The registry holds each running child under its key and drops the key when
    the child ends for good. Crashed children are restarted under the same key
    according to ``restart``, within the supervisor's budget.

    Args:
        max_children: refuse to start more than this many at once.
        restart: restart type applied to every child.
        shutdown: seconds each child gets to finish on stop.
    """

    def __init__(
        self,
        *,
        name: str = "dynamic",
        max_children: int = 100_000,
        restart: Restart = "transient",
        shutdown: float = DEFAULT_SHUTDOWN,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        super().__init__(name, max_restarts, max_seconds)
        self.max_children = max_children
        self.restart = restart
        self.shutdown = shutdown
        self._registry: dict[Hashable, _Child] = {}
        self._released: set[_Child] = set()
        self._starting: dict[Hashable, trio.Event] = {}

    def __len__(self) -> int:
        return len(self._registry)

    def lookup(self, key: Hashable) -> Any | None:
        """The started value of the child under ``key``, or ``None``."""
        child = self._registry.get(key)
        return child.value if child is not None and child.running else None

    def keys(self) -> list[Hashable]:
        return list(self._registry)

    def statistics(self) -> dict[str, int]:
        return {"children": len(self._registry), "released": len(self._released),
                "max_children": self.max_children}

    async def start_child(self, key: Hashable, start: StartFn) -> Any:
        """Start ``start`` under ``key`` unless a child already runs there.

        Concurrent calls for one key start it once and all get its value.

        Raises:
            TooManyChildren: ``max_children`` are already running.
        """
        while True:
            existing = self.lookup(key)
            if existing is not None:
                return existing
            pending = self._starting.get(key)
            if pending is None:
                break
            await pending.wait()
        if len(self._registry) + len(self._starting) >= self.max_children:
            raise TooManyChildren(f"{self.name}: at max_children={self.max_children}")
        child = _Child(ChildSpec(key, start, self.restart, self.shutdown))
        event = self._starting[key] = trio.Event()
        try:
            value = await self._start_child(child)
            self._registry[key] = child
            return value
        finally:
            del self._starting[key]
            event.set()

    def release(self, key: Hashable) -> None:
        """Drop ``key`` from the registry now, while its child finishes.

        The next :meth:`start_child` for ``key`` starts a fresh child. The
        released one is still stopped (and waited for) when the supervisor stops.
        """
        child = self._registry.pop(key, None)
        if child is not None and child.running:
            self._released.add(child)

    async def terminate_child(self, key: Hashable) -> None:
        """Stop the child under ``key`` and wait (up to its shutdown) for it."""
        child = self._registry.get(key)
        if child is not None:
            await self._stop_child(child)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise children as they are started; stop them in reverse on exit.

        Raises:
            RestartBudgetExceeded: too many restarts (escalation to our parent).
        """
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started(self)
                await self._supervise()
            except Exception as exc:
                failure = exc  # raised below, bare rather than in an ExceptionGroup
            finally:
                with trio.CancelScope(shield=True):
                    for child in reversed([*self._registry.values(), *self._released]):
                        await self._stop_child(child)
        if failure is not None:
            raise failure

    async def _supervise(self) -> None:
        while True:
            for child, error, generation in await self._next_exits():
                if generation != child.generation:
                    continue  # an earlier run of a child that was restarted since
                self._released.discard(child)
                key = child.spec.id
                owned = self._registry.get(key) is child
                if child.stopping or not owned or not self._wants_restart(child, error):
                    if not child.stopping:
                        self._log_exit(child, error)
                    if owned:
                        del self._registry[key]
                    continue
                self._log_exit(child, error)
                try:
                    await self._restart_with_budget(child, error)
                except RestartBudgetExceeded:
                    del self._registry[key]
                    raise
