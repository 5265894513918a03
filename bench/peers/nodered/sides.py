
"""The two sides of bench/nodered_vs_hub.py, behind one small interface, and the subscriber both are counted by.

:class:`HubSide` is the real daemon (``hil.harness.hubproc``) with one ``bed_mat`` on a pty, configured as
bench/serial_throughput.py configures it; :class:`NodeRedSide` is the committed flow (:mod:`runner`). Each
owns its pty (:class:`bench.serial_throughput.PtyLine`) and its frame counter, publishes under its own hub id
(ids of the same length, so the topics and payloads are the same size) and reports its pid, its broker
connects and the problems it logged. :class:`Inbox` is the central's side: one QoS 1 subscription whose
session outlives the subscriber's and the broker's restarts, so nothing published after a restart is missed
for want of a subscriber.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bench.common import iso_to_epoch, rss_mb, stop_hub
from bench.peers.nodered.runner import NodeRed
from bench.serial_throughput import (
    DEVICE,
    EVENT_TYPE,
    HUB_ID,
    RESIDENT,
    LogTail,
    PtyLine,
    SeqFrames,
    bench_hub_config,
)
from hil.harness.broker import LOCALHOST, request
from hil.harness.hubproc import HubProcess
from hub import eventbatch

NODERED_ID = "bench-nrd"  # as long as HUB_ID
#: What the inbox subscribes to (and the batches it brings along).
EVENTS = "carehub/v1/+/event/#"
SESSION_EXPIRY_S = 3600




class Inbox:
    """A QoS 1 subscriber on ``carehub/v1/+/event/#`` and ``carehub/v1/+/events`` that records ``(time.time(),
    topic, payload)``, each event of a batch (contract 1.5, :mod:`hub.eventbatch`) as if it came alone on
    ``event/{type}``; :attr:`batches` counts the batches.

    MQTT v5 with a session expiry of an hour, never a clean start, and the broker's persistence on:
    a broker stop and start keeps the subscription and everything queued for it, and paho reconnects
    within half a second. :attr:`session_lost` counts reconnects answered without the session (the
    bench then reports its loss figures as void).
    ``on_message`` only appends and counts per topic; decoding is done after a measurement.
    """

    def __init__(self, port: int, *, name: str = "bench-nr-inbox") -> None:
        self.messages: list[tuple[float, str, bytes]] = []
        self.by_topic: dict[str, int] = {}
        self.batches = 0
        self._ready = threading.Event()
        self.session_lost = 0  # reconnects the broker answered without our session
        self.client_id = client_id = f"{name}-{uuid.uuid4().hex[:10]}"
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # never a clean start: a new client id has no session anyway, and mosquitto 2.0.11 does not save
        # over its restart the session of a client that connected with clean start
        self.client.connect(LOCALHOST, port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise RuntimeError("inbox: not subscribed within 10 s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure or flags.session_present:
            return
        if self._ready.is_set():
            self.session_lost += 1
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in (EVENTS, eventbatch.batch_filter(EVENTS))])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        t, parts = time.time(), [(msg.topic, msg.payload)]
        if eventbatch.is_batch_topic(msg.topic):
            try:
                parts = eventbatch.explode(msg.topic, msg.payload)
                self.batches += 1
            except ValueError:
                pass  # no batch: as it came
        for topic, payload in parts:
            self.messages.append((t, topic, payload))
            self.by_topic[topic] = self.by_topic.get(topic, 0) + 1

    def count(self, topic: str) -> int:
        """Messages received so far on ``topic`` (duplicates included)."""
        return self.by_topic.get(topic, 0)

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class Side:
    """What the bench needs of either side: start, stop, its pid, its pty, its topic, its connects."""

    name: str
    hub_id: str

    def __init__(self, workdir: Path, broker_port: int) -> None:
        self.workdir = workdir
        self.broker_port = broker_port
        self.line = PtyLine(workdir / "tty-bedmat")
        self.frames = SeqFrames()
        self.started_at = 0.0  # time.time() at start

    @property
    def topic(self) -> str:
        return f"carehub/v1/{self.hub_id}/event/{EVENT_TYPE}"

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def alive(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def connects(self) -> list[float]:
        """When (epoch s) it logged a connection to the broker, oldest first."""
        raise NotImplementedError

    def acked(self) -> int | None:
        """Events the broker PUBACKed so far, when the side can tell (the hub's status); None otherwise."""
        return None

    def wait_drained(self, timeout: float) -> int | None:
        """Wait until nothing is pending (when the side can tell); the events still pending, or None."""
        return None

    def problems(self) -> list[str]:
        """Warnings and errors it logged."""
        return []

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.line.close()


class HubSide(Side):
    """The real hub, configured as bench/serial_throughput.py does (telemetry limit off, max_inflight)."""

    name = "hub"
    hub_id = HUB_ID

    def __init__(self, workdir: Path, broker_port: int, *, max_inflight: int = 50) -> None:
        super().__init__(workdir, broker_port)
        config = bench_hub_config(workdir / "hub", broker_port, self.line.link, max_inflight=max_inflight)
        self.hub = HubProcess(config)
        self.tail = LogTail(self.hub.log_path)

    @property
    def pid(self) -> int | None:
        return self.hub.proc.pid if self.hub.proc is not None and self.hub.returncode is None else None

    def start(self) -> None:
        self.started_at = time.time()
        self.hub.start(timeout=30)
        for event in ("mqtt_connected", "birth_published", "serial_online"):
            self.hub.wait_log(lambda e, ev=event: e.get("event") == ev, timeout=30)

    def stop(self) -> None:
        if self.hub.proc is not None:
            stop_hub(self.hub)

    def connects(self) -> list[float]:
        return [iso_to_epoch(e["timestamp"]) for e in self.hub.log_lines() if e.get("event") == "mqtt_connected"]

    def status(self) -> dict[str, Any]:
        return request(LOCALHOST, self.broker_port, f"carehub/v1/{HUB_ID}/cmd/status", {}, timeout=10)

    def acked(self) -> int | None:
        return int(self.status()["forwarder"]["delivered"])

    def wait_drained(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while True:
            pending = self.status().get("outbox", {}).get("pending")
            if pending == 0 or time.monotonic() > end:
                return pending
            time.sleep(0.05)

    def serial_errors(self) -> int:
        dev = self.status().get("devices", {}).get(DEVICE, {})
        return sum((dev.get("errors") or {}).values())

    def problems(self) -> list[str]:
        self.tail.poll()
        return [str(w.get("event")) for w in self.tail.warnings]


class NodeRedSide(Side):
    """Node-RED with the committed flow (bench/peers/nodered/flow.json)."""

    name = "Node-RED"
    hub_id = NODERED_ID

    def __init__(self, workdir: Path, broker_port: int) -> None:
        super().__init__(workdir, broker_port)
        self.nr = NodeRed(
            workdir / "node-red", mqtt_port=broker_port, serial_port=self.line.link, hub_id=NODERED_ID,
            resident=RESIDENT,
        )

    @property
    def pid(self) -> int | None:
        return self.nr.pid

    def start(self) -> None:
        self.started_at = time.time()
        self.nr.start(timeout=60)

    def stop(self) -> None:
        self.nr.stop()

    def connects(self) -> list[float]:
        return [iso_to_epoch(e["ts"]) for e in self.nr.log_lines() if e.get("msg", "").startswith("Connected to broker")]

    def problems(self) -> list[str]:
        return self.nr.problems()
