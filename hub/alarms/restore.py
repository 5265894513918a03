"""Which stored alarms still wait for their ack: the tracker's state rebuilt from the outbox after a restart."""

from __future__ import annotations

from hub.alarms.episode import ALARM_TYPES, episode_group
from hub.events import Event


def waiting_in(
    history: list[tuple[Event, bool]],
) -> tuple[list[list[tuple[Event, bool]]], dict[str, list[str]]]:
    """The episodes of ``history`` still open, and the reminders sent for their alarms.

    ``history`` is the stored alarm events by seq, each with whether the broker
    had it. An ``alarm.acknowledged`` or ``alarm.cancelled`` closes the
    episode of its ``cause`` (and every id in its ``data.closes``), as it did
    when it was made. Returns each open episode's alarms (by seq, with the
    broker flag) and, by alarm id, the ids of the ``alarm.unacknowledged``
    reminders that name it.
    """
    open_: dict[tuple[str, str], dict[str, tuple[Event, bool]]] = {}
    key_of: dict[str, tuple[str, str]] = {}
    reminders: dict[str, list[str]] = {}  # first alarm id -> reminder ids
    for event, delivered in history:
        if event.type in ALARM_TYPES:
            key = (event.source.device, episode_group(event))
            open_.setdefault(key, {})[event.id] = (event, delivered)
            key_of[event.id] = key
        elif event.type in ("alarm.acknowledged", "alarm.cancelled"):
            closes = event.data.get("closes")
            named = [event.cause] if event.cause else []
            if isinstance(closes, list):
                named += [c for c in closes if isinstance(c, str)]
            for key in {key_of[i] for i in named if i in key_of}:
                for alarm_id in open_.pop(key, {}):
                    reminders.pop(alarm_id, None)
        elif event.type == "alarm.unacknowledged" and event.cause in key_of:
            key = key_of[event.cause]
            if event.cause in open_.get(key, {}):
                reminders.setdefault(event.cause, []).append(event.id)
    return [list(members.values()) for members in open_.values()], reminders
