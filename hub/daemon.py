"""The daemon: one asyncio loop that wires devices, outbox, link and alarms together.

``carehub run --config FILE`` builds a :class:`Hub` from a validated config and
runs it until SIGTERM/SIGINT. Every event goes the same way: a producer builds
a :class:`~hub.events.Draft`, :meth:`Hub.emit` commits it to the outbox (and
only then) hands it to the forwarder, which publishes it and marks it
delivered on the broker's PUBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from hub import __version__, commands, logs, sdnotify
from hub.alarms import ALARM_TYPES, AckResult, AlarmTracker
from hub.clockstep import ClockWatch
from hub.commandgate import CommandGate
from hub.config import Config, Device, LoadedConfig, secret_text
from hub.events import Draft, Event, Priority, Route, Source, rfc3339
from hub.forwarder import Forwarder
from hub.flood import FloodGuard
from hub.health import HealthBoard
from hub.link import Endpoint, LinkError, LinkSettings, MqttLink, TlsSettings, Will
from hub.outbox import Outbox, StoreError
from drivers.simctl import SimControl
from hub.supervisor import Supervisor
from drivers.helpers import TaskSet

#: Checkpoint the outbox's WAL after this many write transactions (a few pages each: SQLite's own
#: default is 1000 pages), or every 10 s when there was any.
CHECKPOINT_AFTER_WRITES = 200

log = structlog.get_logger("hub.daemon")

HUB_SOURCE = Source(device="hub", kind="hub")
#: Alarms younger than this that were never acknowledged or cancelled are re-opened at start.
RESTORE_ALARMS_S = 24 * 3600.0
#: How often the rules look at the clock.
RULES_TICK_S = 1.0
#: Exit code when a task could not be kept running (systemd restarts the hub).
EXIT_GAVE_UP = 70
#: The link counts as degraded after this long without a broker (TLS and credential errors at once).
LINK_DEGRADED_AFTER_S = 60.0
#: A commit running for longer than this stops the watchdog (a disk that hangs).
STORE_STUCK_S = 60.0


class Hub:
    """One residence's hub: devices in, events out."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.cfg: Config = loaded.config
        c = self.cfg
        self.base = f"{c.mqtt.prefix}/{c.hub.id}"
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.outbox = Outbox(
            loaded.state_dir / "outbox.sqlite3",
            hub=c.hub.id,
            resident=c.hub.resident,
            max_events=c.store.max_events,
            max_bytes=c.store.max_mb << 20,
            keep_delivered_s=c.store.keep_delivered_s,
            reserve_bytes=c.store.reserve_kb << 10,
        )
        self.outbox.on_stored.append(self._held_stored)
        self.health = HealthBoard(self._health_changed)
        self.supervisor = Supervisor(on_change=lambda comp, ok, why: self.health.set(comp, ok, why))
        self.exit_code = 0
        self.flood = FloodGuard()
        self.alarms = AlarmTracker(
            self.emit,
            ack_timeout_s=c.alarm.ack_timeout_s,
            unack_repeat_s=c.alarm.unack_repeat_s,
            steady_s=c.alarm.steady_s,
        )
        self.commands = CommandGate(
            f"{self.base}/cmd/", self._run_command, reply=self._reply, reply_nowait=self._reply_nowait
        )
        self.link = MqttLink(self._link_settings(), on_connected=self._on_connected, on_message=self.commands.offer)
        self.forwarder = Forwarder(
            self.outbox, self.link, topic=lambda e: f"{self.base}/event/{e.type}", max_inflight=c.mqtt.max_inflight
        )
        self.forwarder.on_delivered.append(self.alarms.delivered)
        from hub.rules import build_rules

        self.rules = build_rules(
            c.rules,
            tz=ZoneInfo(c.hub.timezone),
            devices={d.id: (d.kind, d.expected_interval_s) for d in c.devices},
        )
        self._rules_seq = 0  # the last event the rules have seen
        self._rules_saved: bytes | None = None
        self._rules_dirty = False
        self.clock = ClockWatch()  # tells the rules of wall-clock steps (NTP after a boot without RTC)
        self.devices: dict[str, Device] = {d.id: d for d in c.devices}
        self.device_health: dict[str, dict[str, Any]] = {}
        self.serial_ports: dict[str, Any] = {}
        self.ble_devices: dict[str, Any] = {}
        self.ble_scanner: Any = None
        self.gatt: Any = None
        self.sim: SimControl | None = None
        self._closers: list[Any] = []
        #: (name, run) of each driver's task: supervised like the hub's own
        self._drivers: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._tasks = TaskSet()
        self._stop = asyncio.Event()
        self._offline_since: float | None = None
        self._housekeeping_at = time.monotonic()
        self._rules_at = time.monotonic()
        self._open_failures = 0
        self._rules_save_failures = 0
        self._refused_logged_at = float("-inf")
        self._refused_unlogged = 0

    # --- events ---------------------------------------------------------------------

    async def emit(self, draft: Draft) -> Event:
        """Commit an event durably, then hand it to the forwarder. Returns the numbered event."""
        event = await self.outbox.append(draft)
        self._committed(event)
        await self._rules_on(event)
        return event

    async def emit_many(self, drafts: list[Draft]) -> list[Event | Exception]:
        """Emit a burst (one read of a serial port) with one future, not one task per event.

        Each result is the committed event, or the exception that refused its
        draft (logged here); the others are committed all the same.
        """
        if len(drafts) == 1 and drafts[0].priority is Priority.CRITICAL:
            return [await self.emit(drafts[0])]  # a lone alarm (a nurse call) takes the inline commit
        results = await self.outbox.append_many(drafts)
        for draft, result in zip(drafts, results):
            if isinstance(result, StoreError):  # a full disk refuses every commit: one line per 5 s, counted
                self._refused_unlogged += 1
                now = time.monotonic()
                if now - self._refused_logged_at >= 5.0:
                    log.error("event_refused", type=draft.type, device=draft.source.device, error=str(result),
                              refused=self._refused_unlogged)
                    self._refused_logged_at, self._refused_unlogged = now, 0
            elif isinstance(result, Exception):
                log.error("event_refused", type=draft.type, device=draft.source.device, error=str(result))
            else:
                self._committed(result)
        for result in results:
            if not isinstance(result, Exception):
                await self._rules_on(result)
        return results

    def emit_now(self, draft: Draft) -> asyncio.Task[Event]:
        """Emit from a driver callback on the loop, as fast as the disk allows.

        An alarm is committed, published and shown on the LED before this
        returns (after the store's current transaction, if one is running):
        no task, no loop turn in between. Anything else (or an alarm behind
        other alarms) is emitted by a task. Either way the
        returned task ends with the committed event, after the rules saw it.
        """
        try:
            event = self.outbox.append_now(draft)
        except Exception:  # refused draft: let emit() raise it in a task, where it is logged
            event = None
        if event is None:
            return self.spawn(self.emit(draft), draft.type)
        self._committed(event)
        return self.spawn(self._rules_then(event), draft.type)

    async def _rules_then(self, event: Event) -> Event:
        await self._rules_on(event)
        return event

    def _committed(self, event: Event) -> None:
        """A committed (or held) event: publish it first, then feedback and the log line.

        Nothing here may raise into the emit that called it: the event is
        accepted already, and the caller's other events must still be handed on.
        """
        try:
            self.forwarder.submit(event)
        except Exception:
            log.exception("forwarder_submit_failed", event_id=event.id, seq=event.seq)
        if event.type in ALARM_TYPES:
            try:
                self.alarms.opened(event, held=event.seq == 0)
            except Exception:
                log.exception("alarm_open_failed", event_id=event.id)
        (log.info if event.priority.audited else log.debug)(
            "event_committed" if event.seq else "event_held",
            event_id=event.id,
            seq=event.seq,
            type=event.type,
            priority=event.priority.value,
            device=event.source.device,
        )

    def _held_stored(self, event: Event) -> None:
        """A held alarm is on disk now, with its seq: it goes out again that way (same id)."""
        self.forwarder.forget_held(event.id)
        try:
            self.forwarder.submit(event)
        except Exception:
            log.exception("forwarder_submit_failed", event_id=event.id, seq=event.seq)
        if event.type in ALARM_TYPES:
            self.alarms.stored(event.id)
        log.info("event_committed", event_id=event.id, seq=event.seq, type=event.type,
                 priority=event.priority.value, device=event.source.device, was_held=True)

    # --- rules ------------------------------------------------------------------------

    async def _rules_on(self, event: Event) -> None:
        """Feed one committed event to the rules; emit what they decide; save their state."""
        if event.type.startswith("rule."):
            return
        try:
            outputs = self.rules.on_event(event, self.rules_now())
        except Exception:  # a rule bug must not lose the event (it is committed already)
            log.exception("rules_failed", event_id=event.id, type=event.type)
            return
        self._rules_seq = max(self._rules_seq, event.seq)
        if outputs:
            await self._rules_emit(outputs)
        else:
            self._rules_dirty = True  # saved by the ticker; a crash before that is caught up from the outbox

    async def _rules_emit(self, outputs: list[Any]) -> None:
        for out in outputs:
            dev = self.devices.get(out.device) if out.device else None
            await self._emit_logged(out.to_draft(self.device_source(dev) if dev else None))
        await self._rules_save()

    async def _rules_save(self) -> None:
        """Save the rules' state if it changed; a store that refuses keeps it dirty for the next tick."""
        self._rules_dirty = False
        blob = json.dumps({"seq": self._rules_seq, "state": self.rules.state()}, sort_keys=True).encode()
        if blob != self._rules_saved:
            try:
                await self.outbox.save_state("rules", blob)
            except (StoreError, sqlite3.Error) as exc:  # a full disk: the outbox's health says so
                self._rules_dirty = True
                if self._rules_save_failures % 60 == 0:
                    log.error("rules_state_not_saved", error=str(exc), failures=self._rules_save_failures + 1)
                self._rules_save_failures += 1
                return
            self._rules_save_failures = 0
            self._rules_saved = blob

    async def _rules_restore(self) -> None:
        """Rule state survives a restart: restore it, then replay the events it had not seen yet."""
        blob = await self.outbox.load_state("rules")
        now = time.time()
        if blob:
            saved = json.loads(blob)
            broken = self.rules.restore(saved.get("state", {}), now)
            if broken:
                log.warning("rules_state_dropped", rules=broken)
            self._rules_seq = int(saved.get("seq", 0))
            self._rules_saved = blob
        last = (await self.outbox.stats()).last_seq
        missed = await self.outbox.range(self._rules_seq + 1, last) if last > self._rules_seq else []
        for event in missed:
            if not event.type.startswith("rule."):
                # catch up silently, at the time each event happened: they were handled before the crash
                self.rules.on_event(event, _epoch(event.ts))
            self._rules_seq = event.seq
        self.clock = ClockWatch()  # steps count from here: the restored instants are in today's clock
        log.info("rules_restored", rules=[r.name for r in self.rules.rules], caught_up=len(missed))

    async def _rules_ticker(self) -> None:
        while True:
            await asyncio.sleep(RULES_TICK_S)
            self._rules_at = time.monotonic()
            for device, data in self.flood.tick():
                if device in self.devices:
                    self._flooding(self.devices[device], data)
            try:
                outputs = self.rules.tick(self.rules_now())
            except Exception:
                log.exception("rules_tick_failed")
                continue
            if outputs:
                await self._rules_emit(outputs)
            elif self._rules_dirty:
                await self._rules_save()

    def rules_now(self) -> float:
        """The time for the rules: now, after moving their instants by any wall-clock step since the last look."""
        now, step = self.clock.read()
        if step:
            log.warning("clock_stepped", step_s=round(step, 3))
            self.rules.clock_stepped(step)
            self._rules_dirty = True
        return now

    def device_report(self, device_id: str) -> None:
        """A device was heard from (any reading, not only events): for supervision."""
        try:
            outputs = self.rules.report(device_id, self.rules_now())
        except Exception:
            log.exception("rules_report_failed", device=device_id)
            return
        if outputs:
            self.spawn(self._rules_emit(outputs), "rules")

    def spawn(self, coro: Any, name: str | None = None) -> asyncio.Task[Any]:
        """Run a coroutine as a task the hub keeps a reference to and whose failure is logged."""
        return self._tasks.spawn(coro, name)

    def device_source(self, dev: Device) -> Source:
        return Source(device=dev.id, kind=dev.kind, room=dev.room)

    async def emit_for(self, dev: Device | None, e: Any) -> Event | None:
        """Emit a driver's :class:`~drivers.serial.base.Emit` as an event of ``dev`` (None: of the hub).

        Telemetry over the device's limit is dropped here (None; see :mod:`hub.flood`). An
        Emit with ``closes`` (a device's reset) goes to :meth:`AlarmTracker.cancel_matching`
        instead: the ``alarm.cancelled`` of the matching alarm, or None (logged, counted) without one.
        """
        if getattr(e, "closes", None) is not None:
            return await self._cancel_for(dev, e)
        if dev is not None and not self._admit(dev, e):
            return None
        return await self.emit(self._draft_for(dev, e))

    async def emit_many_for(self, dev: Device, emits: list[Any]) -> list[Any]:
        """Emit a driver's burst of :class:`~drivers.serial.base.Emit` as events of ``dev``, in order.

        Returns the Emits the store refused (a full disk: telemetry), for the
        driver to try again before it acknowledges anything; an empty list when
        every one was taken: committed, held as an alarm, or dropped by the
        device's flood limit (sending it again would not help). A reset
        (``closes``) in the burst waits for what came before it, so a call and
        its reset read at once close each other.
        """
        refused: list[Any] = []
        batch: list[tuple[Any, Draft]] = []

        async def flush() -> None:
            nonlocal batch
            if batch:
                results = await self.emit_many([d for _, d in batch])
                refused.extend(e for (e, _), r in zip(batch, results) if isinstance(r, StoreError))
                batch = []

        for e in emits:
            if getattr(e, "closes", None) is not None:
                await flush()
                try:
                    await self._cancel_for(dev, e)
                except StoreError:
                    refused.append(e)
            elif self._admit(dev, e):
                batch.append((e, self._draft_for(dev, e)))
        await flush()
        return refused

    async def _cancel_for(self, dev: Device | None, e: Any) -> Event | None:
        data = dict(e.data)
        how = str(data.pop("how", "device"))
        return await self.alarms.cancel_matching(dev.id if dev else HUB_SOURCE.device, dict(e.closes), how=how, data=data)

    def _admit(self, dev: Device, e: Any) -> bool:
        if e.priority is Priority.CRITICAL:
            return True
        ok, flooding = self.flood.admit(dev.id)
        if flooding is not None:
            self._flooding(dev, flooding)
        return ok

    def _flooding(self, dev: Device, data: dict[str, Any]) -> None:
        (log.warning if data["state"] == "started" else log.info)("device_flooding", device=dev.id, **data)
        draft = Draft(type="device.flooding", priority=Priority.HIGH, source=self.device_source(dev),
                      route=dev.routing, data=data)
        self.spawn(self._emit_logged(draft), "device.flooding")

    def _draft_for(self, dev: Device | None, e: Any) -> Draft:
        if dev is None:
            return Draft(type=e.type, priority=e.priority, source=HUB_SOURCE, data=e.data)
        return Draft(type=e.type, priority=e.priority, source=self.device_source(dev), route=dev.routing, data=e.data)

    # --- link -----------------------------------------------------------------------

    def _link_settings(self) -> LinkSettings:
        m = self.cfg.mqtt
        tls = None
        if m.tls is not None:
            tls = TlsSettings(
                ca=str(self.loaded.resolve(m.tls.ca)),
                cert=str(self.loaded.resolve(m.tls.cert)) if m.tls.cert else None,
                key=str(self.loaded.resolve(m.tls.key)) if m.tls.key else None,
            )
        offline = json.dumps({"state": "offline", "hub": self.cfg.hub.id, "reason": "connection lost"}).encode()
        return LinkSettings(
            brokers=tuple(Endpoint(host=b.host, port=b.port) for b in m.broker),
            client_id=m.client_id or f"carehub-{self.cfg.hub.id}",
            will=Will(topic=f"{self.base}/status", payload=offline),
            subscriptions=(f"{self.base}/cmd/+",),
            tls=tls,
            username=m.username,
            password=secret_text(self.loaded, m.password_file) if m.password_file else None,
            keepalive_s=m.keepalive_s,
            connect_timeout_s=m.connect_timeout_s,
            backoff_initial_s=m.backoff_initial_s,
            backoff_max_s=m.backoff_max_s,
            max_inflight=m.max_inflight,
        )

    def birth(self) -> dict[str, Any]:
        """The retained ``status`` document published on every (re)connect."""
        return {
            "state": "online",
            "hub": self.cfg.hub.id,
            "version": __version__,
            "started": rfc3339(self.started_at),
            "config_sha256": self.loaded.sha256,
            "devices": [{"id": d.id, "kind": d.kind, "room": d.room, "route": d.routing.value} for d in self.cfg.devices],
        }

    async def _on_connected(self) -> None:
        await self.link.publish(f"{self.base}/status", json.dumps(self.birth()).encode(), qos=1, retain=True)
        log.info("birth_published", topic=f"{self.base}/status")

    async def _reply(self, msg: Any, body: dict[str, Any]) -> None:
        await self.link.reply(msg, body)

    def _reply_nowait(self, msg: Any, body: dict[str, Any]) -> bool:
        return self.link.reply_nowait(msg, body)

    async def _run_command(self, cmd: Any) -> dict[str, Any]:
        if isinstance(cmd, commands.Ack):
            result, alarm = await self.alarms.acknowledge(cmd.event_id, cmd.by)
            if result is AckResult.UNKNOWN:
                return {"ok": False, "error": f"no open alarm with id {cmd.event_id}", "result": result.value}
            # alarm_id: the alarm the ack names (a reminder names its episode's first); closes: the episode's alarms
            return {
                "ok": True,
                "result": result.value,
                "alarm_id": alarm.alarm_id_for(cmd.event_id) if alarm else None,
                "closes": alarm.ids if alarm else [],
            }
        if isinstance(cmd, commands.TestAlarm):
            if cmd.device is not None and cmd.device not in self.devices:
                return {"ok": False, "error": f"unknown device {cmd.device!r}"}
            source = self.device_source(self.devices[cmd.device]) if cmd.device else HUB_SOURCE
            route = self.devices[cmd.device].routing if cmd.device else Route.ANY
            try:
                event = await self.emit(
                    Draft(type="alarm.test", priority=Priority.HIGH, source=source, route=route, data={"note": cmd.note})
                )
            except StoreError as exc:
                return {"ok": False, "error": f"the hub cannot store the test alarm: {exc}"}
            return {"ok": True, "event_id": event.id, "seq": event.seq}
        if isinstance(cmd, commands.Status):
            return {"ok": True, **await self.status()}
        if isinstance(cmd, commands.Replay):
            return await self._replay(cmd)
        if isinstance(cmd, commands.BleForget):
            return self._ble_forget(cmd)
        raise commands.CommandError("unsupported command")

    def _ble_forget(self, cmd: commands.BleForget) -> dict[str, Any]:
        decoder = self.ble_devices.get(cmd.device)
        if decoder is None:
            have = ", ".join(sorted(self.ble_devices)) or "none"
            return {"ok": False, "error": f"no BLE device {cmd.device!r}; have: {have}"}
        previous = decoder.guard.last_counter(decoder.address)
        decoder.guard.forget(decoder.address)
        log.warning("ble_counter_forgotten", device=cmd.device, previous=previous, by=cmd.by)
        return {"ok": True, "device": cmd.device, "previous_counter": previous}

    async def _replay(self, cmd: commands.Replay) -> dict[str, Any]:
        if cmd.to_seq < cmd.from_seq:
            return {"ok": False, "error": "to_seq is before from_seq"}
        if cmd.to_seq - cmd.from_seq + 1 > commands.MAX_REPLAY:
            return {"ok": False, "error": f"at most {commands.MAX_REPLAY} events per replay"}
        last = (await self.outbox.stats()).last_seq
        if cmd.from_seq > last:
            return {"ok": False, "error": f"from_seq {cmd.from_seq} is after the last seq {last}", "last_seq": last}
        events = await self.outbox.range(cmd.from_seq, cmd.to_seq)
        sent = 0
        for event in events:
            try:
                await self.link.publish(f"{self.base}/event/{event.type}", event.to_json(), qos=1, timeout=10)
                sent += 1
            except (LinkError, TimeoutError) as exc:
                return {"ok": False, "error": f"link lost during replay: {exc}", "sent": sent}
        have = {e.seq for e in events}
        missing = [s for s in range(cmd.from_seq, cmd.to_seq + 1) if s not in have]
        log.info("replay_done", from_seq=cmd.from_seq, to_seq=cmd.to_seq, sent=sent, missing=len(missing))
        return {"ok": True, "sent": sent, "missing": missing[:1000], "missing_count": len(missing)}

    # --- status and heartbeat ---------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """What ``status`` and the heartbeat report."""
        stats = await self.outbox.stats()
        return {
            "hub": self.cfg.hub.id,
            "ts": rfc3339(),
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
            "seq": stats.last_seq,
            "outbox": stats.as_dict(),
            "link": self.link.status(),
            "forwarder": self.forwarder.status(),
            "devices": self._health(),
            "open_alarms": self.alarms.status(),
            "health": self.health.status(),
            "tasks": self.supervisor.status(),
            "commands": self.commands.status(),
            "alarm_counters": dict(self.alarms.counters),
        }

    async def _heartbeat(self) -> None:
        interval = self.cfg.mqtt.heartbeat_s
        while True:
            await self.link.online.wait()
            try:
                body = json.dumps(await self.status()).encode()
                await self.link.publish(f"{self.base}/heartbeat", body, qos=0)
            except LinkError:
                pass
            await asyncio.sleep(interval)

    async def _housekeeping(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(1)
            rounds += 1
            self._housekeeping_at = time.monotonic()
            try:
                if not self.outbox.is_open:
                    await self._open_store()
                    continue
                short = await self.outbox.check_space() if rounds % 2 == 0 or self.outbox.space_short else False
                # a WAL that is checkpointed early is rewritten in place: an alarm's fsync then
                # does not also have to grow the file (and journal its new size); short of space, at once
                writes = self.outbox.writes_since_checkpoint
                if writes >= CHECKPOINT_AFTER_WRITES or (writes and (short or rounds % 10 == 0)):
                    await self.outbox.checkpoint()
                if rounds % 600 == 0:
                    pruned = await self.outbox.prune()
                    if pruned:
                        log.info("outbox_pruned", events=pruned)
            except Exception as exc:  # disk trouble is logged; the next round tries again
                log.error("housekeeping_failed", error=str(exc))
            finally:
                self._check_health()

    def _check_health(self) -> None:
        """Store and link health from what they know now (tasks report themselves)."""
        ob = self.outbox
        problem = None
        if not ob.is_open:
            problem = f"cannot open the store: {ob.last_error}"
        elif ob.held:
            problem = f"{len(ob.held)} alarm(s) held in memory: the disk refuses commits ({ob.last_error})"
        elif ob.space_short:
            problem = "state directory short of space: telemetry refused, alarms use the reserve"
        elif ob.last_error:
            problem = f"commit failed: {ob.last_error}"
        self.health.set("store", problem is None, problem)
        link = self.link
        if link.online.is_set():
            self._offline_since = None
            self.health.set("link", True)
        else:
            now = time.monotonic()
            if self._offline_since is None:
                self._offline_since = now
            bad_setup = link.error_kind in ("tls", "auth")
            if bad_setup or now - self._offline_since >= LINK_DEGRADED_AFTER_S:
                self.health.set("link", False, f"{link.error_kind or 'offline'}: {link.last_error or 'no broker'}")

    async def _open_store(self) -> None:
        """Open the outbox late (it could not be opened at start: a full disk); then what start skipped."""
        try:
            await self.outbox.open()
        except StoreError as exc:
            if self._open_failures % 30 == 0:
                log.error("store_open_failed", error=str(exc), attempts=self._open_failures + 1)
            self._open_failures += 1
            return
        log.warning("store_opened_late", attempts=self._open_failures + 1)
        self.outbox.retry_held()

    def _health_changed(self, component: str, ok: bool, data: dict[str, Any]) -> None:
        draft = Draft(
            type="hub.recovered" if ok else "hub.degraded",
            priority=Priority.NORMAL if ok else Priority.CRITICAL,
            source=HUB_SOURCE,
            data=data,
        )
        self.spawn(self._emit_logged(draft), draft.type)

    async def _emit_logged(self, draft: Draft) -> Event | None:
        try:
            return await self.emit(draft)
        except Exception as exc:
            log.error("event_not_stored", type=draft.type, error=str(exc))
            return None

    def healthy(self) -> tuple[bool, list[str]]:
        """What the watchdog is petted on: tasks running and progressing, the store not stuck."""
        ok, problems = self.supervisor.healthy()
        busy = self.outbox.busy_for()
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

    # --- devices ------------------------------------------------------------------------

    def _start_gpio(self) -> None:
        gpio_devices = [d for d in self.cfg.devices if d.gpio is not None]
        if not gpio_devices:
            return
        from drivers.gpio import AlarmButton, ButtonHandlers, GpioIndicator
        from hub.gestures import ButtonGestures

        sim_buttons: dict[str, Any] = {}
        if self.cfg.gpio.factory == "sim":
            from drivers.gpio import sim as gpio_sim

            factory = gpio_sim.sim_factory()
        else:
            from drivers.gpio import make_pin_factory

            factory = make_pin_factory(self.cfg.gpio.factory)
        loop = asyncio.get_running_loop()
        for dev in gpio_devices:
            g = dev.gpio
            assert g is not None
            indicator = None
            if g.led_pin is not None or g.buzzer_pin is not None:
                indicator = GpioIndicator(led_pin=g.led_pin, buzzer_pin=g.buzzer_pin, factory=factory)
                self.alarms.indicators[dev.id] = indicator
                self._closers.append(indicator.close)
            gestures = ButtonGestures(self, dev)

            def press(t: float, gestures: ButtonGestures = gestures, dev_id: str = dev.id) -> None:
                gestures.press(t)  # the alarm first; then supervision hears the button
                self.device_report(dev_id)

            button = AlarmButton(
                g.pin,
                factory=factory,
                handlers=ButtonHandlers(press=press, hold=gestures.hold, release=gestures.release),
                loop=loop,
                pull_up=g.pull_up,
                bounce_s=g.bounce_s,
                hold_s=g.hold_s,
            )
            self._closers.append(button.close)
            self.device_health[dev.id] = {"kind": dev.kind, "state": "ok", "driver": "gpio"}
            if self.cfg.gpio.factory == "sim":
                sim_buttons[dev.id] = gpio_sim.SimButton(dev.id, button, g.pull_up, indicator)
        if sim_buttons:
            gpio_sim.register(self._sim(), sim_buttons)
        log.info("gpio_started", factory=self.cfg.gpio.factory, devices=[d.id for d in gpio_devices])

    def _start_serial(self) -> None:
        serial_devices = [d for d in self.cfg.devices if d.serial is not None]
        if not serial_devices:
            return
        import msgspec

        from drivers.serial import protocol
        from drivers.base import Emit
        from drivers.serial.port import SerialDevice

        for dev in serial_devices:
            s = dev.serial
            assert s is not None
            spec = protocol(s.protocol)
            options = msgspec.structs.asdict(s.options())

            async def emit(e: Emit, dev: Device = dev) -> None:
                await self.emit_for(dev, e)

            async def emit_many(es: list[Emit], dev: Device = dev) -> list[Emit]:
                return await self.emit_many_for(dev, es)

            port = SerialDevice(
                device_id=dev.id,
                port=str(self.loaded.resolve(s.port)),
                parser=spec.load("parser")(**options),
                logic=spec.load("logic")(**options),
                emit=emit,
                emit_many=emit_many,
                on_reading=lambda dev_id=dev.id: self.device_report(dev_id),
                baudrate=s.baud,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
            )
            self.serial_ports[dev.id] = port
            self._drivers.append((f"serial:{dev.id}", port.run))
            self._closers.append(port.stop)
        log.info("serial_started", devices=[d.id for d in serial_devices])

    def _start_ble(self) -> None:
        ble_devices = [d for d in self.cfg.devices if d.ble is not None]
        if not ble_devices:
            return
        from drivers.ble.backend import make_backend
        from drivers.ble.devices import BtHomeDevice
        from drivers.ble.scanner import BleScanner
        from drivers.base import Emit
        from hub.gestures import ButtonGestures

        b = self.cfg.ble
        by_address: dict[str, tuple[Device, BtHomeDevice, ButtonGestures | None]] = {}
        for dev in ble_devices:
            assert dev.ble is not None
            decoder = BtHomeDevice(
                device_id=dev.id,
                kind=dev.kind,
                address=dev.ble.address,
                bindkey=bytes.fromhex(dev.ble.bindkey) if dev.ble.bindkey else None,
                telemetry_interval_s=b.telemetry_interval_s,
                activity_interval_s=b.activity_interval_s,
            )
            gestures = ButtonGestures(self, dev, input_name="ble") if dev.kind == "alarm_button" else None
            by_address[decoder.address] = (dev, decoder, gestures)
            self.ble_devices[dev.id] = decoder

        def on_advert(advert: Any) -> None:
            entry = by_address.get(advert.address)
            if entry is None:
                return
            dev, decoder, gestures = entry
            now = self.rules_now()
            result = decoder.feed(advert.service_data, now)
            if not result.accepted:
                return
            if result.counter_restart is not None:  # a new battery, or a replay of an early advert: say so
                log.warning(
                    "ble_counter_restarted", device=dev.id, previous=result.counter_restart[0],
                    counter=result.counter_restart[1],
                )
            self.device_health[dev.id] = {"kind": dev.kind, "state": "ok", **decoder.health()}
            outputs = self.rules.report(dev.id, now, battery=result.battery)
            if outputs:
                self.spawn(self._rules_emit(outputs), "rules")
            for g in result.gestures:
                if gestures is None:
                    continue
                if g == "press":
                    gestures.press(now)
                    gestures.release(now, 0.0)
                else:
                    gestures.hold(now)
            for e in result.emits:
                if self._admit(dev, e):  # over the device's limit: dropped here, before any task
                    self.spawn(self._emit_logged(self._draft_for(dev, e)), e.type)

        async def emit_hub(e: Emit) -> None:
            await self.emit_for(None, e)

        if b.backend == "sim":
            from drivers.ble.sim import SimBackend, register_sim_ops

            sim_backend = SimBackend(adapter=b.adapter or "hci0")
            factory: Any = lambda: sim_backend  # noqa: E731  (one simulated radio, driven through the socket)
        else:
            factory = lambda: make_backend("bleak", adapter=b.adapter)  # noqa: E731
        self.ble_scanner = BleScanner(factory, list(by_address), on_advert, emit=emit_hub, silence_s=b.silence_s)
        if b.backend == "sim":
            register_sim_ops(self._sim(), sim_backend, scanner=self.ble_scanner)
        self._drivers.append(("ble", self.ble_scanner.run))
        self._closers.append(self.ble_scanner.stop)
        log.info("ble_started", backend=b.backend, devices=[d.id for d in ble_devices])

    def _start_gatt(self) -> None:
        gatt_devices = [d for d in self.cfg.devices if d.gatt is not None]
        if not gatt_devices:
            return
        from drivers.ble.gatt import GattDevice, GattManager, NotifyMapping, make_client
        from drivers.base import Emit

        specs = []
        for dev in gatt_devices:
            g = dev.gatt
            assert g is not None
            mappings = [
                NotifyMapping(n.uuid, n.event, priority=n.priority, decode=n.decode, scale=n.scale, key=n.key)
                for n in g.notify
            ]
            specs.append(GattDevice(dev.id, g.address, mappings, battery_interval_s=g.battery_interval_s or None))

        async def emit(device_id: str, e: Emit) -> None:
            await self.emit_for(self.devices[device_id], e)

        def on_battery(device_id: str, pct: int) -> None:
            outputs = self.rules.report(device_id, self.rules_now(), battery=pct)
            if outputs:
                self.spawn(self._rules_emit(outputs), "rules")

        b = self.cfg.ble
        if b.backend == "sim":
            from drivers.ble.gatt_sim import SimGattRegistry, register_gatt_sim_ops

            registry = SimGattRegistry()
            for spec in specs:  # simulated peripherals with the configured characteristics
                registry.add(spec.address, {m.uuid: b"" for m in spec.mappings})
            factory: Any = registry.client
        else:
            factory = lambda address: make_client("bleak", address, adapter=b.adapter)  # noqa: E731
        self.gatt = GattManager(
            specs, factory, emit, on_battery=on_battery, on_heard=self.device_report, max_connections=b.max_connections
        )
        if b.backend == "sim":
            register_gatt_sim_ops(self._sim(), registry, manager=self.gatt)
        self._drivers.append(("gatt", self.gatt.run))
        self._closers.append(self.gatt.stop)
        log.info("gatt_started", backend=b.backend, devices=[d.id for d in gatt_devices])

    def _health(self) -> dict[str, Any]:
        health = dict(self.device_health)
        for dev_id, port in self.serial_ports.items():
            health[dev_id] = {"kind": self.devices[dev_id].kind, **port.health()}
        for dev_id in self.devices:
            flood = self.flood.status(dev_id)
            if flood is not None and dev_id in health:
                health[dev_id] = {**health[dev_id], "telemetry": flood}
        if self.ble_scanner is not None:
            health["ble"] = self.ble_scanner.health()
        if self.gatt is not None:
            for dev_id, h in self.gatt.health().items():
                health[dev_id] = {"kind": self.devices[dev_id].kind, "driver": "gatt", **h}
        return health

    def _sim(self) -> SimControl:
        if self.sim is None:
            self.sim = SimControl(self.loaded.sim_socket)
        return self.sim

    # --- lifecycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop` (SIGTERM/SIGINT), or until a task cannot be kept running."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        pending_at_start = 0
        try:
            await self.outbox.open()
        except StoreError as exc:  # a full disk: start all the same, alarms are held in memory until it opens
            log.error("store_open_failed", error=str(exc), attempts=1)
            self._open_failures = 1
        self._check_health()
        if self.outbox.is_open:
            stats = await self.outbox.stats()
            pending_at_start = stats.pending
            log.info("hub_starting", hub=self.cfg.hub.id, version=__version__, pending=stats.pending,
                     last_seq=stats.last_seq)
        else:
            log.info("hub_starting", hub=self.cfg.hub.id, version=__version__, store="not open")
        self._start_gpio()
        if self.outbox.is_open:
            history = await self.outbox.recent(
                ALARM_TYPES | {"alarm.acknowledged", "alarm.cancelled", "alarm.unacknowledged"}, since_s=RESTORE_ALARMS_S
            )
            self.alarms.restore(history)
            await self._rules_restore()
        else:
            log.error("rules_state_not_restored", reason="store not open")
        self._start_serial()
        self._start_ble()
        self._start_gatt()
        if self.sim is not None:
            self.sim.register("crash", self._sim_crash)
            await self.sim.start()
        await self._emit_logged(
            Draft(
                type="hub.started",
                priority=Priority.NORMAL,
                source=HUB_SOURCE,
                data={"version": __version__, "config_sha256": self.loaded.sha256, "pending_at_start": pending_at_start},
            )
        )
        sup = self.supervisor
        sup.start("link", self.link.run, progress=lambda: self.link.last_progress,
                  stall_s=self.cfg.mqtt.backoff_max_s + 3 * self.cfg.mqtt.connect_timeout_s + 30)
        sup.start("forwarder", self.forwarder.run, progress=self.forwarder.progress, stall_s=90.0)
        sup.start("commands", self.commands.serve)
        sup.start("heartbeat", self._heartbeat)
        sup.start("housekeeping", self._housekeeping, progress=lambda: self._housekeeping_at, stall_s=30.0)
        sup.start("rules", self._rules_ticker, progress=lambda: self._rules_at, stall_s=30.0)
        for name, factory in self._drivers:
            sup.start(name, factory)
        wd = sdnotify.watchdog_interval()
        if wd:
            self.spawn(self._watchdog(wd), "watchdog")
        sdnotify.notify("READY=1")
        log.info("hub_ready", sim_socket=str(self.sim.path) if self.sim else None)
        stop = asyncio.ensure_future(self._stop.wait())
        gave_up = asyncio.ensure_future(sup.gave_up.wait())
        await asyncio.wait([stop, gave_up], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        gave_up.cancel()
        if sup.gave_up.is_set():
            self.exit_code = EXIT_GAVE_UP
            log.critical("hub_exiting", reason=sup.gave_up_reason, exit_code=EXIT_GAVE_UP)
        await self.shutdown()

    async def _sim_crash(self, req: dict[str, Any]) -> dict[str, Any]:
        """Sim op ``crash {task, times?}``: fail a supervised task (the rig's fault injection)."""
        name = req.get("task")
        times = req.get("times", 1)
        if not isinstance(name, str) or name not in self.supervisor.children:
            from drivers.simctl import SimCommandError

            raise SimCommandError(f"unknown task {name!r}; have: {', '.join(sorted(self.supervisor.children))}")
        if not isinstance(times, int) or not 1 <= times <= 1000:
            from drivers.simctl import SimCommandError

            raise SimCommandError("times must be an integer from 1 to 1000")
        log.warning("task_crash_injected", task=name, times=times)
        self.supervisor.crash(name, times)
        return {"task": name, "times": times}

    async def shutdown(self, flush_timeout: float = 5.0) -> None:
        """Clean stop: say hub.stopping, flush what the link allows, publish offline, close."""
        sdnotify.notify("STOPPING=1")
        log.info("hub_stopping")
        with contextlib.suppress(Exception):
            await self.emit(Draft(type="hub.stopping", priority=Priority.NORMAL, source=HUB_SOURCE))
        deadline = time.monotonic() + flush_timeout
        while self.link.online.is_set() and time.monotonic() < deadline and self.outbox.is_open:
            stats = await self.outbox.stats()
            if stats.pending == 0:
                break
            await asyncio.sleep(0.05)
        offline = json.dumps({"state": "offline", "hub": self.cfg.hub.id, "reason": "stopped"}).encode()
        self.supervisor.stopping()  # what ends from here on is the stop, not a failure
        await self.link.stop(final=(f"{self.base}/status", offline))
        self.alarms.close()
        await self.supervisor.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.sim is not None:
            await self.sim.close()
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                close()
        last = None
        if self.outbox.is_open:
            with contextlib.suppress(Exception):
                last = await self.outbox.stats()
        await self.outbox.close()
        log.info("hub_stopped", pending=last.pending if last else None, last_seq=last.last_seq if last else None)


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def run_daemon(loaded: LoadedConfig) -> int:
    """Run the hub on a fresh event loop; the process exit code."""
    logs.configure(loaded.config.log.level, loaded.config.log.format)

    async def main() -> int:
        hub = Hub(loaded)
        await hub.run()
        return hub.exit_code

    try:
        return asyncio.run(main())
    except Exception as exc:  # systemd restarts the hub; the cause is in the journal
        log.critical("hub_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return 1
