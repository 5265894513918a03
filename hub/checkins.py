"""The resident's check-in at a device: the LED at once, then ``checkin.done``.

A press of a check-in button (kind ``checkin_button``) or a BLE button's
configured check-in gesture (:class:`~hub.rules.checkin.CheckIn.counts`)
comes here from the device's gestures (:mod:`hub.gestures`). The device shows
the check-in pattern at once (:meth:`~hub.alarms.feedback.DeviceFeedback.confirm_checkin`),
then ``checkin.done`` (low, the rule's route, else care) is committed and
sent like any event; the check-in rule sees it committed, as it sees it again
when catching up after a crash. It is never an alarm.

The rule is looked up at each check-in, so a reload that changes
``[rules.check_in]`` applies at once, without re-attaching the drivers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hub.alarms.feedback import DeviceFeedback
from hub.events import Draft, Event, Priority, Route, Source, rfc3339

log = structlog.get_logger("hub.checkins")

__all__ = ["CheckIns"]


class CheckIns:
    """What counts as a check-in, and making one. Runs on the loop."""

    def __init__(
        self,
        *,
        rule: Callable[[], Any],
        feedback: DeviceFeedback,
        emit: Callable[[Draft], Awaitable[Event | None]],
        spawn: Callable[[Awaitable[Any], str], Any],
    ) -> None:
        #: the check-in rule now configured (None: not enabled)
        self.rule = rule
        self.feedback = feedback
        self.emit = emit
        self.spawn = spawn

    def counts(self, device: Any, gesture: str) -> bool:
        """Whether ``gesture`` on ``device`` is a check-in: any gesture of a checkin_button, else what the rule says."""
        if device.kind == "checkin_button":
            return True
        rule = self.rule()
        return rule is not None and rule.counts(device.id, gesture)

    def check_in(self, device: Any, source: Source, *, gesture: str, input_name: str, t: float) -> None:
        """The resident checked in at ``device`` at ``t``: the feedback now, the event on its way."""
        shown = self.feedback.confirm_checkin(device.id)
        rule = self.rule()
        window = rule.window_at(t) if rule is not None else None
        missed = rule.missed_id if rule is not None else None
        log.info("checked_in", device=device.id, gesture=gesture, window=window, ends_missed=missed, feedback=shown)
        draft = Draft(
            type="checkin.done",
            priority=Priority.LOW,
            source=source,
            route=rule.route if rule is not None else Route.CARE,
            data={"input": input_name, "gesture": gesture, "window": window, "missed": missed},
            ts=rfc3339(t),
        )
        self.spawn(self.emit(draft), "checkin.done")
