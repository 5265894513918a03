"""The resident's own daily check-in: ``checkin.missed`` when none came in a window.

The resident says "all is well" on purpose: a press of a check-in button (a
device of kind ``checkin_button``, GPIO or BLE), or a configured gesture of a
BLE button (its own ``double_press`` or ``long_press`` as BTHome reports it).
The hub's gestures (:mod:`hub.gestures`, :mod:`hub.checkins`) emit
``checkin.done`` for it; this rule sees the committed event.

**Windows.** One or more daily windows in local wall-clock time
(``08:00-10:30``; :mod:`hub.rules.clock`: DST included). Each window's
occurrence (the one opening on each local date) is judged once, when it
closes: a ``checkin.done`` inside it (open <= t < close) is a check-in; none,
and the resident not away at any time during it, is ``checkin.missed`` (cause
none; ``data.window``, ``data.due_at``). It is then re-sent every
``realert_s`` (same cause: the first ``checkin.missed``) until one of:

* a check-in, however late (``checkin.done`` then says which missed call it ends);
* an ack: ``cmd/ack`` naming the first ``checkin.missed`` or any re-alert;
* the next check-in window opening after it closed (the next day's window; for windows back to
  back, such as ``00:00-24:00``, the one that opened as it closed goes on being judged: its
  check-in ends the call, or its own missed call replaces it);
* the resident being away (``cmd/away`` arriving, or a configured absence starting).

**Away.** A configured absence or a ``cmd/away`` (:mod:`hub.rules.away`) that
overlaps an occurrence makes it no call; one that starts while a missed
check-in is re-alerted ends the re-alerts.

**Restarts and clock steps.** The state names each occurrence by its window
and local date (``08:00-10:30@2026-12-05``: the window as written, so a reload that
reorders or adds windows keeps the day's record) and remembers which were judged, so a
restart never judges one twice, and a window that closed while the hub was
down is judged when it comes back (a gap errs towards a call), unless a later
window has opened since it closed. Occurrences that closed before the rule first ran
are not judged. A wall-clock step moves the instants the rule measured
(check-ins, re-alert pace); the ``cmd/away`` times are the central's and stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.events import Event, Priority, Route, uuid7
from hub.rules.away import Absence
from hub.rules.base import Alerting, Rule, RuleOutput, _opt_float, iso, shifted
from hub.rules.clock import Window

__all__ = ["ACK_ENDED", "CHECKIN_GESTURES", "CheckIn", "DONE_TYPE", "MISSED_TYPE"]

DONE_TYPE = "checkin.done"
MISSED_TYPE = "checkin.missed"
#: The BTHome button events of a BLE alarm button that the config may make a check-in (never a single press).
CHECKIN_GESTURES = ("double_press", "triple_press", "long_press")
#: ``cmd/ack``'s result for a missed check-in that had ended already (a late check-in, away, the next
#: window); the others are the alarm tracker's (:class:`hub.alarms.AckResult`).
ACK_ENDED = "ended"
#: Judged occurrences and check-ins are kept this many days (enough for any window and restart).
KEEP_DAYS = 3
#: How many missed-call ids one missed check-in keeps for acks (the first and the newest).
KEEP_IDS = 32

#: (key, window index, opens, closes)
Occurrence = tuple[str, int, float, float]


class CheckIn(Rule):
    """Daily check-in windows; see the module docstring."""

    name = "check_in"
    event_type = MISSED_TYPE

    def __init__(
        self,
        *,
        windows: Sequence[Window],
        tz: ZoneInfo,
        buttons: Iterable[str] = (),
        devices: Iterable[str] = (),
        gestures: Iterable[str] = ("double_press",),
        absences: Iterable[Absence] = (),
        realert_s: float = 900.0,
        priority: Priority = Priority.HIGH,
        route: Route = Route.CARE,
    ) -> None:
        super().__init__(priority=priority, route=route)
        if not windows:
            raise ValueError("the check-in rule needs at least one window")
        self.windows, self.tz, self.realert_s = tuple(windows), tz, realert_s
        #: devices of kind checkin_button: every press is a check-in
        self.buttons = frozenset(buttons)
        #: BLE alarm buttons whose ``gestures`` are a check-in
        self.devices, self.gestures = frozenset(devices), frozenset(gestures)
        self.absences = tuple(absences)
        self._since: float | None = None  # when the rule first ran
        self._checked: dict[str, dict[str, Any]] = {}  # occurrence key -> {"at", "id"}
        self._judged: dict[str, str] = {}  # occurrence key -> done | away | missed | skipped
        self._missed: dict[str, Any] | None = None  # the missed check-in being re-alerted
        self._alerting: Alerting | None = None
        self._ended: dict[str, Any] | None = None  # the last missed check-in that ended: {"ids", "how", ...}
        self._away: Absence | None = None  # from cmd/away

    # --- what counts ------------------------------------------------------------------------

    def counts(self, device: str, gesture: str) -> bool:
        """Whether ``gesture`` (``press``, ``double_press``, ...) on ``device`` is a check-in."""
        if device in self.buttons:
            return True
        return device in self.devices and gesture in self.gestures

    def occurrences(self, now: float) -> list[Occurrence]:
        """Every window occurrence opened by ``now`` on the last few local dates, by opening time."""
        today = datetime.fromtimestamp(now, self.tz).date()
        out: list[Occurrence] = []
        for back in range(KEEP_DAYS, -1, -1):
            day = today - timedelta(days=back)
            for i, w in enumerate(self.windows):
                opens, closes = w.occurrence(day, self.tz)
                if opens <= now:
                    out.append((f"{w}@{day.isoformat()}", i, opens, closes))
        out.sort(key=lambda o: o[2])
        return out

    def window_at(self, now: float) -> str | None:
        """The window (as written) whose occurrence holds ``now``; None outside every window."""
        for _, i, opens, closes in self.occurrences(now):
            if opens <= now < closes:
                return str(self.windows[i])
        return None

    def away_at(self, a: float, b: float | None = None) -> Absence | None:
        """The absence (cmd/away first, then the config's) covering instant ``a``, or overlapping ``[a, b)``."""
        for ab in ((self._away,) if self._away else ()) + self.absences:
            if ab.covers(a) if b is None else ab.overlaps(a, b):
                return ab
        return None

    @property
    def missed_id(self) -> str | None:
        """The first ``checkin.missed`` of the missed check-in still being re-alerted, if any."""
        return self._missed["ids"][0] if self._missed and self._missed["ids"] else None

    # --- events and time ------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        if event.type == DONE_TYPE:
            for key, _, opens, closes in self.occurrences(now):
                if opens <= now < closes:
                    self._checked[key] = {"at": now, "id": event.id}
            self._end("checked_in", now, by_event=event.id)
        elif event.type == MISSED_TYPE and self._missed is not None and event.id not in self._missed["ids"]:
            self._remember(event.id)  # caught up from the outbox after a crash: its ack must still work
        return []

    def tick(self, now: float) -> list[RuleOutput]:
        if self._since is None:
            self._since = now
        out: list[RuleOutput] = []
        occs = self.occurrences(now)
        for key, i, opens, closes in occs:
            if closes > now or key in self._judged:
                continue
            if closes <= self._since:
                continue  # closed before the rule first ran: nobody watched it
            if any(o[2] > closes for o in occs):
                self._judged[key] = "skipped"  # a later window opened since it closed (the hub was down): that one counts
                continue
            out += self._judge(key, i, opens, closes, now)
        if self._missed is not None:
            if any(o[2] > self._missed["closes"] for o in occs):
                self._end("next_window", now)
            elif self.away_at(now) is not None:
                self._end("away", now)
            elif self._alerting is not None and self._alerting.realert_due(now, self.realert_s):
                out.append(self._alert(now))
        self._prune(now)
        return out

    def _judge(self, key: str, i: int, opens: float, closes: float, now: float) -> list[RuleOutput]:
        if key in self._checked:
            self._judged[key] = "done"
            return []
        if self.away_at(opens, closes) is not None:
            self._judged[key] = "away"
            return []
        self._judged[key] = "missed"
        if self._missed is not None:
            self._end("next_window", now)
        self._missed = {"key": key, "window": str(self.windows[i]), "opens": opens, "closes": closes, "ids": []}
        self._alerting = Alerting(cause=None)
        return [self._alert(now)]

    def _alert(self, now: float) -> RuleOutput:
        assert self._missed is not None and self._alerting is not None
        first = self.missed_id
        n = self._alerting.mark(now)
        last = max((c["at"] for c in self._checked.values()), default=None)
        data = {
            "window": self._missed["window"],
            "opened_at": iso(self._missed["opens"]),
            "due_at": iso(self._missed["closes"]),
            "last_checkin_at": iso(last),
            "realert": n,
        }
        event_id = uuid7(now)  # known before it is emitted: an ack may come at once
        self._remember(event_id)
        return replace(self.output(MISSED_TYPE, data, cause=first), id=event_id)

    def _remember(self, event_id: str) -> None:
        assert self._missed is not None
        ids = self._missed["ids"]
        ids.append(event_id)
        if len(ids) > KEEP_IDS:
            del ids[1]  # the first stays: the cause every re-alert names

    def _end(self, how: str, now: float, **extra: Any) -> None:
        if self._missed is None:
            return
        self._ended = {"ids": list(self._missed["ids"]), "how": how, "at": now, **extra}
        self._missed = self._alerting = None

    def _prune(self, now: float) -> None:
        oldest = (datetime.fromtimestamp(now, self.tz).date() - timedelta(days=KEEP_DAYS + 1)).isoformat()
        for table in (self._checked, self._judged):
            for key in [k for k in table if k.partition("@")[2] < oldest]:
                del table[key]

    # --- the central: acks and away ---------------------------------------------------------

    def acknowledge(self, event_id: str, by: str, now: float) -> dict[str, Any] | None:
        """``cmd/ack`` of ``event_id``: the reply when it names a ``checkin.missed`` of this rule, else None."""
        if self._missed is not None and event_id in self._missed["ids"]:
            ids = list(self._missed["ids"])
            self._end("acknowledged", now, by=by)
            return {"ok": True, "result": "acknowledged", "alarm_id": ids[0], "closes": ids}
        ended = self._ended
        if ended is not None and event_id in ended["ids"]:
            result = "already_acknowledged" if ended["how"] == "acknowledged" else ACK_ENDED
            return {"ok": True, "result": result, "alarm_id": ended["ids"][0], "closes": list(ended["ids"])}
        return None

    def set_away(self, start: float, end: float, *, reason: str | None, by: str, now: float) -> dict[str, Any]:
        """``cmd/away``: the resident is away ``[start, end)``; replaces an earlier one. Returns the reply."""
        previous = self._away
        self._away = Absence(start=start, end=end, reason=reason, by=by, origin="command")
        if self._missed is not None and self._away.covers(now):
            self._end("away", now)
        return self._away_reply(previous, now)

    def end_away(self, *, by: str, now: float) -> dict[str, Any]:
        """``cmd/away`` with ``cancel`` or an ``until`` not after now: the resident is home. Returns the reply."""
        previous, self._away = self._away, None
        return self._away_reply(previous, now)

    def _away_reply(self, previous: Absence | None, now: float) -> dict[str, Any]:
        def view(a: Absence | None) -> dict[str, Any] | None:
            if a is None:
                return None
            return {"from": iso(a.start), "until": iso(a.end), "reason": a.reason, "by": a.by}

        current = self.away_at(now)
        return {
            "ok": True,
            "away": view(self._away),
            "previous": view(previous),
            "away_now": current is not None,
            "absence": current.origin if current is not None else None,
        }

    # --- state ------------------------------------------------------------------------------

    def clock_stepped(self, step: float) -> None:
        self._since = shifted(self._since, step)
        for c in self._checked.values():
            c["at"] += step
        if self._alerting is not None:
            self._alerting.shift(step)

    def state(self) -> dict[str, Any]:
        return {
            "since": self._since,
            "checked": {k: dict(v) for k, v in self._checked.items()},
            "judged": dict(self._judged),
            "missed": dict(self._missed, ids=list(self._missed["ids"])) if self._missed else None,
            "alerting": self._alerting.dump() if self._alerting is not None else None,
            "ended": dict(self._ended) if self._ended else None,
            "away": self._away.dump() if self._away is not None else None,
            "missed_id": self.missed_id,  # for status; not read back
        }

    def restore(self, state: dict[str, Any], now: float) -> None:
        since = _opt_float(state.get("since"))
        checked = {str(k): {"at": float(v["at"]), "id": str(v["id"])} for k, v in dict(state.get("checked") or {}).items()}
        judged = {str(k): str(v) for k, v in dict(state.get("judged") or {}).items()}
        missed, al, ended, away = state.get("missed"), state.get("alerting"), state.get("ended"), state.get("away")
        if missed is not None:
            missed = {"key": str(missed["key"]), "window": str(missed["window"]), "opens": float(missed["opens"]),
                      "closes": float(missed["closes"]), "ids": [str(i) for i in missed["ids"]]}
        alerting = Alerting.load(al) if isinstance(al, dict) else None
        if (missed is None) != (alerting is None):
            raise ValueError("a missed check-in needs its alerting state")
        self._since = since if since is not None else now
        self._checked, self._judged, self._missed, self._alerting = checked, judged, missed, alerting
        self._ended = dict(ended) if isinstance(ended, dict) else None
        self._away = Absence.load(away) if isinstance(away, dict) else None
