"""The data of the alarm events: the alarms themselves, their cancel, ack and reminders.

Producers: :mod:`hub.gestures` (alarm.button), :mod:`hub.command_runner`
(alarm.test), :mod:`drivers.serial.espa444.logic` (alarm.nursecall and the
reset that cancels one), :mod:`hub.alarms.tracker` (alarm.cancelled,
alarm.acknowledged, alarm.unacknowledged).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.eventdata.base import UNSET, Data, EventId, Seconds, Unset

#: The episode's alarm ids: the first and up to 64 newest.
Closes = Annotated[
    list[EventId],
    msgspec.Meta(
        min_length=1,
        description="The episode's alarm ids it ends: the first alarm and up to 64 newest (data.alarms, where "
        "given, counts them all).",
    ),
]


class AlarmButtonData(Data):
    """alarm.button: a press of an alarm button or a pull of a cord (on the press's edge)."""

    input: Annotated[str, msgspec.Meta(description="Which input saw it: gpio (wired) or ble (an advert).")]
    gesture: Annotated[Literal["press"], msgspec.Meta(description="What the resident did: a press.")]
    repeat: Annotated[
        bool,
        msgspec.Meta(description="true: pressed again while the device's alarm waits for its ack; the event's "
                                 "cause is that alarm and it joins its episode. Absent on the first press."),
    ] | Unset = UNSET


class AlarmNursecallData(Data):
    """alarm.nursecall: a call from the building's nurse-call system (ESPA 4.4.4). The event's priority is
    mapped from the call's priority digit by the config; each field is null when the call lacks it."""

    call_address: Annotated[str | None, msgspec.Meta(description="ESPA record 1: the call point's address.")]
    room: Annotated[
        str | None, msgspec.Meta(description="The room the config's [device.serial.options.rooms] gives the address.")
    ]
    text: Annotated[str | None, msgspec.Meta(description="ESPA record 2: the call's text.")]
    espa_priority: Annotated[str | None, msgspec.Meta(description="ESPA record 6: the call's priority digit.")]
    call_type: Annotated[str | None, msgspec.Meta(description="ESPA record 4: the call type.")]


class AlarmCancelledData(Data):
    """alarm.cancelled: an alarm episode cancelled at the device; no reminders follow."""

    how: Annotated[
        str,
        msgspec.Meta(description="hold: the button held; nursecall_reset: an ESPA reset record (its fields "
                                 "follow); device: another device's reset."),
    ]
    closes: Closes
    call_address: Annotated[str | None, msgspec.Meta(description="nursecall_reset: the call's address.")] | Unset = UNSET
    room: Annotated[str | None, msgspec.Meta(description="nursecall_reset: the address's room.")] | Unset = UNSET
    text: Annotated[str | None, msgspec.Meta(description="nursecall_reset: the record's text.")] | Unset = UNSET
    espa_priority: Annotated[str | None, msgspec.Meta(description="nursecall_reset: its priority digit.")] | Unset = UNSET
    call_type: Annotated[str | None, msgspec.Meta(description="nursecall_reset: its call type.")] | Unset = UNSET


class AlarmTestData(Data):
    """alarm.test: a test alarm raised by cmd/test-alarm; it needs an ack like any alarm."""

    note: Annotated[
        Annotated[str, msgspec.Meta(max_length=256)] | None, msgspec.Meta(description="The command's note, if any.")
    ]


class AlarmAcknowledgedData(Data):
    """alarm.acknowledged: the central acknowledged an alarm episode (cause: the alarm acked)."""

    by: Annotated[str, msgspec.Meta(description="Who acknowledged: the command's `by` (an operator's id).")]
    alarm_type: Annotated[str, msgspec.Meta(description="The type of the alarm acked, e.g. alarm.button.")]
    closes: Closes
    alarms: Annotated[int, msgspec.Meta(ge=1, description="How many alarms the episode had, the first included.")]


class AlarmUnacknowledgedData(Data):
    """alarm.unacknowledged: a reminder: the episode whose first alarm is `cause` still waits for its ack."""

    waited_s: Annotated[Seconds, msgspec.Meta(description="Seconds since the episode's first alarm was raised.")]
    reminder: Annotated[int, msgspec.Meta(ge=1, description="This reminder's number in the episode: 1, 2, ...")]
    alarm_type: Annotated[str, msgspec.Meta(description="The type of the episode's first alarm.")]
    alarms: Annotated[int, msgspec.Meta(ge=1, description="How many alarms the episode has, the first included.")]


DATA: dict[str, type[Data]] = {
    "alarm.button": AlarmButtonData,
    "alarm.cancelled": AlarmCancelledData,
    "alarm.test": AlarmTestData,
    "alarm.acknowledged": AlarmAcknowledgedData,
    "alarm.unacknowledged": AlarmUnacknowledgedData,
    "alarm.nursecall": AlarmNursecallData,
}
