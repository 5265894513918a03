"""What a resident's gestures on an alarm button mean.

* A press with no open alarm, or once the open alarm is acknowledged, raises
  ``alarm.button`` at once, on the edge.
* A hold of ``hold_s`` cancels the device's open alarm (``alarm.cancelled``,
  cause = that alarm): the accidental press just made, or an earlier one.
* A press while an alarm still waits for its ack is classified when it ends:
  released before ``hold_s`` it is a repeat alarm (``alarm.button`` with ``data.repeat`` and
  cause = the open alarm); held, it cancels. So the hold that cancels never
  raises a second alarm.

Used by every driver with a button (GPIO, BLE): a driver asks its port for
the device's gestures (:meth:`drivers.base.HubPort.button`) and calls
``press`` / ``hold`` / ``release`` on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hub.alarms import AlarmState, AlarmTracker
from hub.events import Draft, Event, Priority, Source, rfc3339

log = structlog.get_logger("hub.gestures")


class ButtonGestures:
    """Turns press / hold / release of one device into alarm events. Runs on the loop."""

    def __init__(
        self,
        device: Any,
        *,
        alarms: AlarmTracker,
        emit_now: Callable[[Draft], asyncio.Task[Event]],
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        source: Source,
        input_name: str = "gpio",
    ) -> None:
        self.device = device
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

    def press(self, t: float) -> None:
        self._held = False
        open_alarm = self.alarms.active(self.device.id)
        if open_alarm is None or open_alarm.state is AlarmState.ACKNOWLEDGED:
            self._deferred = False
            self._pressing = self.emit_now(self._alarm(t, gesture="press"))
        else:
            self._deferred = True
            log.info("press_while_alarm_open", device=self.device.id, alarm_id=open_alarm.event.id)

    def hold(self, t: float) -> None:
        self._held = True
        self.spawn(self._cancel(), "alarm.cancelled")

    async def _cancel(self) -> None:
        if self._pressing is not None and not self._pressing.done():
            await asyncio.wait([self._pressing])  # the alarm this hold cancels must be open first
        await self.alarms.cancel(self.device.id, how="hold")

    def release(self, t: float, held_s: float) -> None:
        if self._deferred and not self._held:
            open_alarm = self.alarms.active(self.device.id)
            cause = open_alarm.event.id if open_alarm is not None else None
            self.emit_now(self._alarm(t, gesture="press", repeat=True, cause=cause))
        self._deferred = False
