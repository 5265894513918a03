"""Alarm tracking: every alarm needs the central's application-level ack.

Like the SCAIP and SOS Access alarm protocols, the hub does not consider an
alarm handled when the broker has it, but when the alarm central says a
person took it (``cmd/ack``). Until then the device's feedback tells the
resident where the alarm stands:

* ``FAST`` blink: pressed, not yet at the broker;
* ``SLOW`` blink: the broker has it (PUBACK), waiting for the central;
* ``STEADY``: acknowledged, help is on its way (for ``steady_s``);
* ``FAULT``: the hub could not store the alarm and sends it from memory
  (:meth:`AlarmTracker.opened` with ``held=True``) until it is on disk or acknowledged;
* ``OFF``: cancelled at the device, or idle.

**Episodes.** Alarms are tracked per device *episode*, not one by one: the
first alarm of a device opens an episode, and every further alarm of the
same device while it is open (a repeat press, a nurse call repeated by the
nurse-call system, another ``cmd/test-alarm``) joins it. One ack of *any*
of its alarms, or of any of its reminders, ends the whole episode: the LED
turns steady, the reminders stop, and one ``alarm.acknowledged`` says which
alarms it closed (``data.closes``). An episode is keyed by device and
*group*: a device's own alarms (``alarm.button``), its test alarms
(``alarm.test``: an ack of a test must never silence a real alarm, and a
test must not be taken for a repeat of one) and, on a nurse-call line, each
call address (one line carries the calls of many rooms).

With no ack within ``ack_timeout_s`` of the episode's first alarm the
tracker emits ``alarm.unacknowledged`` (critical, cause = that first alarm)
and repeats it every ``unack_repeat_s`` until the ack comes or the episode is
cancelled: one reminder stream per episode, however many alarms join it.

Memory stays flat under a flood: an episode remembers its first alarm and
its newest :data:`EPISODE_IDS` alarms and reminders (an ack of a forgotten
middle one is refused as unknown; the newest and the first always work), and
at most :data:`KEEP_CLOSED` closed episodes are kept for "already acknowledged" answers.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from drivers.base import FeedbackMode, Indicator
from hub.events import Draft, Event, Priority

log = structlog.get_logger("hub.alarms")

#: Event types that open an alarm needing an ack.
ALARM_TYPES = frozenset({"alarm.button", "alarm.test", "alarm.nursecall"})
#: Alarm ids (besides the first) and reminder ids an episode remembers for acks and cancels.
EPISODE_IDS = 64
#: Closed episodes remembered, so a second ack is answered ``already_acknowledged``.
KEEP_CLOSED = 256


class AlarmState(str, enum.Enum):
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


def episode_group(event: Event) -> str:
    """Which of a device's episodes an alarm belongs to (see the module docstring)."""
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


Emit = Callable[[Draft], Awaitable[Event]]


class AckResult(str, enum.Enum):
    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already_acknowledged"
    UNKNOWN = "unknown_event"
    CANCELLED = "cancelled"


class AlarmTracker:
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
        self.emit = emit
        self.ack_timeout_s = ack_timeout_s
        self.unack_repeat_s = unack_repeat_s
        self.steady_s = steady_s
        self.indicators: dict[str, Indicator] = {}
        self.counters: Counter[str] = Counter()
        self._episodes: dict[tuple[str, str], Alarm] = {}  # (device, group) -> its latest episode
        self._index: dict[str, Alarm] = {}  # alarm id or reminder id -> its episode
        self._closed: deque[Alarm] = deque()
        self._order = itertools.count(1)
        self._steady: dict[str, asyncio.Task[None]] = {}  # device -> its STEADY period
        self._shown: dict[str, FeedbackMode] = {}

    # --- feedback ------------------------------------------------------------------------

    def _open_of(self, device: str) -> list[Alarm]:
        return [a for (d, _), a in self._episodes.items() if d == device and a.is_open]

    def feedback(self, device: str) -> FeedbackMode:
        """What the device shows: the least settled of its open episodes, else STEADY after an ack, else OFF.

        FAULT (an alarm not stored) before FAST (not at the broker) before
        SLOW (waiting for the ack); an ack ends its episode, so STEADY wins over its FAULT.
        """
        open_ = self._open_of(device)
        if any(a.held for a in open_):
            return FeedbackMode.FAULT
        if any(a.undelivered for a in open_):
            return FeedbackMode.FAST
        if open_:
            return FeedbackMode.SLOW
        if device in self._steady:
            return FeedbackMode.STEADY
        return FeedbackMode.OFF

    def _refresh(self, device: str) -> None:
        ind = self.indicators.get(device)
        if ind is None:
            return
        mode = self.feedback(device)
        if self._shown.get(device) is mode:
            return
        self._shown[device] = mode
        try:
            ind.show(mode)
        except Exception:  # a broken LED must not stop the alarm
            log.exception("feedback_failed", device=device, mode=mode.value)

    def _start_steady(self, device: str) -> None:
        self._stop_steady(device)
        self._steady[device] = asyncio.create_task(self._steady_then_off(device))

    def _stop_steady(self, device: str) -> None:
        timer = self._steady.pop(device, None)
        if timer is not None:
            timer.cancel()

    async def _steady_then_off(self, device: str) -> None:
        await asyncio.sleep(self.steady_s)
        self._steady.pop(device, None)
        self._refresh(device)

    # --- lookups -------------------------------------------------------------------------

    def active(self, device: str) -> Alarm | None:
        """The device's own (not test) alarm episode, open or acknowledged; None once cancelled."""
        alarm = self._episodes.get((device, "alarm"))
        return alarm if alarm is not None and alarm.closed is not AlarmState.CANCELLED else None

    def get(self, event_id: str) -> Alarm | None:
        """The episode of an alarm id, or of one of its alarm.unacknowledged reminders."""
        return self._index.get(event_id)

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
        ids: list[str] = []
        for members in open_.values():
            for event, delivered in members.values():
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
            log.warning("alarms_restored", count=len(ids), episodes=len(open_), ids=ids[:EPISODE_IDS])
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
        for t in self._steady.values():
            t.cancel()
