"""LeanExecutor: rclpy's single-threaded executor without its per-callback Python machinery.

rclpy's SingleThreadedExecutor rebuilds its wait set from scratch for every callback (a context
manager per entity, ~30 entities with the parameter services and QoS event handlers), wraps each
callback in a Task and a coroutine, and triggers its guard condition twice per callback, which
wakes the next wait at once for nothing. Measured on the onboard nodes over Fast DDS: the drive
node used 4.9 % of a core at 10 Hz and the safety node, which does almost nothing, 3.9 %; with
this executor 3.5 % and 1.5 %, and the camera -> command p99 fell by 1-1.5 ms.

This one keeps the nodes' entities between waits (rebuilt only when a node gains or loses one),
waits once, and runs every ready callback inline, in rclpy's order (timers, subscriptions,
guard conditions, services, then the next wait). Callbacks run one at a time in this thread, so
callback groups change nothing, exactly as in the single-threaded executor. What it cannot serve
it refuses with an error instead of hanging: service clients and coroutine tasks (their futures
need rclpy's Task machinery).

It reads rclpy internals (`_rclpy.WaitSet`, `Executor._guard`, `_is_shutdown`) as rclpy's own
executor uses them in Jazzy, which the tests run here on a real DDS graph; Humble (no
`Subscription.CallbackType`, maybe no signal guard condition) is provided for but has not run it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from typing import Any, Protocol, TypeVar

from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.subscription import Subscription
from rclpy.task import Task

__all__ = ["LeanExecutor"]


class _HasHandle(Protocol):
    @property
    def handle(self) -> Any: ...


E = TypeVar("E", bound=_HasHandle)


def _run_to_end(coro: Coroutine[Any, Any, Any], what: str) -> None:
    """Run a coroutine that never awaits (an event handler's `execute`) to its end."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError(f"LeanExecutor: {what} awaited a future; run this node on rclpy's own executor")


def _wants_info(sub: Subscription) -> bool:
    """Whether the callback takes (message, message_info): Jazzy's choice by signature; Humble has no such type."""
    kinds = getattr(Subscription, "CallbackType", None)
    return kinds is not None and getattr(sub, "_callback_type", None) == kinds.WithMessageInfo


class _Entities:
    """The nodes' entities as the wait set takes them, their callbacks by rcl pointer, and their handles held.

    rclpy destroys a handle only once nobody holds it: holding every handle from one build to the next
    (rclpy's executor holds them for each wait) means a node destroyed, or the executor shut down, from
    another thread while this one waits frees nothing the wait is using; the next build, or the end of
    spin, lets go.
    """

    def __init__(self, executor: LeanExecutor, guards: list[GuardCondition]) -> None:
        self.key = executor.entity_key()
        nodes = executor.get_nodes()
        clients = [(n.get_name(), c.srv_name) for n in nodes for c in n.clients]
        if clients:
            raise RuntimeError(
                f"LeanExecutor: node {clients[0][0]} has a service client ({clients[0][1]}), whose futures need "
                "rclpy's own executor"
            )
        self.stack = ExitStack()
        try:
            self._hold(executor.context.handle)
            held = self._held
            self.subs = held([s for n in nodes for s in n.subscriptions])
            self.timers = held([t for n in nodes for t in n.timers])
            self.services = held([s for n in nodes for s in n.services])
            self.guards = held([g for n in nodes for g in n.guards])
            self.own_guards = held(guards)
            self.waitables = [w for n in nodes for w in n.waitables if self._hold(w)]
            self.sub_at = {s.handle.pointer: (s, _wants_info(s)) for s in self.subs}
            self.timer_at = {t.handle.pointer: t for t in self.timers}
            self.service_at = {s.handle.pointer: s for s in self.services}
            self.guard_at = {g.handle.pointer: g for g in self.guards}
            counts = [
                len(self.subs),
                len(self.guards) + len(self.own_guards),
                len(self.timers),
                0,
                len(self.services),
                0,
            ]
            for w in self.waitables:
                n = w.get_num_entities()
                for i, c in enumerate(
                    (
                        n.num_subscriptions,
                        n.num_guard_conditions,
                        n.num_timers,
                        n.num_clients,
                        n.num_services,
                        n.num_events,
                    )
                ):
                    counts[i] += c
            self.wait_set = _rclpy.WaitSet(*counts, executor.context.handle)
        except BaseException:
            self.stack.close()
            raise

    def _hold(self, thing: Any) -> bool:
        try:
            self.stack.enter_context(thing)
        except _rclpy.InvalidHandle:  # destroyed meanwhile: not waited on
            return False
        return True

    def _held(self, entities: list[E]) -> list[E]:
        return [e for e in entities if self._hold(e.handle)]

    def close(self) -> None:
        self.stack.close()


class LeanExecutor(Executor):
    """Run every ready callback of the added nodes in the calling thread (see the module docstring)."""

    def __init__(self, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self._entities: _Entities | None = None

    def entity_key(self) -> tuple[int, ...]:
        """Changes whenever a node gains or loses an entity (or a node is added or removed)."""
        key: list[int] = []
        for n in self.get_nodes():
            key += (
                id(n),
                sum(1 for _ in n.subscriptions),
                sum(1 for _ in n.timers),
                sum(1 for _ in n.services),
                sum(1 for _ in n.clients),
                sum(1 for _ in n.guards),
                sum(1 for _ in n.waitables),
            )
        return tuple(key)

    def create_task(self, callback: Callable[..., Any] | Coroutine[Any, Any, Any], *args: Any, **kwargs: Any) -> Task:
        raise RuntimeError("LeanExecutor runs callbacks, not tasks; run coroutines on rclpy's own executor")

    def spin(self) -> None:
        try:
            while self._context.ok() and not self._is_shutdown:
                self.spin_once()
        finally:
            self._release()

    def _release(self) -> None:
        if self._entities is not None:
            self._entities.close()
            self._entities = None

    def spin_once(self, timeout_sec: float | None = None) -> None:
        guard = self._guard
        if self._is_shutdown or guard is None:  # shutdown() let go of its guard conditions
            self._release()
            return
        e = self._entities
        if e is None or e.key != self.entity_key():
            self._release()
            # the signal handler's guard condition where this rclpy has one (the context's shutdown also
            # triggers `guard`, so a signal wakes the wait either way)
            sigint: GuardCondition | None = getattr(self, "_sigint_gc", None)
            e = self._entities = _Entities(self, [guard] if sigint is None else [guard, sigint])
        ws = e.wait_set
        ws.clear_entities()
        for s in e.subs:
            ws.add_subscription(s.handle)
        for g in (*e.guards, *e.own_guards):
            ws.add_guard_condition(g.handle)
        for t in e.timers:
            ws.add_timer(t.handle)
        for sv in e.services:
            ws.add_service(sv.handle)
        for w in e.waitables:
            w.add_to_wait_set(ws)
        ws.wait(-1 if timeout_sec is None or timeout_sec < 0 else int(timeout_sec * 1e9))
        if self._is_shutdown:
            return
        if not self._context.ok():
            raise ExternalShutdownException()
        for w in e.waitables:  # before the next wait: readiness is read from this wait set
            if w.is_ready(ws):
                _run_to_end(w.execute(w.take_data()), f"waitable {type(w).__name__}")
        for p in ws.get_ready_entities("timer"):
            timer = e.timer_at.get(p)
            if timer is not None and timer.handle.is_timer_ready():  # a cancelled one can read ready
                timer.handle.call_timer()
                timer.callback()
        for p in ws.get_ready_entities("subscription"):
            found = e.sub_at.get(p)
            if found is None:
                continue
            s, with_info = found
            taken = s.handle.take_message(s.msg_type, s.raw)
            if taken is None:
                continue
            if with_info:
                s.callback(*taken)
            else:
                s.callback(taken[0])
        for p in ws.get_ready_entities("guard_condition"):
            gc = e.guard_at.get(p)
            if gc is not None and gc.callback is not None:
                gc.callback()
        for p in ws.get_ready_entities("service"):
            service = e.service_at.get(p)
            if service is None:
                continue
            srv_type: Any = service.srv_type
            request, header = service.handle.service_take_request(srv_type.Request)
            if header is not None:
                service.send_response(service.callback(request, srv_type.Response()), header)
