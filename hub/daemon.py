"""The daemon: one asyncio loop, and the wiring of one residence's hub.

``carehub run --config FILE`` builds a :class:`Hub` from a validated config
and runs it (:mod:`hub.lifecycle`) until SIGTERM/SIGINT. This module only
wires the parts; each does one job in a module of its own:

* :mod:`hub.emitter`: every event in: commit, then publish, alarms, rules;
* :mod:`hub.outbox`, :mod:`hub.forwarder`, :mod:`hub.link`: durably to the central;
* :mod:`hub.alarms`, :mod:`hub.gestures`: every alarm until the central's ack;
* :mod:`hub.rules_runner`: the local rules and supervision;
* :mod:`hub.commandgate`, :mod:`hub.command_runner`: the central's commands;
* :mod:`hub.status`: birth, heartbeat, ``status``;
* :mod:`hub.control`: the local control socket (``carehub status``, ``tail``, ``test-alarm``...);
* :mod:`hub.housekeeping`, :mod:`hub.health`, :mod:`hub.supervisor`: staying well, or saying so;
* :mod:`hub.port`, :mod:`hub.drivertable` and :mod:`drivers.registry`: the drivers, which the hub knows by
  registry line only;
* :mod:`hub.reload`: SIGHUP reads the config again and applies it, or refuses it;
* :mod:`hub.fallback`: SMS to the on-call phones when the central cannot be reached; every path watched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from drivers.helpers import TaskSet
from hub import eventbatch, logs
from hub.alarms import AlarmTracker
from hub.command_runner import CommandRunner
from hub.commandgate import CommandGate
from hub.config import Config, LoadedConfig, secret_text
from hub.config.checks import insecure_brokers
from hub.control.paths import socket_path
from hub.control.server import ControlServer
from hub.control.statusdoc import status_document
from hub.drivertable import DriverTable
from hub import commands as cmds
from hub.emitter import HUB_SOURCE, Emitter
from hub.fallback import Fallback, PathBoard
from hub.events import Draft, Priority
from hub.flood import FloodGuard
from hub.forwarder import Forwarder
from hub.health import HealthBoard
from hub.housekeeping import Housekeeping
from hub.lifecycle import Lifecycle
from hub.commands import MAX_CONFIG_TEXT
from hub.configpush import ConfigPush, HistoryStore, Record, Selected, select
from hub.link import Endpoint, Incoming, LinkError, LinkSettings, MqttLink, TlsSettings, Will
from hub.outbox import Outbox
from hub.port import DriverPort
from hub.reload import Reloader
from hub.rules import build_rules
from hub.rules_runner import RulesRunner
from hub.sightings import Sightings
from hub.statedir import private_state
from hub.status import StatusReporter
from hub.supervisor import Supervisor

log = structlog.get_logger("hub.daemon")


class Hub:
    """One residence's hub: devices in, events out. Built here, run by :class:`~hub.lifecycle.Lifecycle`."""

    def __init__(self, loaded: LoadedConfig, *, pushed: Selected | None = None, local: LoadedConfig | None = None) -> None:
        """``loaded``: the config to run; ``pushed``: what :func:`hub.configpush.select` chose it from
        (None: ``loaded`` is the local file and the history is read here); ``local``: the local file."""
        self.loaded = loaded
        self.cfg: Config = loaded.config
        c = self.cfg
        self.base = f"{c.mqtt.prefix}/{c.hub.id}"
        self.devices: dict[str, Any] = {d.id: d for d in c.devices}
        self.tasks = TaskSet()
        self.drivers: list[Any] = []
        self.outbox = Outbox(
            loaded.state_dir / "outbox.sqlite3",
            hub=c.hub.id,
            resident=c.hub.resident,
            max_events=c.store.max_events,
            max_bytes=c.store.max_mb << 20,
            keep_delivered_s=c.store.keep_delivered_s,
            reserve_bytes=c.store.reserve_kb << 10,
        )
        self.health = HealthBoard(self._health_changed)
        self.supervisor = Supervisor(on_change=lambda comp, ok, why: self.health.set(comp, ok, why))
        self.status = StatusReporter(self, lambda: self.drivers)
        self.link = MqttLink(self.link_settings(loaded), on_connected=self.status.on_connected)
        self.forwarder = Forwarder(
            self.outbox, self.link, topic=lambda t: f"{self.base}/event/{t}", max_inflight=c.mqtt.max_inflight,
            batch_topic=f"{self.base}/{eventbatch.BATCH_LEVEL}", batch_max=c.mqtt.batch_max,
            batch_bytes=c.mqtt.batch_bytes,
        )
        flood = FloodGuard(rate=c.limits.telemetry_per_s, burst=c.limits.telemetry_burst)
        self.emitter = Emitter(self.outbox, self.forwarder, self.devices, self.spawn, flood=flood)
        self.alarms = AlarmTracker(
            self.emitter.emit,
            ack_timeout_s=c.alarm.ack_timeout_s,
            unack_repeat_s=c.alarm.unack_repeat_s,
            steady_s=c.alarm.steady_s,
        )
        self.emitter.alarms = self.alarms
        self.forwarder.on_delivered.append(self.alarms.delivered)
        rules = build_rules(
            c.rules,
            tz=ZoneInfo(c.hub.timezone),
            devices={d.id: (d.kind, d.expected_interval_s) for d in c.devices},
        )
        self.rules_runner = RulesRunner(
            rules, self.outbox, self.emitter.emit_logged, self.spawn, devices=self.devices, source=self.emitter.source
        )
        self.rules_runner.on_tick = self.emitter.flood_tick
        self.emitter.on_committed = self.rules_runner.on_event
        self.emitter.on_committed_many = self.rules_runner.on_events
        self.runner = CommandRunner(
            base=self.base,
            alarms=self.alarms,
            emitter=self.emitter,
            outbox=self.outbox,
            link=self.link,
            devices=self.devices,
            status=self.status.status,
            drivers=self.drivers,
            rules=self.rules_runner,
        )
        self.commands = CommandGate(
            f"{self.base}/cmd/", self.runner.run, reply=self.link.reply, reply_nowait=self.link.reply_nowait
        )
        self.link.on_message = self._on_message
        self._fetches: dict[str, asyncio.Future[bytes]] = {}
        self.housekeeping = Housekeeping(self.outbox, self.link, self.health, idle=self.forwarder.idle)
        self.paths = PathBoard(
            emit=self.emitter.emit_logged, spawn=self.spawn, link_online=self.link.online.is_set,
            interface=lambda: (self.cfg.fallback.interface, self.cfg.fallback.interface_check_s),
        )
        self.fallback = Fallback(
            settings=lambda: self.cfg.fallback, hub_id=lambda: self.cfg.hub.id,
            tz=lambda: ZoneInfo(self.cfg.hub.timezone), alarms=self.alarms, paths=self.paths,
            emit=self.emitter.emit_logged, ack=lambda event_id, by: self.runner.run(cmds.Ack(event_id=event_id, by=by)),
            spawn=self.spawn,
        )
        self.port = DriverPort(
            emitter=self.emitter,
            rules=self.rules_runner,
            alarms=self.alarms,
            devices=self.devices,
            spawn=self.spawn,
            resolve=loaded.resolve,
            sim_socket=loaded.sim_socket,
            fallback=self.fallback,
            paths=self.paths,
        )
        self.sightings = Sightings()
        self.port.on_report.append(self.sightings.heard)
        self.control = ControlServer(
            socket_path(c.control.socket, loaded.state_dir),
            run=self.runner.run,
            status=lambda stats: status_document(self, stats),
        )
        self.emitter.taps += [self.control.tail.tap, self.control.legs.committed]
        self.forwarder.on_delivered.append(self.control.legs.delivered)
        self.driver_table = DriverTable(
            port=self.port, alarms=self.alarms, supervisor=self.supervisor, devices=self.devices, drivers=self.drivers
        )
        self.reloader = Reloader(self)
        self.lifecycle = Lifecycle(self)
        if pushed is None:
            pushed = Selected(loaded, HistoryStore(loaded.state_dir, keep=c.push.history), Record())
            pushed.record = pushed.store.read()
        self.configpush = ConfigPush(self, local or loaded, pushed.store, pushed.record)
        self.runner.configpush = self.configpush

    def _on_message(self, msg: Incoming) -> None:
        """A message from the broker: a retained config being fetched, or a command for the gate."""
        fut = self._fetches.get(msg.topic)
        if fut is not None:
            if not fut.done():
                fut.set_result(msg.payload)
            return
        self.commands.offer(msg)

    async def fetch_retained(self, topic: str, timeout: float = 5.0) -> str | None:
        """The retained text on ``topic`` (a pushed config by reference); None when there is none in time."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._fetches[topic] = fut
        try:
            self.link.subscribe_now(topic)
            async with asyncio.timeout(timeout):
                payload = await fut
            return payload.decode() if len(payload) <= MAX_CONFIG_TEXT else None
        except (LinkError, TimeoutError, UnicodeDecodeError) as exc:
            log.warning("config_fetch_failed", topic=topic, error=f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._fetches.pop(topic, None)
            self.link.unsubscribe_now(topic)

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run a coroutine as a task the hub keeps a reference to and whose failure is logged."""
        return self.tasks.spawn(coro, name)

    def attach_drivers(self) -> None:
        """Each registered driver that has devices in this residence, attached through the port."""
        self.driver_table.attach_all(self.cfg)

    def _health_changed(self, component: str, ok: bool, data: dict[str, Any]) -> None:
        draft = Draft(
            type="hub.recovered" if ok else "hub.degraded",
            priority=Priority.NORMAL if ok else Priority.CRITICAL,
            source=HUB_SOURCE,
            data=data,
        )
        self.spawn(self.emitter.emit_logged(draft), draft.type)

    def link_settings(self, loaded: LoadedConfig) -> LinkSettings:
        """The MQTT link's settings from ``loaded`` (at start, and on a reload)."""
        m = loaded.config.mqtt
        tls = None
        if m.tls is not None:
            tls = TlsSettings(
                ca=str(loaded.resolve(m.tls.ca)),
                cert=str(loaded.resolve(m.tls.cert)) if m.tls.cert else None,
                key=str(loaded.resolve(m.tls.key)) if m.tls.key else None,
            )
        hub_id = loaded.config.hub.id
        offline = json.dumps({"state": "offline", "hub": hub_id, "reason": "connection lost"}).encode()
        return LinkSettings(
            brokers=tuple(Endpoint(host=b.host, port=b.port) for b in m.broker),
            client_id=m.client_id or m.username or hub_id,  # the broker's ACL can use patterns
            will=Will(topic=f"{self.base}/status", payload=offline),
            subscriptions=(f"{self.base}/cmd/+",),
            tls=tls,
            username=m.username,
            password=secret_text(loaded, m.password_file) if m.password_file else None,
            keepalive_s=m.keepalive_s,
            connect_timeout_s=m.connect_timeout_s,
            backoff_initial_s=m.backoff_initial_s,
            backoff_max_s=m.backoff_max_s,
            max_inflight=m.max_inflight,
        )

    async def run(self) -> int:
        """Run until stopped; the process exit code (70 when a task could not be kept running)."""
        await self.lifecycle.run()
        return self.lifecycle.exit_code


def run_daemon(loaded: LoadedConfig) -> int:
    """Run the hub on a fresh event loop; the process exit code."""
    logs.configure(loaded.config.log.level, loaded.config.log.format)
    mqtt = loaded.config.mqtt
    if mqtt.insecure and mqtt.tls is None:  # said at every start, so nobody forgets it
        log.warning("mqtt_insecure", brokers=[f"{h}:{mqtt.broker[i].port}" for i, h in insecure_brokers(mqtt)],
                    reason="insecure = true: events, commands and credentials cross the network without TLS")
    for w in loaded.warnings:  # what check-config warned of (a serial adapter not plugged in): in the journal too
        log.warning("config_warning", file=w.file, line=w.line, key=w.key, message=w.message)
    private_state(loaded.state_dir)  # 0700 and 0600 whatever the umask; the outbox keeps its files so

    try:  # the local file, or the pushed version the history names (rolled back if need be)
        chosen = select(loaded)
    except Exception as exc:  # a history that cannot be read or written must not keep the alarms down
        log.error("config_history_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        chosen = Selected(loaded, HistoryStore(loaded.state_dir, keep=loaded.config.push.history), Record())
    logs.set_level(chosen.loaded.config.log.level)

    async def main() -> int:
        return await Hub(chosen.loaded, pushed=chosen, local=loaded).run()

    try:
        return asyncio.run(main())
    except Exception as exc:  # systemd restarts the hub; the cause is in the journal
        log.critical("hub_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return 1
