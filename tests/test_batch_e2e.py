"""Batches of telemetry (contract 1.5) end to end: the real hub, a real bed mat pty, a real Mosquitto.

A burst of serial telemetry while the broker is up, then an outage with a
backlog and a press, drained after it: the central (the HIL recorder, which
checks every event against the contract, unpacks batches and flags an alarm
or a high event that came in one) gets every event, each seq once (a copy the
broker sends again after its restart is the same event, QoS 1), without a
gap, and most of them in batches; the alarm pressed during the outage goes
first after it, alone on its own topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.serial.bedmat import encode
from drivers.serial.emulator import PtyDevice
from hil.central import CentralRecorder
from hil.harness.broker import Mosquitto
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import HubProcess, gpio_devices, hub_config
from tests.test_backlog_e2e import NO_LIMIT, status, write_all

pytestmark = pytest.mark.slow

BURST = 3000
BACKLOG = 2000


def battery_flips(n: int, start: int, low: int) -> bytes:
    """``n`` device.battery_low events from the mat: battery ``low`` then 90, in turns."""
    frames = []
    for i in range(start, start + n):
        frames += [encode((2 * i) % 65536, "IN", 500, low), encode((2 * i + 1) % 65536, "IN", 500, 90)]
    return b"".join(frames)


def lows(central: CentralRecorder, battery: int) -> list[dict]:
    return [e for e in central.events("device.battery_low") if e["data"].get("battery_pct") == battery]


@contextmanager
def rig(tmp_path: Path, client_id: str) -> Iterator[tuple[Mosquitto, PtyDevice, CentralRecorder, HubProcess]]:
    """A Mosquitto, the bed mat's pty, the central (the HIL recorder) and a hub with the mat and the buttons
    (no telemetry limit), not started; all stopped after."""
    broker = Mosquitto(workdir=tmp_path / "broker", extra_config=["max_queued_messages 0"])
    broker.start()
    mat = PtyDevice(tmp_path / "tty-bed")
    mat.plug()
    central = CentralRecorder(port=broker.port, first_seq=1, client_id=client_id)
    hub = HubProcess(hub_config(tmp_path / "hub", port=broker.port, extra=NO_LIMIT, devices=devices(mat)))
    try:
        yield broker, mat, central, hub
    finally:
        try:
            hub.stop()
        finally:
            central.close()
            mat.unplug()
            broker.stop()


def devices(mat: PtyDevice) -> str:
    return gpio_devices() + serial_devices(bed=mat.link)


def assert_gapless(central: CentralRecorder) -> None:
    assert central.problems() == [], central.problems()[:10]  # no seq gap from 1, no odd topic or priority
    seqs = [e["seq"] for e in central.events()]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "every seq once, none missing"


def test_a_burst_and_an_outage_drain_arrive_batched_each_event_once_without_a_gap(tmp_path: Path) -> None:
    with rig(tmp_path, "central-batch") as (broker, mat, central, hub):
        hub.start().wait_online()
        hub.wait_log(lambda e: e.get("event") == "serial_online")

        # a burst with the broker up: the first events go alone, what waits behind them in batches
        write_all(mat, battery_flips(BURST, 0, 5))
        assert central.wait_for(lambda a: sum(x.event.get("type") == "device.battery_low" for x in a) >= BURST, 60)
        assert len(lows(central, 5)) == BURST

        # an outage: the backlog and a press wait on disk, then drain
        broker.stop()
        hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
        write_all(mat, battery_flips(BACKLOG, BURST, 6))
        until = time.monotonic() + 60
        while status(hub)["outbox"]["pending"] < BACKLOG:
            assert time.monotonic() < until, "the backlog never reached the outbox"
            time.sleep(0.05)
        hub.press("button-1")
        hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("type") == "alarm.button")
        seen = len(central.arrivals())
        broker.start()
        assert central.wait_for(lambda a: sum(x.event.get("data", {}).get("battery_pct") == 6 for x in a) >= BACKLOG,
                                60), central.summary()

        # (a copy of one the broker had not heard the central's PUBACK for may come first: QoS 1)
        after = [a for a in central.arrivals()[seen:] if a.event.get("type") != "hub.started" and not a.duplicate]
        assert after[0].event["type"] == "alarm.button", "the alarm pressed during the outage goes first"
        assert after[0].topic.endswith("/event/alarm.button"), "alone, on its own topic"
        arrivals = central.arrivals()
        batched = [a for a in arrivals if a.topic.endswith("/events")]
        assert {a.event["priority"] for a in batched} <= {"normal", "low"}
        assert any(a.event["data"].get("battery_pct") == 5 for a in batched), "the burst went partly in batches"
        assert any(a.event["data"].get("battery_pct") == 6 for a in batched), "the drain went in batches"
        assert len(batched) > (BURST + BACKLOG) // 2, "most of the telemetry came batched"

        summary = central.summary()
        assert summary["conflicts"] == 0, summary  # a copy (QoS 1, across the broker's restart) is the same event
        assert len(lows(central, 5)) == BURST and len(lows(central, 6)) == BACKLOG
        assert_gapless(central)
        assert not [e for e in hub.log_lines() if e.get("level") in ("error", "critical")], hub.tail()


def test_batch_max_takes_effect_on_a_reload(tmp_path: Path) -> None:
    """``[mqtt] batch_max = 1`` by SIGHUP (for a central that cannot read batches yet): the next burst goes one
    event a message; the one before it went batched; every event arrives once, without a gap."""
    from tests.test_reload_e2e import reload

    with rig(tmp_path, "central-batch-reload") as (broker, mat, central, hub):
        hub.start().wait_online()
        hub.wait_log(lambda e: e.get("event") == "serial_online")
        write_all(mat, battery_flips(1000, 0, 5))
        assert central.wait_for(lambda a: sum(x.event.get("data", {}).get("battery_pct") == 5 for x in a) >= 1000, 60)

        hub_config(tmp_path / "hub", port=broker.port, extra=NO_LIMIT, devices=devices(mat), extra_mqtt="batch_max = 1")
        reload(hub)
        write_all(mat, battery_flips(1000, 1000, 6))
        assert central.wait_for(lambda a: sum(x.event.get("data", {}).get("battery_pct") == 6 for x in a) >= 1000, 60)

        arrivals = [a for a in central.arrivals() if not a.duplicate]
        batched = {pct: [a for a in arrivals if a.event.get("data", {}).get("battery_pct") == pct
                         and a.topic.endswith("/events")] for pct in (5, 6)}
        assert batched[5], "before the reload the burst went partly in batches"
        assert batched[6] == [], "after batch_max = 1 every event goes alone, on its own topic"
        assert_gapless(central)
