"""BLE end to end: BTHome adverts injected into the hub's simulated radio through its sim socket."""

from __future__ import annotations

import time

from drivers.ble import bthome
from hil.harness.broker import request
from tests.support.central import BASE, events

BUTTON = "A4:C1:38:00:00:01"
DOOR = "A4:C1:38:00:00:02"
KEY = "231d39c1d7cc1ab1aee224cd096db932"
FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"

DEVICES = f"""
[ble]
backend = "sim"
silence_s = 2

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BUTTON}"
bindkey = "{KEY}"

[[device]]
id = "front-door"
kind = "door"
room = "hall"
[device.ble]
address = "{DOOR}"
"""


def advert(hub, address: str, data: bytes) -> dict:
    return hub.sim.call({"op": "ble_advert", "address": address, "service_data_hex": {FCD2: data.hex()}})


def test_encrypted_press_raises_alarm_and_replay_is_ignored(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES).start().wait_online()
    press = bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=7)
    advert(hub, BUTTON, press)
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    (alarm,) = events(sub, "alarm.button")
    assert alarm["source"] == {"device": "ble-button", "kind": "alarm_button", "room": "living"}
    assert alarm["priority"] == "critical" and alarm["data"]["input"] == "ble"
    advert(hub, BUTTON, press)  # the same advert again (a repeat, or someone replaying it)
    old = bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=5)
    advert(hub, BUTTON, old)  # an older counter: a replay
    wrong_key = bthome.encode(buttons=["press"], bindkey="00" * 16, mac=BUTTON, counter=9)
    advert(hub, BUTTON, wrong_key)
    advert(hub, BUTTON, b"\x41\x3a")  # garbage
    time.sleep(1.0)
    assert len(events(sub, "alarm.button")) == 1
    assert hub.returncode is None


def test_button_with_a_new_battery_still_raises_alarms(make_hub, subscribe):
    # a new battery starts the encryption counter from zero: the button must not go deaf
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES).start().wait_online()
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=154_553))
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=1))
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    hub.wait_log(lambda e: e.get("event") == "ble_counter_restarted")
    (line,) = [e for e in hub.log_lines() if e.get("event") == "ble_counter_restarted"]
    assert line["device"] == "ble-button" and line["previous"] == 154_553 and line["counter"] == 1
    # an advert recorded before the battery change, replayed, is refused
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=154_000))
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=2))
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 3)
    time.sleep(0.5)
    assert len(events(sub, "alarm.button")) == 3
    port = int(hub.config.read_text().split("port = ")[1].split()[0])
    adverts = request("127.0.0.1", port, f"{BASE}/cmd/status", {})["devices"]["ble-button"]["adverts"]
    assert adverts["counter_restart"] == 1 and adverts["replay"] == 1  # the installer sees both in status


def test_ble_forget_lets_a_device_with_a_random_new_counter_back_in(make_hub, subscribe):
    # some firmware seeds its counter at random on a new battery: refused until the central says so
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES).start().wait_online()
    port = int(hub.config.read_text().split("port = ")[1].split()[0])
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=5_000))
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=3_000))
    time.sleep(0.5)
    assert len(events(sub, "alarm.button")) == 1  # below the last counter and not a restart from zero: a replay
    refused = request("127.0.0.1", port, f"{BASE}/cmd/ble-forget", {"device": "front-door-typo"})
    assert refused["ok"] is False and "ble-button" in refused["error"]
    reply = request("127.0.0.1", port, f"{BASE}/cmd/ble-forget", {"device": "ble-button", "by": "installer-7"})
    assert reply == {"ok": True, "device": "ble-button", "previous_counter": 5_000}
    advert(hub, BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=3_001))
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    (line,) = [e for e in hub.log_lines() if e.get("event") == "ble_counter_forgotten"]
    assert line["device"] == "ble-button" and line["previous"] == 5_000 and line["by"] == "installer-7"


def test_door_open_and_close(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES).start().wait_online()
    for pid, state in ((1, 0), (2, 1), (3, 1), (4, 0)):
        advert(hub, DOOR, bthome.encode([(0x1A, state)], packet_id=pid))
    sub.wait_for(lambda _: events(sub, "door.close") and events(sub, "door.open"))
    time.sleep(0.5)
    kinds = [e["type"] for e in events(sub) if e["type"].startswith("door.")]
    assert kinds == ["door.open", "door.close"], "only changes, not every advert; no close for the first reading"
    assert events(sub, "door.open")[0]["route"] == "care"


def test_scanner_rebuilds_after_in_progress_and_reports_it(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES).start().wait_online()
    # BlueZ answers org.bluez.Error.InProgress: the running scan fails, and so does the next start
    hub.sim.call({"op": "ble_fault", "kind": "in_progress", "running": True, "times": 2})
    sub.wait_for(lambda _: events(sub, "hub.ble_degraded"), timeout=15)
    assert events(sub, "hub.ble_degraded")[0]["data"]["reason"] == "in_progress"
    port = int(hub.config.read_text().split("port = ")[1].split()[0])
    st = request("127.0.0.1", port, f"{BASE}/cmd/status", {})
    assert st["devices"]["ble"]["state"] == "degraded", "the heartbeat and status show the outage"
    deadline = time.monotonic() + 15
    while not events(sub, "hub.ble_recovered") and time.monotonic() < deadline:
        advert(hub, DOOR, bthome.encode([(0x1A, 1)], packet_id=int(time.monotonic() * 10) % 256))
        time.sleep(0.3)
    assert events(sub, "hub.ble_recovered")
    assert len(events(sub, "hub.ble_degraded")) == 1, "one degraded per outage, however many rebuilds failed"
    status = hub.sim.call({"op": "ble_state"})
    assert status["scanner"]["rebuilds"] >= 2


SCALE = "C0:FF:EE:00:00:09"
GATT_DEVICES = f"""
[ble]
backend = "sim"

[[device]]
id = "scale-1"
kind = "sensor"
room = "bathroom"
[device.gatt]
address = "{SCALE}"
battery_interval_s = 1
[[device.gatt.notify]]
uuid = "0000fff1-0000-1000-8000-00805f9b34fb"
event = "weight.measured"
decode = "uint16le"
scale = 0.01
key = "kg"
"""


def test_gatt_notification_event_and_reconnect(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=GATT_DEVICES).start().wait_online()
    uuid = "0000fff1-0000-1000-8000-00805f9b34fb"
    deadline = time.monotonic() + 10
    while hub.sim.call({"op": "gatt_notify", "address": SCALE, "uuid": uuid, "hex": "2c1a"})["delivered"] == 0:
        assert time.monotonic() < deadline, "never connected"
        time.sleep(0.1)
    sub.wait_for(lambda _: events(sub, "weight.measured"))
    (w,) = events(sub, "weight.measured")
    assert w["data"]["kg"] == 67.0 and w["source"]["device"] == "scale-1"
    hub.sim.call({"op": "gatt_link", "address": SCALE, "up": False})
    hub.sim.call({"op": "gatt_drop", "address": SCALE})
    sub.wait_for(lambda _: events(sub, "device.offline"), timeout=10)
    hub.sim.call({"op": "gatt_link", "address": SCALE, "up": True})
    sub.wait_for(lambda _: events(sub, "device.online"), timeout=20)
    assert len(events(sub, "device.offline")) == 1
    st = hub.sim.call({"op": "gatt_state"})
    assert st["manager"]["scale-1"]["last_battery"] == 100
