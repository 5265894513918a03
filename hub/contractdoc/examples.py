"""Examples for the contract: one event of every type, and the status, heartbeat and reply documents.

One evening in a residence, as the hub tells it: the alarms, a dose, the bed
and the door, a missed evening check-in and the late one, the hub's own trouble. Every event is made the way the hub
makes it (a data struct, a :class:`~hub.events.Draft`,
:meth:`~hub.events.Event.from_draft`, which adds the SCAIP codes), with fixed
ids and times so the committed files do not change between runs. The tests
validate every example against its schema, and each data against its struct.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.contractdoc import payloads as d
from hub.contractdoc import configdocs as cd
from hub.eventdata import alarms as a
from hub.eventdata import checkin as ci
from hub.eventdata import configdata as c
from hub.eventdata import devices as v
from hub.eventdata import fallback as f
from hub.eventdata import hubdata as h
from hub.eventdata import rules as r
from hub.events import EVENT_TYPES, Draft, Event, Route, Source, rfc3339

HUB = "omsorgsbolig-12"
RESIDENT = "R-7f3a9c"
#: 2026-11-25T20:00:00Z, the evening the examples tell.
T0 = 1795636800.0
SHA_OLD = "9c1185a5c5e9fc54612808977ee8f548b2258d31" + "0" * 24
SHA_NEW = "2f7d3b1e0a4c5d6e7f8091a2b3c4d5e6f708192a" + "1" * 24
SHA_PUSHED_BAD = "5e0c2a7b9d1f3e5a7c9b1d3f5a7c9e1b3d5f7a9c" + "2" * 24
SHA_PUSHED = "8a1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4" + "3" * 24
SHA_PUSHED_9 = "c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7" + "4" * 24
#: An Ed25519 signature as the central makes them (base64 of 64 bytes; an example, not a valid one).
SIGNATURE = "3q2+7w" * 14 + "3q2+7w=="

BUTTON = Source(device="button-bedroom", kind="alarm_button", room="bedroom")
CORD = Source(device="cord-bathroom", kind="pull_cord", room="bathroom")
BED = Source(device="bedmat", kind="bed_mat", room="bedroom")
DISPENSER = Source(device="dispenser", kind="medication_dispenser", room="kitchen")
NURSECALL = Source(device="nursecall", kind="nurse_call", room=None)
DOOR = Source(device="door-front", kind="door", room="hallway")
MOTION = Source(device="motion-living", kind="motion", room="living room")
SENSOR = Source(device="climate-bedroom", kind="sensor", room="bedroom")
HUB_SOURCE = Source(device="hub", kind="hub")
RULE = Source(device="rule:inactivity", kind="rule")
CHECKIN = Source(device="checkin-kitchen", kind="checkin_button", room="kitchen")
CHECKIN_RULE = Source(device="rule:check_in", kind="rule")

ROUTES = {BUTTON: Route.ANY, CORD: Route.CARE, BED: Route.CARE, DISPENSER: Route.NURSE, NURSECALL: Route.ANY,
          DOOR: Route.CARE, MOTION: Route.CARE, SENSOR: Route.ANY, HUB_SOURCE: Route.ANY, RULE: Route.CARE,
          CHECKIN: Route.CARE, CHECKIN_RULE: Route.CARE}


def event_id(n: int) -> str:
    """The n-th example's id: a UUIDv7 of the evening."""
    return f"019abc4e-{n:04x}-7{n:03x}-8{n:03x}-{n:012x}"


def at(s: float) -> str:
    """The evening's time ``s`` seconds in."""
    return rfc3339(T0 + s)


#: The number of the evening's first checkin.missed (its re-alert and the late check-in name it).
MISSED_1 = 43

# (type, source, seconds into the evening, data, number of the event it names as cause)
_STORY: list[tuple[str, Source, float, msgspec.Struct, int | None]] = [
    ("hub.started", HUB_SOURCE, 0, h.HubStartedData(version="0.1.0", config_sha256=SHA_OLD, pending_at_start=0), None),
    ("alarm.button", BUTTON, 60, a.AlarmButtonData(input="ble", gesture="press"), None),
    ("alarm.button", BUTTON, 75, a.AlarmButtonData(input="ble", gesture="press", repeat=True), 2),
    ("alarm.unacknowledged", BUTTON, 120,
     a.AlarmUnacknowledgedData(waited_s=60.0, reminder=1, alarm_type="alarm.button", alarms=2), 2),
    ("alarm.acknowledged", BUTTON, 131,
     a.AlarmAcknowledgedData(by="op-17", alarm_type="alarm.button", closes=[event_id(2), event_id(3)], alarms=2), 2),
    ("alarm.button", CORD, 600, a.AlarmButtonData(input="gpio", gesture="press"), None),
    ("alarm.cancelled", CORD, 602, a.AlarmCancelledData(how="hold", closes=[event_id(6)]), 6),
    ("alarm.nursecall", NURSECALL, 900, a.AlarmNursecallData(call_address="1201", room="bedroom", text="Rom 1201",
                                                             espa_priority="1", call_type="0"), None),
    ("alarm.test", HUB_SOURCE, 1200, a.AlarmTestData(note="monthly test"), None),
    ("device.offline", BED, 1500, v.DeviceOfflineData(reason="silent", silent_s=3601.2, expected_interval_s=3600.0,
                                                      last_seen=at(-2101.2), rule="supervision"), None),
    ("device.online", BED, 1740, v.DeviceOnlineData(offline_s=240.0, rule="supervision"), None),
    ("device.battery_low", DISPENSER, 1800, v.DeviceBatteryLowData(battery_pct=15, threshold_pct=20), None),
    ("device.fault", DISPENSER, 1860, v.DeviceFaultData(fault="jammed", code=1), None),
    ("device.flooding", SENSOR, 1900, v.DeviceFloodingData(state="started", limit_per_s=20.0, burst=200.0), None),
    ("bed.exit", BED, 7200, v.BedExitData(since_s=30.0, pressure=12, seq=4711), None),
    ("bed.return", BED, 8100, v.BedReturnData(since_s=10.0, away_s=900.0, pressure=380, seq=4730), None),
    ("medication.due", DISPENSER, 3600, v.MedicationDueData(dose_id=42, scheduled=1795640400, compartment=3), None),
    ("medication.taken", DISPENSER, 3700,
     v.MedicationTakenData(dose_id=42, taken_at=1795640500, late=False, compartment=3), None),
    ("medication.missed", DISPENSER, 5400, v.MedicationMissedData(dose_id=43, reported_by="hub", grace_s=1800.0), None),
    ("door.open", DOOR, 9000, v.DoorData(sensor="door"), None),
    ("door.close", DOOR, 9008, v.DoorData(sensor="door"), None),
    ("motion.activity", MOTION, 9100, v.MotionActivityData(sensor="motion"), None),
    ("sensor.reading", SENSOR, 9200,
     v.SensorReadingData(values={"temperature": 21.5, "humidity": 41.0, "battery": 87}, changed=True), None),
    ("hub.ble_degraded", HUB_SOURCE, 9300,
     h.HubBleDegradedData(reason="in_progress", detail="org.bluez.Error.InProgress", adapter="hci0"), None),
    ("hub.ble_recovered", HUB_SOURCE, 9312, h.HubBleRecoveredData(outage_s=12.4, adapter="hci0"), None),
    ("hub.degraded", HUB_SOURCE, 9400, h.HubDegradedData(
        component="store", reason="state directory short of space: telemetry refused, alarms use the reserve"), None),
    ("hub.recovered", HUB_SOURCE, 9495, h.HubRecoveredData(
        component="store", outage_s=95.2, was="state directory short of space: telemetry refused, alarms use the "
        "reserve"), None),
    ("hub.config_reloaded", HUB_SOURCE, 9600,
     h.HubConfigReloadedData(sha256=SHA_NEW, previous_sha256=SHA_OLD, changed=["rules", "device:door-front changed"]),
     None),
    ("hub.config_refused", HUB_SOURCE, 9700, h.HubConfigRefusedData(
        reason="needs_restart", running_sha256=SHA_NEW, sha256=SHA_OLD, keys=["mqtt.prefix"]), None),
    ("rule.bed_exit", BED, 7200, r.RuleBedExitData(exit_at=at(7200)), 15),
    ("rule.bed_not_returned", BED, 8400,
     r.RuleBedNotReturnedData(exit_at=at(7170), away_s=1230.0, after_s=1200.0, realert=0), 15),
    ("rule.door_night", DOOR, 9608, r.RuleDoorNightData(state="closed", opened_at=at(9000), open_s=8.0, realert=0,
                                                        closed_at=at(9008), inside_after_s=600.0), 20),
    ("rule.medication_missed", DISPENSER, 5400,
     r.RuleMedicationMissedData(dose_id=43, reported_by="hub", due_at=at(3600)), 19),
    ("rule.inactivity", RULE, 12000, r.RuleInactivityData(quiet_s=14400.0, after_s=14400.0, last_activity_at=at(-2400),
                                                          last_activity="motion.activity", realert=0), None),
    ("config.refused", HUB_SOURCE, 9800, c.ConfigRefusedData(
        version=7, sha256=SHA_PUSHED_BAD, reason="invalid", running_sha256=SHA_NEW, errors=1, lines=[4]), None),
    ("config.applied", HUB_SOURCE, 9900, c.ConfigAppliedData(
        version=8, sha256=SHA_PUSHED, previous_sha256=SHA_NEW, changed=["alarm", "mqtt"], probation_s=120.0,
        by="central.main"), None),
    ("config.rolled_back", HUB_SOURCE, 10030, c.ConfigRolledBackData(
        version=8, sha256=SHA_PUSHED, reason="unreachable", detail="the central was not reached within "
        "probation_s = 120: no birth acknowledged by a broker (brokers mqtt3.responssenter.example:8883; link backoff, "
        "last error ConnectionRefusedError: [Errno 111] Connection refused)", to_version=None, to_sha256=SHA_NEW,
        at=at(10020)), None),
    ("config.confirmed", HUB_SOURCE, 10200, c.ConfigConfirmedData(version=9, sha256=SHA_PUSHED_9, after_s=0.412),
     None),
    ("fallback.failed", NURSECALL, 1020, f.FallbackFailedData(
        to="+4791234567", reason="unacknowledged", reminder=0, alarm_type="alarm.nursecall", device="modem",
        waited_s=120.0, error="cms_error", detail="+CMS ERROR: 500", attempt=1, retry_in_s=30.0), 8),
    ("fallback.sent", NURSECALL, 1050, f.FallbackSentData(
        to="+4791234567", reason="unacknowledged", reminder=0, alarm_type="alarm.nursecall", device="modem",
        waited_s=150.3, reference="17", chars=118), 8),
    ("path.lost", HUB_SOURCE, 10300, f.PathLostData(
        path="gsm", reason="not_registered", detail={"sim": "ready", "registration": 2, "signal": 99,
                                                     "device": "modem"}), None),
    ("path.restored", HUB_SOURCE, 10360, f.PathRestoredData(
        path="gsm", outage_s=60.2, was="not_registered", detail={"sim": "ready", "registration": 1, "signal": 18,
                                                                 "device": "modem"}), None),
    ("checkin.missed", CHECKIN_RULE, 7200, ci.CheckinMissedData(
        window="21:00-23:00", opened_at=at(0), due_at=at(7200), last_checkin_at=at(-84000), realert=0), None),
    ("checkin.missed", CHECKIN_RULE, 8100, ci.CheckinMissedData(
        window="21:00-23:00", opened_at=at(0), due_at=at(7200), last_checkin_at=at(-84000), realert=1), MISSED_1),
    ("checkin.done", CHECKIN, 8160, ci.CheckinDoneData(input="gpio", gesture="press", window=None,
                                                      missed=event_id(MISSED_1)), None),
    ("hub.stopping", HUB_SOURCE, 13000, h.HubStoppingData(), None),
]


def events() -> list[dict[str, Any]]:
    """Every example event as JSON, in seq order: at least one of every type."""
    out = []
    for n, (type_, source, s, data, cause) in enumerate(_STORY, start=1):
        draft = Draft(
            type=type_, priority=EVENT_TYPES[type_][0], source=source, route=ROUTES[source],
            data=msgspec.to_builtins(data), cause=event_id(cause) if cause else None, id=event_id(n), ts=at(s),
        )
        out.append(msgspec.to_builtins(Event.from_draft(draft, hub=HUB, resident=RESIDENT, seq=n)))
    return out


def batch() -> dict[str, Any]:
    """An event batch (``{prefix}/{hub}/events``): the story's normal and low priority telemetry that is in a row."""
    return {"events": [e for e in events() if e["type"] in ("door.open", "door.close", "motion.activity",
                                                            "sensor.reading")]}


def by_type() -> dict[str, dict[str, Any]]:
    """The first example event of each type."""
    out: dict[str, dict[str, Any]] = {}
    for e in events():
        out.setdefault(e["type"], e)
    return out


_DEVICES = [d.StatusDevice(id=s.device, kind=s.kind, room=s.room, route=ROUTES[s])
            for s in (BUTTON, CORD, BED, DISPENSER, NURSECALL, DOOR, MOTION, SENSOR)]

STATUS_ONLINE = d.StatusOnline(state="online", hub=HUB, version="0.1.0", started=at(0), config_sha256=SHA_OLD,
                               devices=_DEVICES)
STATUS_LOST = d.StatusOffline(state="offline", hub=HUB, reason="connection lost")
STATUS_STOPPED = d.StatusOffline(state="offline", hub=HUB, reason="stopped")

_HEARTBEAT: dict[str, Any] = dict(
    hub=HUB, ts=at(127.5), version="0.1.0", uptime_s=127.5, seq=5,
    outbox=d.OutboxStatus(pending=0, pending_alarms=0, stored=5, last_seq=5, oldest_pending_ts=None, evicted=0,
                          bytes=40960, held=0, refused_full=0),
    link=d.LinkStatus(state="online", broker="mqtt1.responssenter.example:8883", connects=1, last_error=None,
                      error_kind=None, failures=0),
    forwarder=d.ForwarderStatus(inflight=0, queued=0, delivered=5, refused=0, held=0, send_errors=0),
    devices={
        "button-bedroom": {"kind": "alarm_button", "state": "ok", "driver": "ble", "address": "A4:C1:38:5E:21:0B",
                           "encrypted": True, "adverts": {"accepted": 41}, "last_seen": at(75), "rssi": -71,
                           "battery": 93},
        "cord-bathroom": {"kind": "pull_cord", "state": "ok", "driver": "gpio", "last_seen": None},
        "bedmat": {"kind": "bed_mat", "state": "ok", "driver": "serial", "protocol": "bedmat",
                   "port": "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KBED-if00-port0", "frames": 3,
                   "waiting_for_store": 0, "errors": {}, "last_reading_s_ago": 7.5, "occupancy": "in",
                   "since_s": 127.5, "battery": 80, "last_seen": at(120)},
        "dispenser": {"kind": "medication_dispenser", "state": "ok", "driver": "serial", "protocol": "dispenser",
                      "port": "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KDSP-if00-port0", "frames": 2,
                      "waiting_for_store": 0, "errors": {}, "last_reading_s_ago": 40.2, "last_seen": at(87.3)},
        "nursecall": {"kind": "nurse_call", "state": "ok", "driver": "serial", "protocol": "espa444",
                      "port": "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KESPA-if00-port0", "frames": 0,
                      "waiting_for_store": 0, "errors": {}, "last_reading_s_ago": None, "calls": 0, "resets": 0,
                      "suppressed": 0, "last_call": None, "last_seen": None},
        "door-front": {"kind": "door", "state": "never heard", "driver": "ble", "address": "A4:C1:38:5E:21:0C",
                       "encrypted": False, "adverts": {}, "last_seen": None, "rssi": None, "battery": None},
        "motion-living": {"kind": "motion", "state": "ok", "driver": "ble", "address": "A4:C1:38:5E:21:0D",
                          "encrypted": False, "adverts": {"accepted": 12}, "last_seen": at(110), "rssi": -80,
                          "battery": 64},
        "climate-bedroom": {"kind": "sensor", "state": "ok", "driver": "ble", "address": "A4:C1:38:5E:21:0E",
                            "encrypted": False, "adverts": {"accepted": 20}, "last_seen": at(121), "rssi": -66,
                            "battery": 87},
        "ble": {"state": "ok", "driver": "ble", "adapter": "hci0", "devices": 4, "adverts_total": 1250,
                "adverts_allowed": 73, "dropped": 0, "rebuilds": 0, "last_advert_s_ago": 2.1},
    },
    open_alarms=[d.OpenAlarm(event_id=event_id(2), device="button-bedroom", type="alarm.button", state="delivered",
                             alarms=2, latest=event_id(3), held=0, reminders=1)],
    health=d.HealthStatus(state="ok", problems={}),
    tasks={name: d.TaskStatus(state="running", restarts=0)
           for name in ("link", "forwarder", "commands", "heartbeat", "housekeeping", "rules", "control", "reload", "ble",
                        "serial:bedmat", "serial:dispenser", "serial:nursecall")},
    commands=d.CommandCounters(handled=3, refused={}, queued=0),
    alarm_counters={},
    paths={
        "mqtt": d.PathStatus(state="up", since=at(0.4), reason=None, lost=0, detail={}),
        "gsm": d.PathStatus(state="up", since=at(2.1), reason=None, lost=0,
                            detail={"sim": "ready", "registration": 1, "signal": 18, "device": "modem"}),
        "interface": d.PathStatus(state="down", since=at(3.0), reason="no_carrier", lost=1,
                                  detail={"interface": "wwan0", "operstate": "lowerlayerdown", "carrier": False}),
    },
    fallback=d.FallbackStatus(armed=True, text_paths=["modem"], counters={}, episodes=[]),
)
HEARTBEAT = d.Heartbeat(**_HEARTBEAT)

#: Command name -> (name, payload, reply) examples, the success first.
COMMANDS: dict[str, list[tuple[str, dict[str, Any], msgspec.Struct]]] = {
    "ack": [
        ("acknowledged", {"event_id": event_id(2), "by": "op-17"},
         d.AckReply(ok=True, result="acknowledged", alarm_id=event_id(2), closes=[event_id(2), event_id(3)])),
        ("already acknowledged", {"event_id": event_id(3), "by": "op-22"},
         d.AckReply(ok=True, result="already_acknowledged", alarm_id=event_id(3), closes=[event_id(2), event_id(3)])),
        ("cancelled at the device", {"event_id": event_id(6), "by": "op-17"},
         d.AckReply(ok=True, result="cancelled", alarm_id=event_id(6), closes=[event_id(6)])),
        ("a missed check-in", {"event_id": event_id(MISSED_1 + 1), "by": "op-17"},
         d.AckReply(ok=True, result="acknowledged", alarm_id=event_id(MISSED_1),
                    closes=[event_id(MISSED_1), event_id(MISSED_1 + 1)])),
        ("unknown event", {"event_id": event_id(999), "by": "op-17"},
         d.AckUnknownReply(ok=False, result="unknown_event", error=f"no open alarm with id {event_id(999)}")),
    ],
    "test-alarm": [
        ("stored", {"note": "monthly test"}, d.TestAlarmReply(ok=True, event_id=event_id(9), seq=9)),
        ("unknown device", {"device": "button-kitchen"}, d.ErrorReply(ok=False, error="unknown device 'button-kitchen'")),
    ],
    "status": [("status", {}, d.StatusReply(ok=True, **_HEARTBEAT))],
    "replay": [
        ("some missing", {"from_seq": 1, "to_seq": 9}, d.ReplayReply(ok=True, sent=5, missing=[6, 7, 8, 9],
                                                                    missing_count=4)),
        ("past the end", {"from_seq": 100, "to_seq": 109},
         d.ErrorReply(ok=False, error="from_seq 100 is after the last seq 5", last_seq=5)),
        ("refused at the gate", {"from_seq": 0, "to_seq": 9},
         d.ErrorReply(ok=False, error="bad replay payload: Expected `int` >= 1 - at `$.from_seq`", refused="invalid")),
    ],
    "config": [
        ("applying", {"version": 9, "sha256": SHA_PUSHED_9, "signature": SIGNATURE, "by": "central.main",
                      "toml": '[hub]\nid = "omsorgsbolig-12"\nresident = "R-7f3a9c"\n\n[mqtt]\n...'},
         cd.ConfigPushReply(ok=True, result="applying", version=9, sha256=SHA_PUSHED_9, probation_s=120.0)),
        ("by reference (the retained {prefix}/{hub}/config/9)",
         {"version": 9, "sha256": SHA_PUSHED_9, "signature": SIGNATURE, "by": "central.main"},
         cd.ConfigPushReply(ok=True, result="applying", version=9, sha256=SHA_PUSHED_9, probation_s=120.0)),
        ("invalid", {"version": 7, "sha256": SHA_PUSHED_BAD, "signature": SIGNATURE, "toml": "..."},
         cd.ConfigRefusedReply(ok=False, result="invalid", version=7, error="pushed:v7: 1 problem; nothing changed",
                               errors=["pushed:v7:4:1: hub.timezon: unknown key (did you mean 'timezone'?); "
                                       "expected one of: id, resident, timezone"])),
        ("pinned", {"version": 10, "sha256": SHA_PUSHED, "signature": SIGNATURE, "toml": "..."},
         cd.ConfigRefusedReply(ok=False, result="pinned", version=10, error="pushed:v10: 1 problem; nothing changed",
                               errors=["pushed:v10:2:1: hub.id: a pushed config may not change hub.id (the hub's "
                                       "identity: in every topic, its client id and the broker's ACL); keep "
                                       "'omsorgsbolig-12'"])),
        ("bad signature", {"version": 10, "sha256": SHA_PUSHED, "signature": SIGNATURE, "toml": "..."},
         cd.ConfigRefusedReply(ok=False, result="bad_signature", version=10,
                               error="the signature is not the central's ([push] key) over hub omsorgsbolig-12, "
                                     "version 10 and sha256 8a1b2c3d4e5f...")),
    ],
    "config-status": [
        ("on probation", {}, cd.ConfigStatusReply(
            ok=True, enabled=True, active=cd.ConfigRef(version=9, source="pushed", sha256=SHA_PUSHED_9),
            last_good=cd.ConfigRef(version=None, source="local", sha256=SHA_NEW),
            probation=cd.ConfigProbation(version=9, started=at(10199.6), probation_s=120.0, remaining_s=119.5),
            highest=9, local_sha256=SHA_NEW,
            history=[
                cd.ConfigHistoryEntry(version=9, sha256=SHA_PUSHED_9, state="probation", at=at(10199.6),
                                      by="central.main", reason=None),
                cd.ConfigHistoryEntry(version=8, sha256=SHA_PUSHED, state="rolled_back", at=at(9900),
                                      by="central.main", reason="the central was not reached within probation_s = "
                                      "120: no birth acknowledged by a broker (link backoff, ...)"),
                cd.ConfigHistoryEntry(version=7, sha256=SHA_PUSHED_BAD, state="refused", at=at(9800),
                                      by="central.main", reason="invalid"),
            ])),
    ],
    "ble-forget": [
        ("forgotten", {"device": "button-bedroom", "by": "op-17"},
         d.BleForgetReply(ok=True, device="button-bedroom", previous_counter=1184)),
        ("no such device", {"device": "cord-bathroom"},
         d.ErrorReply(ok=False, error="no BLE device 'cord-bathroom'; have: button-bedroom")),
    ],
    "away": [
        ("hospital stay", {"from": "2026-11-26T09:00:00+01:00", "until": "2026-12-03T12:00:00+01:00",
                           "reason": "hospital", "by": "op-17"},
         d.AwayReply(ok=True, away=d.AwayPeriod(from_="2026-11-26T08:00:00.000Z", until="2026-12-03T11:00:00.000Z",
                                                reason="hospital", by="op-17"),
                     previous=None, away_now=False, absence=None)),
        ("home again", {"cancel": True, "by": "op-22"},
         d.AwayReply(ok=True, away=None, previous=d.AwayPeriod(
             from_="2026-11-26T08:00:00.000Z", until="2026-12-03T11:00:00.000Z", reason="hospital", by="op-17"),
             away_now=False, absence=None)),
        ("no until", {"reason": "holiday"},
         d.ErrorReply(ok=False, error="away needs until (or cancel: true to end an absence)")),
        ("no check-in rule", {"until": "2026-12-03T12:00:00+01:00"},
         d.ErrorReply(ok=False, error="no check-in rule here: [rules.check_in] is not enabled on this hub")),
    ],
}
