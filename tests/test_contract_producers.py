"""The producers the evening in test_contract_e2e.py does not reach, held to the contract's data structs.

A second real hub (BLE devices on its simulated radio, a GATT scale, a bed
mat whose port goes away, three config reloads) and the pure producers called
directly (the telemetry limit, the health board, the rules, the serial
logics' timers): every ``data`` they make decodes strictly into its type's
struct, and every event the hub sends validates against the schema.
"""

from __future__ import annotations

import hashlib
import signal
import time
from typing import Any
from zoneinfo import ZoneInfo

from drivers.ble import bthome
from drivers.serial.bedmat.logic import BedMatLogic
from drivers.serial.base import Reading
from drivers.serial.dispenser.logic import DispenserLogic
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import HubProcess, gpio_devices, hub_config
from hub import scaip
from hub.eventdata import problems
from hub.events import Event, Priority, Route, Source, rfc3339, uuid7
from hub.flood import FloodGuard
from hub.health import HealthBoard
from hub.rules import DoorNight, Inactivity, Rules, Supervision, parse_window
from tests.support.central import BASE, events
from tests.test_contract import errors, event_validator

FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"
BUTTON, DOOR, MOTION, CLIMATE, SCALE = (f"A4:C1:38:00:00:0{n}" for n in range(1, 6))
WEIGHT = "0000fff1-0000-1000-8000-00805f9b34fb"

BLE = f"""
[ble]
backend = "sim"
silence_s = 600

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BUTTON}"

[[device]]
id = "front-door"
kind = "door"
room = "hall"
[device.ble]
address = "{DOOR}"

[[device]]
id = "motion-living"
kind = "motion"
room = "living"
[device.ble]
address = "{MOTION}"

[[device]]
id = "climate"
kind = "sensor"
room = "bedroom"
[device.ble]
address = "{CLIMATE}"

[[device]]
id = "scale"
kind = "sensor"
room = "bathroom"
[device.gatt]
address = "{SCALE}"
battery_interval_s = 0
[[device.gatt.notify]]
uuid = "{WEIGHT}"
event = "sensor.reading"
decode = "uint16le"
scale = 0.01
key = "weight_kg"
"""


def advert(hub: HubProcess, address: str, data: bytes) -> None:
    hub.sim.call({"op": "ble_advert", "address": address, "service_data_hex": {FCD2: data.hex()}})


def reload(hub: HubProcess, text: str) -> None:
    """Write ``text`` as the hub's config and SIGHUP it (systemctl reload)."""
    hub.config.write_text(text)
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)


def check_events(seen: list[dict[str, Any]]) -> None:
    for e in seen:
        where = f"{e['type']} seq {e['seq']}: {e['data']}"
        assert errors(event_validator(), e) == [], where
        if e["type"] in scaip.STATUS_CODES:
            assert problems(e["type"], e["data"]) == [], where


def test_ble_devices_a_lost_port_and_reloads_hold_to_the_contract(make_hub, subscribe, emulate, broker):
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    devices = gpio_devices() + serial_devices(bed=bed) + BLE
    hub = make_hub(devices=devices).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    # BLE adverts: a press and its hold, the door, motion, a thermometer
    advert(hub, BUTTON, bthome.encode(buttons=["press"], packet_id=1))
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    advert(hub, BUTTON, bthome.encode(buttons=["hold_press"], packet_id=2))
    for pid, state in ((1, 0), (2, 1), (3, 0)):
        advert(hub, DOOR, bthome.encode([(0x1A, state)], packet_id=pid))
    advert(hub, MOTION, bthome.encode([(0x21, 1)], packet_id=1))
    advert(hub, CLIMATE, bthome.encode([(0x02, 21.5), (0x2E, 41)], packet_id=1))
    sub.wait_for(lambda _: all(events(sub, t) for t in ("alarm.cancelled", "door.open", "door.close",
                                                         "motion.activity", "sensor.reading")))
    # the GATT scale: a weighing (a notification mapped to sensor.reading), then out of range and back
    deadline = time.monotonic() + 10
    while hub.sim.call({"op": "gatt_notify", "address": SCALE, "uuid": WEIGHT, "hex": "2c1a"})["delivered"] == 0:
        assert time.monotonic() < deadline, "the scale never connected"
        time.sleep(0.1)
    sub.wait_for(lambda _: [e for e in events(sub, "sensor.reading") if "weight_kg" in e["data"]])
    hub.sim.call({"op": "gatt_link", "address": SCALE, "up": False})
    hub.sim.call({"op": "gatt_drop", "address": SCALE})
    sub.wait_for(lambda _: events(sub, "device.offline"))
    hub.sim.call({"op": "gatt_link", "address": SCALE, "up": True})
    sub.wait_for(lambda _: events(sub, "device.online"), timeout=20)
    # the radio stuck (BlueZ InProgress), rebuilt
    hub.sim.call({"op": "ble_fault", "kind": "in_progress", "running": True, "times": 2})
    sub.wait_for(lambda _: events(sub, "hub.ble_degraded"), timeout=15)
    pid = 10
    while not events(sub, "hub.ble_recovered"):
        pid += 1
        advert(hub, DOOR, bthome.encode([(0x1A, 0)], packet_id=pid % 256))
        time.sleep(0.2)
        assert pid < 100, "the scanner never recovered"
    # the bed mat's USB adapter pulled and put back
    bed.unplug()
    sub.wait_for(lambda _: [e for e in events(sub, "device.offline") if "port" in e["data"]], timeout=15)
    bed.replug()
    sub.wait_for(lambda _: [e for e in events(sub, "device.online") if "port" in e["data"]], timeout=15)
    # reloads: applied, refused as invalid, refused as needing a restart
    good = hub.config.read_text().replace("ack_timeout_s = 60.0", "ack_timeout_s = 90.0")
    reload(hub, good)
    sub.wait_for(lambda _: events(sub, "hub.config_reloaded"))
    reload(hub, good.replace("ack_timeout_s = 90.0", 'ack_timeout_s = "soon"'))
    sub.wait_for(lambda _: events(sub, "hub.config_refused"))
    reload(hub, good.replace('id = "test-hub"', 'id = "other-hub"'))
    sub.wait_for(lambda _: len(events(sub, "hub.config_refused")) == 2)

    seen = events(sub)
    refused = {e["data"]["reason"] for e in events(sub, "hub.config_refused")}
    assert refused == {"invalid", "needs_restart"}
    assert events(sub, "hub.config_reloaded")[0]["data"]["sha256"] == hashlib.sha256(good.encode()).hexdigest()
    assert {e["scaip"]["dty"] for e in seen if e["source"]["kind"] == "door"} == {"0014"}
    check_events(seen)


# --- the pure producers ---------------------------------------------------------------------

TZ = ZoneInfo("Europe/Oslo")
KINDS = {"door-front": "door", "motion-hall": "motion", "bedmat": "bed_mat"}


def _event(type_: str, device: str, t: float, **data: Any) -> Event:
    return Event(v=1, id=uuid7(t), hub="h", seq=1, ts=rfc3339(t), type=type_, priority=Priority.NORMAL,
                 source=Source(device=device, kind=KINDS[device]), resident="R-1", route=Route.ANY, data=data)


def test_the_telemetry_limit_says_started_and_ended_in_the_contracts_words():
    guard = FloodGuard(rate=1.0, burst=1.0, calm_s=30.0)
    said = [flooding for ok, flooding in (guard.admit("climate", now=100.0 + i / 10) for i in range(5)) if flooding]
    ended = [data for _, data in guard.tick(now=200.0)]
    assert [d["state"] for d in said + ended] == ["started", "ended"]
    for data in [*said, *ended]:
        assert problems("device.flooding", data) == []


def test_the_health_board_says_degraded_and_recovered_in_the_contracts_words():
    told: list[tuple[str, dict[str, Any]]] = []
    board = HealthBoard(lambda component, ok, data: told.append(("hub.recovered" if ok else "hub.degraded", data)))
    board.set("store", False, "disk full")
    board.set("store", True)
    assert [t for t, _ in told] == ["hub.degraded", "hub.recovered"]
    for type_, data in told:
        assert problems(type_, data) == []


def test_the_night_rules_and_supervision_speak_the_contract():
    t0 = 1768442400.0  # 2026-01-15 03:00 in Oslo: night and day windows both cover it below
    window = parse_window("00:00-24:00")
    rules = Rules([
        DoorNight(window=window, tz=TZ, inside_after_s=60, open_after_s=30, realert_s=0),
        Inactivity(window=window, tz=TZ, after_s=120, realert_s=0),
        Supervision({"bedmat": ("bed_mat", 30.0)}),
    ])
    out = rules.tick(t0)
    out += rules.on_event(_event("door.open", "door-front", t0 + 1), t0 + 1)
    out += rules.on_event(_event("door.close", "door-front", t0 + 11), t0 + 11)
    out += rules.tick(t0 + 80)  # closed, and no sign of anyone inside
    out += rules.on_event(_event("door.open", "door-front", t0 + 100), t0 + 100)
    out += rules.tick(t0 + 140)  # held open
    out += rules.tick(t0 + 200)  # quiet; the bed mat silent
    out += rules.report("bedmat", t0 + 210, battery=12)  # heard again, its battery low
    out += rules.tick(t0 + 400)  # nothing since the door: inactivity
    types = {o.type for o in out}
    assert {"rule.door_night", "rule.inactivity", "device.offline", "device.online", "device.battery_low"} <= types
    assert {o.data["state"] for o in out if o.type == "rule.door_night"} == {"open", "closed"}
    for o in out:
        assert problems(o.type, o.data) == [], (o.type, o.data)


def test_the_serial_logics_timers_speak_the_contract():
    disp = DispenserLogic(grace_s=5)
    made = disp.on_reading(Reading("dose_due", {"dose_id": 3, "scheduled": None, "compartment": 2}), 100.0)
    made += disp.tick(106.0)  # not taken within grace_s: the hub says missed
    made += disp.on_reading(Reading("dose_taken", {"dose_id": 3, "taken_at": 1795640500}), 107.0)  # late
    bed = BedMatLogic()
    made += bed.on_reading(Reading("occupancy", {"state": "in", "pressure": 700, "battery": 15, "seq": 1}), 0.0)
    types = [e.type for e in made]
    assert types[:3] == ["medication.due", "medication.missed", "medication.taken"]
    assert "bed.return" in types and "device.battery_low" in types
    assert [e.data["reported_by"] for e in made if e.type == "medication.missed"] == ["hub"]
    for e in made:
        assert problems(e.type, e.data) == [], (e.type, e.data)
