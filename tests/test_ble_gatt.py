"""GATT connections on the simulated peripherals: battery polling, notifications, outages, the connection limit, sim ops.

Everything runs on :class:`drivers.ble.gatt_sim.SimGattRegistry` with short
backoff and battery intervals; the last test drives it from another thread
through a real sim control socket, as the rig does from another process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.ble.gatt import (
    BATTERY_LEVEL_UUID,
    DecodeError,
    GattDevice,
    GattManager,
    NotifyMapping,
    make_client,
)
from drivers.ble.gatt_sim import SimGattClient, SimGattRegistry, register_gatt_sim_ops
from drivers.base import Emit
from hub.events import Priority
from drivers.simctl import SimClient, SimCommandError, SimControl
from tests.support.until import until

A = "AA:BB:CC:DD:EE:01"
FALL = "0000ff01-0000-1000-8000-00805f9b34fb"
TEMP = "ff02"


class Rig:
    """A SimGattRegistry, a GattManager on it, and what came out."""

    def __init__(self) -> None:
        self.sim = SimGattRegistry()
        self.events: list[tuple[str, Emit]] = []
        self.battery: list[tuple[str, int]] = []
        self.manager: GattManager | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, devices: list[GattDevice], **kw: Any) -> GattManager:
        kw.setdefault("backoff_initial_s", 0.02)
        kw.setdefault("backoff_max_s", 0.1)
        kw.setdefault("rng", lambda: 0.0)
        kw.setdefault("connect_timeout_s", 1.0)

        async def emit(device_id: str, e: Emit) -> None:
            self.events.append((device_id, e))

        self.manager = GattManager(devices, self.sim.client, emit,
                                   on_battery=lambda d, pct: self.battery.append((d, pct)), **kw)
        self.task = asyncio.create_task(self.manager.run())
        return self.manager

    def types(self, device_id: str | None = None) -> list[str]:
        return [e.type for d, e in self.events if device_id is None or d == device_id]

    def health(self, device_id: str = "fall1") -> dict[str, Any]:
        assert self.manager is not None
        return self.manager.health()[device_id]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    if r.manager is not None and r.task is not None:
        r.manager.stop()
        await asyncio.wait_for(r.task, 3)
        assert r.sim.busy == 0, "every connection closed on stop"


def fall_device(address: str = A, device_id: str = "fall1", battery_interval_s: float | None = 0.05) -> GattDevice:
    return GattDevice(
        device_id,
        address.lower(),
        (
            NotifyMapping(FALL, "fall.detected", Priority.CRITICAL, decode="uint8", key="confidence"),
            NotifyMapping(TEMP, "sensor.temperature", decode="int16le", scale=0.01, key="celsius"),
        ),
        battery_interval_s=battery_interval_s,
    )


# --- the pure pieces ---------------------------------------------------------------------------


def test_mapping_decodes() -> None:
    m = NotifyMapping("FF02", "sensor.temperature", decode="int16le", scale=0.01, key="celsius")
    assert m.uuid == "0000ff02-0000-1000-8000-00805f9b34fb"
    assert m.emit(bytes.fromhex("2a09")) == Emit("sensor.temperature", Priority.NORMAL, {"celsius": 23.46, "raw": "2a09"})
    assert m.value(bytes.fromhex("18fc")) == pytest.approx(-10.0)
    assert NotifyMapping(FALL, "x", decode="uint16le").value(b"\xff\xff") == 65535
    assert NotifyMapping(FALL, "x", decode="utf8", key="s").value("hjälp".encode()) == "hjälp"
    assert NotifyMapping(FALL, "x").value(b"\x01\xab") == "01ab"
    assert NotifyMapping(FALL, "x", priority="high").priority is Priority.HIGH  # type: ignore[arg-type]
    for decode, bad in (("uint8", b""), ("uint8", b"\x01\x02"), ("int16le", b"\x01"), ("utf8", b"\xff\xfe")):
        with pytest.raises(DecodeError):
            NotifyMapping(FALL, "x", decode=decode).value(bad)  # type: ignore[arg-type]
    for bad_kw in ({"decode": "float"}, {"decode": "utf8", "scale": 2.0}, {"key": "raw"}, {"event_type": ""}):
        with pytest.raises(ValueError):
            NotifyMapping(**{"uuid": FALL, "event_type": "x", **bad_kw})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NotifyMapping("nonsense", "x")


def test_make_client_imports_lazily() -> None:
    reg = SimGattRegistry()
    c = make_client("sim", A.lower(), registry=reg)
    assert isinstance(c, SimGattClient) and c.address == A and not c.is_connected
    from drivers.ble.gatt_bleak import BleakGattClient

    b = make_client("bleak", A.lower(), adapter="hci0")
    assert isinstance(b, BleakGattClient) and not b.is_connected  # no adapter touched
    with pytest.raises(ValueError):
        make_client("carrier-pigeon", A)
    with pytest.raises(ValueError):
        GattManager([fall_device(), fall_device()], reg.client)


# --- the manager ---------------------------------------------------------------------------------


async def test_connects_and_reads_battery_at_interval(rig: Rig) -> None:
    p = rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"}, battery=87)
    rig.start([fall_device(battery_interval_s=0.05)])
    await until(lambda: rig.health()["state"] == "connected", what="connected")
    await until(lambda: len(rig.battery) >= 3, what="three battery reads")
    assert rig.battery[0] == ("fall1", 87)
    rig.sim.set_value(A, "2a19", b"\x2a")
    await until(lambda: rig.battery[-1] == ("fall1", 42), what="new battery level")
    h = rig.health()
    assert h["last_battery"] == 42 and h["connects"] == 1 and h["failures"] == 0
    # at the interval, not in a busy loop
    assert p.counts["reads"] < 40
    assert rig.events == []  # a device that just connects is not news


async def test_notification_mapped_to_configured_event(rig: Rig) -> None:
    rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"})
    rig.start([fall_device(battery_interval_s=None)])
    await until(lambda: rig.health()["state"] == "connected")
    await until(lambda: rig.sim.notify(A, "ff01", b"\x5a") == 1, what="subscribed")
    assert rig.sim.notify(A, TEMP, bytes.fromhex("2a09")) == 1
    await until(lambda: len(rig.events) == 2)
    assert rig.events == [
        ("fall1", Emit("fall.detected", Priority.CRITICAL, {"confidence": 90, "raw": "5a"})),
        ("fall1", Emit("sensor.temperature", Priority.NORMAL, {"celsius": 23.46, "raw": "2a09"})),
    ]
    h = rig.health()
    assert h["notifications"] == 2 and h["last_notify_s_ago"] is not None and h["last_battery"] is None


async def test_a_decoded_notification_is_heard_before_its_event_and_garbage_or_connects_are_not(rig: Rig) -> None:
    heard: list[tuple[str, int]] = []
    rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"})
    rig.start([fall_device(battery_interval_s=None)], on_heard=lambda d: heard.append((d, len(rig.events))))
    await until(lambda: rig.health()["state"] == "connected")
    assert heard == [], "a connection is the hub's doing, not the device speaking"
    await until(lambda: rig.sim.notify(A, FALL, b"\x5a") == 1, what="subscribed")
    await until(lambda: len(rig.events) == 1)
    assert heard == [("fall1", 0)]  # supervision hears it before the event is queued
    rig.sim.notify(A, FALL, b"\x01\x02")  # does not decode as uint8
    await until(lambda: rig.health()["decode_errors"] == 1)
    assert heard == [("fall1", 0)]


async def test_connection_loss_offline_once_then_online_and_notifications_again(rig: Rig) -> None:
    rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"})
    rig.start([fall_device()], backoff_initial_s=0.05)
    await until(lambda: rig.health()["state"] == "connected")
    rig.sim.set_link(A, False)  # out of range: the connection drops, attempts fail
    await until(lambda: rig.health()["failures"] >= 3, what="failed reconnects")
    assert rig.types() == ["device.offline"]
    d, off = rig.events[0]
    assert d == "fall1" and off.priority is Priority.HIGH and off.data == {"reason": "connection_lost", "address": A}
    assert rig.health()["state"] == "offline" and rig.health()["losses"] == 1
    assert rig.sim.notify(A, FALL, b"\x01") == 0  # nobody listening while it is away

    rig.sim.set_link(A, True)
    await until(lambda: rig.types() == ["device.offline", "device.online"], what="online")
    assert rig.events[1][1].priority is Priority.NORMAL and rig.events[1][1].data["offline_s"] > 0
    await until(lambda: rig.sim.notify(A, FALL, b"\x07") == 1, what="resubscribed")
    await until(lambda: len(rig.events) == 3)
    assert rig.events[2] == ("fall1", Emit("fall.detected", Priority.CRITICAL, {"confidence": 7, "raw": "07"}))
    h = rig.health()
    assert h["state"] == "connected" and h["connects"] == 2

    # a drop while in range: straight back, one more offline/online pair
    rig.sim.drop(A)
    await until(lambda: rig.types().count("device.online") == 2, what="second online")
    assert rig.types().count("device.offline") == 2


async def test_unreachable_device_retried_with_growing_delays(rig: Rig) -> None:
    p = rig.sim.add(A, {FALL: b"\x00"}, reachable=False)
    attempts: list[float] = []
    real_client = rig.sim.client

    def counting(address: str) -> SimGattClient:
        attempts.append(time.monotonic())
        return real_client(address)

    rig.sim.client = counting  # type: ignore[method-assign]
    rig.start([fall_device()], backoff_initial_s=0.02, backoff_max_s=0.16)
    await until(lambda: len(attempts) >= 6, what="six attempts")
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    # doubling from 0.02 s, capped at 0.16 s (lower bounds only: a loaded machine only adds)
    for gap, expected in zip(gaps, (0.02, 0.04, 0.08, 0.16, 0.16), strict=False):
        assert gap >= expected * 0.9, gaps
    assert gaps[4] < 1.0, gaps
    assert rig.types() == ["device.offline"]
    assert rig.events[0][1].data["reason"] == "connect_failed"
    assert p.counts["refused"] >= 5 and rig.health()["state"] == "offline"
    p.reachable = True
    await until(lambda: rig.types() == ["device.offline", "device.online"])


async def test_max_connections_respected(rig: Rig) -> None:
    addrs = [f"AA:BB:CC:DD:EE:{i:02X}" for i in range(1, 6)]
    for a in addrs:
        rig.sim.add(a, {FALL: b"\x00"}, connect_delay_s=0.01)
    devices = [GattDevice(f"dev{i}", a, (NotifyMapping(FALL, "x.y", decode="uint8"),), battery_interval_s=0.02)
               for i, a in enumerate(addrs)]
    m = rig.start(devices, max_connections=2)
    await until(lambda: sum(h["state"] == "connected" for h in m.health().values()) == 2)
    states = sorted(h["state"] for h in m.health().values())
    assert states == ["connected", "connected", "waiting", "waiting", "waiting"]
    # connections come and go; the limit holds throughout
    connected = [d for d, h in m.health().items() if h["state"] == "connected"]
    for d in connected:
        rig.sim.drop(addrs[int(d[3:])])
    for _ in range(3):
        await asyncio.sleep(0.05)
        for a in addrs:
            rig.sim.drop(a)
    await until(lambda: all(h["connects"] >= 1 for h in m.health().values()), what="every device had its turn")
    assert rig.sim.max_busy == 2
    assert rig.sim.busy <= 2


async def test_malformed_notification_counted_not_raised(rig: Rig) -> None:
    rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"})
    rig.start([fall_device(battery_interval_s=None)])
    await until(lambda: rig.sim.notify(A, FALL, b"") == 1, what="subscribed")
    rig.sim.notify(A, FALL, b"\x01\x02\x03")
    rig.sim.notify(A, TEMP, b"\x01")
    rig.sim.notify(A, FALL, b"\x05")
    await until(lambda: len(rig.events) == 1)
    assert rig.events[0][1].data == {"confidence": 5, "raw": "05"}
    h = rig.health()
    assert h["decode_errors"] == 3 and h["notifications"] == 1 and h["state"] == "connected"


async def test_bad_battery_value_and_missing_characteristic_keep_the_connection(rig: Rig) -> None:
    rig.sim.add(A, {FALL: b"\x00"}, battery=None)  # no battery service, no ff02
    rig.start([fall_device(battery_interval_s=0.02)])
    await until(lambda: rig.health().get("battery_errors", 0) >= 2)
    h = rig.health()
    assert h["state"] == "connected" and h["notify_errors"] == 1 and h["connects"] == 1
    rig.sim.set_value(A, BATTERY_LEVEL_UUID, b"\xc8")  # 200 %: nonsense
    await asyncio.sleep(0.05)
    assert rig.battery == [] and rig.health()["last_battery"] is None
    rig.sim.set_value(A, "2a19", b"\x32")
    await until(lambda: rig.battery[-1:] == [("fall1", 50)])
    assert rig.events == []


async def test_stop_while_connecting_and_cancellation(rig: Rig) -> None:
    rig.sim.add(A, {FALL: b"\x00"}, connect_delay_s=10)
    m = rig.start([fall_device()], connect_timeout_s=20)
    await until(lambda: rig.sim.busy == 1)
    m.stop()
    assert rig.task is not None
    await asyncio.wait_for(rig.task, 2)
    assert rig.sim.busy == 0 and len(m._tasks) == 0
    assert rig.health()["state"] == "stopped"

    # cancellation closes connections too
    rig.sim.get(A).connect_delay_s = 0
    rig.task = asyncio.create_task(m.run())
    m._stopping = False
    await until(lambda: rig.sim.busy == 1 and rig.health()["state"] == "connected")
    rig.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rig.task
    assert rig.sim.busy == 0 and len(m._tasks) == 0
    rig.manager = None


async def test_sim_ops_through_a_real_socket_from_outside(rig: Rig, tmp_path: Path) -> None:
    rig.sim.add(A, {FALL: b"\x00", TEMP: b"\x00\x00"}, battery=90)
    ctl = SimControl(tmp_path / "sim.sock")
    m = rig.start([fall_device(battery_interval_s=0.02)])
    register_gatt_sim_ops(ctl, rig.sim, manager=m)
    await ctl.start()
    try:
        await until(lambda: rig.health()["state"] == "connected")

        def outside() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            deadline = time.monotonic() + 8
            with SimClient(ctl.path, timeout=5) as c:
                while c.call({"op": "gatt_notify", "address": A.lower(), "uuid": "ff01", "hex": "63"})["delivered"] != 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                assert c.call({"op": "gatt_set", "address": A, "uuid": "2a19", "hex": "0a"}) == {
                    "ok": True, "address": A, "uuid": "2a19"}
                for bad in ({"op": "gatt_notify", "address": "nope", "uuid": "ff01", "hex": "00"},
                            {"op": "gatt_notify", "address": "11:22:33:44:55:66", "uuid": "ff01", "hex": "00"},
                            {"op": "gatt_notify", "address": A, "uuid": "zz", "hex": "00"},
                            {"op": "gatt_set", "address": A, "uuid": "2a19", "hex": "xyz"},
                            {"op": "gatt_link", "address": A, "up": "yes"}):
                    with pytest.raises(SimCommandError):
                        c.call(bad)
                while c.call({"op": "gatt_state"})["manager"]["fall1"]["last_battery"] != 10:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                down = c.call({"op": "gatt_link", "address": A, "up": False})
                assert down["reachable"] is False and down["connected"] == 0
                while c.call({"op": "gatt_state"})["manager"]["fall1"]["state"] != "offline":
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                c.call({"op": "gatt_link", "address": A, "up": True})
                while c.call({"op": "gatt_state"})["manager"]["fall1"]["state"] != "connected":
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                assert c.call({"op": "gatt_drop", "address": A})["dropped"] == 1
                seen["state"] = c.call({"op": "gatt_state"})
            return seen

        seen = await asyncio.wait_for(asyncio.to_thread(outside), 10)
    finally:
        await ctl.close()
    st = seen["state"]
    assert st["peripherals"][A]["values"]["2a19"] == "0a" and st["max_busy"] == 1
    await until(lambda: rig.types().count("device.online") == 2)
    assert rig.types()[:3] == ["fall.detected", "device.offline", "device.online"]
    assert rig.events[0][1].data == {"confidence": 99, "raw": "63"}
