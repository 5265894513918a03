"""Out of bed at night: ``rule.bed_not_returned``, and the opt-in immediate ``rule.bed_exit``.

``bed_not_returned``
    A ``bed.exit`` at a time inside the night window opens an episode for that
    bed mat. Unless a ``bed.return`` from the same mat arrives before
    ``after_s`` real seconds have passed, ``rule.bed_not_returned`` fires at
    exit + ``after_s`` (cause: the ``bed.exit``), then re-alerts every
    ``realert_s`` while the resident is still out **and** it is still night
    (same cause). The first alert fires even when its time falls after the
    night's end (the exit was at night); once the night is over no re-alert
    follows and the episode is closed. ``bed.return`` closes the episode at
    any point. A second ``bed.exit`` while an episode is open changes nothing.

``bed_exit``
    ``rule.bed_exit`` at once for each ``bed.exit`` inside its window (by
    default the night), for residents whose care plan asks for it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from hub.events import Event, Priority, Route
from hub.rules.base import Alerting, Rule, RuleOutput, _req_float, iso
from hub.rules.clock import Window


class BedNotReturned(Rule):
    name = "bed_not_returned"
    event_type = "rule.bed_not_returned"

    def __init__(
        self,
        *,
        window: Window,
        tz: ZoneInfo,
        after_s: float = 1200.0,
        realert_s: float = 900.0,
        priority: Priority = Priority.HIGH,
        route: Route = Route.CARE,
    ) -> None:
        super().__init__(priority=priority, route=route)
        self.window, self.tz = window, tz
        self.after_s, self.realert_s = after_s, realert_s
        #: bed mat id -> (exit time, alerting)
        self._out: dict[str, tuple[float, Alerting]] = {}

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        device = event.source.device
        if event.type == "bed.exit":
            if device not in self._out and self.window.contains(now, self.tz):
                self._out[device] = (now, Alerting(cause=event.id))
        elif event.type == "bed.return":
            self._out.pop(device, None)
        return []

    def tick(self, now: float) -> list[RuleOutput]:
        out: list[RuleOutput] = []
        for device, (exit_at, al) in list(self._out.items()):
            if not al.alerted:
                if now - exit_at >= self.after_s:
                    out.append(self._alert(device, exit_at, al, now))
            elif not self.window.contains(now, self.tz):
                del self._out[device]  # the night is over: no more re-alerts
            elif al.realert_due(now, self.realert_s):
                out.append(self._alert(device, exit_at, al, now))
        return out

    def _alert(self, device: str, exit_at: float, al: Alerting, now: float) -> RuleOutput:
        n = al.mark(now)
        data = {"exit_at": iso(exit_at), "away_s": round(now - exit_at, 3), "after_s": self.after_s, "realert": n}
        return self.output(self.event_type, data, cause=al.cause, device=device)

    @property
    def out_of_bed(self) -> dict[str, float]:
        """Bed mats with an open episode: id -> exit time."""
        return {d: t for d, (t, _) in self._out.items()}

    def state(self) -> dict[str, Any]:
        return {"out": {d: {"exit_at": t, **al.dump()} for d, (t, al) in self._out.items()}}

    def clock_stepped(self, step: float) -> None:
        for device, (t, alerting) in self._out.items():
            alerting.shift(step)
            self._out[device] = (t + step, alerting)

    def restore(self, state: dict[str, Any], now: float) -> None:
        out: dict[str, tuple[float, Alerting]] = {}
        for device, d in dict(state.get("out", {})).items():
            out[str(device)] = (_req_float(d["exit_at"]), Alerting.load(d))
        self._out = out


class BedExit(Rule):
    name = "bed_exit"
    event_type = "rule.bed_exit"

    def __init__(
        self, *, window: Window, tz: ZoneInfo, priority: Priority = Priority.HIGH, route: Route = Route.CARE
    ) -> None:
        super().__init__(priority=priority, route=route)
        self.window, self.tz = window, tz

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        if event.type != "bed.exit" or not self.window.contains(now, self.tz):
            return []
        return [self.output(self.event_type, {"exit_at": iso(now)}, cause=event.id, device=event.source.device)]

    def tick(self, now: float) -> list[RuleOutput]:
        return []

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any], now: float) -> None:
        return None
