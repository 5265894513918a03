"""The data of the second path: the SMS fallback and the paths' supervision.

Producers: :mod:`hub.fallback.watcher` (fallback.sent, fallback.failed),
:mod:`hub.fallback.paths` (path.lost, path.restored).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.eventdata.base import Data, Seconds

Phone = Annotated[str, msgspec.Meta(pattern=r"^[+][1-9][0-9]{6,14}$", description="The on-call number, E.164.")]
Reason = Annotated[
    Literal["unacknowledged", "link_down"],
    msgspec.Meta(description="unacknowledged: no ack within fallback_after_s; link_down: the MQTT link was down "
                             "for link_down_after_s with the alarm open."),
]
Reminder = Annotated[int, msgspec.Meta(ge=0, description="0: the episode's first SMS to this number; n: its n-th "
                                                         "reminder.")]
AlarmType = Annotated[str, msgspec.Meta(description="The episode's first alarm's type, e.g. alarm.button.")]
TextDevice = Annotated[str, msgspec.Meta(description="The modem (device id) it went through.")]
Waited = Annotated[Seconds, msgspec.Meta(description="Seconds since the episode opened (at a restart: was "
                                                     "restored).")]
#: What was read of a path (gsm: sim, registration, signal, device; interface: operstate, carrier, interface).
Detail = Annotated[
    dict[str, str | int | float | bool | None],
    msgspec.Meta(description="What was read: gsm sim (ready, not_inserted ...), registration (+CREG stat), signal "
                             "(+CSQ rssi 0-31, 99 unknown), device, error; interface interface, operstate, carrier."),
]


class _FallbackSms(Data):
    """What fallback.sent and fallback.failed both say of one SMS."""

    to: Phone
    reason: Reason
    reminder: Reminder
    alarm_type: AlarmType
    device: TextDevice
    waited_s: Waited


class FallbackSentData(_FallbackSms):
    """fallback.sent: an SMS of the fallback went out to an on-call number."""

    reference: Annotated[str | None, msgspec.Meta(description="The +CMGS message reference (null: none given).")]
    chars: Annotated[int, msgspec.Meta(ge=1, le=160, description="Characters of the SMS (no resident's name).")]


class FallbackFailedData(_FallbackSms):
    """fallback.failed: an SMS of the fallback could not be sent; it is tried again."""

    error: Annotated[
        Literal["cms_error", "timeout", "unavailable", "error"],
        msgspec.Meta(description="cms_error: refused (+CMS ERROR); timeout: the modem did not answer; unavailable: "
                                 "no modem (unplugged, port error); error: anything else."),
    ]
    detail: Annotated[str, msgspec.Meta(max_length=200, description="As the modem said it, e.g. +CMS ERROR: 500.")]
    attempt: Annotated[int, msgspec.Meta(ge=1, description="Failures in a row for this number and episode.")]
    retry_in_s: Annotated[Seconds, msgspec.Meta(description="Seconds until it is tried again.")]


PathName = Annotated[str, msgspec.Meta(description="gsm (the modem; gsm:<device> for a second one) or interface.")]


class PathLostData(Data):
    """path.lost: a second path out of the residence went down."""

    path: PathName
    reason: Annotated[
        str,
        msgspec.Meta(description="gsm: no_sim, not_registered, weak_signal, not_answering, unplugged, io_error; "
                                 "interface: down, no_carrier, missing."),
    ]
    detail: Detail


class PathRestoredData(Data):
    """path.restored: the path is up again."""

    path: PathName
    outage_s: Annotated[Seconds, msgspec.Meta(description="How long it was down.")]
    was: Annotated[str, msgspec.Meta(description="Why it was down (the path.lost's reason).")]
    detail: Detail


DATA: dict[str, type[Data]] = {
    "fallback.sent": FallbackSentData,
    "fallback.failed": FallbackFailedData,
    "path.lost": PathLostData,
    "path.restored": PathRestoredData,
}
