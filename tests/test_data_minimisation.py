"""Data minimisation: what leaves the house names the resident by the pseudonymous id only.

The residence config has no field for a resident's name, address or phone
number (``[hub] resident`` is a pseudonymous id; rooms are rooms). What an
installer might still write into the file (a comment with the resident's
name, address and phone, a password file named after them) and the secrets
(the MQTT password, a BLE bindkey) must never reach the broker. A real hub,
driven through its simulated devices, serial emulators, the central's
commands and a config pushed with SIGHUP (refused, then taken), sends every
event type of the contract; every message it publishes (events, status,
heartbeat, command replies) is scanned for those strings.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.ble import bthome
from hil.harness.broker import Mosquitto, Subscriber, request
from hil.harness.emulators import EmulatedDevice, EmulatedModem, modem_device, serial_devices
from hil.harness.hubproc import HubProcess
from hil.harness.mosquitto import free_port
from hub.configpush.signing import public_pem, sign

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "contract" / "event.schema.json").read_text())
CONTRACT_TYPES = set(json.loads((ROOT / "contract" / "asyncapi.json").read_text())
                     ["channels"]["event"]["parameters"]["type"]["enum"])
HUB = "test-hub"
BASE = f"carehub/v1/{HUB}"
RESIDENT = "R-7f3a9c"

NAME = "Kari Nordmann"
ADDRESS = "Storgata 12B, 0155 Oslo"
PHONE = "+47 912 34 567"
EMAIL = "kari.nordmann@example.no"
NATIONAL_ID = "01017012345"  # what a careless note might hold: a Norwegian birth number
PASSWORD = "Storgata12B-91234567"
BINDKEY = "231d39c1d7cc1ab1aee224cd096db932"
FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"
BLE_BUTTON, DOOR, MOTION, THERMO = (f"A4:C1:38:00:00:0{i}" for i in range(1, 5))


def needles() -> list[str]:
    """Every spelling to look for, lower-case: the parts of the name and address, the phone's digits."""
    found = [NAME, *NAME.split(), ADDRESS, "Storgata", EMAIL, NATIONAL_ID, PASSWORD, BINDKEY,
             PHONE, PHONE.replace(" ", ""), "91234567", "912 34 567"]
    return sorted({n.lower() for n in found})


#: The on-call phones of the SMS fallback: staff numbers, not the resident's (they go out in fallback.sent).
ON_CALL = ("+4740000001", "+4740000002")


def checkin_window(margin_s: float = 15.0) -> str:
    """A check-in window open now that closes at the next whole minute at least ``margin_s`` away (Oslo time)."""
    now = datetime.now(ZoneInfo("Europe/Oslo"))
    end = (now + timedelta(seconds=margin_s)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = now - timedelta(minutes=30)
    return f"{start:%H:%M}-{end:%H:%M}"


def config_text(bed: EmulatedDevice, disp: EmulatedDevice, espa: EmulatedDevice, modem: EmulatedModem) -> str:
    checkin_window_ = checkin_window()
    return f"""# Residence of {NAME}, {ADDRESS}
# phone {PHONE}, e-mail {EMAIL}, birth number {NATIONAL_ID} (next of kin: see the care record)
[hub]
id = "test-hub"
resident = "{RESIDENT}"   # pseudonymous: {NAME} in the care record system

[mqtt]
username = "test-hub"
password_file = "{NAME}.pass"   # named after the resident by a careless installer
heartbeat_s = 2
keepalive_s = 30
backoff_initial_s = 0.2
backoff_max_s = 1.0
[[mqtt.broker]]
host = "127.0.0.1"
port = {{port}}

[store]
dir = "state"

[log]
format = "json"
level = "info"

[gpio]
factory = "sim"

[ble]
backend = "sim"
silence_s = 60

[alarm]
ack_timeout_s = 1.5
unack_repeat_s = 600
steady_s = 600

[limits]
telemetry_per_s = 1
telemetry_burst = 8

[push]
key = "central-push.pub"
probation_s = 5

[fallback]
nurse = ["{ON_CALL[0]}"]
care = ["{ON_CALL[1]}"]
fallback_after_s = 4
link_down_after_s = 600
reminder_s = 0
retry_s = 1

[rules]
night = "00:00-24:00"
day = "00:00-24:00"
realert_s = 3600
[rules.bed_not_returned]
after_s = 1
[rules.bed_exit]
enabled = true
[rules.door_night]
inside_after_s = 1
[rules.inactivity]
after_s = 6
[rules.check_in]
enabled = true
windows = ["{checkin_window_}"]
devices = ["ble-button"]
gestures = ["double_press"]

[[device]]
id = "button-1"
kind = "alarm_button"
room = "bedroom"          # {NAME}'s bedroom: the room goes out, the name does not
[device.gpio]
pin = 17
led_pin = 27
hold_s = 0.6
bounce_s = 0

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"           # worn by {NAME}, tel. {PHONE}
[device.ble]
address = "{BLE_BUTTON}"
bindkey = "{BINDKEY}"

[[device]]
id = "front-door"
kind = "door"
room = "hall"             # {ADDRESS}
[device.ble]
address = "{DOOR}"

[[device]]
id = "motion-hall"
kind = "motion"
room = "hall"
[device.ble]
address = "{MOTION}"

[[device]]
id = "thermo"
kind = "sensor"
room = "living"
[device.ble]
address = "{THERMO}"
{serial_devices(bed=bed, disp=disp, espa=espa)}
{modem_device(modem)}
"""


class Rig:
    """The hub, the central's subscriber, the serial emulators, and the ways to drive them."""

    def __init__(self, hub: HubProcess, central: Subscriber, port: int,
                 bed: EmulatedDevice, disp: EmulatedDevice, espa: EmulatedDevice, modem: EmulatedModem,
                 push_key: Ed25519PrivateKey) -> None:
        self.hub, self.central, self.port = hub, central, port
        self.push_key = push_key
        self.bed, self.disp, self.espa, self.modem = bed, disp, espa, modem
        self._pid = 0

    def types(self) -> set[str]:
        return {m.topic.rsplit("/", 1)[1] for m in self.central.messages if "/event/" in m.topic}

    def wait(self, *types: str, timeout: float = 15.0) -> None:
        want = set(types)

        def arrived(_: object) -> bool:
            return want <= self.types()

        arrived.__name__ = f"events {sorted(want)}"
        self.central.wait_for(arrived, timeout=timeout)

    def event(self, type_: str) -> dict[str, Any]:
        return next(m.json() for m in self.central.messages if m.topic == f"{BASE}/event/{type_}")

    def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = request("127.0.0.1", self.port, f"{BASE}/cmd/{name}", body, timeout=10,
                        response_topic=f"{BASE}/reply/central.test/{name}")
        assert reply.get("ok") is True, reply
        return reply

    def push(self, version: int, text: str) -> dict[str, Any]:
        """``cmd/config``: ``text`` signed by the central as ``version``; the hub's reply, whatever it says."""
        sha256, signature = sign(self.push_key, HUB, version, text)
        body = {"version": version, "sha256": sha256, "signature": signature, "toml": text, "by": "operator-7"}
        return request("127.0.0.1", self.port, f"{BASE}/cmd/config", body, timeout=20,
                       response_topic=f"{BASE}/reply/central.test/config")

    def advert(self, address: str, objects: tuple[tuple[int, Any], ...] = (), **kw: Any) -> None:
        if "bindkey" not in kw:
            self._pid = (self._pid + 1) % 256
            kw["packet_id"] = self._pid
        data = bthome.encode(objects, **kw)
        self.hub.sim.call({"op": "ble_advert", "address": address, "service_data_hex": {FCD2: data.hex()}})


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto, subscribe: Callable[..., Subscriber],
        emulate: Callable[[str, str], EmulatedDevice]) -> Iterator[Rig]:
    bed, disp, espa = emulate("bedmat", "bed"), emulate("dispenser", "disp"), emulate("espa444", "espa")
    modem = EmulatedModem(tmp_path).start()
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    pw = hub_dir / f"{NAME}.pass"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    push_key = Ed25519PrivateKey.generate()
    (hub_dir / "central-push.pub").write_bytes(public_pem(push_key))
    path = hub_dir / "hub.toml"
    path.write_text(config_text(bed, disp, espa, modem).replace("{port}", str(broker.port)))
    central = subscribe([f"{BASE}/event/#", f"{BASE}/status", f"{BASE}/heartbeat", f"{BASE}/reply/#"])  # what the hub sends
    hub = HubProcess(path)
    yield Rig(hub, central, broker.port, bed, disp, espa, modem, push_key)
    if hub.returncode is None and hub.proc is not None:
        hub.stop()
    modem.stop()


def drive_every_event_type(rig: Rig) -> None:
    """Each device, rule and command the hub has, until every event type of the contract went out."""
    hub, bed, disp, espa = rig.hub, rig.bed, rig.disp, rig.espa
    hub.start().wait_online()
    rig.wait("hub.started")
    for name in ("bedmat-1", "dispenser-1", "nursecall-1"):
        hub.wait_log(lambda e, n=name: e.get("event") == "serial_online" and e.get("device") == n)

    # the resident's button: an alarm, no ack in time, then the ack; a hold cancels the next one
    hub.press("button-1")
    rig.wait("alarm.button", "alarm.unacknowledged")
    rig.command("ack", {"event_id": rig.event("alarm.button")["id"], "by": "operator-7"})
    rig.wait("alarm.acknowledged")
    hub.press("button-1", seconds=1.2)
    rig.wait("alarm.cancelled")
    rig.command("test-alarm", {"note": "monthly test"})
    rig.wait("alarm.test")

    # BLE: an encrypted button, a door at night with nobody inside after, motion, a flood of readings
    rig.advert(BLE_BUTTON, buttons=["press"], bindkey=BINDKEY, mac=BLE_BUTTON, counter=11)
    for state in (0, 1, 0):
        rig.advert(DOOR, ((0x1A, state), (0x01, 90)))
        time.sleep(0.3)
    rig.wait("door.open", "door.close", "rule.door_night")
    rig.advert(MOTION, ((0x21, True),))
    rig.wait("motion.activity")
    for i in range(30):
        rig.advert(THERMO, ((0x02, 20 + i / 10),))
    rig.wait("sensor.reading", "device.flooding")

    # the radio fails and comes back
    hub.sim.call({"op": "ble_fault", "kind": "in_progress", "running": True, "times": 1})
    rig.wait("hub.ble_degraded")
    deadline = time.monotonic() + 15
    while "hub.ble_recovered" not in rig.types() and time.monotonic() < deadline:
        rig.advert(MOTION, ((0x21, False),))
        time.sleep(0.3)
    rig.wait("hub.ble_recovered")

    # the bed mat: out of bed at night and not back in time, a low battery, back
    bed.send("occupancy", state="in", battery=90)
    time.sleep(0.3)
    bed.send("occupancy", state="out", battery=90)
    rig.wait("bed.exit", "rule.bed_exit", "rule.bed_not_returned")
    bed.send("occupancy", state="in", battery=5)
    rig.wait("bed.return", "device.battery_low")

    # the dispenser: a dose due and taken, one missed, a jam
    disp.send("dose_due", dose_id=7)
    disp.send("dose_taken", dose_id=7)
    disp.send("dose_missed", dose_id=8)
    disp.send("fault", fault="jammed")
    rig.wait("medication.due", "medication.taken", "medication.missed", "rule.medication_missed", "device.fault")

    # the nurse-call line: a call nobody acknowledges: the SMS fallback, refused by the network first
    rig.modem.fault("cms_error")
    espa.send("call", address="101", text="Rom 101 seng", priority="1")
    rig.wait("alarm.nursecall")
    rig.wait("fallback.failed")
    rig.modem.fault("cms_error", on=False)
    rig.wait("fallback.sent")
    # the modem's SIM is gone, then back: the second path lost and restored
    rig.modem.fault("no_sim")
    rig.wait("path.lost")
    rig.modem.fault("no_sim", on=False)
    rig.wait("path.restored")
    # the nurse-call line's adapter pulled out and put back
    espa.unplug()
    rig.wait("device.offline")
    espa.replug()
    rig.wait("device.online")

    # the hub's own health: a task dies and is restarted
    assert hub.sim.call({"op": "crash", "task": "link"})["ok"]
    rig.wait("hub.degraded", "hub.recovered", timeout=20)

    # quiet: no sign of life in the day window
    rig.wait("rule.inactivity", timeout=20)

    # the central's other commands, whose replies are scanned too
    rig.command("status", {})
    rig.command("replay", {"from_seq": 1, "to_seq": 5})
    rig.command("ble-forget", {"device": "ble-button", "by": "operator-7"})

    # the config pushed again: a bad one (the resident's name where a time zone belongs) is refused, a good one taken
    good = hub.config.read_text()
    hub.config.write_text(good.replace('resident = "', f'timezone = "{NAME}"\nresident = "', 1))
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)
    rig.wait("hub.config_refused")
    hub.config.write_text(good.replace("steady_s = 600", "steady_s = 601"))
    hub.proc.send_signal(signal.SIGHUP)
    rig.wait("hub.config_reloaded")
    beats = len(rig.central.wait_for_topic(f"{BASE}/heartbeat"))
    rig.central.wait_for_topic(f"{BASE}/heartbeat", count=beats + 1)  # one under the new config (heartbeat_s = 2)

    # and pushed by the central: refused (the name again, where a time zone belongs), taken, and one that
    # points at a broker nobody runs, rolled back after the probation; the replies are scanned as well
    local = hub.config.read_text()
    refused = rig.push(1, local.replace('resident = "', f'timezone = "{NAME}"\nresident = "', 1))
    assert refused.get("ok") is False, refused
    rig.wait("config.refused")
    taken = rig.push(2, local.replace("steady_s = 601", "steady_s = 602"))
    assert taken.get("ok") is True, taken
    rig.wait("config.applied", "config.confirmed")
    nobody = free_port()
    lost = rig.push(3, local.replace(f"port = {rig.port}", f"port = {nobody}", 1))
    assert lost.get("ok") is True, lost
    rig.wait("config.rolled_back", timeout=30)

    # no check-in by the window's end (the next whole minute at least 15 s after the config was written:
    # it closes while the steps above run, or soon after), then a late one
    rig.wait("checkin.missed", timeout=120)
    rig.advert(BLE_BUTTON, buttons=["double_press"], bindkey=BINDKEY, mac=BLE_BUTTON, counter=12)
    rig.wait("checkin.done")
    assert hub.stop() == 0
    rig.wait("hub.stopping")


@pytest.mark.slow
def test_nothing_personal_leaves_the_house(rig: Rig) -> None:
    drive_every_event_type(rig)
    messages = rig.central.messages

    # every event type the contract names went out (so the scan below saw them all)
    missing = CONTRACT_TYPES - rig.types()
    assert not missing, f"event types never sent: {sorted(missing)}"
    kinds = {"event": 0, "status": 0, "heartbeat": 0, "reply": 0}
    for m in messages:
        kinds[m.topic.split("/")[3]] += 1  # carehub/v1/test-hub/<kind>...
    assert all(kinds.values()), kinds

    # nothing personal and no secret in any message, in any spelling
    leaks = [
        (m.topic, needle)
        for m in messages
        for needle in needles()
        if needle in m.payload.decode(errors="replace").lower()
        or needle in re.sub(r"\s+", "", m.payload.decode(errors="replace").lower())
    ]
    assert not leaks, f"personal data or secrets published: {leaks[:10]}"

    # events name the resident only by the pseudonymous id, and carry nothing the contract does not define
    events = [m.json() for m in messages if "/event/" in m.topic]
    assert {e["resident"] for e in events} == {RESIDENT}
    for e in events:
        jsonschema.validate(e, SCHEMA)
