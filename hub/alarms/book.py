"""The tracker's book of episodes: the latest per device and group, an index of ids, bounded memory.

Every alarm id and reminder id remembered points at its episode, so an ack
of any of them finds it. A device's newest episode of each group is kept;
closed ones are remembered (at most :data:`~hub.alarms.episode.KEEP_CLOSED`)
so a second ack is answered "already acknowledged", then forgotten.
"""

from __future__ import annotations

import itertools
from collections import deque

import structlog

from hub.alarms.episode import EPISODE_IDS, KEEP_CLOSED, Alarm, AlarmState
from hub.events import Event

log = structlog.get_logger("hub.alarms")


class EpisodeBook:
    """Episodes by (device, group) and by id; the base of :class:`~hub.alarms.tracker.AlarmTracker`."""

    def __init__(self) -> None:
        self._episodes: dict[tuple[str, str], Alarm] = {}  # (device, group) -> its latest episode
        self._index: dict[str, Alarm] = {}  # alarm id or reminder id -> its episode
        self._closed: deque[Alarm] = deque()
        self._order = itertools.count(1)

    # --- lookups -------------------------------------------------------------------------

    def _open_of(self, device: str) -> list[Alarm]:
        return [a for (d, _), a in self._episodes.items() if d == device and a.is_open]

    def active(self, device: str) -> Alarm | None:
        """The device's own (not test) alarm episode, open or acknowledged; None once cancelled."""
        alarm = self._episodes.get((device, "alarm"))
        return alarm if alarm is not None and alarm.closed is not AlarmState.CANCELLED else None

    def open_episodes(self) -> list[Alarm]:
        """Every open episode, of every device (the SMS fallback watches them)."""
        return [a for a in self._episodes.values() if a.is_open]

    def get(self, event_id: str) -> Alarm | None:
        """The episode of an alarm id, or of one of its alarm.unacknowledged reminders."""
        return self._index.get(event_id)

    # --- bookkeeping -----------------------------------------------------------------------

    def _join(self, alarm: Alarm, event: Event) -> None:
        alarm.alarms[event.id] = event
        alarm.count += 1
        self._index[event.id] = alarm
        if len(alarm.alarms) > EPISODE_IDS:  # forget the oldest repeat (not the first alarm)
            old = next(iter(alarm.alarms))
            del alarm.alarms[old]
            self._index.pop(old, None)
            alarm.order.pop(old, None)
            alarm.undelivered.discard(old)
            alarm.held.discard(old)
        log.info("alarm_joined", event_id=event.id, episode=alarm.event.id, device=alarm.device, alarms=alarm.count)

    def _close(self, alarm: Alarm, state: AlarmState) -> None:
        if alarm.closed is None:  # a hold after the ack closes it again: remembered once
            self._closed.append(alarm)
        alarm.closed = state
        if alarm.timer is not None:
            alarm.timer.cancel()
            alarm.timer = None
        while len(self._closed) > KEEP_CLOSED:
            self._retire(self._closed.popleft(), forget=True)

    def _retire(self, alarm: Alarm, *, forget: bool = False) -> None:
        """A closed episode is replaced by a new one (``forget``: and no longer answered for)."""
        key = (alarm.device, alarm.group)
        if self._episodes.get(key) is alarm:
            del self._episodes[key]
        if forget:
            for i in [*alarm.ids, *alarm.unack_ids]:
                if self._index.get(i) is alarm:
                    del self._index[i]

    # --- reminders ---------------------------------------------------------------------------

    def _add_reminder(self, alarm: Alarm, event_id: str) -> None:
        if len(alarm.unack_ids) == alarm.unack_ids.maxlen:
            old = alarm.unack_ids[0]
            if self._index.get(old) is alarm:
                del self._index[old]
        alarm.unack_ids.append(event_id)
        self._index[event_id] = alarm
