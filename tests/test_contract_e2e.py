"""What a real hub sends holds to the committed contract: every event, the status, the heartbeat, every reply.

One evening on a real hub (a subprocess on its own Mosquitto): buttons on sim
GPIO, a bed mat, a dispenser and a nurse-call line on emulated serial ports,
the night rules on. Every event the central receives must validate against
``contract/event.schema.json``, decode strictly into its type's data struct
(no key the contract does not describe) and carry the SCAIP codes of its type
and kind; the status, heartbeats and every command's reply must validate
against their schemas in ``contract/asyncapi.json``.
"""

from __future__ import annotations

import time
from typing import Any

from hil.harness.broker import request
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import gpio_devices
from hub import scaip
from hub.commands import COMMANDS
from hub.contractdoc import payloads
from hub.eventdata import problems
from tests.support.central import BASE, events
from tests.test_contract import asyncapi_doc, asyncapi_validator, errors, event_validator

RULES = """
[rules]
night = "00:00-24:00"
day = "00:00-24:00"
realert_s = 0
[rules.bed_exit]
enabled = true
[rules.bed_not_returned]
after_s = 1
[rules.medication_missed]
grace_s = 1
[rules.inactivity]
after_s = 600
[rules.supervision]
intervals = { bed_mat = 2 }
"""

#: Event types this evening must produce (the rest come from BLE, the hub's trouble and reloads:
#: tests/test_contract_producers.py calls their producers).
EXPECTED = {
    "hub.started", "alarm.button", "alarm.unacknowledged", "alarm.acknowledged", "alarm.cancelled", "alarm.test",
    "alarm.nursecall", "bed.exit", "bed.return", "rule.bed_exit", "rule.bed_not_returned", "medication.due",
    "medication.taken", "medication.missed", "rule.medication_missed", "device.fault", "device.battery_low",
    "device.offline", "device.online", "hub.stopping",
}


def _reply_schema(command: str, reply: dict[str, Any]) -> str:
    """The reply struct the AsyncAPI document names for this reply."""
    if not reply["ok"]:
        return "AckUnknownReply" if reply.get("result") == "unknown_event" else "ErrorReply"
    return payloads.REPLIES[command][0].__name__


def test_an_evening_on_a_real_hub_holds_to_the_contract(make_hub, subscribe, emulate, broker):
    bed, disp, espa = emulate("bedmat", "bed"), emulate("dispenser", "disp"), emulate("espa444", "espa")
    sub = subscribe(["carehub/#"])
    devices = gpio_devices() + serial_devices(bed=bed, disp=disp, espa=espa)
    hub = make_hub(devices=devices, extra=RULES, ack_timeout_s=1.0, unack_repeat_s=30.0, heartbeat_s=1.0)
    hub.start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")

    def cmd(name: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/{name}", body)
        replies.append((name, reply))
        return reply

    replies: list[tuple[str, dict[str, Any]]] = []
    # the button: a press, a repeat, a reminder, the ack (twice), an ack of an unknown id
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.unacknowledged"))
    first = events(sub, "alarm.button")[0]
    assert cmd("ack", {"event_id": first["id"], "by": "op-17"})["result"] == "acknowledged"
    assert cmd("ack", {"event_id": first["id"], "by": "op-17"})["result"] == "already_acknowledged"
    assert cmd("ack", {"event_id": "019abc4e-0000-7000-8000-000000000000"})["result"] == "unknown_event"
    # the cord pulled; the button pressed and held: cancelled
    hub.press("cord-1")
    hub.sim.call({"op": "hold", "device": "button-1", "seconds": 1.0})
    sub.wait_for(lambda _: events(sub, "alarm.cancelled"))
    # the nurse-call line: a call, then its reset
    espa.send("call", address="101", text="Rom 101", priority="1")
    sub.wait_for(lambda _: events(sub, "alarm.nursecall"))
    espa.send("reset", address="101")
    sub.wait_for(lambda _: len(events(sub, "alarm.cancelled")) == 2)
    # the bed: in, out (exit, the night rules), in again; then silent (supervision), and back
    bed.send("occupancy", state="in", pressure=700, battery=90)
    time.sleep(0.3)
    bed.send("occupancy", state="out", pressure=20, battery=90)
    sub.wait_for(lambda _: events(sub, "rule.bed_not_returned"))
    bed.send("occupancy", state="in", pressure=650, battery=90)
    sub.wait_for(lambda _: [e for e in events(sub, "bed.return") if "away_s" in e["data"]])
    sub.wait_for(lambda _: events(sub, "device.offline"), timeout=15)
    bed.send("status", battery=85)
    sub.wait_for(lambda _: events(sub, "device.online"))
    # the dispenser: a dose due and taken, one due and missed, a fault, a low battery
    disp.send("dose_due", dose_id=7)
    disp.send("dose_taken", dose_id=7)
    disp.send("dose_due", dose_id=8)
    sub.wait_for(lambda _: events(sub, "rule.medication_missed"))
    disp.send("dose_missed", dose_id=8)
    disp.send("fault", fault="jammed")
    disp.send("status", battery=10, doses_left=3)
    sub.wait_for(lambda _: events(sub, "device.battery_low") and events(sub, "medication.missed"))
    # the other commands, right and wrong
    assert cmd("test-alarm", {"device": "button-1", "note": "monthly test"})["ok"]
    assert not cmd("test-alarm", {"device": "no-such-device"})["ok"]
    assert cmd("replay", {"from_seq": 1, "to_seq": 3})["sent"] == 3
    assert not cmd("replay", {"from_seq": 100000, "to_seq": 100001})["ok"]
    assert cmd("replay", {"from_seq": 0, "to_seq": 1}).get("refused") == "invalid"
    assert cmd("status", {})["ok"]
    assert not cmd("ble-forget", {"device": "button-1"})["ok"]
    sub.wait_for(lambda _: events(sub, "alarm.test") and len(sub.json(f"{BASE}/heartbeat")) >= 2)
    hub.stop()
    sub.wait_for(lambda _: events(sub, "hub.stopping") and sub.json(f"{BASE}/status")[-1]["state"] == "offline")

    seen = events(sub)
    assert EXPECTED <= {e["type"] for e in seen}, sorted(EXPECTED - {e["type"] for e in seen})
    for e in seen:
        where = f"{e['type']} seq {e['seq']}"
        assert errors(event_validator(), e) == [], where
        assert problems(e["type"], e["data"]) == [], where
        dty, stc = scaip.DEVICE_TYPES.get(e["source"]["kind"]), scaip.STATUS_CODES.get(e["type"])
        assert e["scaip"] == (None if dty is None and stc is None else {"dty": dty, "stc": stc}), where

    statuses = sub.json(f"{BASE}/status")
    assert [s["state"] for s in statuses][-1] == "offline" and statuses[0]["state"] == "online"
    for s in statuses:
        name = "StatusOnline" if s["state"] == "online" else "StatusOffline"
        assert errors(asyncapi_validator(f"/components/schemas/{name}"), s) == [], s
    for hb in sub.json(f"{BASE}/heartbeat"):
        assert errors(asyncapi_validator("/components/schemas/Heartbeat"), hb) == []
    reply_channel = asyncapi_doc()["channels"]["reply"]["messages"]
    for name, reply in replies:
        schema = _reply_schema(name, reply)
        assert schema in reply_channel and name in COMMANDS
        assert errors(asyncapi_validator(f"/components/schemas/{schema}"), reply) == [], (name, reply)
