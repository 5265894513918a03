"""The SCAIP codes of each event: a device type (``dty``) per device kind, a status code (``stc``) per type.

Swedish municipalities require SCAIP (SS 91100:2014, taken up by CENELEC as
TS 50134-9) between social alarms and alarm receivers. A SCAIP message names
the device by a four-digit device type (``dty``) and what happened by a
four-digit status code (``stc``). Every event carries both, as
``scaip: {"dty": ..., "stc": ...}`` (:class:`Scaip`), filled in by
:meth:`hub.events.Event.from_draft` from the event's type and its source's
kind, so a central with SCAIP receivers maps without guessing and no producer
has to know about SCAIP.

Where the codes come from. The standard itself is a paid SIS document that
this project could not read; the codes below come from public implementations:

* caruhome/scaip-gateway, ``scaip_gateway/spec.py`` (commit 04885f93), enums
  ``DeviceType`` and ``StatusCode``: the full code lists, in the standard's
  order (alphabetical by English name, ``0112``-``0127`` appended). Every code
  used here is in them. Syntilio/Datahub-Scaip-Proxy ``SPEC.md`` (eccaba99)
  repeats these lists word for word (a copy, not a second reading).
* Syntilio/Datahub-Scaip-Proxy's own Java enums confirm a part independently:
  ``enums/DeviceType.java`` (eccaba99) every device type used here (0002,
  0003, 0004, 0010, 0011, 0012, 0014), ``enums/StatusCode.java`` (d73affec)
  the status codes 0010 manual alarm and 0093 manual reset, and
  ``client/ScaipSampleXml.java`` (a3a9b167) a sample alarm of ``dty`` 0004
  (fixed trigger) with ``stc`` 0010 (manual alarm). The other status codes
  rest on the one transcription.

The list has one visible slip (``INACTIVE`` and ``INITIATED`` both
``0050``; by the alphabetical order ``INACTIVE`` is ``0049``): neither is
used, and ``0048`` (in service) sits where that order puts it.

Which code fits which of the hub's kinds and types is this project's
reading of the codes' names, said next to each entry. Where no code fits (a generic BLE sensor, a nurse-call line whose call points the hub
cannot see, a config reload, a telemetry flood) the entry is None and the
event says ``null``: never a guess.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

#: A SCAIP code: four digits, as the XML carries it.
Code = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")]

#: The SCAIP device types used here: code -> the code list's name.
DEVICE_TYPE_NAMES: dict[str, str] = {
    "0002": "local unit and controller",
    "0003": "personal trigger",
    "0004": "fixed trigger",
    "0010": "activity detector",
    "0011": "pill dispenser",
    "0012": "bed monitor",
    "0014": "door sensor",
}

#: The SCAIP status codes used here: code -> the code list's name.
STATUS_CODE_NAMES: dict[str, str] = {
    "0003": "absent",
    "0005": "acknowledge",
    "0010": "manual alarm",
    "0016": "battery low",
    "0021": "closed",
    "0027": "redundant communication link failure",
    "0042": "failure",
    "0048": "in service",
    "0067": "malfunction",
    "0069": "non active",
    "0073": "offline",
    "0075": "online",
    "0076": "open",
    "0078": "out of service",
    "0081": "pill not taken",
    "0082": "pill reminder",
    "0083": "pill taken",
    "0093": "manual reset",
    "0094": "restoral",
    "0102": "test transmission over primary channel",
    "0104": "time out",
    "0105": "trouble",
    "0116": "redundant communication link reestablished",
    "0117": "lying in bed",
    "0119": "movement",
    "0121": "present",
}

#: Device kind (``source.kind``) -> SCAIP device type. Kinds not listed have none.
DEVICE_TYPES: dict[str, str | None] = {
    # A button the resident presses, most often worn (a BLE pendant). A button fixed to the wall
    # would be a fixed trigger (0004), but the kind does not say which: personal trigger.
    "alarm_button": "0003",
    # A cord hanging from the ceiling of a bathroom: a fixed trigger.
    "pull_cord": "0004",
    # A mat in the bed that reads in bed / out of bed: a bed monitor (a mat sensor, 0013,
    # is a mat on the floor that someone steps on).
    "bed_mat": "0012",
    "medication_dispenser": "0011",
    "door": "0014",
    # A motion or occupancy sensor whose activity feeds the inactivity rule: an activity detector.
    "motion": "0010",
    # A nurse-call line (ESPA 4.4.4) carries calls from call points the hub cannot see (a cord,
    # a bedside button, a pendant): no one device type fits.
    "nurse_call": None,
    # Any BLE sensor (a thermometer, a scale): no one device type fits.
    "sensor": None,
    # A GSM/LTE modem, the hub's second path: no device type names a modem (0050 radio unit is a radio
    # alarm unit, 0032 communication link monitor watches a link, the hub does that); its path events come
    # from the hub (0002).
    "modem": None,
    # The hub itself: the local unit in the home, and the controller that talks to the central.
    "hub": "0002",
    # A rule's own alert (rule.inactivity): no device.
    "rule": None,
    # A button the resident presses to say "all is well" (a daily check-in): no device type of the
    # list names it (a personal or fixed trigger raises alarms, which this button never does).
    "checkin_button": None,
}

#: Event type -> SCAIP status code. Types not listed have none.
STATUS_CODES: dict[str, str | None] = {
    "alarm.button": "0010",  # manual alarm
    "alarm.nursecall": "0010",  # manual alarm: someone pressed or pulled a call point
    "alarm.test": "0102",  # test transmission over primary channel: a test through the whole chain
    "alarm.cancelled": "0093",  # manual reset: held at the button, or reset at the call point
    "alarm.acknowledged": "0005",  # acknowledge
    "alarm.unacknowledged": "0104",  # time out: no ack within the ack timeout
    "device.online": "0075",  # online
    "device.offline": "0073",  # offline
    "device.battery_low": "0016",  # battery low
    "device.fault": "0067",  # malfunction (data.fault says which)
    "device.flooding": None,  # the hub dropping a device's excess telemetry: no code
    "bed.exit": "0003",  # absent: out of bed
    "bed.return": "0117",  # lying in bed
    "medication.due": "0082",  # pill reminder
    "medication.taken": "0083",  # pill taken
    "medication.missed": "0081",  # pill not taken
    "door.open": "0076",  # open
    "door.close": "0021",  # closed
    "motion.activity": "0119",  # movement
    "sensor.reading": None,  # telemetry of any kind: no code
    "hub.started": "0048",  # in service
    "hub.stopping": "0078",  # out of service (a clean stop)
    "hub.degraded": "0105",  # trouble
    "hub.recovered": "0094",  # restoral
    "hub.ble_degraded": "0105",  # trouble (of the hub's Bluetooth radio)
    "hub.ble_recovered": "0094",  # restoral
    "hub.config_reloaded": None,  # no code for a configuration change
    "hub.config_refused": None,
    "fallback.sent": None,  # an SMS to on-call staff: no code for a message over a second path to a person
    "fallback.failed": "0042",  # failure (of the fallback's SMS)
    "path.lost": "0027",  # redundant communication link failure: the modem or the second interface
    "path.restored": "0116",  # redundant communication link reestablished
    "config.refused": None,  # a pushed config: no code for a configuration change
    "config.applied": None,
    "config.confirmed": None,
    "config.rolled_back": None,
    "rule.bed_exit": "0003",  # absent: out of bed at night
    "rule.bed_not_returned": "0003",  # absent: out of bed at night and not back
    "rule.door_night": None,  # a door at night with nobody known inside: no one code (wandering is a device type)
    "rule.medication_missed": "0081",  # pill not taken
    "rule.inactivity": "0069",  # non active: no activity for too long
    "checkin.done": "0121",  # present: the resident says, on purpose, that they are there and well
    "checkin.missed": "0104",  # time out: the check-in expected by the window's end did not come
}


class Scaip(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The event's SCAIP codes (SS 91100 / TS 50134-9), for a central that forwards to SCAIP receivers.

    ``null`` where the code lists have no code that fits (see the AsyncAPI document's table).
    """

    dty: Annotated[
        Code | None, msgspec.Meta(description="SCAIP device type of source.kind, e.g. 0003 personal trigger.")
    ]
    stc: Annotated[
        Code | None, msgspec.Meta(description="SCAIP status code of the event type, e.g. 0010 manual alarm.")
    ]


_cache: dict[tuple[str, str], Scaip | None] = {}


def codes_for(event_type: str, kind: str) -> Scaip | None:
    """The SCAIP codes of an event of ``event_type`` from a device of ``kind``; None when neither has one."""
    key = (event_type, kind)
    try:
        return _cache[key]
    except KeyError:
        pass
    dty, stc = DEVICE_TYPES.get(kind), STATUS_CODES.get(event_type)
    found = None if dty is None and stc is None else Scaip(dty=dty, stc=stc)
    if len(_cache) < 4096:  # types and kinds come from the code and the config: a few hundred pairs at most
        _cache[key] = found
    return found
