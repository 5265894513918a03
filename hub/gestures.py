"""What a resident's gestures on an alarm button mean.

* A press with no open alarm, or once the open alarm is acknowledged, raises
  ``alarm.button`` at once, on the edge.
* A hold of ``hold_s`` cancels the device's open alarm (``alarm.cancelled``,
  cause = that alarm): the accidental press just made, or an earlier one.
* A press while an alarm still waits for its ack is classified when it ends:
  released before ``hold_s`` it is a repeat alarm (``alarm.button`` with ``data.repeat`` and
  cause = the open alarm); held, it cancels. So the hold that cancels never
  raises a second alarm.

A button that classifies its own gestures (a BTHome button: ``press``,
``double_press``, ``long_press``, ``hold_press`` ...) calls :meth:`gesture`
with the name: a gesture the check-in rule counts for the device is a
check-in (:mod:`hub.checkins`), never an alarm; otherwise a press, double or
triple press is a press (an alarm, at once) and a long press or hold is a
hold (it cancels). The hub never waits for a second press: a BTHome button
reports a double press as its own event.

A check-in button (kind ``checkin_button``) is never an alarm: its press is a
check-in, its hold and release mean nothing.

Used by every driver with a button (GPIO, BLE): a driver asks its port for
the device's gestures (:meth:`drivers.base.HubPort.button`) and calls
``press`` / ``hold`` / ``release`` (or ``gesture``) on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hub.alarms import AlarmState, AlarmTracker
from hub.checkins import CheckIns
from hub.events import Draft, Event, Priority, Source, rfc3339

log = structlog.get_logger("hub.gestures")

#: A button's own gestures that are a press (an alarm), and those that are a hold (a cancel).
PRESS_GESTURES = frozenset({"press", "double_press", "triple_press"})
HOLD_GESTURES = frozenset({"long_press", "long_double_press", "long_triple_press", "hold_press"})


class ButtonGestures:
    """Turns press / hold / release (or a button's own gesture) of one device into alarm events, or
    into a check-in (:mod:`hub.checkins`). Runs on the loop."""

    def __init__(
        self,
        device: Any,
        *,
        alarms: AlarmTracker,
        emit_now: Callable[[Draft], asyncio.Task[Event]],
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        source: Source,
        input_name: str = "gpio",
        checkins: CheckIns | None = None,
    ) -> None:
        self.device = device
        self.checkins = checkins
        self.alarms = alarms
        self.emit_now = emit_now
        self.spawn = spawn
        self.source = source
        self.input_name = input_name
        self._deferred = False  # this press started while an alarm was open
        self._held = False
        self._pressing: asyncio.Task[Any] | None = None

    def _alarm(self, t: float, *, cause: str | None = None, **data: Any) -> Draft:
        return Draft(
            type="alarm.button",
            priority=Priority.CRITICAL,
            source=self.source,
            route=self.device.routing,
            data={"input": self.input_name, **data},
            ts=rfc3339(t),
            cause=cause,
        )

    @property
    def checkin_only(self) -> bool:
        """A check-in button: its press is a check-in, never an alarm."""
        return self.device.kind == "checkin_button"

    def _check_in(self, gesture: str, t: float) -> None:
        if self.checkins is None:
            log.warning("checkin_not_wired", device=self.device.id, gesture=gesture)
            return
        self.checkins.check_in(self.device, self.source, gesture=gesture, input_name=self.input_name, t=t)

    def gesture(self, name: str, t: float) -> None:
        """A gesture the button classified itself (BTHome): a check-in, a press, a hold, or nothing."""
        try:
            checkin = self.checkin_only or (self.checkins is not None and self.checkins.counts(self.device, name))
        except Exception:  # a check-in bug must never cost an alarm its press
            log.exception("checkin_lookup_failed", device=self.device.id, gesture=name)
            checkin = False
        if checkin:
            self._check_in(name, t)
        elif name in PRESS_GESTURES:
            self.press(t)
            self.release(t, 0.0)
        elif name in HOLD_GESTURES:
            self.hold(t)
        else:
            log.info("gesture_ignored", device=self.device.id, gesture=name)

    def press(self, t: float) -> None:
        if self.checkin_only:
            self._check_in("press", t)
            return
        self._held = False
        open_alarm = self.alarms.active(self.device.id)
        if open_alarm is None or open_alarm.state is AlarmState.ACKNOWLEDGED:
            self._deferred = False
            self._pressing = self.emit_now(self._alarm(t, gesture="press"))
        else:
            self._deferred = True
            log.info("press_while_alarm_open", device=self.device.id, alarm_id=open_alarm.event.id)

    def hold(self, t: float) -> None:
        if self.checkin_only:
            return
        self._held = True
        self.spawn(self._cancel(), "alarm.cancelled")

    async def _cancel(self) -> None:
        if self._pressing is not None and not self._pressing.done():
            await asyncio.wait([self._pressing])  # the alarm this hold cancels must be open first
        await self.alarms.cancel(self.device.id, how="hold")

    def release(self, t: float, held_s: float) -> None:
        if self.checkin_only:
            return
        if self._deferred and not self._held:
            open_alarm = self.alarms.active(self.device.id)
            cause = open_alarm.event.id if open_alarm is not None else None
            self.emit_now(self._alarm(t, gesture="press", repeat=True, cause=cause))
        self._deferred = False
