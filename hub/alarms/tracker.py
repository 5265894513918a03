"""The alarm tracker: alarms in, the central's acks and the device's cancels out, reminders until an ack."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hub.alarms.episode import ALARM_TYPES, EPISODE_IDS, AckResult, Alarm, AlarmState, episode_group
from hub.alarms.feedback import DeviceFeedback
from hub.alarms.restore import waiting_in
from hub.events import Draft, Event, Priority

log = structlog.get_logger("hub.alarms")

Emit = Callable[[Draft], Awaitable[Event]]


class AlarmTracker(DeviceFeedback):
    """Follows every alarm episode from the first press to the ack, driving the device's feedback.

    ``counters`` counts what did not go as expected (``cancel_unmatched``: a
    device's reset named no open alarm).
    """

    def __init__(
        self,
        emit: Emit,
        *,
        ack_timeout_s: float = 60.0,
        unack_repeat_s: float = 60.0,
        steady_s: float = 900.0,
    ) -> None:
        super().__init__(steady_s=steady_s)
        self.emit = emit
        self.ack_timeout_s = ack_timeout_s
        self.unack_repeat_s = unack_repeat_s
        self.counters: Counter[str] = Counter()

    # --- alarms in ------------------------------------------------------------------------

    def opened(self, event: Event, *, held: bool = False) -> None:
        """An alarm event was committed (or, ``held``, failed to commit and is sent from memory).

        It opens its device's episode (FAST, the ack clock starts) or joins the
        open one (no second reminder stream). ``held``: the device shows FAULT
        until :meth:`stored` or the central's ack. Opening an id again is a no-op
        (without ``held``, it means :meth:`stored`).
        """
        if event.type not in ALARM_TYPES:
            return
        known = self._index.get(event.id)
        if known is not None:
            if not held:
                self.stored(event.id)
            return
        key = (event.source.device, episode_group(event))
        alarm = self._episodes.get(key)
        if alarm is not None and alarm.is_open:
            self._join(alarm, event)
        else:
            if alarm is not None:
                self._retire(alarm)
            alarm = Alarm(event=event, group=key[1])
            self._episodes[key] = alarm
            self._index[event.id] = alarm
            alarm.timer = asyncio.create_task(self._ack_clock(alarm))
            log.info("alarm_opened", event_id=event.id, device=alarm.device, type=event.type, held=held)
        alarm.order[event.id] = next(self._order)
        alarm.undelivered.add(event.id)
        if held:
            alarm.held.add(event.id)
        self._refresh(alarm.device)

    def stored(self, event_id: str) -> None:
        """A held alarm is on disk now: its device's feedback goes back to what its state says."""
        alarm = self._index.get(event_id)
        if alarm is None or event_id not in alarm.held:
            return
        alarm.held.discard(event_id)
        log.info("alarm_stored", event_id=event_id, device=alarm.device)
        self._refresh(alarm.device)

    def delivered(self, event: Event) -> None:
        """The broker has the event (PUBACK); once all of an episode's alarms are there, SLOW."""
        alarm = self._index.get(event.id)
        if alarm is None or event.id not in alarm.undelivered:
            return
        alarm.undelivered.discard(event.id)
        self._refresh(alarm.device)

    def restore(self, history: list[tuple[Event, bool]]) -> int:
        """Re-open the alarms still waiting for their ack after a restart (power cut, kill -9).

        ``history`` is the stored alarm events by seq, each with whether the broker
        had it. An ``alarm.acknowledged`` or ``alarm.cancelled`` closes the
        episode of its ``cause`` (and every id in its ``data.closes``), as it
        did when it was made; reminders are counted on. Returns how many alarms
        were re-opened; their episodes' ack clocks restart now.
        """
        episodes, reminders = waiting_in(history)
        ids: list[str] = []
        for members in episodes:
            for event, delivered in members:
                self.opened(event)
                if delivered:
                    self.delivered(event)
                ids.append(event.id)
        for cause, rids in reminders.items():  # an ack of a reminder still names its episode
            alarm = self._index.get(cause)
            if alarm is None:
                continue
            if alarm.event.id == cause:
                alarm.reminders = len(rids)  # numbered on
            for rid in rids:
                self._add_reminder(alarm, rid)
        if ids:
            log.warning("alarms_restored", count=len(ids), episodes=len(episodes), ids=ids[:EPISODE_IDS])
        return len(ids)

    # --- the central and the device close them ---------------------------------------------

    async def acknowledge(self, event_id: str, by: str) -> tuple[AckResult, Alarm | None]:
        """The central acknowledged ``event_id``: any alarm of an episode, or one of its reminders.

        Ends the episode: STEADY, reminders stop, one ``alarm.acknowledged``
        (cause = the alarm named, or for a reminder the episode's first alarm;
        ``data.closes`` = the episode's alarm ids).
        """
        alarm = self._index.get(event_id)
        if alarm is None:
            return AckResult.UNKNOWN, None
        if alarm.closed is AlarmState.ACKNOWLEDGED:
            return AckResult.ALREADY, alarm
        if alarm.closed is AlarmState.CANCELLED:
            return AckResult.CANCELLED, alarm
        cause = alarm.alarm_id_for(event_id)
        cause_event = alarm.alarms.get(cause, alarm.event)
        alarm.acked_by = by
        self._close(alarm, AlarmState.ACKNOWLEDGED)
        self._start_steady(alarm.device)
        self._refresh(alarm.device)
        log.info("alarm_acknowledged", event_id=cause, episode=alarm.event.id, by=by, closes=alarm.count)
        await self.emit(
            Draft(
                type="alarm.acknowledged",
                priority=Priority.NORMAL,
                source=cause_event.source,
                route=cause_event.route,
                data={"by": by, "alarm_type": cause_event.type, "closes": alarm.ids, "alarms": alarm.count},
                cause=cause,
            )
        )
        return AckResult.ACKNOWLEDGED, alarm

    async def cancel(self, device: str, *, how: str = "hold") -> Event | None:
        """The resident cancelled at the device: its own episode (else its newest open one) ends.

        Returns the ``alarm.cancelled`` event (cause = the episode's first alarm).
        """
        alarm = self.active(device)
        if alarm is None:
            candidates = sorted(self._open_of(device), key=lambda a: max(a.order.values(), default=0))
            alarm = candidates[-1] if candidates else None
        if alarm is None:
            return None
        return await self._cancel(alarm, alarm.event, how=how, data={})

    async def cancel_matching(self, device: str, match: dict[str, Any], *, how: str, data: dict[str, Any]) -> Event | None:
        """The device reset one of its alarms (an ESPA cancel record): end the episode of the newest
        open alarm whose ``data`` holds every item of ``match``.

        Emits ``alarm.cancelled`` (critical, cause = that alarm, data = ``data``
        with ``how`` and ``closes``), stops the reminders, turns the feedback
        off. No match: logs ``alarm_cancel_unmatched``, counts
        ``counters["cancel_unmatched"]`` and returns None.
        """
        found: tuple[int, Alarm, Event] | None = None
        for alarm in self._open_of(device):
            for event in alarm.events():
                if all(k in event.data and event.data[k] == v for k, v in match.items()):
                    rank = alarm.order.get(event.id, 0)
                    if found is None or rank > found[0]:
                        found = (rank, alarm, event)
        if found is None:
            self.counters["cancel_unmatched"] += 1
            log.warning("alarm_cancel_unmatched", device=device, match=match, count=self.counters["cancel_unmatched"])
            return None
        _, alarm, event = found
        return await self._cancel(alarm, event, how=how, data=data)

    async def _cancel(self, alarm: Alarm, named: Event, *, how: str, data: dict[str, Any]) -> Event:
        self._close(alarm, AlarmState.CANCELLED)
        self._stop_steady(alarm.device)
        self._refresh(alarm.device)
        log.info("alarm_cancelled", event_id=named.id, episode=alarm.event.id, device=alarm.device, how=how)
        return await self.emit(
            Draft(
                type="alarm.cancelled",
                priority=Priority.CRITICAL,
                source=named.source,
                route=named.route,
                data={**data, "how": how, "closes": alarm.ids},
                cause=named.id,
            )
        )

    # --- reminders ---------------------------------------------------------------------------

    async def _ack_clock(self, alarm: Alarm) -> None:
        await asyncio.sleep(self.ack_timeout_s)
        waited = self.ack_timeout_s
        while alarm.is_open:
            alarm.reminders += 1
            event = await self.emit(
                Draft(
                    type="alarm.unacknowledged",
                    priority=Priority.CRITICAL,
                    source=alarm.event.source,
                    route=alarm.event.route,
                    data={
                        "waited_s": round(waited, 3),
                        "reminder": alarm.reminders,
                        "alarm_type": alarm.event.type,
                        "alarms": alarm.count,
                    },
                    cause=alarm.event.id,
                )
            )
            self._add_reminder(alarm, event.id)
            log.warning("alarm_unacknowledged", event_id=alarm.event.id, waited_s=round(waited, 3), alarms=alarm.count)
            await asyncio.sleep(self.unack_repeat_s)
            waited += self.unack_repeat_s

    # --- views ------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Open episodes for ``status`` (``event_id`` = the first alarm)."""
        return [
            {
                "event_id": a.event.id,
                "device": a.device,
                "type": a.event.type,
                "state": a.state.value,
                "alarms": a.count,
                "latest": a.ids[-1],
                "held": len(a.held),
                "reminders": a.reminders,
            }
            for a in self._episodes.values()
            if a.is_open
        ]

    def close(self) -> None:
        """Stop all timers (daemon shutdown)."""
        for alarm in self._episodes.values():
            if alarm.timer is not None:
                alarm.timer.cancel()
        for t in [*self._steady.values(), *self._checkin.values()]:
            t.cancel()
