"""No sign of life during the day: ``rule.inactivity``.

Activity is any event whose type is in ``activity`` (by default motion
``activity``, ``bed.exit``/``bed.return``, ``door.open``/``door.close``,
``alarm.button``, ``medication.taken`` and the resident's own ``checkin.done``). Only quiet time **inside the day
window** counts: the quiet period starts at the last activity or at the
window's opening that day, whichever is later, so a resident who sleeps
until 08:00 is not reported at 07:00 for the quiet night. When the quiet
period reaches ``after_s`` inside the window, ``rule.inactivity`` fires once
(cause: the last activity event, None if none was seen since the rule
started), then re-alerts every ``realert_s`` while it stays quiet and the
window is open (same cause). Activity, or the window closing, ends the quiet
period.

Before any activity has been seen, the quiet period starts when the rule
first ran. A hub restart keeps the last activity, and the time the hub was
down counts as quiet: on a safety rule a gap errs towards an alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from hub.events import Event, Priority, Route
from hub.rules.base import Alerting, Rule, RuleOutput, _opt_float, _opt_str, iso, shifted
from hub.rules.clock import Window

#: What counts as activity when the config does not say.
DEFAULT_ACTIVITY = (
    "motion.activity",
    "bed.exit",
    "bed.return",
    "door.open",
    "door.close",
    "alarm.button",
    "medication.taken",
    "checkin.done",
)


class Inactivity(Rule):
    name = "inactivity"
    event_type = "rule.inactivity"

    def __init__(
        self,
        *,
        window: Window,
        tz: ZoneInfo,
        after_s: float = 14400.0,
        activity: Iterable[str] = DEFAULT_ACTIVITY,
        realert_s: float = 900.0,
        priority: Priority = Priority.NORMAL,
        route: Route = Route.CARE,
    ) -> None:
        super().__init__(priority=priority, route=route)
        self.window, self.tz = window, tz
        self.after_s, self.realert_s = after_s, realert_s
        self.activity = frozenset(activity)
        self._since: float | None = None  # when the rule first ran
        self._last: float | None = None  # last activity
        self._last_id: str | None = None
        self._last_type: str | None = None
        self._period: float | None = None  # start of the quiet period that alerted
        self._alerting: Alerting | None = None

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        if event.type in self.activity:
            self._last, self._last_id, self._last_type = now, event.id, event.type
            self._period = self._alerting = None
        return []

    def quiet_since(self, now: float) -> float | None:
        """Start of the quiet period counted at ``now``; None outside the window."""
        if self._since is None:
            self._since = now
        opened = self.window.opened_at(now, self.tz)
        if opened is None:
            return None
        return max(self._last if self._last is not None else self._since, opened)

    def tick(self, now: float) -> list[RuleOutput]:
        start = self.quiet_since(now)
        if start is None:  # outside the window: the quiet period (if any) ends with it
            self._period = self._alerting = None
            return []
        if now - start < self.after_s:
            return []
        if self._period != start or self._alerting is None:
            self._period, self._alerting = start, Alerting(cause=self._last_id)
        elif not self._alerting.realert_due(now, self.realert_s):
            return []
        n = self._alerting.mark(now)
        data = {
            "quiet_s": round(now - start, 3),
            "after_s": self.after_s,
            "last_activity_at": iso(self._last),
            "last_activity": self._last_type,
            "realert": n,
        }
        return [self.output(self.event_type, data, cause=self._alerting.cause)]

    def clock_stepped(self, step: float) -> None:
        if self._period is not None and self._period in (self._last, self._since):
            self._period += step  # a quiet period counted from the last activity, not from the window's opening
        self._since, self._last = shifted(self._since, step), shifted(self._last, step)
        if self._alerting is not None:
            self._alerting.shift(step)

    def state(self) -> dict[str, Any]:
        return {
            "since": self._since,
            "last": self._last,
            "last_id": self._last_id,
            "last_type": self._last_type,
            "period": self._period,
            "alerting": self._alerting.dump() if self._alerting is not None else None,
        }

    def restore(self, state: dict[str, Any], now: float) -> None:
        since, last = _opt_float(state.get("since")), _opt_float(state.get("last"))
        last_id, last_type = _opt_str(state.get("last_id")), _opt_str(state.get("last_type"))
        period = _opt_float(state.get("period"))
        al = state.get("alerting")
        alerting = Alerting.load(al) if isinstance(al, dict) else None
        self._since = since if since is not None else now
        self._last, self._last_id, self._last_type = last, last_id, last_type
        self._period, self._alerting = period, alerting
