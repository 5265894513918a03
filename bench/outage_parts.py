"""The phases of :mod:`bench.outage`, one hub's life through an outage: the central's stand-in, the
hub's status over its control socket, the backlog made with the link down, the drain, an online
burst, the RSS sampler, and the raw paho alarms that are the drain's baseline."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import BenchSubscriber, iso_to_epoch
from bench.memory import rss_mb
from bench.relay import LinkRelay
from bench.serial_throughput import PtyLine, SeqFrames
from hil.harness.hubproc import HubProcess
from hub.control.client import ControlClient

HUB_ID = "bench-hub"
BASE = f"carehub/v1/{HUB_ID}"
TELEMETRY = "device.battery_low"
BUFFERED_BATTERY = 19


class Central(BenchSubscriber):
    """Every event as (wall-clock receipt, type, id of an alarm); acknowledges every alarm as the central does.

    The type is the topic's last level; only alarms are decoded (for their id
    and the ack), so a drain of 100,000 events is not slowed by this process.
    """

    def __init__(self, port: int) -> None:
        self.events: list[tuple[float, str, str | None]] = []
        self.lock = threading.Lock()
        super().__init__(port, [f"{BASE}/event/#", "bench/raw/#"], "bench-central")

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        t = time.time()
        if msg.topic.startswith("bench/raw/"):
            with self.lock:
                self.events.append((t, "raw", None))
            return
        kind = msg.topic.rpartition("/")[2]
        ev_id = None
        if kind.startswith("alarm.") and kind not in ("alarm.acknowledged", "alarm.cancelled"):
            ev_id = json.loads(msg.payload)["id"]
            self.client.publish(f"{BASE}/cmd/ack", json.dumps({"event_id": ev_id, "by": "bench"}), qos=1)
        with self.lock:
            self.events.append((t, kind, ev_id))

    def since(self, k: int) -> list[tuple[float, str, str | None]]:
        with self.lock:
            return self.events[k:]


def control_status(sock: Path) -> dict[str, Any]:
    """The hub's status over its local control socket (works with the link down)."""
    with ControlClient(sock, timeout=10) as c:
        return c.request({"op": "status"})


def wait_for(what: str, cond: Any, timeout: float, hub: HubProcess, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if hub.returncode is not None:
            raise RuntimeError(f"the hub exited during {what}\n{hub.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s\n{hub.tail(15)}")
        time.sleep(poll)


def raw_alarms(port: int, k: int, central: Central) -> float:
    """Raw paho through the relay: CONNACK, then ``k`` QoS 1 messages; seconds from CONNACK to the k-th receipt."""
    connected: dict[str, float] = {}
    ev = threading.Event()
    n0 = len(central.since(0))

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        connected["t"] = time.time()
        for i in range(k):
            client.publish(f"bench/raw/alarm/{i}", b"x" * 400, qos=1)
        ev.set()

    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw-alarms",
                    protocol=mqtt.MQTTv5)
    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        ev.wait(10)
        deadline = time.monotonic() + 10
        while len([e for e in central.since(n0) if e[1] == "raw"]) < k and time.monotonic() < deadline:
            time.sleep(0.005)
        got = [e[0] for e in central.since(n0) if e[1] == "raw"]
        return max(got[:k]) - connected["t"]
    finally:
        c.disconnect()
        c.loop_stop()


class RssSampler(threading.Thread):
    """The peak RSS of ``pid`` while it runs (every 0.2 s)."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid) or 0.0)


def buffer_backlog(hub: HubProcess, line: PtyLine, frames: SeqFrames, sock: Path, events: int,
                   alarms: int, pending0: int) -> dict[str, Any]:
    """With the link down: ``events`` battery dips on the mat, ``alarms`` presses spread over them."""
    chunk = max(1, events // (alarms + 1))
    sampler = RssSampler(hub.proc.pid if hub.proc else None)
    sampler.start()
    t0, written, pressed = time.monotonic(), 0, 0
    alive = lambda: hub.returncode is None  # noqa: E731
    try:
        while written < events:
            n = min(chunk, events - written)
            line.write_all(frames.pairs(n, BUFFERED_BATTERY), deadline=time.monotonic() + 600, alive=alive)
            written += n
            line.drain()
            if pressed < alarms:
                hub.sim.call({"op": "click", "device": ("button-1", "cord-1")[pressed % 2], "seconds": 0.05})
                pressed += 1
        want = pending0 + events + pressed
        wait_for("buffering", lambda: control_status(sock)["outbox"]["pending"] >= want, 120 + events / 500, hub, 0.3)
    finally:
        sampler.stop.set()
        sampler.join()
    return {"events": written, "alarms": pressed, "buffer_s": time.monotonic() - t0, "peak_mb": sampler.peak}


def drain(hub: HubProcess, relay: LinkRelay, central: Central, alarm_ids: set[str], events: int) -> dict[str, Any]:
    """Restore the link; when every alarm and every buffered event arrived, and in which order."""
    k0 = len(central.since(0))
    connects = sum(1 for e in hub.log_lines() if e.get("event") == "mqtt_connected")
    t_up = time.time()
    relay.up()
    entry = hub.wait_log(lambda e: e.get("event") == "mqtt_connected" and iso_to_epoch(e["timestamp"]) >= t_up - 1,
                         timeout=30)
    t_conn = iso_to_epoch(entry["timestamp"])

    def done() -> bool:
        got = central.since(k0)
        return (sum(1 for e in got if e[1] == TELEMETRY) >= events and alarm_ids <= {e[2] for e in got})
    wait_for("the drain", done, 60 + events / 200, hub, 0.05)
    got = central.since(k0)
    first_tele = next(i for i, e in enumerate(got) if e[1] == TELEMETRY)
    alarm_rx = {e[2]: e[0] for e in got if e[2] in alarm_ids}
    before = sum(1 for e in got[:first_tele] if e[2] in alarm_ids)
    last = [e[0] for e in got if e[1] == TELEMETRY][events - 1]
    return {"reconnect_s": t_conn - t_up, "alarms_first": before, "last_alarm_s": max(alarm_rx.values()) - t_conn,
            "drain_s": last - t_conn, "connects_before": connects}


def online_burst(hub: HubProcess, line: PtyLine, frames: SeqFrames, central: Central, events: int) -> dict[str, Any]:
    """With the link up: ``events`` battery dips as fast as the pty takes them, until the central has them all."""
    k0 = len(central.since(0))
    sampler = RssSampler(hub.proc.pid if hub.proc else None)
    sampler.start()
    t0 = time.time()
    try:
        line.write_all(frames.pairs(events, BUFFERED_BATTERY), deadline=time.monotonic() + 600,
                       alive=lambda: hub.returncode is None)
        line.drain()
        wait_for("the online burst", lambda: sum(1 for e in central.since(k0) if e[1] == TELEMETRY) >= events,
                 60 + events / 200, hub, 0.05)
    finally:
        sampler.stop.set()
        sampler.join()
    last = [e[0] for e in central.since(k0) if e[1] == TELEMETRY][events - 1]
    return {"events": events, "seconds": last - t0, "peak_mb": sampler.peak}
