"""Rules in the running hub: a real subprocess, a bed mat on a pty, a kill -9 in the middle."""

from __future__ import annotations

import time

from tests.support.central import BASE, events
from hil.harness.emulators import serial_devices

RULES = """
[rules]
night = "00:00-24:00"
[rules.bed_not_returned]
after_s = 4
"""


def out_of_bed(make_hub, subscribe, emulate):  # noqa: F811
    """A hub with the night rules and a bed mat; the resident gets up (bed.exit seen by the central)."""
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(bed=bed), extra=RULES).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in")
    time.sleep(0.2)
    bed.send("occupancy", state="out")
    sub.wait_for(lambda _: events(sub, "bed.exit"))
    return bed, sub, hub


def test_bed_not_returned_fires_after_a_crash_mid_rule(make_hub, subscribe, emulate):  # noqa: F811
    bed, sub, hub = out_of_bed(make_hub, subscribe, emulate)
    exit_event = events(sub, "bed.exit")[0]
    t_exit = time.monotonic()
    time.sleep(1.0)
    hub.kill()  # the hub dies while the rule is waiting
    hub.start().wait_online()
    restored = hub.wait_log(lambda e: e.get("event") == "rules_restored")
    assert "bed_not_returned" in restored["rules"]
    sub.wait_for(lambda _: events(sub, "rule.bed_not_returned"), timeout=15)
    waited = time.monotonic() - t_exit
    (alert,) = events(sub, "rule.bed_not_returned")
    assert alert["cause"] == exit_event["id"] and alert["priority"] == "high" and alert["route"] == "care"
    assert waited >= 3.5, "not before after_s, counted from the exit, not from the restart"
    time.sleep(2.0)
    assert len(events(sub, "rule.bed_not_returned")) == 1, "once: a re-alert comes only after realert_s"


def test_bed_return_in_time_cancels(make_hub, subscribe, emulate):  # noqa: F811
    bed, sub, hub = out_of_bed(make_hub, subscribe, emulate)
    time.sleep(1.0)
    bed.send("occupancy", state="in")
    sub.wait_for(lambda _: [e for e in events(sub, "bed.return") if not e["data"].get("baseline")])
    time.sleep(4.5)
    assert events(sub, "rule.bed_not_returned") == []


def test_resident_back_after_a_crash_stands_the_rule_down(make_hub, subscribe, emulate):  # noqa: F811
    bed, sub, hub = out_of_bed(make_hub, subscribe, emulate)
    hub.kill()
    hub.start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in")  # back in bed while the hub was down; the new hub only sees this
    sub.wait_for(lambda _: any(e["data"].get("baseline") for e in events(sub, "bed.return")))
    time.sleep(4.5)
    assert events(sub, "rule.bed_not_returned") == []


def test_reminders_for_a_vanished_port_are_not_a_device_online(make_hub, subscribe, emulate):  # noqa: F811
    # issue 10 item 6: the hub's reminders carry the nurse-call line's source; they are not the line speaking
    espa = emulate("espa444", "espa")
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=serial_devices(espa=espa), ack_timeout_s=0.5, unack_repeat_s=0.5).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    espa.send("call", address="101", text="Rom 101 seng", priority="1")
    sub.wait_for(lambda _: events(sub, "alarm.nursecall"))
    (call,) = events(sub, "alarm.nursecall")
    espa.unplug()
    sub.wait_for(lambda _: events(sub, "device.offline"))
    (off,) = events(sub, "device.offline")
    sub.wait_for(lambda _: len([r for r in events(sub, "alarm.unacknowledged") if r["seq"] > off["seq"]]) >= 4, timeout=10)
    reminders = [r for r in events(sub, "alarm.unacknowledged") if r["seq"] > off["seq"]]
    assert all(r["source"]["device"] == "nursecall-1" and r["cause"] == call["id"] for r in reminders)
    assert events(sub, "device.online") == [], "the port is still gone"
    espa.replug()
    sub.wait_for(lambda _: events(sub, "device.online"), timeout=5)
    (on,) = events(sub, "device.online")
    assert on["source"]["device"] == "nursecall-1" and on["data"]["port"] == str(espa.link)  # the port said it
    n = len(events(sub, "alarm.unacknowledged"))
    sub.wait_for(lambda _: len(events(sub, "alarm.unacknowledged")) >= n + 2, timeout=5)
    assert len(events(sub, "device.online")) == 1, "and once"
