"""Alarm tracking: every alarm needs the central's application-level ack.

Like the SCAIP and SOS Access alarm protocols, the hub does not consider an
alarm handled when the broker has it, but when the alarm central says a
person took it (``cmd/ack``). Until then the device's feedback tells the
resident where the alarm stands:

* ``FAST`` blink: pressed, not yet at the broker;
* ``SLOW`` blink: the broker has it (PUBACK), waiting for the central;
* ``STEADY``: acknowledged, help is on its way (for ``steady_s``);
* ``OFF``: cancelled at the device, or idle.

With no ack within ``ack_timeout_s`` the tracker emits
``alarm.unacknowledged`` (critical, cause = the alarm) and repeats it every
``unack_repeat_s`` until the ack comes or the alarm is cancelled.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from hub.events import Draft, Event, Priority

log = structlog.get_logger("hub.alarms")

#: Event types that open an alarm needing an ack.
ALARM_TYPES = frozenset({"alarm.button", "alarm.test", "alarm.nursecall"})


class FeedbackMode(str, enum.Enum):
    """What a device's LED (and buzzer) shows the resident."""

    OFF = "off"
    FAST = "fast_blink"
    SLOW = "slow_blink"
    STEADY = "steady"


class Indicator(Protocol):
    """A device's feedback output: an LED, a buzzer, or both."""

    def show(self, mode: FeedbackMode) -> None:
        """Switch to ``mode``; must not block."""


class AlarmState(str, enum.Enum):
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


@dataclass
class Alarm:
    """One open alarm and where it stands."""

    event: Event
    state: AlarmState = AlarmState.SENT
    unack_ids: list[str] = field(default_factory=list)
    acked_by: str | None = None
    timer: asyncio.Task[None] | None = None

    @property
    def device(self) -> str:
        return self.event.source.device


Emit = Callable[[Draft], Awaitable[Event]]


class AckResult(str, enum.Enum):
    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already_acknowledged"
    UNKNOWN = "unknown_event"
    CANCELLED = "cancelled"


class AlarmTracker:
    """Follows every open alarm from press to ack, driving the device's feedback."""

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
        self._alarms: dict[str, Alarm] = {}
        self._by_unack: dict[str, str] = {}
        self._active_by_device: dict[str, str] = {}
        self._steady_timers: dict[str, asyncio.Task[None]] = {}

    def _show(self, device: str, mode: FeedbackMode) -> None:
        ind = self.indicators.get(device)
        if ind is not None:
            try:
                ind.show(mode)
            except Exception:  # a broken LED must not stop the alarm
                log.exception("feedback_failed", device=device, mode=mode.value)
        timer = self._steady_timers.pop(device, None)
        if timer is not None:
            timer.cancel()

    def active(self, device: str) -> Alarm | None:
        """The open (not cancelled) alarm of a device, if any."""
        alarm_id = self._active_by_device.get(device)
        return self._alarms.get(alarm_id) if alarm_id else None

    def get(self, event_id: str) -> Alarm | None:
        """An alarm by its id or by the id of one of its alarm.unacknowledged events."""
        return self._alarms.get(self._by_unack.get(event_id, event_id))

    def stored(self, event: Event) -> None:
        """A held alarm (its commit had failed) is on disk now. (Provisional: the episode work replaces this.)"""

    def opened(self, event: Event, *, held: bool = False) -> None:
        """An alarm event was committed to the outbox: show FAST and start the ack clock."""
        if event.type not in ALARM_TYPES:
            return
        alarm = Alarm(event=event)
        if len(self._alarms) >= 256:
            self._forget_closed()
        self._alarms[event.id] = alarm
        self._active_by_device[alarm.device] = event.id
        self._show(alarm.device, FeedbackMode.FAST)
        alarm.timer = asyncio.create_task(self._ack_clock(alarm))
        log.info("alarm_opened", event_id=event.id, device=alarm.device, type=event.type)

    def restore(self, history: list[tuple[Event, bool]]) -> int:
        """Re-open the alarms still waiting for their ack after a restart (power cut, kill -9).

        ``history`` is the stored alarm events by seq, each with whether the broker
        had it. Returns how many alarms were re-opened; their ack clocks restart now.
        """
        open_: dict[str, tuple[Event, bool]] = {}
        for event, delivered in history:
            if event.type in ALARM_TYPES:
                open_[event.id] = (event, delivered)
            elif event.type in ("alarm.acknowledged", "alarm.cancelled") and event.cause:
                open_.pop(event.cause, None)
            elif event.type == "alarm.unacknowledged" and event.cause in open_:
                self._by_unack[event.id] = event.cause
        for event, delivered in open_.values():
            self.opened(event)
            if delivered:
                self.delivered(event)
        if open_:
            log.warning("alarms_restored", count=len(open_), ids=list(open_))
        return len(open_)

    def delivered(self, event: Event) -> None:
        """The broker has the alarm (PUBACK): show SLOW until the central acks."""
        alarm = self._alarms.get(event.id)
        if alarm is None or alarm.state is not AlarmState.SENT:
            return
        alarm.state = AlarmState.DELIVERED
        if self._active_by_device.get(alarm.device) == alarm.event.id:
            self._show(alarm.device, FeedbackMode.SLOW)

    async def acknowledge(self, event_id: str, by: str) -> tuple[AckResult, Alarm | None]:
        """The central acknowledged ``event_id`` (the alarm or one of its reminders)."""
        alarm = self.get(event_id)
        if alarm is None:
            return AckResult.UNKNOWN, None
        if alarm.state is AlarmState.ACKNOWLEDGED:
            return AckResult.ALREADY, alarm
        if alarm.state is AlarmState.CANCELLED:
            return AckResult.CANCELLED, alarm
        alarm.state = AlarmState.ACKNOWLEDGED
        alarm.acked_by = by
        if alarm.timer is not None:
            alarm.timer.cancel()
        if self._active_by_device.get(alarm.device) == alarm.event.id:
            self._show(alarm.device, FeedbackMode.STEADY)
            self._steady_timers[alarm.device] = asyncio.create_task(self._steady_then_off(alarm.device))
        log.info("alarm_acknowledged", event_id=alarm.event.id, by=by)
        await self.emit(
            Draft(
                type="alarm.acknowledged",
                priority=Priority.NORMAL,
                source=alarm.event.source,
                route=alarm.event.route,
                data={"by": by, "alarm_type": alarm.event.type},
                cause=alarm.event.id,
            )
        )
        return AckResult.ACKNOWLEDGED, alarm

    async def cancel(self, device: str, *, how: str = "hold") -> Event | None:
        """The resident cancelled the device's open alarm at the device; returns the alarm.cancelled event."""
        alarm = self.active(device)
        if alarm is None:
            return None
        alarm.state = AlarmState.CANCELLED
        if alarm.timer is not None:
            alarm.timer.cancel()
        self._active_by_device.pop(device, None)
        self._show(device, FeedbackMode.OFF)
        log.info("alarm_cancelled", event_id=alarm.event.id, device=device)
        return await self.emit(
            Draft(
                type="alarm.cancelled",
                priority=Priority.CRITICAL,
                source=alarm.event.source,
                route=alarm.event.route,
                data={"how": how},
                cause=alarm.event.id,
            )
        )

    async def _steady_then_off(self, device: str) -> None:
        await asyncio.sleep(self.steady_s)
        self._steady_timers.pop(device, None)
        ind = self.indicators.get(device)
        if ind is not None:
            ind.show(FeedbackMode.OFF)

    async def _ack_clock(self, alarm: Alarm) -> None:
        await asyncio.sleep(self.ack_timeout_s)
        waited = self.ack_timeout_s
        while alarm.state in (AlarmState.SENT, AlarmState.DELIVERED):
            event = await self.emit(
                Draft(
                    type="alarm.unacknowledged",
                    priority=Priority.CRITICAL,
                    source=alarm.event.source,
                    route=alarm.event.route,
                    data={"waited_s": round(waited, 3), "reminder": len(alarm.unack_ids) + 1, "alarm_type": alarm.event.type},
                    cause=alarm.event.id,
                )
            )
            alarm.unack_ids.append(event.id)
            self._by_unack[event.id] = alarm.event.id
            log.warning("alarm_unacknowledged", event_id=alarm.event.id, waited_s=round(waited, 3))
            await asyncio.sleep(self.unack_repeat_s)
            waited += self.unack_repeat_s

    def _forget_closed(self) -> None:
        """Drop finished alarms that are no longer any device's latest, so memory stays flat."""
        latest = set(self._active_by_device.values())
        for alarm_id, alarm in list(self._alarms.items()):
            if alarm.state in (AlarmState.ACKNOWLEDGED, AlarmState.CANCELLED) and alarm_id not in latest:
                del self._alarms[alarm_id]
                for uid in alarm.unack_ids:
                    self._by_unack.pop(uid, None)

    def status(self) -> list[dict[str, Any]]:
        """Open alarms for ``status``."""
        return [
            {"event_id": a.event.id, "device": a.device, "state": a.state.value, "reminders": len(a.unack_ids)}
            for a in self._alarms.values()
            if a.state in (AlarmState.SENT, AlarmState.DELIVERED)
        ]

    def close(self) -> None:
        """Stop all timers (daemon shutdown)."""
        for alarm in self._alarms.values():
            if alarm.timer is not None:
                alarm.timer.cancel()
        for t in self._steady_timers.values():
            t.cancel()
