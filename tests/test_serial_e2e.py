"""Serial sensors end to end: emulator on a real pty → hub subprocess → Mosquitto → subscriber."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil.harness.broker import request
from tests.support.central import BASE, events
from hil.harness.emulators import EmulatedDevice, serial_devices


def test_bed_mat_exit_and_return(make_hub, subscribe, emulate):
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(bed=bed)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in", pressure=700, battery=90)
    time.sleep(0.3)
    bed.send("occupancy", state="out", pressure=20, battery=90)
    sub.wait_for(lambda _: events(sub, "bed.exit"))
    (ex,) = events(sub, "bed.exit")
    assert ex["source"] == {"device": "bedmat-1", "kind": "bed_mat", "room": "bedroom"}
    assert ex["route"] == "care"
    bed.send("occupancy", state="in", pressure=650, battery=90)
    sub.wait_for(lambda _: [e for e in events(sub, "bed.return") if not e["data"].get("baseline")])
    returns = [e for e in events(sub, "bed.return") if not e["data"].get("baseline")]
    assert returns and returns[0]["seq"] > ex["seq"]


def test_turning_over_is_not_an_exit(make_hub, subscribe, emulate):
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(bed=bed)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in")
    for _ in range(3):
        bed.send("occupancy", state="out")
        time.sleep(0.2)
        bed.send("occupancy", state="in")
        time.sleep(0.2)
    time.sleep(1.0)
    st = request("127.0.0.1", hub_port(hub), f"{BASE}/cmd/status", {})
    assert st["devices"]["bedmat-1"]["frames"] >= 7
    assert events(sub, "bed.exit") == []


def hub_port(hub) -> int:
    import tomllib

    return tomllib.loads(hub.config.read_text())["mqtt"]["broker"][0]["port"]


def test_dispenser_due_taken_fault_and_acks(make_hub, subscribe, emulate):
    disp = emulate("dispenser", "disp")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(disp=disp)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    disp.send("dose_due", dose_id=7)
    sub.wait_for(lambda _: events(sub, "medication.due"))
    disp.send("dose_taken", dose_id=7)
    sub.wait_for(lambda _: events(sub, "medication.taken"))
    disp.send("fault", fault="jammed")
    sub.wait_for(lambda _: events(sub, "device.fault"))
    due = events(sub, "medication.due")[0]
    assert due["route"] == "nurse" and due["data"]["dose_id"] == 7
    assert events(sub, "device.fault")[0]["data"]["fault"] == "jammed"
    # the hub acked every frame: nothing left for the dispenser to re-send, no duplicate events
    assert disp.unacked() == []
    time.sleep(1.5)
    assert len(events(sub, "medication.due")) == 1 and len(events(sub, "medication.taken")) == 1


def test_espa_call_becomes_nursecall_alarm(make_hub, subscribe, emulate):
    espa = emulate("espa444", "espa")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(espa=espa)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    espa.send("call", address="101", text="Rom 101 seng", priority="1")
    sub.wait_for(lambda _: events(sub, "alarm.nursecall"))
    (call,) = events(sub, "alarm.nursecall")
    assert call["priority"] == "critical"
    assert call["data"]["call_address"] == "101" and call["data"]["room"] == "bedroom"
    assert call["data"]["text"] == "Rom 101 seng"
    # the block's ACK follows the commit (and the publish): it may reach the line just after the central
    assert _until(lambda: espa.state()["emulator"]["delivered"] == 1)
    assert "06" in espa.state()["hub_wrote_hex"]  # the hub answered with ACK


def test_espa_reset_closes_the_open_nurse_call_and_its_reminders(make_hub, subscribe, emulate):
    """A reset/cancel record (call type 1) ends the call it names: alarm.cancelled, cause = that call,
    no new alarm, no more reminders; a reset naming no open call changes nothing but a counter."""
    espa = emulate("espa444", "espa")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(espa=espa), ack_timeout_s=1.5, unack_repeat_s=1.0).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    espa.send("call", address="101", text="Rom 101", priority="1")
    espa.send("call", address="102", text="Rom 102", priority="1")
    _until(lambda: len(events(sub, "alarm.nursecall")) == 2)
    call = next(c for c in events(sub, "alarm.nursecall") if c["data"]["call_address"] == "101")
    espa.send("reset", address="101", text="Rom 101")
    (cancel,) = _until(lambda: events(sub, "alarm.cancelled"))
    assert cancel["cause"] == call["id"] and cancel["data"]["how"] == "nursecall_reset"
    assert len(events(sub, "alarm.nursecall")) == 2, "a reset is not a new alarm"
    espa.send("reset", address="109", text="nobody")
    _until(lambda: espa.state()["emulator"]["delivered"] == 4)
    time.sleep(3.0)  # reminders go on for 102 only
    reminders = events(sub, "alarm.unacknowledged")
    assert reminders and {r["cause"] for r in reminders} == {
        next(c["id"] for c in events(sub, "alarm.nursecall") if c["data"]["call_address"] == "102")
    }
    late = [r for r in reminders if r["cause"] == call["id"]]
    assert not late
    assert len(events(sub, "alarm.cancelled")) == 1
    status = request("127.0.0.1", hub_port(hub), f"{BASE}/cmd/status", {})
    assert status["alarm_counters"]["cancel_unmatched"] == 1
    assert [a["device"] for a in status["open_alarms"]] == ["nursecall-1"]


def _until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_espa_poll_is_answered_eot_and_an_unmapped_header_is_refused(make_hub, subscribe, emulate):
    espa = emulate("espa444", "espa")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(espa=espa)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    espa.send("poll")
    assert _until(lambda: espa.state()["emulator"]["polls_eot"] == 1), espa.state()
    assert espa.state()["hub_wrote_hex"] == "04", "a poll of the hub is answered EOT, not ACK"
    espa.send("block", header="4", records={"1": "101", "2": "Ring 101"})  # call to subscriber line
    assert _until(lambda: espa.state()["emulator"]["failed"] == 1), espa.state()
    wrote = bytes.fromhex(espa.state()["hub_wrote_hex"])
    assert wrote == b"\x04" + b"\x06" + b"\x15" * 4, "ACK to the selection, NAK to the block and its 3 re-sends"
    espa.send("call", address="101", text="Rom 101")  # the line still carries calls
    sub.wait_for(lambda _: events(sub, "alarm.nursecall"))
    status = request("127.0.0.1", hub_port(hub), f"{BASE}/cmd/status", {})
    assert status["devices"]["nursecall-1"]["errors"]["unmapped_header"] == 4
    logged = [e for e in hub.log_lines() if e.get("event") == "serial_bad_input"]
    assert len(logged) == 1 and set(logged[0]["new"]) == {"unmapped_header"}, "one line for the burst"
    assert len(events(sub, "alarm.nursecall")) == 1 and hub.returncode is None


def test_unplug_replug_offline_online_and_reading_again(make_hub, subscribe, emulate):
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(bed=bed)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in")
    # the hub has read it (the baseline) before the cable goes: a frame still in the pty when it is pulled is lost,
    # and with it the IN the exit below is measured from
    sub.wait_for(lambda _: events(sub, "bed.return"))
    bed.unplug()
    sub.wait_for(lambda _: events(sub, "device.offline"))
    time.sleep(1.5)  # the hub keeps retrying the missing port: still one offline, not one per attempt
    assert len(events(sub, "device.offline")) == 1
    off = events(sub, "device.offline")[0]
    assert off["source"]["device"] == "bedmat-1"
    bed.replug()
    sub.wait_for(lambda _: events(sub, "device.online"), timeout=5)
    bed.send("occupancy", state="out")
    sub.wait_for(lambda _: events(sub, "bed.exit"), timeout=5)
    assert hub.returncode is None


def test_garbage_is_counted_and_the_next_frame_still_counts(make_hub, subscribe, emulate):
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(bed=bed), heartbeat_s=1).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in")
    for how in ("noise", "bad_checksum", "truncate", "overlong", "noise"):
        bed.send("corrupt", how=how)
    bed.send("occupancy", state="out")
    sub.wait_for(lambda _: events(sub, "bed.exit"))
    st = request("127.0.0.1", hub_port(hub), f"{BASE}/cmd/status", {})
    errors = st["devices"]["bedmat-1"]["errors"]
    assert errors.get("checksum", 0) >= 1 and errors.get("noise", 0) >= 1 and errors.get("overlong", 0) >= 1
    warnings = [e for e in hub.log_lines() if e.get("event") == "serial_bad_input"]
    assert 1 <= len(warnings) <= 2, "one log line per burst, not one per bad frame"
    assert hub.returncode is None


def test_espa_bad_bcc_is_nakked_and_the_retry_delivered(make_hub, subscribe, emulate):
    espa = emulate("espa444", "espa")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(espa=espa)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    espa.send("corrupt", how="bad_checksum", address="102", text="Bad 102")
    sub.wait_for(lambda _: events(sub, "alarm.nursecall"))
    (call,) = events(sub, "alarm.nursecall")
    assert call["data"]["room"] == "bathroom" and call["data"]["text"] == "Bad 102"
    st = _until(lambda: (st := espa.state())["emulator"]["delivered"] == 1 and st)  # the ACK follows the commit
    assert st["emulator"]["naks"] == 1
    wrote = bytes.fromhex(st["hub_wrote_hex"])
    assert wrote.count(b"\x15") == 1 and wrote.count(b"\x06") >= 2, "NAK for the bad block, ACK for ENQ and the retry"
    status = request("127.0.0.1", hub_port(hub), f"{BASE}/cmd/status", {})
    assert status["devices"]["nursecall-1"]["errors"]["checksum"] == 1


def test_dispenser_resends_until_acked_and_hub_drops_duplicates(make_hub, subscribe, emulate):
    disp = emulate("dispenser", "disp")
    sub = subscribe([f"{BASE}/event/#"])
    # the dispenser talks before the hub is there: nobody acks, so it keeps re-sending
    disp.send("dose_due", dose_id=42)
    time.sleep(2.5)
    assert disp.state()["emulator"]["resends"] >= 2
    hub = make_hub(devices=serial_devices(disp=disp)).start().wait_online()
    sub.wait_for(lambda _: events(sub, "medication.due"))
    assert disp.unacked() == []
    time.sleep(1.5)
    assert [e["data"]["dose_id"] for e in events(sub, "medication.due")] == [42], "re-sent copies are not new doses"


class NullModem:
    """Two pty pairs joined master to master: a null-modem cable between two serial ports.

    ``a`` and ``b`` are ordinary tty device paths, as /dev/ttyUSB0 on each end would be.
    """

    def __init__(self) -> None:
        import os
        import termios
        import threading
        import tty

        self._os = os
        (self.ma, self.sa), (self.mb, self.sb) = os.openpty(), os.openpty()
        for fd in (self.ma, self.sa, self.mb, self.sb):
            tty.setraw(fd, termios.TCSANOW)
        self.a, self.b = os.ttyname(self.sa), os.ttyname(self.sb)
        self.carried = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._carry, daemon=True)
        self._thread.start()

    def _carry(self) -> None:
        import select

        peer = {self.ma: self.mb, self.mb: self.ma}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.05)
            for fd in ready:
                try:
                    data = self._os.read(fd, 4096)
                except OSError:  # the far end is not open right now: the bytes fall on the floor
                    continue
                self._os.write(peer[fd], data)
                self.carried += len(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.ma, self.sa, self.mb, self.sb):
            self._os.close(fd)


def test_emulator_on_a_real_port_talks_to_the_hub_through_a_cable(tmp_path, make_hub, subscribe):
    """The installer's wiring test: ``emulator dispenser --port /dev/ttyUSB0`` wired to the hub's port.

    Both ends are plain tty paths joined by a null-modem cable, so the emulator
    opens a real port with pyserial (not a pty of its own) and the hub's ACKs
    travel back over the same cable.
    """
    cable = NullModem()
    disp = EmulatedDevice("dispenser", tmp_path, "disp-real", port=cable.a).start()
    try:

        class HubEnd:
            link = cable.b

        sub = subscribe([f"{BASE}/event/#"])
        hub = make_hub(devices=serial_devices(disp=HubEnd)).start().wait_online()
        hub.wait_log(lambda e: e.get("event") == "serial_online")
        disp.send("dose_due", dose_id=11)
        sub.wait_for(lambda _: events(sub, "medication.due"))
        assert events(sub, "medication.due")[0]["data"]["dose_id"] == 11
        assert disp.unacked() == [], "the hub's ACK came back over the cable"
        assert cable.carried > 0
    finally:
        disp.stop()
        cable.close()
