"""One simulated hub: the contract a real hub speaks, on the hub's own MQTT link, without the daemon.

A :class:`SimHub` is one :class:`hub.link.MqttLink` (paho driven from the asyncio loop, no
network thread) with what the central sees of a hub:

* the retained birth on ``{prefix}/{hub}/status`` after every CONNACK, and the retained last will
  ``{"state": "offline", "reason": "connection lost"}``; ``"reason": "stopped"`` on a clean stop;
* events (:class:`hub.events.Event`: UUIDv7 ids, gapless per-hub seqs, SCAIP codes) kept in
  memory as the outbox keeps them on disk, sent QoS 1 highest priority first through a window of
  ``profile.window`` in flight, alarms past the window; an event counts once its PUBACK came, and
  goes again after a reconnect otherwise;
* heartbeats (QoS 0) with ``seq`` and the outbox's ``pending``, as :mod:`hub.status` sends them;
* ``cmd/ack``, ``cmd/replay`` and ``cmd/status`` answered on the MQTT 5 response topic with the
  correlation data, as :mod:`hub.command_runner` answers them: an ack ends the alarm (reply
  ``acknowledged`` with ``alarm_id`` and ``closes``, then ``alarm.acknowledged``), a replay sends
  the stored events again, same ids and seqs.

What it leaves out: reminders (``alarm.unacknowledged`` after ``ack_timeout_s``, 60 s: the bench's
acks come in milliseconds, and a missing one is reported as a loss), the LED, rules, the disk.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import socket
import time
from pathlib import Path
from typing import Any

from paho.mqtt.reasoncodes import ReasonCode

from hub.events import Draft, Event, Priority, Route, Source, rfc3339
from hub.link import Endpoint, Incoming, LinkError, LinkSettings, MqttLink, Will

from bench.fleet.spec import AlarmRecord, HubReport, Profile

VERSION = "fleet-sim"
#: The contract's heartbeat example (devices, tasks, counters: about 3.2 kB compact), the body of every
#: heartbeat here with the live fields put in, so the central parses and stores what a real hub sends.
HEARTBEAT = json.loads((Path(__file__).resolve().parents[2] / "contract" / "examples" / "heartbeat.json").read_text())


class _Alarm:
    """One press and, once it came, the central's ack."""

    __slots__ = ("ack_mono", "device", "id", "offline", "press_mono", "press_wall")

    def __init__(self, id: str, device: str, press_wall: float, press_mono: float, offline: bool) -> None:  # noqa: A002
        self.id, self.device, self.offline = id, device, offline
        self.press_wall, self.press_mono = press_wall, press_mono
        self.ack_mono: float | None = None


class SimHub:
    """One simulated residence's hub on its own MQTT connection; :meth:`start`, traffic, :meth:`stop`."""

    def __init__(self, hub_id: str, *, host: str, port: int, prefix: str, profile: Profile) -> None:
        self.id = hub_id
        self.base = f"{prefix}/{hub_id}"
        self.profile = profile
        self.resident = f"r-{hub_id}"
        will = json.dumps({"state": "offline", "hub": hub_id, "reason": "connection lost"}).encode()
        self.link = MqttLink(
            LinkSettings(brokers=(Endpoint(host=host, port=port),), client_id=hub_id,
                         will=Will(topic=f"{self.base}/status", payload=will),
                         subscriptions=(f"{self.base}/cmd/+",), backoff_initial_s=0.2, backoff_max_s=2.0,
                         max_inflight=profile.window, connect_timeout_s=30.0),
            on_connected=self._on_connected, on_message=self._on_message)
        self.seq = 0
        #: seq -> (type, payload): every event made, for replays (the outbox keeps them on disk)
        self.stored: dict[int, tuple[str, bytes]] = {}
        self._pending: list[tuple[int, int]] = []  # heap of (priority rank, seq)
        self._inflight: set[int] = set()
        self.alarms: dict[str, _Alarm] = {}
        #: button -> its alarm still waiting for the ack; button -> when its last ack came (monotonic)
        self.open: dict[str, _Alarm] = {}
        self.acked_at: dict[str, float] = {}
        self.births = 0
        self.counts = {"delivered": 0, "heartbeats": 0, "replays": 0, "replayed": 0, "acks": 0, "acks_odd": 0,
                       "outages": 0}
        self.in_outage = False
        self.started_mono = time.monotonic()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (and stay connected, with backoff) in a task."""
        self._runner = asyncio.create_task(self.link.run(), name=f"link-{self.id}")

    async def outage(self, seconds: float) -> None:
        """Lose the network for ``seconds``: the socket is cut under the link (no DISCONNECT, so the broker
        sends the last will), events are kept meanwhile, and the link connects again afterwards."""
        self.counts["outages"] += 1
        self.in_outage = True
        for alarm in self.open.values():
            alarm.offline = True  # its latency will include the outage
        conn = self.link._conn  # noqa: SLF001 - the link has no "lose the network" call; the bench cuts its socket
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await asyncio.sleep(seconds)
        self.in_outage = False
        self.start()

    async def stop(self) -> None:
        """Leave cleanly, as the daemon does: the retained ``offline``/``stopped`` status, then DISCONNECT."""
        for task in list(self._tasks):
            task.cancel()
        final = json.dumps({"state": "offline", "hub": self.id, "reason": "stopped"}).encode()
        await self.link.stop(final=(f"{self.base}/status", final) if self.link.online.is_set() else None)
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in a task this hub keeps (and cancels on :meth:`stop`)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what the hub says ---------------------------------------------------------------------

    def birth(self) -> dict[str, Any]:
        """The retained ``status`` document, as :class:`hub.status.StatusReporter` makes it."""
        devices = [{"id": f"button-{i + 1}", "kind": "alarm_button", "room": "bedroom", "route": "nurse"}
                   for i in range(self.profile.buttons)]
        devices += [{"id": "climate-1", "kind": "climate", "room": "living", "route": "any"},
                    {"id": "motion-1", "kind": "motion", "room": "hall", "route": "care"}]
        return {"state": "online", "hub": self.id, "version": VERSION, "started": rfc3339(time.time()),
                "config_sha256": "0" * 64, "devices": devices}

    async def _on_connected(self) -> None:
        await self.link.publish(f"{self.base}/status", json.dumps(self.birth()).encode(), qos=1, retain=True)
        self.births += 1
        self._pump()

    def status(self) -> dict[str, Any]:
        """What the heartbeat and ``cmd/status`` say (the parts the central reads, and a few more)."""
        pending = len(self._pending) + len(self._inflight)
        alarms = sum(1 for seq in self._inflight if self.stored[seq][0] == "alarm.button")
        return {**HEARTBEAT, "hub": self.id, "ts": rfc3339(), "version": VERSION,
                "uptime_s": round(time.monotonic() - self.started_mono, 1), "seq": self.seq,
                "outbox": {**HEARTBEAT["outbox"], "pending": pending, "pending_alarms": alarms, "held": 0,
                           "last_seq": self.seq, "stored": self.seq},
                "link": self.link.status(),
                "open_alarms": [{"alarms": 1, "device": a.device, "event_id": a.id, "held": 0, "latest": a.id,
                                 "reminders": 0, "state": "delivered", "type": "alarm.button"}
                                for a in self.open.values()]}

    async def heartbeats(self, first_in: float) -> None:
        """A heartbeat every ``heartbeat_s`` while connected (QoS 0), the first after ``first_in`` s."""
        await asyncio.sleep(first_in)
        while True:
            await self.link.online.wait()
            try:
                self.link.publish_nowait(f"{self.base}/heartbeat", json.dumps(self.status()).encode(), qos=0)
                self.counts["heartbeats"] += 1
            except LinkError:
                pass
            await asyncio.sleep(self.profile.heartbeat_s)

    # --- events --------------------------------------------------------------------------------

    def emit(self, type_: str, priority: Priority, source: Source, data: dict[str, Any], *,
             route: Route = Route.ANY, cause: str | None = None) -> Event:
        """Number, keep and queue one event (the outbox's commit), then send what the window allows."""
        self.seq += 1
        event = Event.from_draft(Draft(type=type_, priority=priority, source=source, route=route, data=data,
                                       cause=cause), hub=self.id, resident=self.resident, seq=self.seq)
        self.stored[event.seq] = (type_, event.to_json())
        heapq.heappush(self._pending, (priority.rank, event.seq))
        self._pump()
        return event

    def _pump(self) -> None:
        """Hand pending events to the link, highest priority first; alarms (rank 0) past a full window."""
        if not self.link.online.is_set():
            return
        while self._pending:
            rank, seq = self._pending[0]
            if rank > 0 and len(self._inflight) >= self.profile.window:
                return
            heapq.heappop(self._pending)
            type_, payload = self.stored[seq]
            try:
                fut = self.link.publish_nowait(f"{self.base}/event/{type_}", payload, qos=1)
            except LinkError:
                heapq.heappush(self._pending, (rank, seq))
                return
            self._inflight.add(seq)
            assert fut is not None
            fut.add_done_callback(functools.partial(self._sent, rank, seq))

    def _sent(self, rank: int, seq: int, fut: asyncio.Future[ReasonCode]) -> None:
        self._inflight.discard(seq)
        if not fut.cancelled() and fut.exception() is None and not fut.result().is_failure:
            self.counts["delivered"] += 1
        else:  # the link went down before the PUBACK: it goes again once connected
            heapq.heappush(self._pending, (rank, seq))
        self._pump()

    @property
    def settled(self) -> bool:
        """Every event PUBACKed and every alarm acked."""
        return not self._pending and not self._inflight and not self.open

    def telemetry(self, n: int) -> None:
        """One telemetry event: mostly a climate reading, every fifth a motion."""
        if n % 5 == 4:
            self.emit("motion.activity", Priority.NORMAL, Source(device="motion-1", kind="motion", room="hall"),
                      {"sensor": "motion"}, route=Route.CARE)
        else:
            values = {"temperature": round(20 + (n % 40) / 10, 1), "humidity": 40 + n % 20, "battery": 90}
            self.emit("sensor.reading", Priority.LOW, Source(device="climate-1", kind="climate", room="living"),
                      {"values": values, "changed": True})

    def free_button(self) -> str | None:
        """A button with no alarm waiting and no ack in the last ``repress_gap_s``, if any."""
        now = time.monotonic()
        for i in range(self.profile.buttons):
            device = f"button-{i + 1}"
            if device not in self.open and now - self.acked_at.get(device, -1e9) >= self.profile.repress_gap_s:
                return device
        return None

    def press(self, device: str) -> str:
        """The resident presses ``device``: ``alarm.button`` at once (the press time is the edge's)."""
        wall, mono = time.time(), time.monotonic()
        event = self.emit("alarm.button", Priority.CRITICAL,
                          Source(device=device, kind="alarm_button", room="bedroom"),
                          {"input": "gpio", "gesture": "press"}, route=Route.NURSE)
        alarm = _Alarm(event.id, device, wall, mono, offline=not self.link.online.is_set())
        self.alarms[event.id] = self.open[device] = alarm
        return event.id

    # --- commands ------------------------------------------------------------------------------

    def _on_message(self, m: Incoming) -> None:
        command = m.topic.rpartition("/")[2]
        try:
            body = json.loads(m.payload)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self.link.reply_nowait(m, {"ok": False, "error": "the command is not a JSON object"})
            return
        if command == "ack":
            self.link.reply_nowait(m, self._ack(body))
        elif command == "replay":
            self.spawn(self._replay(m, body))
        elif command == "status":
            self.link.reply_nowait(m, {"ok": True, **self.status()})
        else:
            self.link.reply_nowait(m, {"ok": False, "error": "unsupported command"})

    def _ack(self, body: dict[str, Any]) -> dict[str, Any]:
        """An ack ends the alarm: ``alarm.acknowledged`` first, then the reply (as the hub's runner does)."""
        now = time.monotonic()
        event_id = str(body.get("event_id"))
        alarm = self.alarms.get(event_id)
        if alarm is None:
            self.counts["acks_odd"] += 1
            return {"ok": False, "error": f"no open alarm with id {event_id}", "result": "unknown_event"}
        if alarm.ack_mono is not None:
            self.counts["acks_odd"] += 1
            return {"ok": True, "result": "already_acknowledged", "alarm_id": event_id, "closes": [event_id]}
        alarm.ack_mono = now
        self.counts["acks"] += 1
        self.open.pop(alarm.device, None)
        self.acked_at[alarm.device] = now
        self.emit("alarm.acknowledged", Priority.NORMAL, Source(device=alarm.device, kind="alarm_button",
                                                                room="bedroom"),
                  {"by": str(body.get("by", ""))[:128], "alarm_type": "alarm.button", "closes": [event_id],
                   "alarms": 1}, route=Route.NURSE, cause=event_id)
        return {"ok": True, "result": "acknowledged", "alarm_id": event_id, "closes": [event_id]}

    async def _replay(self, m: Incoming, body: dict[str, Any]) -> None:
        """``cmd/replay``: the stored events of the range again, each awaited, then what is missing."""
        self.counts["replays"] += 1
        lo, hi = body.get("from_seq"), body.get("to_seq")
        if not isinstance(lo, int) or not isinstance(hi, int) or hi < lo or lo < 1:
            await self.link.reply(m, {"ok": False, "error": "from_seq and to_seq: seqs, from_seq first"})
            return
        if lo > self.seq:
            await self.link.reply(m, {"ok": False, "error": f"from_seq {lo} is after the last seq {self.seq}",
                                      "last_seq": self.seq})
            return
        sent, missing = 0, []
        for seq in range(lo, min(hi, self.seq) + 1):
            kept = self.stored.get(seq)
            if kept is None:
                missing.append(seq)
                continue
            try:
                await self.link.publish(f"{self.base}/event/{kept[0]}", kept[1], qos=1, timeout=10)
            except (LinkError, TimeoutError) as exc:
                await self.link.reply(m, {"ok": False, "error": f"link lost during replay: {exc}", "sent": sent})
                return
            sent += 1
        missing += list(range(self.seq + 1, hi + 1))
        self.counts["replayed"] += sent
        await self.link.reply(m, {"ok": True, "sent": sent, "missing": missing[:1000],
                                  "missing_count": len(missing)})

    # --- the report ----------------------------------------------------------------------------

    def report(self) -> tuple[HubReport, list[AlarmRecord]]:
        """This hub's counts and every press."""
        c = self.counts
        hub = HubReport(hub=self.id, last_seq=self.seq, delivered=c["delivered"],
                        pending=len(self._pending) + len(self._inflight), heartbeats=c["heartbeats"],
                        replays=c["replays"], replayed=c["replayed"], acks=c["acks"], acks_odd=c["acks_odd"],
                        outages=c["outages"], connects=self.link.connects)
        alarms = [AlarmRecord(id=a.id, hub=self.id, press_wall=a.press_wall,
                              e2e_ms=None if a.ack_mono is None else round((a.ack_mono - a.press_mono) * 1000, 3),
                              offline=a.offline) for a in self.alarms.values()]
        return hub, alarms
