"""The hub's own health: which part is unhealthy and why, told once on each change.

Components are named ``task:<name>`` (a supervised task), ``store`` (the outbox
cannot commit, is short of space, holds alarms in memory), ``link`` (the
broker cannot be reached, or refuses the hub's TLS or credentials). Each
change goes out as an event: ``hub.degraded`` (critical: a hub that may not
get an alarm through is the central's emergency too) when a component turns
unhealthy or its reason changes, ``hub.recovered`` when it is well again. The
heartbeat and ``cmd/status`` carry :meth:`HealthBoard.status`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("hub.health")

#: A component's reason may change (disk full, then held alarms); a new hub.degraded at most this often.
REPEAT_S = 60.0

OnChange = Callable[[str, bool, dict[str, Any]], None]


@dataclass
class _Problem:
    reason: str
    since: float
    since_wall: float
    told_at: float


class HealthBoard:
    """What is unhealthy now; calls ``on_change(component, ok, data)`` on every change worth telling."""

    def __init__(self, on_change: OnChange | None = None) -> None:
        self.on_change = on_change
        self.problems: dict[str, _Problem] = {}

    def set(self, component: str, ok: bool, reason: str | None = None) -> None:
        """Record the component's health now."""
        now = time.monotonic()
        problem = self.problems.get(component)
        if ok:
            if problem is None:
                return
            del self.problems[component]
            outage = round(now - problem.since, 1)
            log.warning("hub_recovered", component=component, outage_s=outage)
            self._tell(component, True, {"component": component, "outage_s": outage, "was": problem.reason})
            return
        reason = reason or "unhealthy"
        if problem is not None:
            if problem.reason == reason or now - problem.told_at < REPEAT_S:
                problem.reason = reason
                return
            problem.reason, problem.told_at = reason, now
        else:
            problem = self.problems[component] = _Problem(reason, now, time.time(), now)
        log.error("hub_degraded", component=component, reason=reason)
        self._tell(component, False, {"component": component, "reason": reason})

    def _tell(self, component: str, ok: bool, data: dict[str, Any]) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(component, ok, data)
        except Exception:
            log.exception("health_change_failed", component=component)

    @property
    def ok(self) -> bool:
        return not self.problems

    def status(self) -> dict[str, Any]:
        """``{"state": "ok"|"degraded", "problems": {component: {reason, since_s}}}``."""
        now = time.monotonic()
        return {
            "state": "ok" if not self.problems else "degraded",
            "problems": {
                c: {"reason": p.reason, "for_s": round(now - p.since, 1)} for c, p in sorted(self.problems.items())
            },
        }
