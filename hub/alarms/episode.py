"""One alarm episode of a device (:class:`Alarm`), its states, and which episode an alarm joins."""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from dataclasses import dataclass, field

from hub.events import Event

#: Event types that open an alarm needing an ack.
ALARM_TYPES = frozenset({"alarm.button", "alarm.test", "alarm.nursecall"})
#: Alarm ids (besides the first) and reminder ids an episode remembers for acks and cancels.
EPISODE_IDS = 64
#: Closed episodes remembered, so a second ack is answered ``already_acknowledged``.
KEEP_CLOSED = 256


class AlarmState(str, enum.Enum):
    """Where an episode stands (``status`` and the feedback read it)."""

    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


def episode_group(event: Event) -> str:
    """Which of a device's episodes an alarm belongs to (see the :mod:`hub.alarms` docstring)."""
    if event.type == "alarm.test":
        return "test"
    if event.type == "alarm.nursecall":
        return f"call:{event.data.get('call_address')}"
    return "alarm"


@dataclass(eq=False)
class Alarm:
    """One alarm episode of a device: the alarm that opened it and every alarm that joined it.

    ``event`` is the first alarm (reminders and a hold's cancel name it in
    ``cause``); :attr:`state` is the episode's: ``sent`` while any of its
    alarms is not at the broker yet, ``delivered`` once all are, then
    ``acknowledged`` or ``cancelled`` for all of them at once.
    """

    event: Event
    group: str = "alarm"
    #: the newest alarms besides the first, by id (bounded)
    alarms: dict[str, Event] = field(default_factory=dict)
    #: how many alarms joined, the first included (also those no longer remembered)
    count: int = 1
    undelivered: set[str] = field(default_factory=set)
    #: alarms the hub failed to store and sends from memory (FAULT until stored or acked)
    held: set[str] = field(default_factory=set)
    #: the newest reminders' ids (bounded); ``reminders`` counts them all
    unack_ids: deque[str] = field(default_factory=lambda: deque(maxlen=EPISODE_IDS))
    reminders: int = 0
    closed: AlarmState | None = None
    acked_by: str | None = None
    timer: asyncio.Task[None] | None = None
    #: when each remembered alarm joined (a tracker-wide counter: newest is highest)
    order: dict[str, int] = field(default_factory=dict)
    #: monotonic time the episode opened here (at a restart: when it was restored, as its ack clock)
    opened_at: float = field(default_factory=time.monotonic)

    @property
    def device(self) -> str:
        return self.event.source.device

    @property
    def state(self) -> AlarmState:
        if self.closed is not None:
            return self.closed
        return AlarmState.SENT if self.undelivered else AlarmState.DELIVERED

    @property
    def is_open(self) -> bool:
        return self.closed is None

    @property
    def ids(self) -> list[str]:
        """The alarm ids of the episode it remembers, oldest first (the first alarm always)."""
        return [self.event.id, *self.alarms]

    def events(self) -> list[Event]:
        """The remembered alarm events, oldest first."""
        return [self.event, *self.alarms.values()]

    def alarm_id_for(self, event_id: str) -> str:
        """The alarm an ack of ``event_id`` names: itself, or for a reminder the episode's first alarm."""
        return event_id if event_id == self.event.id or event_id in self.alarms else self.event.id


class AckResult(str, enum.Enum):
    """What an ack of an event id did (the reply to ``cmd/ack`` says it)."""

    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already_acknowledged"
    UNKNOWN = "unknown_event"
    CANCELLED = "cancelled"

