"""A full disk, end to end: the hub's state directory on a small tmpfs that another program fills.

The filler is a runaway log: it takes every block that comes free, so the
reserve the hub gives up is gone again at once and later alarms meet a disk
that refuses every commit. Checked as the alarm central and an installer
would check it:

* every press and every nurse call made during the full disk reaches the
  central (stored with the reserve, or held in memory and sent with seq 0);
  the nurse-call line gets its ACK only for calls the hub has taken, and the
  button shows the fault pattern while its alarm is only in memory;
* the dispenser's telemetry is refused: its frame is not ACKed, so it keeps
  re-sending, and nothing of it is lost;
* the central hears hub.degraded (store) during, hub.recovered after;
* the hub starts on a full disk and raises alarms;
* once space is back, everything is stored with gapless seqs (each held
  alarm again, same id, with its seq) and telemetry flows within seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.harness.broker import request
from tests.support.central import BASE, events
from hil.harness.emulators import EmulatedDevice, serial_devices
from hil.harness.hubproc import HubProcess, gpio_devices
from hil.harness.smallfs import Filler, mount_small_fs, unmount

pytestmark = pytest.mark.slow


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return result


@pytest.fixture
def residence(tmp_path: Path) -> Iterator[tuple[Path, EmulatedDevice, EmulatedDevice]]:
    """A hub dir whose state/ is a 6 MiB tmpfs, with a nurse-call line and a dispenser on ptys."""
    hub_dir = tmp_path / "hub"
    mount_small_fs(hub_dir / "state", "6m")
    espa = EmulatedDevice("espa444", tmp_path, "espa").start()
    disp = EmulatedDevice("dispenser", tmp_path, "disp").start()
    yield hub_dir, espa, disp
    espa.stop()
    disp.stop()
    unmount(hub_dir / "state")


def devices(espa: EmulatedDevice, disp: EmulatedDevice) -> str:
    return gpio_devices() + serial_devices(espa=espa, disp=disp)


def press_and_ack(hub: HubProcess, sub: Any, port: int, n_before: int) -> dict[str, Any]:
    """Press the button; wait for the alarm at the central; acknowledge it as an operator would."""
    hub.press()
    alarms = until(lambda: events(sub, "alarm.button")[n_before:], what="the alarm at the central")
    alarm = alarms[0]
    reply = request("127.0.0.1", port, f"{BASE}/cmd/ack", {"event_id": alarm["id"], "by": "operator-1"})
    assert reply["ok"], reply
    return alarm


def seqs_gapless(sub: Any) -> list[int]:
    seqs = sorted({e["seq"] for e in events(sub) if e["seq"] > 0})
    assert seqs == list(range(1, seqs[-1] + 1)), f"gaps in {seqs}"
    return seqs


def test_alarms_and_nurse_calls_reach_the_central_through_a_full_disk(residence, make_hub, subscribe, broker):
    hub_dir, espa, disp = residence
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(name="hub", devices=devices(espa, disp))
    assert hub.dir == hub_dir
    hub.start().wait_online()
    filler = Filler(hub_dir / "state" / "runaway.log", runaway=True).start()
    try:
        sub.wait_for(lambda _: any(e["data"].get("component") == "store" for e in events(sub, "hub.degraded")), 15)

        pressed = [press_and_ack(hub, sub, broker.port, i) for i in range(5)]
        for i, address in enumerate(("101", "102", "103")):
            espa.send("call", address=address, text=f"Rom {address}", priority="1")
            until(lambda: len(events(sub, "alarm.nursecall")) > i, what=f"nurse call {address} at the central")
        until(lambda: espa.state()["emulator"]["delivered"] == 3, what="the line's ACKs")
        calls = events(sub, "alarm.nursecall")
        assert sorted(c["data"]["call_address"] for c in calls) == ["101", "102", "103"]

        # a press while the disk refuses everything: held in memory, shown as a fault on the button
        hub.press(device="cord-1")
        cord = until(lambda: events(sub, "alarm.button")[5:], what="the cord's alarm")[0]
        if cord["seq"] == 0:
            assert hub.state("cord-1")["feedback"] == "fault"

        disp.send("dose_due", dose_id=7)
        cpu0 = cpu_s(hub.proc.pid)
        time.sleep(2.0)
        cpu = cpu_s(hub.proc.pid) - cpu0
        assert cpu < 0.5, f"the hub used {cpu:.2f}s of CPU in 2s on a full disk: something spins"
        assert disp.state()["emulator"]["unacked"], "the dispenser's frame was ACKed although it was not stored"
        assert not events(sub, "medication.due")
    finally:
        filler.stop()

    # space is back: held alarms are stored (same id, a seq) and sent again; telemetry flows
    until(lambda: events(sub, "medication.due"), timeout=15, what="telemetry after the disk came back")
    assert disp.unacked(timeout=10) == []
    until(lambda: any(e["data"].get("component") == "store" for e in events(sub, "hub.recovered")), 15)
    everything = [*pressed, cord, *calls]
    held = [e["id"] for e in everything if e["seq"] == 0]
    for event_id in held:
        until(lambda: any(e["id"] == event_id and e["seq"] > 0 for e in events(sub)), what=f"held {event_id} stored")
    seqs_gapless(sub)
    assert not [e for e in hub.log_lines() if e.get("event") == "task_failed"], "a task died of the full disk"
    assert hub.returncode is None


def test_the_hub_starts_on_a_full_disk_and_raises_alarms(residence, make_hub, subscribe, broker):
    hub_dir, espa, disp = residence
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(name="hub", devices=devices(espa, disp), extra_store="reserve_kb = 0")
    hub.start().wait_online()
    press_and_ack(hub, sub, broker.port, 0)
    hub.stop()

    filler = Filler(hub_dir / "state" / "runaway.log", runaway=True).start()
    try:
        hub.start().wait_online()
        alarm = press_and_ack(hub, sub, broker.port, 1)
        assert alarm["seq"] == 0, "the store could not open: the alarm is sent from memory"
        espa.send("call", address="101", text="Rom 101", priority="1")
        call = until(lambda: events(sub, "alarm.nursecall"), what="the nurse call")[0]
        until(lambda: espa.state()["emulator"]["delivered"] == 1, what="the line's ACK")
        assert any(e["event"] == "store_open_failed" for e in hub.log_lines())
    finally:
        filler.stop()
    for event_id in (alarm["id"], call["id"]):
        until(lambda: any(e["id"] == event_id and e["seq"] > 0 for e in events(sub)), timeout=15,
              what=f"held {event_id} stored once the disk has room")
    assert any(e["event"] == "store_opened_late" for e in hub.log_lines())
    seqs_gapless(sub)
    assert not [e for e in hub.log_lines() if e.get("event") == "task_failed"], "a task died of the full disk"
    assert hub.returncode is None
