"""The door at night: ``rule.door_night``, unless the resident is known to be inside.

A ``door.open`` at a time inside the night window opens an episode for that
door (cause: that ``door.open``). From then on:

* **door closes**: the rule waits ``inside_after_s`` for a sign that the
  resident is inside: an event of one of the ``inside_types`` (by default
  ``activity``, i.e. motion, and ``bed.return``) from any device but a door,
  or only from the ``inside_devices`` when that list is given (name the
  motion sensors inside and the bed mats, to leave out a porch sensor).
  A sign within the wait (at or after the close) ends the
  episode without an alert: the resident looked out, or went out and came
  back. No sign by close + ``inside_after_s``: ``rule.door_night``
  (``data.state = "closed"``), and the episode ends.
* **door opens again** while the rule waits: the same episode goes on (same
  cause), as if the door had never closed; the wait starts again at the next close.
* **door stays open** for ``open_after_s``: ``rule.door_night``
  (``data.state = "open"``), then a re-alert every ``realert_s`` while it is
  still open and still night (same cause). When it then closes, the
  inside-check runs as above but no second alert follows (the carers have been told).

Signs of life while the door is open do not count (a hallway sensor sees the
resident walk out). Like the bed rule, the first alert fires even when its
time falls after the night window's end; re-alerts stop with the night.
Repeated ``door.open`` events while open change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from hub.events import Event, Priority, Route
from hub.rules.base import Alerting, Rule, RuleOutput, _opt_float, _req_float, iso, shifted
from hub.rules.clock import Window

#: Events that show the resident is inside, when the config does not say: motion, back in bed.
INSIDE_TYPES = ("motion.activity", "bed.return")


@dataclass
class _Episode:
    opened_at: float
    alerting: Alerting
    closed_at: float | None = None  # None while the door is open

    def dump(self) -> dict[str, Any]:
        return {"opened_at": self.opened_at, "closed_at": self.closed_at, **self.alerting.dump()}

    @classmethod
    def load(cls, d: dict[str, Any]) -> _Episode:
        return cls(opened_at=_req_float(d["opened_at"]), closed_at=_opt_float(d.get("closed_at")), alerting=Alerting.load(d))


class DoorNight(Rule):
    name = "door_night"
    event_type = "rule.door_night"

    def __init__(
        self,
        *,
        window: Window,
        tz: ZoneInfo,
        inside_after_s: float = 180.0,
        open_after_s: float = 180.0,
        inside_types: Iterable[str] = INSIDE_TYPES,
        inside_devices: Iterable[str] | None = None,
        realert_s: float = 900.0,
        priority: Priority = Priority.HIGH,
        route: Route = Route.CARE,
    ) -> None:
        super().__init__(priority=priority, route=route)
        self.window, self.tz = window, tz
        self.inside_after_s, self.open_after_s, self.realert_s = inside_after_s, open_after_s, realert_s
        self.inside_types = frozenset(inside_types)
        self.inside_devices = frozenset(inside_devices) if inside_devices else None
        self._doors: dict[str, _Episode] = {}

    def _inside_sign(self, event: Event) -> bool:
        if event.type not in self.inside_types or event.source.kind == "door":
            return False
        return self.inside_devices is None or event.source.device in self.inside_devices

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        device = event.source.device
        ep = self._doors.get(device)
        if event.type == "door.open":
            if ep is not None:
                ep.closed_at = None  # open again: the same episode goes on
            elif self.window.contains(now, self.tz):
                self._doors[device] = _Episode(opened_at=now, alerting=Alerting(cause=event.id))
        elif event.type == "door.close":
            if ep is not None and ep.closed_at is None:
                ep.closed_at = now
        elif self._inside_sign(event):
            for door, e in list(self._doors.items()):
                if e.closed_at is not None and now - e.closed_at <= self.inside_after_s:
                    del self._doors[door]  # the resident is inside
        return self.tick(now)

    def tick(self, now: float) -> list[RuleOutput]:
        out: list[RuleOutput] = []
        for door, ep in list(self._doors.items()):
            al = ep.alerting
            if ep.closed_at is None:  # still open
                if not al.alerted:
                    if now - ep.opened_at >= self.open_after_s:
                        out.append(self._alert(door, ep, now))
                elif not self.window.contains(now, self.tz):
                    del self._doors[door]  # left open into the day: the night rule stops here
                elif al.realert_due(now, self.realert_s):
                    out.append(self._alert(door, ep, now))
            elif now - ep.closed_at >= self.inside_after_s:  # closed, and no sign of anyone inside
                if not al.alerted:
                    out.append(self._alert(door, ep, now))
                del self._doors[door]
        return out

    def _alert(self, door: str, ep: _Episode, now: float) -> RuleOutput:
        n = ep.alerting.mark(now)
        data: dict[str, Any] = {
            "state": "open" if ep.closed_at is None else "closed",
            "opened_at": iso(ep.opened_at),
            "open_s": round((ep.closed_at if ep.closed_at is not None else now) - ep.opened_at, 3),
            "realert": n,
        }
        if ep.closed_at is not None:
            data["closed_at"] = iso(ep.closed_at)
            data["inside_after_s"] = self.inside_after_s
        return self.output(self.event_type, data, cause=ep.alerting.cause, device=door)

    @property
    def episodes(self) -> dict[str, str]:
        """Doors with an open episode: id -> ``"open"`` or ``"closed"`` (waiting for a sign inside)."""
        return {d: ("open" if e.closed_at is None else "closed") for d, e in self._doors.items()}

    def state(self) -> dict[str, Any]:
        return {"doors": {d: e.dump() for d, e in self._doors.items()}}

    def clock_stepped(self, step: float) -> None:
        for episode in self._doors.values():
            episode.opened_at += step
            episode.closed_at = shifted(episode.closed_at, step)
            episode.alerting.shift(step)

    def restore(self, state: dict[str, Any], now: float) -> None:
        self._doors = {str(d): _Episode.load(e) for d, e in dict(state.get("doors", {})).items()}
