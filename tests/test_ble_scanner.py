"""The BLE scanning layer on the simulated backend: allowlist, self-healing, one event per outage, sim ops.

Everything runs on :class:`drivers.ble.sim.SimBackend` with short silence and
backoff times; the last test drives it from another thread through a real
sim control socket, as the rig does from another process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.ble.backend import (
    AdapterGoneError,
    Advert,
    BackendError,
    InProgressError,
    ScannerBackend,
    make_backend,
)
from drivers.ble.scanner import BleScanner
from drivers.helpers import backoff_delay
from drivers.ble.sim import SimBackend, register_sim_ops
from drivers.base import Emit
from hub.events import Priority
from drivers.simctl import SimClient, SimCommandError, SimControl
from tests.support.until import until

A = "AA:BB:CC:DD:EE:01"
B = "AA:BB:CC:DD:EE:02"
STRANGER = "11:22:33:44:55:66"
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"


class Rig:
    """A SimBackend, a BleScanner on it, and what came out."""

    def __init__(self) -> None:
        self.sim = SimBackend(adapter="hci0")
        self.events: list[Emit] = []
        self.adverts: list[Advert] = []
        self.scanner: BleScanner | None = None
        self.task: asyncio.Task[None] | None = None
        self.pumps: set[asyncio.Task[None]] = set()

    def start(self, addresses: tuple[str, ...] = (A, B), **kw: Any) -> BleScanner:
        kw.setdefault("silence_s", 5.0)
        kw.setdefault("backoff_initial_s", 0.02)
        kw.setdefault("backoff_max_s", 0.1)
        kw.setdefault("rng", lambda: 0.0)

        async def emit(e: Emit) -> None:
            self.events.append(e)

        self.scanner = BleScanner(lambda: self.sim, addresses, self.adverts.append, emit=emit, **kw)
        self.task = asyncio.create_task(self.scanner.run())
        return self.scanner

    def pump(self, address: str = A, every_s: float = 0.01) -> asyncio.Task[None]:
        """Keep a configured sensor advertising."""

        async def loop() -> None:
            while True:
                self.sim.inject(Advert(address, rssi=-60, service_data={BTHOME: b"\x40\x01\x64"}))
                await asyncio.sleep(every_s)

        task = asyncio.create_task(loop())
        self.pumps.add(task)
        return task

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def close(self) -> None:
        for t in self.pumps:
            t.cancel()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        if self.scanner is not None and self.task is not None:
            self.scanner.stop()
            await asyncio.wait_for(self.task, 5)  # raises if run() failed


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.close()


# --- value objects, factory, bleak backend without a radio --------------------------------


def test_advert_normalises_and_reads_well() -> None:
    a = Advert("aa:bb:cc:dd:ee:01", name="kitchen", rssi=-71, service_data={"FCD2": b"\x40\x01\x64"},
               manufacturer_data={0x0499: b"\x05"}, t=12.5)
    assert a.address == A
    assert a.service_data == {BTHOME: b"\x40\x01\x64"}
    assert repr(a) == "Advert(AA:BB:CC:DD:EE:01 'kitchen' -71 dBm service_data={fcd2: 40 01 64} manufacturer_data={0x0499: 05} t=12.500)"
    with pytest.raises(Exception):
        a.rssi = 0  # type: ignore[misc]


def test_make_backend_and_bleak_backend_need_no_adapter() -> None:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakDBusError, BleakError

    from drivers.ble.bleak_backend import BleakBackend, map_bleak_error

    b = make_backend("bleak")
    assert isinstance(b, BleakBackend) and isinstance(b, ScannerBackend) and b.adapter == "default"
    assert make_backend("bleak", adapter="hci2").adapter == "hci2"
    s = make_backend("sim", adapter="hci3")
    assert isinstance(s, SimBackend) and s.adapter == "hci3"
    with pytest.raises(ValueError):
        make_backend("nope")

    assert isinstance(map_bleak_error(BleakDBusError("org.bluez.Error.InProgress", ["busy"])), InProgressError)
    assert isinstance(map_bleak_error(BleakDBusError("org.bluez.Error.NotReady", ["off"])), AdapterGoneError)
    assert isinstance(map_bleak_error(BleakError("adapter 'hci0' not found")), AdapterGoneError)
    assert isinstance(
        map_bleak_error(BleakBluetoothNotAvailableError("none", BleakBluetoothNotAvailableReason.NO_BLUETOOTH)),
        AdapterGoneError,
    )
    other = map_bleak_error(BleakDBusError("org.bluez.Error.Failed", ["?"]))
    assert type(other) is BackendError and other.reason == "error"

    got: list[Advert] = []
    b._callback = got.append  # what start() sets; the detection callback is plain code
    adv = AdvertisementData("t", {}, {BTHOME: b"\x40"}, [], None, -80, ())
    b._detected(BLEDevice("aa:bb:cc:dd:ee:01", None, None), adv)
    assert got[0].address == A and got[0].service_data == {BTHOME: b"\x40"} and got[0].rssi == -80


def test_backoff_is_exponential_jittered_and_capped() -> None:
    assert [backoff_delay(n, 1.0, 60.0, 0.5, 0.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, 1.0, 60.0, 0.5, 0.999) == pytest.approx(4.004, abs=0.01)
    assert backoff_delay(10_000, 1.0, 60.0, 0.5, 0.5) == 45.0


# --- the scanner --------------------------------------------------------------------------


async def test_allowlist_filters_and_counts(rig: Rig) -> None:
    scanner = rig.start(addresses=("aa:bb:cc:dd:ee:01", B))
    await until(lambda: rig.sim.running, what="scan running")
    for addr in (A, STRANGER, B, "22:22:22:22:22:22", A.lower()):
        assert rig.sim.inject(Advert(addr, rssi=-50))
    assert [a.address for a in rig.adverts] == [A, B, A]
    h = scanner.health()
    assert h["state"] == "ok" and h["adapter"] == "hci0"
    assert (h["adverts_total"], h["adverts_allowed"], h["dropped"], h["rebuilds"]) == (5, 3, 2, 0)
    assert h["last_advert_s_ago"] is not None and h["last_advert_s_ago"] < 1
    assert rig.events == []


async def test_a_failing_consumer_does_not_stop_the_scan(rig: Rig) -> None:
    scanner = rig.start()
    scanner.on_advert = lambda a: 1 / 0
    await until(lambda: rig.sim.running)
    for _ in range(3):
        rig.sim.inject(Advert(A))
    h = scanner.health()
    assert h["state"] == "ok" and h["adverts_allowed"] == 3 and h["callback_errors"] == 3


async def test_in_progress_on_start_degrades_once_backs_off_and_recovers(rig: Rig) -> None:
    rig.sim.fail_next_start("in_progress", times=3)
    scanner = rig.start()
    await until(lambda: rig.sim.running, what="the 4th start to succeed")
    assert [t for t, _ in rig.sim.start_log] and [o for _, o in rig.sim.start_log] == ["in_progress"] * 3 + ["ok"]
    times = [t for t, _ in rig.sim.start_log]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, expected in zip(gaps, (0.02, 0.04, 0.08)):  # rng=0: the full exponential delay
        assert gap >= expected * 0.9, gaps
    assert rig.types() == ["hub.ble_degraded"]
    deg = rig.events[0]
    assert deg.priority is Priority.HIGH and deg.data["reason"] == "in_progress" and deg.data["adapter"] == "hci0"
    assert scanner.health()["state"] == "degraded" and scanner.health()["reason"] == "in_progress"

    rig.sim.inject(Advert(A))
    await until(lambda: len(rig.events) == 2, what="recovered")
    rec = rig.events[1]
    assert rec.type == "hub.ble_recovered" and rec.priority is Priority.NORMAL
    assert rec.data["adapter"] == "hci0" and rec.data["outage_s"] >= 0.1
    h = scanner.health()
    assert h["state"] == "ok" and h["rebuilds"] == 3
    assert "reason" not in h


async def test_silence_degrades_rebuilds_and_recovers(rig: Rig) -> None:
    scanner = rig.start(silence_s=0.3)
    await until(lambda: rig.sim.running)
    pump = rig.pump()
    await asyncio.sleep(0.45)  # longer than silence_s while adverts flow: nothing happens
    assert rig.events == [] and scanner.rebuilds == 0

    rig.sim.go_silent()
    t0 = time.monotonic()
    await until(lambda: rig.types() == ["hub.ble_degraded"], what="degraded after silence")
    assert 0.2 <= time.monotonic() - t0 < 1.0
    assert rig.events[0].data["reason"] == "silent" and rig.events[0].data["adapter"] == "hci0"
    await until(lambda: len(rig.events) == 2, what="recovered after the rebuild")
    assert rig.types() == ["hub.ble_degraded", "hub.ble_recovered"]
    assert scanner.rebuilds == 1 and rig.sim.counts["stops"] == 1 and rig.sim.counts["starts"] == 2
    pump.cancel()


async def test_failure_reported_by_a_running_backend_rebuilds_it(rig: Rig) -> None:
    scanner = rig.start()
    await until(lambda: rig.sim.running)
    rig.pump()
    await until(lambda: scanner.adverts_allowed > 0)
    assert rig.sim.fail_now("in_progress")
    await until(lambda: len(rig.events) == 2, what="degraded and recovered")
    assert rig.types() == ["hub.ble_degraded", "hub.ble_recovered"]
    assert rig.events[0].data["reason"] == "in_progress" and scanner.rebuilds == 1


async def test_adapter_gone_and_back_as_hci1(rig: Rig) -> None:
    scanner = rig.start()
    await until(lambda: rig.sim.running)
    rig.pump()
    await until(lambda: scanner.adverts_allowed > 0)

    rig.sim.remove_adapter()
    await until(lambda: rig.sim.counts["start_failures"] >= 4, what="failed rebuilds while unplugged")
    assert rig.types() == ["hub.ble_degraded"]
    assert rig.events[0].data == {"reason": "adapter_gone", "detail": "adapter hci0 removed (simulated)", "adapter": "hci0"}
    assert scanner.health()["state"] == "degraded"

    assert rig.sim.add_adapter() == "hci1"
    await until(lambda: len(rig.events) == 2, what="recovered on hci1")
    assert rig.events[1].type == "hub.ble_recovered" and rig.events[1].data["adapter"] == "hci1"
    h = scanner.health()
    assert h["state"] == "ok" and h["adapter"] == "hci1" and h["rebuilds"] >= 4


async def test_no_event_storm_one_degraded_per_outage(rig: Rig) -> None:
    scanner = rig.start(silence_s=0.15, backoff_max_s=0.03)
    await until(lambda: rig.sim.running)
    pump = rig.pump()
    await until(lambda: scanner.adverts_allowed > 0)

    # Outage 1: unplugged, and the first starts after it come back stuck in InProgress.
    rig.sim.fail_next_start("in_progress", times=6)
    rig.sim.remove_adapter()
    await until(lambda: rig.sim.counts["start_failures"] >= 12, what="a dozen failed rebuilds")
    assert rig.types() == ["hub.ble_degraded"]
    rig.sim.add_adapter("hci0")
    await until(lambda: len(rig.events) == 2, what="recovered")
    assert scanner._attempt == 0  # the backoff starts over after a recovery

    # Outage 2: silent, twice in a row (the first rebuild hears nothing either).
    pump.cancel()
    await until(lambda: len(rig.events) == 3, what="second outage")
    rebuilds = scanner.rebuilds
    await until(lambda: scanner.rebuilds >= rebuilds + 3, what="rebuilds during the second outage")
    rig.pump()
    await until(lambda: len(rig.events) == 4, what="second recovery")
    assert rig.types() == ["hub.ble_degraded", "hub.ble_recovered"] * 2
    assert [e.data["reason"] for e in rig.events[::2]] == ["adapter_gone", "silent"]


async def test_stop_tears_the_backend_down(rig: Rig) -> None:
    scanner = rig.start()
    await until(lambda: rig.sim.running)
    assert rig.task is not None
    scanner.stop()
    await asyncio.wait_for(rig.task, 2)
    assert not rig.sim.running and rig.sim.counts["stops"] == 1
    assert len(scanner._tasks) == 0


async def test_sim_ops_through_a_real_socket_from_outside(rig: Rig, tmp_path: Path) -> None:
    ctl = SimControl(tmp_path / "sim.sock")
    scanner = rig.start(addresses=(A,))
    register_sim_ops(ctl, rig.sim, scanner=scanner)
    await ctl.start()
    try:
        await until(lambda: rig.sim.running)

        def outside() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            with SimClient(ctl.path, timeout=5) as c:
                r = c.call({"op": "ble_advert", "address": A.lower(), "name": "bath", "rssi": -70,
                            "service_data_hex": {"fcd2": "40 01 64 02 ca 09"}})
                assert r == {"ok": True, "address": A, "delivered": True}
                c.call({"op": "ble_advert", "address": STRANGER})
                for bad in ({"op": "ble_advert", "address": "nope"},
                            {"op": "ble_advert", "address": A, "service_data_hex": {"fcd2": "zz"}},
                            {"op": "ble_fault", "kind": "meteor"}):
                    with pytest.raises(SimCommandError):
                        c.call(bad)
                seen["before"] = c.call({"op": "ble_state"})

                c.call({"op": "ble_fault", "kind": "adapter_gone"})
                deadline = time.monotonic() + 3
                while c.call({"op": "ble_state"})["scanner"]["state"] != "degraded":
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                assert not c.call({"op": "ble_advert", "address": A})["delivered"]
                back = c.call({"op": "ble_fault", "kind": "adapter_back", "adapter": "hci1"})
                assert back["adapter"] == "hci1"
                while not c.call({"op": "ble_advert", "address": A})["delivered"]:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                seen["after"] = c.call({"op": "ble_state"})
            return seen

        seen = await asyncio.to_thread(outside)
    finally:
        await ctl.close()

    first = rig.adverts[0]
    assert first.address == A and first.name == "bath" and first.rssi == -70
    assert first.service_data == {BTHOME: bytes.fromhex("400164 02ca09")}
    before = seen["before"]
    assert before["delivered"] == 2 and before["scanner"]["dropped"] == 1 and before["scanner"]["adverts_allowed"] == 1
    after = seen["after"]
    assert after["adapter"] == "hci1" and after["running"] and after["scanner"]["adapter"] == "hci1"
    await until(lambda: len(rig.events) == 2)
    assert [(e.type, e.data["adapter"]) for e in rig.events] == [("hub.ble_degraded", "hci0"), ("hub.ble_recovered", "hci1")]
