"""Self-supervision: every task the hub needs is restarted when it dies, or the hub exits.

The Erlang/OTP rule, under systemd: a :class:`Supervisor` runs each essential
task (the MQTT link, the forwarder, the rules, housekeeping, each driver). A
task that raises, or ends although it should run for the daemon's lifetime, is
logged with its cause (``task_failed``) and started again after a jittered
backoff. One that fails more than ``max_restarts`` times within ``window_s``
is given up (``task_gave_up``): :attr:`Supervisor.gave_up` is set, the daemon
stops and exits non-zero, and systemd (``Restart=always``) starts it afresh.

:meth:`Supervisor.healthy` is what the systemd watchdog is petted on: every
essential task running, and each that reports progress (a callable giving the
monotonic time of its last step) has made some within its ``stall_s``. A task
stuck in a loop that never yields stops the watchdog with the loop itself.

Every change of a task's health goes to ``on_change(component, ok, reason)``,
which the daemon turns into ``hub.degraded`` / ``hub.recovered``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from drivers.helpers import backoff_delays

log = structlog.get_logger("hub.supervisor")

OnChange = Callable[[str, bool, str | None], None]
#: A task that has run this long after a restart counts as recovered.
RECOVERED_AFTER_S = 5.0


@dataclass
class Child:
    """One supervised task and what is known about its health."""

    name: str
    factory: Callable[[], Awaitable[Any]]
    progress: Callable[[], float] | None = None
    stall_s: float | None = None
    state: str = "starting"  # running, restarting, failed, stopped
    restarts: int = 0
    last_error: str | None = None
    started: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    inner: asyncio.Task[Any] | None = None
    degraded: bool = False
    crash_next: int = 0  # restarts still to be failed on purpose (the rig's fault injection)

    def stalled(self, now: float) -> float | None:
        """Seconds since its last progress if that is longer than ``stall_s``, else None."""
        if self.progress is None or self.stall_s is None:
            return None
        ago = now - self.progress()
        return ago if ago > self.stall_s else None


class Supervisor:
    """Runs the essential tasks; restarts each that dies; gives up loudly after too many restarts."""

    def __init__(
        self,
        *,
        on_change: OnChange | None = None,
        max_restarts: int = 5,
        window_s: float = 60.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.on_change = on_change
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.children: dict[str, Child] = {}
        #: set when a task could not be kept running: the daemon exits non-zero
        self.gave_up = asyncio.Event()
        self.gave_up_reason: str | None = None
        self._stopping = False

    def start(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        *,
        progress: Callable[[], float] | None = None,
        stall_s: float | None = None,
    ) -> Child:
        """Run ``factory()`` as the supervised task ``name``, for the daemon's lifetime."""
        if name in self.children:
            raise ValueError(f"task {name!r} is supervised already")
        child = Child(name, factory, progress=progress, stall_s=stall_s)
        self.children[name] = child
        child.task = asyncio.create_task(self._keep(child), name=f"supervise:{name}")
        return child

    async def _keep(self, child: Child) -> None:
        delays = backoff_delays(self.backoff_initial_s, self.backoff_max_s)
        recovered: asyncio.TimerHandle | None = None
        while not self._stopping:
            child.state = "running"
            child.started = time.monotonic()
            if child.crash_next > 0:
                child.crash_next -= 1
                coro: Awaitable[Any] = _fail("fault injected (sim crash)")
            else:
                coro = child.factory()
            child.inner = asyncio.ensure_future(coro)
            if child.degraded:
                recovered = asyncio.get_running_loop().call_later(RECOVERED_AFTER_S, self._recovered, child)
            try:
                await asyncio.wait([child.inner])
            except asyncio.CancelledError:
                child.inner.cancel()
                raise
            finally:
                if recovered is not None:
                    recovered.cancel()
                    recovered = None
            if self._stopping:
                break
            inner = child.inner
            if inner.cancelled():
                error = "cancelled"
            elif inner.exception() is not None:
                exc = inner.exception()
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = "ended"  # an essential task must run for the daemon's lifetime
            now = time.monotonic()
            if now - child.started >= self.window_s:
                delays = backoff_delays(self.backoff_initial_s, self.backoff_max_s)  # it ran well for a while
            child.recent.append(now)
            while child.recent and now - child.recent[0] > self.window_s:
                child.recent.popleft()
            child.restarts += 1
            child.last_error = error
            exc_info = inner.exception() if not inner.cancelled() else None
            log.error("task_failed", task=child.name, error=error, restarts=child.restarts,
                      in_window=len(child.recent), exc_info=exc_info)
            self._degraded(child, f"task failed: {error}")
            if len(child.recent) > self.max_restarts:
                child.state = "failed"
                self.gave_up_reason = f"{child.name}: {len(child.recent)} failures in {self.window_s:.0f}s, last: {error}"
                log.critical("task_gave_up", task=child.name, failures=len(child.recent), window_s=self.window_s,
                             error=error)
                self.gave_up.set()
                return
            child.state = "restarting"
            await asyncio.sleep(next(delays))
            log.warning("task_restarted", task=child.name, restarts=child.restarts)
        child.state = "stopped"

    def _degraded(self, child: Child, reason: str) -> None:
        child.degraded = True
        if self.on_change is not None:
            self.on_change(f"task:{child.name}", False, reason)

    def _recovered(self, child: Child) -> None:
        if child.state == "running" and child.degraded:
            child.degraded = False
            log.info("task_recovered", task=child.name, restarts=child.restarts)
            if self.on_change is not None:
                self.on_change(f"task:{child.name}", True, None)

    def crash(self, name: str, times: int = 1) -> None:
        """Fail task ``name`` now, and its next ``times - 1`` restarts too (the test rig's fault injection)."""
        child = self.children.get(name)
        if child is None:
            raise KeyError(name)
        child.crash_next = max(0, times - 1)
        if child.inner is not None and not child.inner.done():
            child.inner.cancel()

    def healthy(self) -> tuple[bool, list[str]]:
        """(True, []) when every task runs and none is stalled; else False and what is wrong.

        A task restarted lately counts as unhealthy until it has run for
        :data:`RECOVERED_AFTER_S`: one that fails again at once must not look
        alive in the moment between two attempts."""
        now = time.monotonic()
        problems = []
        for child in self.children.values():
            if child.state == "failed":
                problems.append(f"{child.name}: gave up")
            elif child.state != "running":
                problems.append(f"{child.name}: {child.state}")
            elif child.degraded:  # restarted, not yet running long enough to count as recovered
                problems.append(f"{child.name}: restarted {child.restarts} time(s), last: {child.last_error}")
            else:
                stalled = child.stalled(now)
                if stalled is not None:
                    problems.append(f"{child.name}: no progress for {stalled:.0f}s")
        return not problems, problems

    def status(self) -> dict[str, Any]:
        """Per task: state, restarts, last error; for ``status`` and the heartbeat."""
        now = time.monotonic()
        out = {}
        for child in self.children.values():
            entry: dict[str, Any] = {"state": child.state, "restarts": child.restarts}
            if child.last_error is not None:
                entry["last_error"] = child.last_error
            stalled = child.stalled(now)
            if stalled is not None:
                entry["stalled_s"] = round(stalled, 1)
            out[child.name] = entry
        return out

    async def retire(self, name: str) -> bool:
        """Stop supervising task ``name`` for good (its driver is detached by a config reload).

        The task is cancelled and awaited, no failure is recorded, and a task
        that was degraded is reported well (it is no longer part of the hub).
        False when no task of that name is supervised.
        """
        child = self.children.pop(name, None)
        if child is None:
            return False
        tasks = [t for t in (child.inner, child.task) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        child.state = "stopped"
        if child.degraded and self.on_change is not None:
            self.on_change(f"task:{name}", True, None)
        log.info("task_retired", task=name)
        return True

    def stopping(self) -> None:
        """The daemon is stopping: a task that ends from now on is not restarted."""
        self._stopping = True

    async def stop(self) -> None:
        """Cancel every supervised task and wait for them (daemon shutdown)."""
        self._stopping = True
        tasks = []
        for child in self.children.values():
            if child.inner is not None:
                child.inner.cancel()
                tasks.append(child.inner)
            if child.task is not None:
                child.task.cancel()
                tasks.append(child.task)
        await asyncio.gather(*tasks, return_exceptions=True)


async def _fail(reason: str) -> None:
    raise RuntimeError(reason)
