"""The reload itself: read, validate, refuse or apply, tell systemd, the journal and the central.

See :mod:`hub.reload` for what changes live and what needs a restart.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from hub import config, logs, sdnotify
from hub.config.checks import insecure_brokers
from hub.drivertable import AttachFailed
from hub.emitter import HUB_SOURCE
from hub.events import Draft, Priority
from hub.link import LinkSettings
from hub.lifecycle import EXIT_GAVE_UP
from hub.reload.plan import RESTART_KEYS, Plan, make_plan, secrets_digest
from hub.rules import build_rules

log = structlog.get_logger("hub.reload")

#: At most this many line numbers go to the central with a refusal (the journal has every line).
MAX_LINES = 20


class Refused(Exception):
    """A new config the hub will not take: ``reason``, the journal's ``lines`` and the event's ``data``."""

    def __init__(self, reason: str, lines: list[str], data: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason, self.lines, self.data = reason, lines, data


class Reloader:
    """Reloads the hub's config file on request (SIGHUP), one reload at a time, on the hub's loop."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._wanted = asyncio.Event()
        self._secrets = secrets_digest(hub.loaded)  # as the link read them at start
        #: one reload or pushed config at a time
        self.lock = asyncio.Lock()
        #: reloads applied and refused since start (for tests and status)
        self.applied = 0
        self.refused = 0

    def request(self) -> None:
        """Ask for a reload (the SIGHUP handler); requests made while one runs make one more."""
        log.info("config_reload_requested", file=str(self.hub.loaded.path))
        self._wanted.set()

    async def run(self) -> None:
        """The reload loop, for the daemon's lifetime (supervised)."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Read the config file again and apply it, or refuse it; True when applied (or unchanged)."""
        sdnotify.reloading()
        t0 = time.monotonic()
        try:
            changed = await self._reload()
        except Refused as exc:
            self.refused += 1
            log.error("config_reload_refused", file=str(self.hub.loaded.path), reason=exc.reason, errors=exc.lines,
                      running_sha256=self.hub.loaded.sha256)
            await self.hub.emitter.emit_logged(
                Draft(type="hub.config_refused", priority=Priority.HIGH, source=HUB_SOURCE,
                      data={"reason": exc.reason, **exc.data, "running_sha256": self.hub.loaded.sha256})
            )
            return False
        finally:
            sdnotify.notify(f"READY=1\nSTATUS=running (config {self.hub.loaded.sha256[:12]})")
        self.applied += 1
        log.info("config_reloaded", file=str(self.hub.loaded.path), sha256=self.hub.loaded.sha256, changed=changed,
                 took_ms=round((time.monotonic() - t0) * 1000, 1))
        return True

    async def _reload(self) -> list[str]:
        h = self.hub
        path = h.loaded.path
        try:  # in a thread: the loop keeps taking presses while the file is read and its TLS files parsed
            new = await asyncio.to_thread(config.load, path)
        except config.ConfigUnreadable as exc:
            raise Refused("unreadable", [str(exc)], {"sha256": None}) from None
        except config.ConfigError as exc:
            lines = [str(i) for i in exc.issues]
            data = {"errors": len(exc.issues), "lines": sorted({i.line for i in exc.issues})[:MAX_LINES],
                    "sha256": await asyncio.to_thread(_sha256, path)}
            raise Refused("invalid", lines, data) from None
        async with self.lock:
            pushed = getattr(h, "configpush", None)
            if pushed is not None and not await pushed.local_file_wins(new):  # the pushed config stays
                return []
            previous = h.loaded.sha256
            changed = await self.apply(new)
            if pushed is not None:
                pushed.set_local(new)
        if changed or new.sha256 != previous:
            await h.emitter.emit_logged(
                Draft(type="hub.config_reloaded", priority=Priority.NORMAL, source=HUB_SOURCE,
                      data={"sha256": new.sha256, "previous_sha256": previous, "changed": changed})
            )
        return changed

    async def apply(self, new: config.LoadedConfig) -> list[str]:
        """Apply a validated config over the running one (a reload's, or a pushed one's); the tables and
        devices it changed. Raises :class:`Refused` (needs_restart, attach_failed) and then nothing changed.
        The caller holds :attr:`lock`."""
        h = self.hub
        where = new.origin or str(new.path)
        secrets = await asyncio.to_thread(secrets_digest, new)
        plan = make_plan(h.loaded, new, old_secrets=self._secrets, new_secrets=secrets)
        if plan.restart:
            lines = [f"{where}: {key}: {RESTART_KEYS[key]}; restart the service to change it "
                     f"(systemctl restart carehub)" for key in plan.restart]
            raise Refused("needs_restart", lines, {"keys": plan.restart, "sha256": new.sha256})
        if plan.empty and new.sha256 == h.loaded.sha256:
            return []
        settings = await asyncio.to_thread(h.link_settings, new)  # reads the password file
        relink = settings != h.link.settings or secrets != self._secrets
        try:
            await self._apply(new, plan, settings if relink else None)
        except AttachFailed as exc:
            raise Refused("attach_failed", [f"{where}: {exc}"], {"driver": exc.driver, "sha256": new.sha256}) from None
        self._secrets = secrets
        return plan.changed

    async def _apply(self, new: config.LoadedConfig, plan: Plan, link: LinkSettings | None) -> None:
        """Apply ``new``: the drivers first (the one step that can fail, and then nothing else changed);
        ``link``: new settings the MQTT link connects again with, None to keep its connection."""
        h = self.hub
        table = h.driver_table
        if plan.drivers:
            await table.stop_tasks(plan.drivers)
            try:
                table.swap(plan.drivers, new.config)
            except AttachFailed as exc:
                log.error("driver_attach_failed", driver=exc.driver, error=str(exc), exc_info=exc.__cause__)
                try:
                    table.swap(plan.drivers, h.cfg)  # back to the running config
                except AttachFailed as again:  # neither config attaches: a fresh start is the way out
                    log.critical("driver_rollback_failed", driver=again.driver, error=str(again),
                                 exit_code=EXIT_GAVE_UP)
                    h.lifecycle.exit_code = EXIT_GAVE_UP
                    h.lifecycle.request_stop()
                raise
        else:
            h.devices.clear()
            h.devices.update({d.id: d for d in new.config.devices})
        h.loaded, h.cfg = new, new.config
        c = new.config
        logs.set_level(c.log.level)
        h.alarms.ack_timeout_s = c.alarm.ack_timeout_s
        h.alarms.unack_repeat_s = c.alarm.unack_repeat_s
        h.alarms.steady_s = c.alarm.steady_s
        h.emitter.flood.rate, h.emitter.flood.burst = c.limits.telemetry_per_s, c.limits.telemetry_burst
        h.outbox.resident = c.hub.resident
        h.outbox.set_limits(max_events=c.store.max_events, max_bytes=c.store.max_mb << 20,
                            keep_delivered_s=c.store.keep_delivered_s)
        h.forwarder.max_inflight = c.mqtt.max_inflight
        h.forwarder.batch_max, h.forwarder.batch_bytes = c.mqtt.batch_max, c.mqtt.batch_bytes
        if plan.rules:
            self._swap_rules(c)
        sim = h.port.sim_control
        if sim is not None and not sim.listening:  # the first simulated device came with this config
            await sim.start()
        task = h.supervisor.children.get("link")
        if task is not None:  # as the lifecycle sets it at start
            task.stall_s = c.mqtt.backoff_max_s + 3 * c.mqtt.connect_timeout_s + 30
        if link is not None:
            if c.mqtt.insecure and c.mqtt.tls is None:
                log.warning("mqtt_insecure", brokers=[f"{host}:{c.mqtt.broker[i].port}" for i, host in
                                                      insecure_brokers(c.mqtt)],
                            reason="insecure = true: events, commands and credentials cross the network without TLS")
            await h.link.reconfigure(link)  # the birth goes out again on the new connection
        elif h.link.online.is_set():  # the retained status names the new config and devices; not waited for
            h.spawn(h.status.on_connected(), "birth")

    def _swap_rules(self, c: Any) -> None:
        """New rules from the new config; each rule that still exists carries on from its state."""
        runner = self.hub.rules_runner
        rules = build_rules(c.rules, tz=ZoneInfo(c.hub.timezone),
                            devices={d.id: (d.kind, d.expected_interval_s) for d in c.devices})
        broken = rules.restore(runner.rules.state(), runner.now())
        if broken:
            log.warning("rules_state_dropped", rules=broken)
        runner.replace(rules)
        log.info("rules_reloaded", rules=[r.name for r in rules.rules])


def _sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
