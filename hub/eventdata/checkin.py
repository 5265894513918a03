"""The data of the resident's daily check-in (:mod:`hub.rules.checkin`): ``checkin.done`` and ``checkin.missed``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hub.eventdata.base import Data, EventId, Timestamp

__all__ = ["CheckinDoneData", "CheckinMissedData", "DATA"]


class CheckinDoneData(Data):
    """checkin.done: the resident checked in on purpose (a check-in button, or a BLE button's configured gesture)."""

    input: Annotated[str, msgspec.Meta(description="Which input saw it: gpio (wired) or ble (an advert).")]
    gesture: Annotated[
        str, msgspec.Meta(description="What the resident did: press (a check-in button), or the BLE button's own "
                                      "double_press, triple_press or long_press.")
    ]
    window: Annotated[
        str | None,
        msgspec.Meta(description="The check-in window it falls in, as configured ('08:00-10:30'); null: outside "
                                 "every window (or no check-in rule), it still ends a missed call."),
    ]
    missed: Annotated[
        EventId | None,
        msgspec.Meta(description="The first checkin.missed whose re-alerts this check-in ends; null: none was open."),
    ]


class CheckinMissedData(Data):
    """checkin.missed: no check-in inside a window by its end (cause: the first checkin.missed, on re-alerts)."""

    window: Annotated[str, msgspec.Meta(description="The check-in window, as configured ('08:00-10:30').")]
    opened_at: Annotated[Timestamp, msgspec.Meta(description="When this day's window opened.")]
    due_at: Annotated[Timestamp, msgspec.Meta(description="When it closed with no check-in.")]
    last_checkin_at: Annotated[
        Timestamp | None, msgspec.Meta(description="The last check-in the hub saw in the last days (null: none).")
    ]
    realert: Annotated[int, msgspec.Meta(ge=0, description="0 for the first, then 1, 2, ... for each re-alert.")]


DATA: dict[str, type[Data]] = {
    "checkin.done": CheckinDoneData,
    "checkin.missed": CheckinMissedData,
}
