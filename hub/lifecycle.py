"""The hub's life: start in the right order, run under supervision and the watchdog, stop cleanly.

Start: open the store (a full disk does not stop the hub: alarms are held
until it opens), attach the drivers (their LEDs are registered before the
alarms are restored), restore open alarms and the rules' state, start the
sim socket, say ``hub.started``, then run every essential task (a SIGHUP's reload too) under the
:class:`~hub.supervisor.Supervisor` and send ``READY=1``. ``WATCHDOG=1`` goes
out only while :meth:`Lifecycle.healthy`. Stop (SIGTERM/SIGINT, or a task
that could not be kept running): ``hub.stopping``, flush what the link
allows, the retained offline status, everything closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from typing import Any

import structlog

from drivers.base import SimCommandError
from hub import __version__, sdnotify
from hub.alarms import ALARM_TYPES
from hub.emitter import HUB_SOURCE
from hub.events import Draft, Priority

log = structlog.get_logger("hub.lifecycle")

#: Alarms younger than this that were never acknowledged or cancelled are re-opened at start.
RESTORE_ALARMS_S = 24 * 3600.0
#: Exit code when a task could not be kept running (systemd restarts the hub).
EXIT_GAVE_UP = 70
#: A commit running for longer than this stops the watchdog (a disk that hangs).
STORE_STUCK_S = 60.0


class Lifecycle:
    """Runs one :class:`~hub.daemon.Hub` from start to stop."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.exit_code = 0
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop` (SIGTERM/SIGINT), or until a task cannot be kept running."""
        h = self.hub
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, h.reloader.request)  # reloaded once running (hub.reload)
        await h.housekeeping.open_store()  # a full disk: start all the same, alarms are held until it opens
        h.housekeeping.check_health()
        pending_at_start = 0
        if h.outbox.is_open:
            stats = await h.outbox.stats()
            pending_at_start = stats.pending
            log.info("hub_starting", hub=h.cfg.hub.id, version=__version__, pending=stats.pending,
                     last_seq=stats.last_seq)
        else:
            log.info("hub_starting", hub=h.cfg.hub.id, version=__version__, store="not open")
        h.attach_drivers()
        if h.outbox.is_open:
            history = await h.outbox.recent(
                ALARM_TYPES | {"alarm.acknowledged", "alarm.cancelled", "alarm.unacknowledged"}, since_s=RESTORE_ALARMS_S
            )
            h.alarms.restore(history)
            h.fallback.restore(await h.outbox.recent({"fallback.sent"}, since_s=RESTORE_ALARMS_S))
            await h.rules_runner.restore()
        else:
            log.error("rules_state_not_restored", reason="store not open")
        sim = h.port.sim_control
        if sim is not None:
            sim.register("crash", self._sim_crash)
            await sim.start()
        await h.emitter.emit_logged(
            Draft(
                type="hub.started",
                priority=Priority.NORMAL,
                source=HUB_SOURCE,
                data={"version": __version__, "config_sha256": h.loaded.sha256, "pending_at_start": pending_at_start},
            )
        )
        await h.configpush.started()  # a rollback decided at start: config.rolled_back, stored now
        self._supervise()
        wd = sdnotify.watchdog_interval()
        if wd:
            h.spawn(self._watchdog(wd), "watchdog")
        sdnotify.notify("READY=1")
        log.info("hub_ready", sim_socket=str(sim.path) if sim else None)
        stop = asyncio.ensure_future(self._stop.wait())
        gave_up = asyncio.ensure_future(h.supervisor.gave_up.wait())
        await asyncio.wait([stop, gave_up], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        gave_up.cancel()
        if h.supervisor.gave_up.is_set():
            self.exit_code = EXIT_GAVE_UP
            log.critical("hub_exiting", reason=h.supervisor.gave_up_reason, exit_code=EXIT_GAVE_UP)
        await self.shutdown()

    def _supervise(self) -> None:
        h = self.hub
        m = h.cfg.mqtt
        sup = h.supervisor
        sup.start("link", h.link.run, progress=lambda: h.link.last_progress,
                  stall_s=m.backoff_max_s + 3 * m.connect_timeout_s + 30)
        sup.start("forwarder", h.forwarder.run, progress=h.forwarder.progress, stall_s=90.0)
        sup.start("commands", h.commands.serve)
        sup.start("heartbeat", h.status.heartbeat)
        sup.start("housekeeping", h.housekeeping.run, progress=lambda: h.housekeeping.round_at, stall_s=30.0)
        sup.start("rules", h.rules_runner.run, progress=lambda: h.rules_runner.ticked_at, stall_s=30.0)
        sup.start("control", h.control.run)
        sup.start("reload", h.reloader.run)
        sup.start("fallback", h.fallback.run)
        sup.start("paths", h.paths.run_interface)
        for driver in h.drivers:
            for name, run in driver.tasks():
                sup.start(name, run)

    async def _sim_crash(self, req: dict[str, Any]) -> dict[str, Any]:
        """Sim op ``crash {task, times?}``: fail a supervised task (the rig's fault injection)."""
        name = req.get("task")
        times = req.get("times", 1)
        children = self.hub.supervisor.children
        if not isinstance(name, str) or name not in children:
            raise SimCommandError(f"unknown task {name!r}; have: {', '.join(sorted(children))}")
        if not isinstance(times, int) or not 1 <= times <= 1000:
            raise SimCommandError("times must be an integer from 1 to 1000")
        log.warning("task_crash_injected", task=name, times=times)
        self.hub.supervisor.crash(name, times)
        return {"task": name, "times": times}

    def healthy(self) -> tuple[bool, list[str]]:
        """What the watchdog is petted on: tasks running and progressing, the store not stuck."""
        ok, problems = self.hub.supervisor.healthy()
        busy = self.hub.outbox.busy_for()
        if busy is not None and busy > STORE_STUCK_S:
            ok = False
            problems.append(f"store: one transaction has run for {busy:.0f}s")
        return ok, problems

    async def _watchdog(self, interval: float) -> None:
        withheld = 0
        while True:
            ok, problems = self.healthy()
            if ok:
                sdnotify.notify("WATCHDOG=1")
                if withheld:
                    log.warning("watchdog_resumed", after_s=round(withheld * interval, 1))
                withheld = 0
            else:
                if withheld % 10 == 0:
                    log.error("watchdog_withheld", problems=problems)
                withheld += 1
            await asyncio.sleep(interval)

    async def shutdown(self, flush_timeout: float = 5.0) -> None:
        """Clean stop: say hub.stopping, flush what the link allows, publish offline, close."""
        h = self.hub
        sdnotify.notify("STOPPING=1")
        log.info("hub_stopping")
        with contextlib.suppress(Exception):
            await h.emitter.emit(Draft(type="hub.stopping", priority=Priority.NORMAL, source=HUB_SOURCE))
        deadline = time.monotonic() + flush_timeout
        while h.link.online.is_set() and time.monotonic() < deadline and h.outbox.is_open:
            stats = await h.outbox.stats()
            if stats.pending == 0:
                break
            await asyncio.sleep(0.05)
        offline = json.dumps({"state": "offline", "hub": h.cfg.hub.id, "reason": "stopped"}).encode()
        h.supervisor.stopping()  # what ends from here on is the stop, not a failure
        await h.link.stop(final=(f"{h.base}/status", offline))
        h.alarms.close()
        await h.supervisor.stop()
        for task in h.tasks:
            task.cancel()
        await asyncio.gather(*h.tasks, return_exceptions=True)
        if h.port.sim_control is not None:
            await h.port.sim_control.close()
        for driver in reversed(h.drivers):
            try:
                driver.close()
            except Exception:
                log.exception("driver_close_failed", driver=driver.name)
        last = None
        if h.outbox.is_open:
            with contextlib.suppress(Exception):
                last = await h.outbox.stats()
        await h.outbox.close()
        log.info("hub_stopped", pending=last.pending if last else None, last_seq=last.last_seq if last else None)
