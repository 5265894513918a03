"""The engine: the central's one loop, from the broker into the store and out to the faces.

:class:`Engine` implements :class:`~central.view.CentralView` (``snapshot``, ``ack``,
``changes``) for the web console, the terminal and ``--json``. Inside, on one asyncio loop:

* the MQTT link (:mod:`central.mqtt`): events through the shared subscription, every hub's
  status and heartbeat, this instance's command replies;
* the ingest: events checked (:mod:`central.wire`; a malformed one is logged and dropped),
  stored in batches (:mod:`central.store`: de-duplication, seq gaps, alarms, problems), and
  only then acknowledged to the broker, so nothing is lost if the process dies in between; a
  hub's batch of events (``events``, contract 1.5) is taken apart, each event stored as one, and
  the message acknowledged once all of them are;
* hub supervision (:mod:`central.supervision`), gap filling (:mod:`central.gapfill`), acks
  and auto-acks (:mod:`central.acks`), and the live feed (:mod:`central.feed`).

Beyond the view, for tools and the demo (``carehub demo`` runs this engine): :meth:`Engine.tap`
(each message as it is taken in: events once stored, with their outcome; status; heartbeats) and
:meth:`Engine.request` (any command to a hub, its reply).

Several instances may share one database: each stores what the shared subscription gives it,
and each one's feed reads the store's journal, so alarms stored, acks made and events lost
through any instance reach every instance's faces (within ``poll_s``; at once for its own).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, NamedTuple

import msgspec
import structlog

from central.acks import Acker
from central.config import CentralConfig
from central.feed import Feed, JournalReader
from central.gapfill import GapFiller
from central.mqtt import CentralLink, MqttOptions
from central.policy import ALARM_TYPES
from central.store import Outcome, Store, StoreError, TransientStoreError
from central.supervision import Supervisor
from central.view import AckOutcome, Change, HubView, Snapshot
from central.wire import Malformed, Received, Topic, json_object, parse_batch, parse_event, parse_topic
from hub.events import rfc3339
from hub.link import Incoming

log = structlog.get_logger("central.engine")

#: How long the journal is kept (every instance's feed has read it long before).
JOURNAL_KEEP_S = 3600.0


class _Tail(NamedTuple):
    """A heartbeat's word that every event of ``hub`` up to ``seq`` reached the broker."""

    hub: str
    seq: int


def _delivered_up_to(heartbeat: dict[str, Any]) -> int | None:
    """The heartbeat's seq when nothing is pending or held in the hub's outbox (all of it is at the broker)."""
    seq, outbox = heartbeat.get("seq"), heartbeat.get("outbox")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0 or not isinstance(outbox, dict):
        return None
    return seq if outbox.get("pending") == 0 and not outbox.get("held") else None


class Heard(msgspec.Struct, frozen=True, kw_only=True):
    """One message the engine took in, for a tap (:meth:`Engine.tap`): a demo's or a tool's view of the wire."""

    kind: Literal["event", "status", "heartbeat"]
    hub: str
    #: the JSON object as it came.
    body: dict[str, Any]
    #: a status the broker kept and replayed on subscribing (old news), not one published now.
    retained: bool = False
    #: an event's fate in the store (``outcome.kind``: new, duplicate, held_stored, conflict).
    outcome: Outcome | None = None
    #: when the engine had it (Unix seconds): an event once stored, a status or heartbeat once read.
    at: float


Tap = Callable[[Heard], None]


class Engine:
    """One central instance. ``await engine.run()`` until cancelled; the faces use the
    :class:`~central.view.CentralView` methods meanwhile."""

    def __init__(self, *, store: Store, mqtt: MqttOptions, config: CentralConfig, instance: str,
                 auto_ack: bool = False) -> None:
        self.store = store
        self.config = config
        self.instance = instance
        self.prefix = mqtt.prefix
        c = config.central
        self.link = CentralLink(mqtt, self._on_message)
        self.feed = Feed(queue_size=c.feed_queue)
        self.supervisor = Supervisor(config)
        self.journal = JournalReader(store, self.feed, self._hub_view, poll_s=c.poll_s)
        self.acker = Acker(store, self.link, timeout_s=c.ack_timeout_s, auto=auto_ack,
                           auto_by=f"auto-ack {instance}"[:128], written=self.journal.kick)
        self.gapfiller = GapFiller(store, self.link, reorder_s=c.reorder_timeout_s,
                                   replay_timeout_s=c.replay_timeout_s,
                                   offline=lambda hub: self.supervisor.watch(hub).state == "offline",
                                   written=self.journal.kick)
        self.auto_ack = auto_ack
        #: received, stored, duplicates, held_stored, conflicts, malformed ...
        self.counters: Counter[str] = Counter()
        #: set once connected with every subscription granted (again after each reconnect).
        self.ready = self.link.subscribed
        self._events: asyncio.Queue[Incoming | _Tail] = asyncio.Queue()
        self._signals: asyncio.Queue[tuple[str, str, str, float]] = asyncio.Queue()
        self._taps: list[Tap] = []
        self._parts: dict[int, int] = {}  # id() of a batch message -> its events not stored yet (beyond one)

    # --- the faces' side (CentralView) --------------------------------------------------------

    async def snapshot(self, *, route: str | None = None) -> Snapshot:
        """Open alarms (most urgent, then oldest first), hubs and device problems now."""
        alarms, problems, rows = await self.store.picture(route)
        for row in rows:
            self.supervisor.watch(row["hub"]).counts = row
        return Snapshot(alarms=tuple(alarms), hubs=tuple(self.supervisor.views()), problems=tuple(problems),
                        at=rfc3339())

    async def ack(self, event_id: str, by: str) -> AckOutcome:
        """Send ``cmd/ack`` for ``event_id`` as ``by``; the hub's reply, or why none came."""
        return await self.acker.ack(event_id, by)

    def changes(self) -> AsyncIterator[Change]:
        """Every change from now on (bounded: a subscriber that falls behind gets ``kind="resync"``)."""
        return self.feed.changes()

    # --- taps and commands (tools, the demo) ---------------------------------------------------

    def tap(self, fn: Tap) -> Callable[[], None]:
        """Call ``fn`` on the loop with every message taken in: each event once stored (with its
        outcome: new or a duplicate ...), each status and heartbeat once read. Malformed messages
        and events the store refused are not tapped. ``fn`` must not block; what it raises is
        logged and ignored. Returns the callable that removes the tap."""
        self._taps.append(fn)

        def remove() -> None:
            if fn in self._taps:
                self._taps.remove(fn)
        return remove

    def _tell(self, heard: Heard) -> None:
        for fn in list(self._taps):
            try:
                fn(heard)
            except Exception:
                log.exception("tap_failed", kind=heard.kind, hub=heard.hub)

    async def request(self, hub: str, command: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send ``cmd/{command}`` to ``hub`` through this instance's link and return its reply (a JSON
        object). :class:`TimeoutError` when none comes in time, :class:`hub.link.LinkError` when it cannot
        be sent. Acks go through :meth:`ack` instead (recorded, the alarms closed)."""
        return await self.link.request(hub, command, body, timeout_s)

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, take events in, supervise, fill gaps and ack, until cancelled; then leave the
        broker cleanly (the session stays for this instance's client id)."""
        self.supervisor.load(await self.store.hubs())
        await self.journal.start()
        tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("central-link", self.link.run()), ("central-ingest", self._ingest()),
            ("central-signals", self._record_signals()), ("central-journal", self.journal.run()),
            ("central-supervise", self._supervise()), ("central-gapfill", self.gapfiller.run()),
            ("central-acks", self.acker.run()), ("central-ready", self._announce()),
            ("central-prune", self._prune()))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a task that ended by itself failed: raise its error
            raise RuntimeError("a central task ended by itself")
        finally:
            for task in tasks:
                if task.get_name() != "central-link":
                    task.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)
            await self.link.stop()
            await asyncio.gather(tasks[0], return_exceptions=True)
            log.info("central_stopped", instance=self.instance, **dict(self.counters))

    async def _announce(self) -> None:
        while True:
            await self.ready.wait()
            log.info("central_ready", instance=self.instance, client_id=self.link.options.client_id,
                     store=self.store.where, auto_ack=self.auto_ack)
            while self.ready.is_set():
                await asyncio.sleep(0.2)

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(600)
            try:
                await self.store.prune_journal(time.time() - JOURNAL_KEEP_S)
            except StoreError as exc:
                log.warning("journal_prune_failed", error=str(exc))

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for view in self.supervisor.tick():
                self.feed.publish(Change(kind="hub", hub=view))

    async def _hub_view(self, hub: str) -> HubView:
        for row in await self.store.hubs(hub):
            self.supervisor.watch(hub).counts = row
        return self.supervisor.view(hub)

    # --- messages in -------------------------------------------------------------------------

    def _on_message(self, m: Incoming) -> None:
        """Every message but replies, on the loop: events queued for the ingest, hub signals handled now."""
        topic = parse_topic(m.topic, self.prefix)
        if topic is not None and topic.kind in ("event", "events"):
            self._events.put_nowait(m)
            return
        self.link.ack(m)
        if topic is None or topic.kind not in ("status", "heartbeat"):
            log.warning("mqtt_unexpected_topic", topic=m.topic[:200])
            return
        if not m.payload:
            return  # a retained status cleared
        try:
            doc = json_object(m.payload)
        except Malformed as exc:
            self.counters["malformed"] += 1
            log.warning("message_malformed", topic=m.topic[:200], reason=str(exc))
            return
        text = m.payload.decode("utf-8", "replace")
        if topic.kind == "status":
            view = self.supervisor.status(topic.hub, doc, retained=m.retain)
            if view is not None:
                self.feed.publish(Change(kind="hub", hub=view))
            self._tell(Heard(kind="status", hub=topic.hub, body=doc, retained=m.retain, at=time.time()))
        else:
            self.feed.publish(Change(kind="hub", hub=self.supervisor.heartbeat(topic.hub)))
            if (seq := _delivered_up_to(doc)) is not None:
                self._events.put_nowait(_Tail(topic.hub, seq))  # after the events that came before it
            self._tell(Heard(kind="heartbeat", hub=topic.hub, body=doc, at=time.time()))
        w = self.supervisor.watch(topic.hub)
        at = (w.status_wall if topic.kind == "status" else w.heartbeat_wall) or time.time()
        self._signals.put_nowait((topic.kind, topic.hub, text, at))

    async def _record_signals(self) -> None:
        """Status and heartbeats into the store, in order (what a restarted central starts from)."""
        while True:
            kind, hub, text, at = await self._signals.get()
            w = self.supervisor.watch(hub)
            try:
                if kind == "status":
                    await self.store.record_status(hub, state=w.status, reason=w.reason, doc=text, at=at,
                                                   level=w.level, level_s=w.level_s)
                else:
                    await self.store.record_heartbeat(hub, doc=text, at=at)
            except StoreError as exc:
                log.warning("signal_record_failed", hub=hub, kind=kind, error=str(exc))

    async def _ingest(self) -> None:
        """Take events in batches: check, store, then acknowledge each to the broker."""
        while True:
            batch: list[Incoming | _Tail] = [await self._events.get()]
            while len(batch) < self.config.central.batch and not self._events.empty():
                batch.append(self._events.get_nowait())
            good: list[tuple[Incoming, Received]] = []
            tails = [m for m in batch if isinstance(m, _Tail)]
            for m in batch:
                if isinstance(m, _Tail):
                    continue
                topic = parse_topic(m.topic, self.prefix)
                if topic is not None and topic.kind == "events":
                    self._take_batch(m, topic, good)
                    continue
                self.counters["received"] += 1
                try:
                    good.append((m, parse_event(topic, m.payload)))  # type: ignore[arg-type]
                except Malformed as exc:
                    self.counters["malformed"] += 1
                    log.warning("event_malformed", topic=m.topic[:200], reason=str(exc))
                    self.link.ack(m)
            if good:
                await self._store(good)
            for t in tails:
                await self._tail(t)

    def _take_batch(self, m: Incoming, topic: Topic, good: list[tuple[Incoming, Received]]) -> None:
        """A batch's events into ``good``, each as one; the message is acknowledged once all are stored."""
        try:
            parts = parse_batch(topic, m.payload)
        except Malformed as exc:
            self.counters["malformed"] += 1
            log.warning("event_malformed", topic=m.topic[:200], reason=str(exc))
            self.link.ack(m)
            return
        taken = 0
        for part in parts:
            self.counters["received"] += 1
            if isinstance(part, Malformed):
                self.counters["malformed"] += 1
                log.warning("event_malformed", topic=m.topic[:200], reason=str(part), batched=True)
                continue
            good.append((m, part))
            taken += 1
        if taken == 0:
            self.link.ack(m)
        elif taken > 1:
            self._parts[id(m)] = taken

    def _done(self, m: Incoming) -> None:
        """One event of ``m`` is stored (or refused): acknowledge ``m`` once none of its events is left."""
        left = self._parts.pop(id(m), 1) - 1
        if left > 0:
            self._parts[id(m)] = left
            return
        self.link.ack(m)

    async def _tail(self, t: _Tail) -> None:
        """A heartbeat says every event up to ``t.seq`` reached the broker: what the central lacks of them
        is a gap (one the ingest cannot see: no later event came), asked for after the reorder timeout."""
        try:
            gap = await self.store.tail(t.hub, t.seq, time.time())
        except StoreError as exc:
            log.warning("tail_check_failed", hub=t.hub, error=str(exc))
            return
        if gap is not None:
            log.info("seq_gap", hub=t.hub, gap=list(gap), source="heartbeat")
            self.journal.kick()

    async def _store(self, good: list[tuple[Incoming, Received]]) -> None:
        """Store a batch until it is stored (the database may be away a while); split it when one
        event is refused, so only that one is dropped."""
        pause = 0.5
        while True:
            try:
                outcomes = await self.store.ingest([r for _, r in good], now=time.time(), auto_ack=self.auto_ack)
                break
            except TransientStoreError as exc:
                log.error("store_unavailable", error=str(exc), waiting=len(good), retry_s=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            except StoreError as exc:
                if len(good) > 1:
                    for one in good:
                        await self._store([one])
                    return
                m, r = good[0]
                self.counters["refused"] += 1
                log.error("event_refused_by_store", id=r.event.id[:64], hub=r.event.hub, error=str(exc))
                self._done(m)
                return
        at = time.time()
        for (m, r), outcome in zip(good, outcomes, strict=True):
            self._done(m)
            self._after(outcome)
            if self._taps:
                self._tell(Heard(kind="event", hub=r.event.hub, body=r.body, outcome=outcome, at=at))
        self.journal.kick()

    def _after(self, o: Outcome) -> None:
        """Log lines, counters, supervision and auto-acks for one stored event."""
        self.counters[o.kind] += 1
        fields = {"hub": o.hub, "id": o.id, "seq": o.seq, "type": o.type}
        if o.kind == "conflict":
            log.error("event_conflict", fields_differ=o.differs, **fields)
        elif o.kind == "duplicate":
            log.debug("event_duplicate", **fields)
        elif o.kind == "held_stored":
            log.info("event_held_stored", **fields)
        if o.seq_taken_by:
            log.error("seq_reused", taken_by=o.seq_taken_by, **fields)
        if o.gap:
            log.warning("seq_gap", gap=list(o.gap), **fields)
        for lo, hi, state in o.gaps_closed:
            log.info("gap_closed", hub=o.hub, gap=[lo, hi], state=state)
        if o.opened:
            log.info("alarm_opened", **fields)
            if o.type in ALARM_TYPES:  # a missed check-in is the care team's call: never auto-acked
                self.acker.opened(o.opened)
        if o.joined:
            log.info("alarm_joined", episode=o.joined, **fields)
        for episode in o.closed:
            log.info("alarm_closed", episode=episode, by_event=o.id, hub=o.hub, type=o.type)
        counts = self.supervisor.watch(o.hub).counts
        if o.seq > 0 and o.seq > (counts.get("seq_max") or 0):
            counts["seq_max"] = o.seq
        if o.gap:
            counts["gaps_open"] = int(counts.get("gaps_open") or 0) + 1
        if (view := self.supervisor.event(o.hub)) is not None:
            self.feed.publish(Change(kind="hub", hub=view))
