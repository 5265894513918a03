"""Hub supervision: is each hub there, from its retained status, its last will and its heartbeats.

Each instance supervises every hub itself (status and heartbeat are not on the shared
subscription), in memory, and says what it sees in :class:`~central.view.HubView`:

* ``offline``: the last status is offline (the broker's last will, "connection lost", or the
  hub's own on a clean stop, "stopped") and no heartbeat came after it;
* ``silent``: no heartbeat (nor status, nor event) for the hub's supervision level, though no
  will came (a hung hub whose TCP connection lives on, a broker that lost its session);
* ``late``: the heartbeat is overdue (twice the interval seen between the last two), within
  the level;
* ``online``: heard in time; ``unknown``: never heard since this instance started, and nothing
  in the store about it.

The levels are the config's (:mod:`central.config`; after SOS Access: 180 s, 5 h, 25 h). A
change of state is logged (hub_online, hub_late, hub_silent, hub_offline) and returned for the feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from central.config import CentralConfig
from central.view import HubState, HubView
from hub.events import rfc3339

log = structlog.get_logger("central.supervision")

#: A heartbeat this many intervals overdue makes a hub late.
LATE_FACTOR = 2.0

#: The log line a hub's new state gets: its level and event.
_LOG_LINES: dict[str, tuple[str, str]] = {
    "online": ("info", "hub_online"), "late": ("warning", "hub_late"), "silent": ("error", "hub_silent"),
    "offline": ("warning", "hub_offline"), "unknown": ("info", "hub_unknown"),
}


@dataclass
class HubWatch:
    """What this instance knows of one hub. Times are ``time.monotonic()``; ``*_wall`` are Unix seconds."""

    hub: str
    level: str
    level_s: float
    status: str | None = None
    reason: str | None = None
    status_at: float | None = None
    status_wall: float | None = None
    heartbeat_at: float | None = None
    heartbeat_wall: float | None = None
    interval: float | None = None
    event_at: float | None = None
    state: HubState = "unknown"
    why: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)


def _describe_offline(reason: str | None) -> str:
    if reason == "connection lost":
        return "last will: connection lost"
    if reason == "stopped":
        return "stopped cleanly"
    return f"offline: {reason}" if reason else "offline"


class Supervisor:
    """Every hub's state as this instance sees it."""

    def __init__(self, config: CentralConfig, *, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.mono = mono
        self.wall = wall
        self.hubs: dict[str, HubWatch] = {}

    def watch(self, hub: str) -> HubWatch:
        """The hub's record, made on first mention."""
        w = self.hubs.get(hub)
        if w is None:
            level, level_s = self.config.level_of(hub)
            w = self.hubs[hub] = HubWatch(hub=hub, level=level, level_s=level_s)
        return w

    def _mono(self, wall: float | None) -> float | None:
        return None if wall is None else self.mono() - (self.wall() - float(wall))

    def load(self, rows: list[dict[str, Any]]) -> None:
        """What the store remembers (after a restart): last status and heartbeat, counters."""
        for row in rows:
            w = self.watch(row["hub"])
            w.counts = row
            if w.status is None and row.get("status") is not None:
                w.status, w.reason = row["status"], row.get("status_reason")
                w.status_wall, w.status_at = row.get("status_at"), self._mono(row.get("status_at"))
            if w.heartbeat_at is None and row.get("last_heartbeat") is not None:
                w.heartbeat_wall, w.heartbeat_at = row["last_heartbeat"], self._mono(row["last_heartbeat"])
            if w.event_at is None and row.get("last_event") is not None:
                w.event_at = self._mono(row["last_event"])
            w.state, w.why = self.evaluate(w)

    def status(self, hub: str, doc: dict[str, Any], *, retained: bool = False) -> HubView | None:
        """A status document (birth, will, clean stop); the view when the state changed.

        ``retained``: the broker's stored copy, sent on (re)subscribing: old news. It says what the
        status is, but is no sign of life unless it differs from what this instance knew (a hub
        silent since before a restart of the central stays silent, whatever its retained birth says).
        """
        w = self.watch(hub)
        state = doc.get("state")
        status = str(state) if state in ("online", "offline") else None
        reason = str(doc["reason"])[:200] if doc.get("reason") is not None else None
        if not retained or (status, reason) != (w.status, w.reason) or w.status_at is None:
            w.status_at, w.status_wall = self.mono(), self.wall()
        w.status, w.reason = status, reason
        return self._update(w)

    def heartbeat(self, hub: str) -> HubView:
        """A heartbeat: the view (its time changed, whatever the state)."""
        w = self.watch(hub)
        now = self.mono()
        if w.heartbeat_at is not None and now - w.heartbeat_at > 0.05:
            w.interval = now - w.heartbeat_at
        w.heartbeat_at, w.heartbeat_wall = now, self.wall()
        self._update(w)
        return self.view(hub)

    def event(self, hub: str) -> HubView | None:
        """An event from the hub (a sign of life); the view when the state changed."""
        w = self.watch(hub)
        w.event_at = self.mono()
        return self._update(w)

    def tick(self) -> list[HubView]:
        """Re-evaluate every hub (time passes); the views that changed."""
        return [v for w in list(self.hubs.values()) if (v := self._update(w)) is not None]

    def evaluate(self, w: HubWatch) -> tuple[HubState, str | None]:
        """The hub's state now, and why in a few words."""
        if w.status == "offline" and (w.heartbeat_at is None or (w.status_at or 0) >= w.heartbeat_at):
            return "offline", _describe_offline(w.reason)
        signs = [t for t in (w.heartbeat_at, w.status_at if w.status == "online" else None, w.event_at) if t is not None]
        if not signs:
            return "unknown", None
        age = self.mono() - max(signs)
        if age > w.level_s:
            return "silent", f"no heartbeat for {age:.0f} s (level {w.level}: {w.level_s:.0f} s)"
        if w.interval is not None and age > LATE_FACTOR * w.interval:
            return "late", f"heartbeat overdue: {age:.1f} s since the last (every {w.interval:.1f} s)"
        return "online", None

    def _update(self, w: HubWatch) -> HubView | None:
        state, why = self.evaluate(w)
        if (state, why if state == "offline" else None) == (w.state, w.why if w.state == "offline" else None):
            w.why = why
            return None
        before, w.state, w.why = w.state, state, why
        fields = {"hub": w.hub, "was": before, "reason": why, "supervision": w.level}
        level, event = _LOG_LINES[state]
        getattr(log, level)(event, **fields)
        return self.view(w.hub)

    def view(self, hub: str) -> HubView:
        """The hub as the operator sees it."""
        w = self.watch(hub)
        c = w.counts
        return HubView(hub=hub, state=w.state, reason=w.why, last_status=rfc3339(w.status_wall) if w.status_wall else None,
                       last_heartbeat=rfc3339(w.heartbeat_wall) if w.heartbeat_wall else None, level_s=w.level_s,
                       seq_last=c.get("seq_max"), gaps_open=int(c.get("gaps_open") or 0), lost=int(c.get("lost") or 0))

    def views(self) -> list[HubView]:
        """Every hub, by name."""
        return [self.view(h) for h in sorted(self.hubs)]
