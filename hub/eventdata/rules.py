"""The data of the local rules' alerts (:mod:`hub.rules`): each is re-sent while its condition lasts.

The supervision rule sends device.offline / device.online / device.battery_low
(:mod:`hub.eventdata.devices`, marked ``rule: "supervision"``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from hub.eventdata.base import UNSET, Data, Seconds, Timestamp, Unset

#: How many re-alerts came before this one.
Realert = Annotated[int, msgspec.Meta(ge=0, description="0 for the first alert, then 1, 2, ... for each re-alert.")]


class RuleBedExitData(Data):
    """rule.bed_exit: a bed.exit inside the night window (cause: the bed.exit)."""

    exit_at: Annotated[Timestamp, msgspec.Meta(description="When the bed.exit came.")]


class RuleBedNotReturnedData(Data):
    """rule.bed_not_returned: out of bed at night and not back within after_s (cause: the bed.exit)."""

    exit_at: Annotated[Timestamp, msgspec.Meta(description="When the resident left the bed.")]
    away_s: Annotated[Seconds, msgspec.Meta(description="How long out of bed so far.")]
    after_s: Annotated[Seconds, msgspec.Meta(description="The rule's after_s.")]
    realert: Realert


class RuleDoorNightData(Data):
    """rule.door_night: the door opened at night and the resident is not known to be inside (cause: the
    door.open)."""

    state: Annotated[
        Literal["open", "closed"],
        msgspec.Meta(description="open: held open for open_after_s (re-sent every realert_s); closed: no sign "
                                 "of anyone inside within inside_after_s after it closed."),
    ]
    opened_at: Annotated[Timestamp, msgspec.Meta(description="When it opened.")]
    open_s: Annotated[Seconds, msgspec.Meta(description="How long it was (or has been) open.")]
    realert: Realert
    closed_at: Annotated[Timestamp, msgspec.Meta(description="closed: when it closed.")] | Unset = UNSET
    inside_after_s: Annotated[Seconds, msgspec.Meta(description="closed: the rule's inside_after_s.")] | Unset = UNSET


class RuleMedicationMissedData(Data):
    """rule.medication_missed: a dose was missed; once per dose (cause: the medication.missed or .due)."""

    dose_id: Annotated[
        Any, msgspec.Meta(description="The dose's id as the dispenser's events gave it (null: they gave none).")
    ]
    reported_by: Annotated[
        Literal["dispenser", "hub", "rule"],
        msgspec.Meta(description="dispenser or hub: from the medication.missed; rule: no medication.taken "
                                 "within the rule's grace_s after the medication.due."),
    ]
    due_at: Annotated[Timestamp | None, msgspec.Meta(description="When the dose was offered (null: not seen).")]
    grace_s: Annotated[Seconds, msgspec.Meta(description="rule: the grace it waited.")] | Unset = UNSET


class RuleInactivityData(Data):
    """rule.inactivity: no activity (motion, bed, door, button, dose taken) for after_s in the day window."""

    quiet_s: Annotated[Seconds, msgspec.Meta(description="How long it has been quiet.")]
    after_s: Annotated[Seconds, msgspec.Meta(description="The rule's after_s.")]
    last_activity_at: Annotated[
        Timestamp | None, msgspec.Meta(description="When the last activity was (null: none seen).")
    ]
    last_activity: Annotated[str | None, msgspec.Meta(description="Its event type (null: none seen).")]
    realert: Realert


DATA: dict[str, type[Data]] = {
    "rule.bed_exit": RuleBedExitData,
    "rule.bed_not_returned": RuleBedNotReturnedData,
    "rule.door_night": RuleDoorNightData,
    "rule.medication_missed": RuleMedicationMissedData,
    "rule.inactivity": RuleInactivityData,
}
