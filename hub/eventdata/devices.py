"""The data of what devices report: their state, beds, doses, doors, motion and readings.

Producers: the serial drivers (:mod:`drivers.serial.port`, ``bedmat``,
``dispenser``, ``base.BatteryWatch``), the BLE drivers
(:mod:`drivers.ble.devices`, :mod:`drivers.ble.gatt.manager`), the
supervision rule (:mod:`hub.rules.supervision`, marked ``rule:
"supervision"``) and the telemetry limit (:mod:`hub.flood` via
:mod:`hub.emitter`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from hub.eventdata.base import UNSET, Data, Percent, Seconds, Timestamp, Unset

#: Marks what the supervision rule sent (not the device's driver).
SupervisionMark = Annotated[
    Literal["supervision"],
    msgspec.Meta(description="supervision: said by the hub's supervision rule (silence, a battery level in "
                             "a report), not by the device's driver. Absent otherwise."),
]
#: The device's Bluetooth address (a GATT device).
Address = Annotated[str, msgspec.Meta(description="GATT device: its Bluetooth address.")]
#: The serial port (a serial device).
Port = Annotated[str, msgspec.Meta(description="Serial device: its port.")]


class DeviceOnlineData(Data):
    """device.online: the device reports again (its serial port reopened, its GATT connection is back, or
    supervision heard it after a silence)."""

    offline_s: Annotated[
        Seconds | None, msgspec.Meta(description="How long it was offline (null: not known since a restart).")
    ] | Unset = UNSET
    port: Port | Unset = UNSET
    address: Address | Unset = UNSET
    rule: SupervisionMark | Unset = UNSET


class DeviceOfflineData(Data):
    """device.offline: the device stopped reporting or could not be opened."""

    reason: Annotated[
        str,
        msgspec.Meta(description="Why: silent (supervision: nothing heard for longer than its interval), or "
                                 "the driver's words (a serial port's or a GATT connection's error)."),
    ]
    silent_s: Annotated[Seconds, msgspec.Meta(description="silent: seconds since it was last heard.")] | Unset = UNSET
    expected_interval_s: Annotated[
        Seconds, msgspec.Meta(description="silent: the interval it should report within.")
    ] | Unset = UNSET
    last_seen: Annotated[
        Timestamp | None, msgspec.Meta(description="silent: when it was last heard (null: never since the hub started).")
    ] | Unset = UNSET
    port: Port | Unset = UNSET
    address: Address | Unset = UNSET
    rule: SupervisionMark | Unset = UNSET


class DeviceBatteryLowData(Data):
    """device.battery_low: the battery dropped below its threshold (once, until it is back above the ok level)."""

    battery_pct: Annotated[Percent, msgspec.Meta(description="The battery level now, in percent.")]
    threshold_pct: Annotated[Percent, msgspec.Meta(description="The threshold it dropped below.")]
    rule: SupervisionMark | Unset = UNSET


class DeviceFaultData(Data):
    """device.fault: the device reports a fault."""

    fault: Annotated[
        str,
        msgspec.Meta(description="Which: a dispenser's jammed, empty, lid_open, motor, sensor, clock_lost, "
                                 "tamper, ..., or code_0xNN for a code the hub does not know; decryption_unavailable: "
                                 "an encrypted BLE device whose adverts the hub cannot decrypt (its crypto "
                                 "self-test failed at start)."),
    ]
    code: Annotated[int | None, msgspec.Meta(description="The device's own fault code, if it sent one.")]


class DeviceFloodingData(Data):
    """device.flooding: the device sends telemetry faster than its limit ([limits]); the excess is dropped."""

    state: Annotated[
        Literal["started", "ended"],
        msgspec.Meta(description="started: dropping from now; ended: within its limit again for a while."),
    ]
    limit_per_s: Annotated[float, msgspec.Meta(description="started: the limit, events a second.")] | Unset = UNSET
    burst: Annotated[float, msgspec.Meta(description="started: the burst allowed above it.")] | Unset = UNSET
    dropped: Annotated[int, msgspec.Meta(ge=0, description="ended: events dropped in the episode.")] | Unset = UNSET
    lasted_s: Annotated[Seconds, msgspec.Meta(description="ended: from the first drop to the last.")] | Unset = UNSET


class BedExitData(Data):
    """bed.exit: the bed mat has read empty for its exit_after_s (turning over does not count)."""

    since_s: Annotated[Seconds, msgspec.Meta(description="How long it has read empty.")]
    pressure: Annotated[int | None, msgspec.Meta(description="The mat's pressure reading when it turned empty.")]
    seq: Annotated[int | None, msgspec.Meta(description="The mat's own sequence number of that reading.")]


class BedReturnData(Data):
    """bed.return: back in bed after a bed.exit, held for return_after_s; or, with baseline, in bed when the
    hub first heard the mat."""

    since_s: Annotated[Seconds, msgspec.Meta(description="How long it has read occupied (0 with baseline).")]
    away_s: Annotated[Seconds, msgspec.Meta(description="How long the bed was empty.")] | Unset = UNSET
    pressure: Annotated[int | None, msgspec.Meta(description="The pressure reading when it turned occupied.")] | Unset = UNSET
    seq: Annotated[int | None, msgspec.Meta(description="The mat's sequence number of that reading.")] | Unset = UNSET
    baseline: Annotated[
        bool, msgspec.Meta(description="true: the first reading the hub had of this mat, not a return.")
    ] | Unset = UNSET


#: A dose's number as the dispenser gives it.
DoseId = Annotated[int, msgspec.Meta(ge=0, description="The dispenser's number of the dose.")]


class MedicationDueData(Data):
    """medication.due: the dispenser offers a dose."""

    dose_id: DoseId
    scheduled: Annotated[int | None, msgspec.Meta(description="When it was scheduled, Unix seconds (null: not known).")]
    compartment: Annotated[int | None, msgspec.Meta(description="The compartment it is in.")]


class MedicationTakenData(Data):
    """medication.taken: the dose was taken."""

    dose_id: DoseId
    taken_at: Annotated[int | None, msgspec.Meta(description="When, Unix seconds by the dispenser (null: not known).")]
    late: Annotated[bool, msgspec.Meta(description="true: taken after it was reported missed.")]
    compartment: Annotated[
        int | None, msgspec.Meta(description="The compartment, when the hub saw the dose offered.")
    ] | Unset = UNSET


class MedicationMissedData(Data):
    """medication.missed: a dose was missed: reported by the dispenser, or not taken within grace_s."""

    dose_id: DoseId
    reported_by: Annotated[
        Literal["dispenser", "hub"],
        msgspec.Meta(description="dispenser: it said so; hub: not taken within the dispenser's grace_s."),
    ]
    grace_s: Annotated[Seconds, msgspec.Meta(description="hub: the grace it waited.")] | Unset = UNSET


class DoorData(Data):
    """door.open, door.close: a door or window sensor changed state."""

    sensor: Annotated[str, msgspec.Meta(description="The sensor's BTHome state that changed: door, opening or window.")]


class MotionActivityData(Data):
    """motion.activity: a motion or occupancy sensor saw someone (at most once per activity_interval_s)."""

    sensor: Annotated[str, msgspec.Meta(description="The sensor's BTHome state: motion or occupancy.")]


class SensorReadingData(Data):
    """sensor.reading: telemetry from a BLE sensor's adverts, sent when a value changes or every
    telemetry_interval_s. (A GATT notification mapped to sensor.reading carries {<key>: value, raw} instead.)"""

    values: Annotated[
        dict[str, Any],
        msgspec.Meta(description="The advert's values by BTHome name (temperature, humidity, battery, ...), in "
                                 "BTHome's units."),
    ]
    changed: Annotated[bool, msgspec.Meta(description="false: sent again unchanged after telemetry_interval_s.")]


DATA: dict[str, type[Data]] = {
    "device.online": DeviceOnlineData,
    "device.offline": DeviceOfflineData,
    "device.battery_low": DeviceBatteryLowData,
    "device.fault": DeviceFaultData,
    "device.flooding": DeviceFloodingData,
    "bed.exit": BedExitData,
    "bed.return": BedReturnData,
    "medication.due": MedicationDueData,
    "medication.taken": MedicationTakenData,
    "medication.missed": MedicationMissedData,
    "door.open": DoorData,
    "door.close": DoorData,
    "motion.activity": MotionActivityData,
    "sensor.reading": SensorReadingData,
}
