"""A backlog of 30,000 events on disk, live: paged to the central with a bounded queue, alarms first.

The real hub with a bed mat on a real pty and the two alarm devices; the
broker is stopped while the mat floods the hub with battery warnings (its
telemetry limit lifted), so the backlog is on disk when the broker comes
back. Checked as a user would: the alarm pressed during the outage is the
first event the central gets after it; an alarm pressed while the backlog
drains is sent at once, ahead of what is still waiting; every event arrives;
and all the while ``status`` shows the forwarder's in-memory queue and the
port's uncommitted events within their bounds while tens of thousands are
pending on disk.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.serial.bedmat import encode
from drivers.serial.emulator import PtyDevice
from drivers.serial.port import MAX_UNCOMMITTED
from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import HubProcess, gpio_devices, hub_config
from hub.control.client import ControlClient
from tests.support.central import BASE

pytestmark = pytest.mark.slow

BACKLOG = 30_000
NO_LIMIT = "[limits]\ntelemetry_per_s = 1e9\ntelemetry_burst = 1e9\n"
CONTROL = '[control]\nsocket = "control.sock"\n'  # in the state directory


class Central:
    """What the central receives, in order, as ``(type, seq, battery)``; counted without decoding twice."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, int, Any]] = []
        self._lock = threading.Lock()
        self.sub = Subscriber(port=port, topics=[f"{BASE}/event/#"], persistent=True, client_id="central-backlog",
                              on_message=self._on)

    def _on(self, msg: Any) -> None:
        ev = msg.json()
        with self._lock:
            self.got.append((ev["type"], ev["seq"], ev["data"].get("battery_pct")))

    def snapshot(self) -> list[tuple[str, int, Any]]:
        with self._lock:
            return list(self.got)

    def wait(self, cond: Any, timeout: float, what: str) -> list[tuple[str, int, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.snapshot()
            if cond(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"the central never got {what}")


def write_all(mat: PtyDevice, data: bytes, timeout: float = 120) -> None:
    """Every byte into the mat's end of the pty, as fast as it takes them."""
    fd = mat.master
    assert fd is not None
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    view, off, end = memoryview(data), 0, time.monotonic() + timeout
    while off < len(view):
        try:
            off += os.write(fd, view[off:])
        except BlockingIOError:
            poller.poll(50)
        assert time.monotonic() < end, "the hub stopped reading the pty"


def status(hub: HubProcess) -> dict[str, Any]:
    """``carehub status`` through the control socket: it answers with the broker down too."""
    with ControlClient(hub.dir / "state" / "control.sock") as c:
        return c.request({"op": "status"})


def test_a_30k_backlog_drains_with_bounded_memory_and_alarms_go_first(tmp_path: Path) -> None:
    broker = Mosquitto(workdir=tmp_path / "broker", extra_config=["max_queued_messages 0"])  # the central keeps all
    broker.start()
    mat = PtyDevice(tmp_path / "tty-bed")
    mat.plug()
    central = Central(broker.port)
    # one message per event (batch_max 1): a batched drain is over before its paging can be watched
    # (tests/test_batch_e2e.py drains a backlog in batches)
    hub = HubProcess(hub_config(tmp_path / "hub", port=broker.port, extra=NO_LIMIT + CONTROL,
                                extra_mqtt="batch_max = 1", devices=gpio_devices() + serial_devices(bed=mat.link)))
    try:
        hub.start().wait_online()
        hub.wait_log(lambda e: e.get("event") == "serial_online")
        broker.stop()
        hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")

        # the outage: the mat floods (battery 5 / 90 in turns: one device.battery_low per pair), a press
        frames = []
        for i in range(BACKLOG):
            frames += [encode((2 * i) % 65536, "IN", 500, 5), encode((2 * i + 1) % 65536, "IN", 500, 90)]
        write_all(mat, b"".join(frames))
        peak_uncommitted = 0
        while True:
            st = status(hub)
            peak_uncommitted = max(peak_uncommitted, st["devices"]["bedmat-1"]["uncommitted"])
            if st["devices"]["bedmat-1"]["frames"] >= 2 * BACKLOG and st["devices"]["bedmat-1"]["uncommitted"] == 0:
                break
            time.sleep(0.05)
        hub.press("button-1")
        hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("type") == "alarm.button")
        st = status(hub)
        assert st["outbox"]["pending"] >= BACKLOG + 1, "the backlog is on disk"
        assert st["forwarder"]["queued"] == 0, "and not in memory: nothing is queued while offline"
        assert peak_uncommitted <= MAX_UNCOMMITTED + 200, "the port read ahead of the disk by a bounded part"
        seen = len(central.snapshot())

        broker.start()
        got = central.wait(lambda g: len(g) > seen and any(t != "hub.started" for t, _, _ in g[seen:]), 30,
                           "anything after the outage")
        first = next(t for t, _, _ in got[seen:] if t not in ("hub.started",))
        assert first == "alarm.button", f"the alarm pressed during the outage goes first, not {first}"

        # while the backlog drains: the queue in memory stays bounded, and a second alarm goes at once
        st = status(hub)
        window = st["forwarder"]["window_max"]
        assert st["outbox"]["pending"] > BACKLOG // 2 and st["forwarder"]["paging"]
        assert st["forwarder"]["queued"] <= window
        hub.press("cord-1")
        central.wait(lambda g: sum(t == "alarm.button" for t, _, _ in g[seen:]) >= 2, 30, "the second alarm")
        queued_seen = [status(hub)["forwarder"]["queued"] for _ in range(5)]
        assert max(queued_seen) <= window, "the in-memory queue stays within its bound during the drain"

        got = central.wait(lambda g: sum(1 for t, _, b in g if t == "device.battery_low" and b == 5) >= BACKLOG,
                           120, "every battery warning")
        after = got[seen:]
        second = [i for i, (t, _, _) in enumerate(after) if t == "alarm.button"][1]
        behind = [s for t, s, _ in after[second:] if t == "device.battery_low"]
        assert behind, "the second alarm went out ahead of the backlog still waiting, not after it"
        lows = [s for t, s, b in got if t == "device.battery_low" and b == 5]
        assert len(set(lows)) == BACKLOG, "every event of the backlog arrived"
        assert lows == sorted(lows), "the backlog in seq order"
        assert not [e for e in hub.log_lines() if e.get("level") in ("error", "critical")], hub.tail()
    finally:
        try:
            hub.stop()
        finally:
            central.sub.close()
            mat.unplug()
            broker.stop()
