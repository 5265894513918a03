"""The alarm central on the broker: :class:`CentralRecorder` subscribes to one hub, records and
checks every event (:class:`~central.ledger.Ledger`), follows its retained status and
heartbeats, and acknowledges alarms through ``cmd/ack`` (MQTT 5 request/response).

It is a :class:`~hil.harness.subscriber.Subscriber` underneath: MQTT v5, QoS 1, each event of a
batch (``events``) taken as one, reconnecting on its own, and by default a persistent session
(clean_start off), so the broker queues the events published while the central is away, e.g.
across a broker restart.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Self

import structlog
from msgspec import Struct
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.ledger import Arrival, Ledger
from central.policy import ALARM_TYPES, known_types, load_validator
from central.policy import priorities as allowed_priorities
from hil.harness.mosquitto import LOCALHOST
from hil.harness.subscriber import Received, Subscriber
from hil.harness.tlsfiles import TlsFiles

log = structlog.get_logger("hil.central")


class AckRecord(Struct, kw_only=True):
    """One ``cmd/ack`` the central sent, and what came of it."""

    event_id: str
    by: str
    #: CLOCK_MONOTONIC seconds when it was sent, and when the reply came (None: none came).
    t_sent: float
    t_reply: float | None
    #: The hub's reply, or ``{"ok": false, "error": "central: ..."}`` when none came.
    reply: dict[str, Any]
    #: Sent by ``auto_ack``, not by a step.
    auto: bool = False


class CentralRecorder:
    """One hub's events, status and heartbeats as the alarm central sees them (implements
    :class:`hil.fixtures.Central`). Thread-safe; a context manager (closes on exit).

    ``first_seq``: the seq the hub's first event will carry (1 for a fresh state directory), so a
    gap at the start is found too; None: gaps are counted from the lowest seq seen.
    ``auto_ack``: acknowledge every new alarm (``alarm.button``, ``alarm.test``,
    ``alarm.nursecall``) as ``ack_by``, unless an earlier ack's reply closed it already.
    ``priorities``: type -> allowed priorities, merged over
    :data:`~central.policy.FIXED_PRIORITIES`.
    The constructor blocks until connected and subscribed (``connect_timeout``; None: it does not).
    """

    def __init__(
        self,
        *,
        port: int,
        host: str = LOCALHOST,
        hub: str = "test-hub",
        prefix: str = "carehub/v1",
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        persistent: bool = True,
        first_seq: int | None = None,
        auto_ack: bool = False,
        ack_by: str = "central",
        ack_timeout_s: float = 5.0,
        priorities: Mapping[str, Collection[str]] | None = None,
        connect_timeout: float | None = 10.0,
    ) -> None:
        self.hub = hub
        self.base = f"{prefix}/{hub}"
        self.ack_by = ack_by
        self.ack_timeout_s = ack_timeout_s
        self.client_id = client_id or f"central-{uuid.uuid4().hex[:12]}"
        # under the hub's own prefix, as the shipped broker ACL lets a hub answer (config/broker/acl)
        self.reply_topic = f"{self.base}/reply/{username or self.client_id}"
        validator, self.schema_check = load_validator()
        self._ledger = Ledger(
            base=self.base,
            hub=hub,
            allowed=allowed_priorities(priorities),
            validator=validator,
            known=known_types(),
            first_seq=first_seq,
        )
        self._cond = threading.Condition(threading.Lock())
        self._status: dict[str, Any] | None = None
        self._heartbeat: dict[str, Any] | None = None
        self._heartbeats = 0
        self._replies: dict[bytes, Received | None] = {}
        self._acks: list[AckRecord] = []
        self._closed_ids: set[str] = set()  # alarm ids an ack's reply said it closed
        self._closing = False
        self._queue: queue.Queue[str | None] | None = queue.Queue() if auto_ack else None
        self._worker: threading.Thread | None = None
        self._sub = Subscriber(
            host=host,
            port=port,
            topics=[f"{self.base}/event/#", f"{self.base}/status", f"{self.base}/heartbeat", self.reply_topic],
            client_id=self.client_id,
            persistent=persistent,
            tls=tls,
            username=username,
            password=password,
            connect_timeout=connect_timeout,
            on_message=self._on_message,
        )
        if self._queue is not None:
            self._worker = threading.Thread(target=self._auto_acker, name=f"{self.client_id}-ack", daemon=True)
            self._worker.start()
        log.info("central_started", hub=hub, port=port, client_id=self.client_id, auto_ack=auto_ack,
                 schema=self.schema_check)

    # --- paho's network thread ------------------------------------------------------------

    def _on_message(self, msg: Received) -> None:
        try:
            self._take(msg)
        except Exception as exc:  # never into paho: it would end the network loop
            log.exception("central_message_failed", topic=msg.topic)
            with self._cond:
                self._ledger.note(f"{msg.topic}: recorder failed on it ({exc!r})")

    def _take(self, msg: Received) -> None:
        topic = msg.topic
        if topic == self.reply_topic:
            corr = getattr(msg.properties, "CorrelationData", None)
            with self._cond:
                if corr in self._replies:
                    self._replies[corr] = msg
                    self._cond.notify_all()
            return
        if topic in (f"{self.base}/status", f"{self.base}/heartbeat"):
            doc = _json_object(msg.payload) if msg.payload else None
            with self._cond:
                if msg.payload and doc is None:
                    self._ledger.note(f"{topic}: payload is not a JSON object")
                elif topic.endswith("/status"):
                    self._status = doc
                else:
                    self._heartbeat, self._heartbeats = doc, self._heartbeats + 1
                self._cond.notify_all()
            return
        with self._cond:
            arrival = self._ledger.add(msg.batch or topic, msg.payload, msg.t)  # a batch's event: checked as one
            self._cond.notify_all()
        if arrival is None:
            return
        if self._queue is not None and not arrival.duplicate and arrival.event.get("type") in ALARM_TYPES:
            self._queue.put(str(arrival.event.get("id")))

    # --- acknowledging ----------------------------------------------------------------------

    def ack(self, event_id: str, by: str | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """Send ``cmd/ack`` for ``event_id`` and return the hub's reply (``{"ok": true, "alarm_id",
        "closes", ...}`` or ``{"ok": false, "error": ...}``). Never raises for the hub's or the
        network's failings: when no reply comes within ``timeout_s`` (default ``ack_timeout_s``) or the
        ack could not be sent, the result is ``{"ok": false, "error": "central: ..."}``."""
        return self._ack(event_id, by or self.ack_by, timeout_s or self.ack_timeout_s, auto=False)

    def _ack(self, event_id: str, by: str, timeout_s: float, *, auto: bool) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        corr = secrets.token_bytes(16)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr
        with self._cond:
            self._replies[corr] = None
        t_sent = time.monotonic()
        reply: dict[str, Any] | None = None
        msg: Received | None = None
        try:
            self._sub.publish(f"{self.base}/cmd/ack", {"event_id": event_id, "by": by}, qos=1,
                              properties=props, timeout=timeout_s)
        except AssertionError as exc:
            reply = {"ok": False, "error": f"central: ack not sent: {str(exc).splitlines()[0]}"}
        with self._cond:
            while reply is None and (msg := self._replies[corr]) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reply = {"ok": False, "error": f"central: no reply within {timeout_s} s"}
                    break
                self._cond.wait(remaining)
            del self._replies[corr]
        if reply is None and msg is not None:
            reply = _json_object(msg.payload) or {"ok": False, "error": "central: reply is not a JSON object"}
        record = AckRecord(event_id=event_id, by=by, t_sent=t_sent, t_reply=msg.t if msg else None,
                           reply=reply, auto=auto)
        with self._cond:
            self._acks.append(record)
            if reply.get("ok"):
                self._closed_ids.update(str(i) for i in reply.get("closes") or [])
                self._closed_ids.add(str(reply.get("alarm_id") or event_id))
        log.info("central_ack", event_id=event_id, by=by, ok=bool(reply.get("ok")), auto=auto,
                 ms=None if msg is None else round((msg.t - t_sent) * 1000, 1), error=reply.get("error"))
        return reply

    def _auto_acker(self) -> None:
        assert self._queue is not None
        while (event_id := self._queue.get()) is not None:
            with self._cond:
                skip = self._closing or event_id in self._closed_ids
            if not skip:
                self._ack(event_id, self.ack_by, self.ack_timeout_s, auto=True)

    def acks(self) -> list[AckRecord]:
        """Every ack sent so far, in order."""
        with self._cond:
            return list(self._acks)

    # --- reading ----------------------------------------------------------------------------

    def arrivals(self) -> list[Arrival]:
        """Every event received so far, in arrival order (duplicates included)."""
        with self._cond:
            return list(self._ledger.arrivals)

    def events(self, type_: str | None = None, *, duplicates: bool = False) -> list[dict[str, Any]]:
        """The events' bodies in arrival order, of one type if given, without duplicates unless asked."""
        return [a.event for a in self.arrivals()
                if (duplicates or not a.duplicate) and (type_ is None or a.event.get("type") == type_)]

    def status(self) -> str | None:
        """The hub's retained status (``online`` / ``offline``), None before any."""
        with self._cond:
            return None if self._status is None else self._status.get("state")

    def status_doc(self) -> dict[str, Any] | None:
        """The hub's whole retained status document (birth or last will), None before any."""
        with self._cond:
            return None if self._status is None else dict(self._status)

    def heartbeat(self) -> dict[str, Any] | None:
        """The hub's latest heartbeat, None before any."""
        with self._cond:
            return None if self._heartbeat is None else dict(self._heartbeat)

    def problems(self) -> list[str]:
        """What the central found wrong: seq gaps (as they stand now), conflicting bodies for one id,
        a seq on two ids, priorities that do not fit their type, schema failures, odd topics."""
        with self._cond:
            return self._ledger.problems()

    def summary(self) -> dict[str, Any]:
        """Counts for the record: received, unique, duplicates, held_stored, conflicts, gaps, by
        type, acks sent (and ok, and auto), heartbeats, status, and whether the schema was checked."""
        with self._cond:
            acks = list(self._acks)
            return {
                **self._ledger.summary(),
                "acks_sent": len(acks),
                "acks_ok": sum(bool(a.reply.get("ok")) for a in acks),
                "acks_auto": sum(a.auto for a in acks),
                "heartbeats": self._heartbeats,
                "status": None if self._status is None else self._status.get("state"),
                "schema_check": self.schema_check,
            }

    # --- waiting ----------------------------------------------------------------------------

    def wait(self, start: int, timeout_s: float) -> bool:
        """Block until an event beyond index ``start`` arrives or ``timeout_s`` passes; True if one did."""
        return self.wait_for(lambda arrivals: len(arrivals) > start, timeout_s)

    def wait_for(self, predicate: Callable[[list[Arrival]], bool], timeout_s: float) -> bool:
        """Block until ``predicate(arrivals)`` holds (re-checked on every message); False on timeout.
        The predicate sees the live list under the lock: it must neither keep nor change it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self._ledger.arrivals):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_status(self, state: str, timeout_s: float) -> bool:
        """Block until the retained status is ``state``; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._status or {}).get("state") != state:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def connected(self) -> bool:
        """True while connected to the broker and subscribed."""
        return self._sub.connected

    # --- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop acking, then disconnect (a persistent session stays on the broker)."""
        with self._cond:
            self._closing = True
        if self._queue is not None and self._worker is not None:
            self._queue.put(None)
            self._worker.join(self.ack_timeout_s + 1)
        self._sub.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
