"""Absences for the check-in rule: when the resident is away, a missed check-in is no call.

Two sources, one shape (:class:`Absence`, unix seconds ``[start, end)``):

* the config's ``[[rules.check_in.absence]]`` (a holiday, a planned hospital
  stay): ``from`` and ``until`` are **local** dates or date-times in the
  hub's time zone. A date alone is the whole day: ``from = "2026-12-20"``
  starts at 00:00 that day, ``until = "2027-01-03"`` ends at 24:00 of that
  day (the last day away is included). A date-time is that wall-clock
  instant (``"2026-12-20T14:00"``), read as the rules read windows
  (:func:`hub.rules.clock.local_instant`: DST included);
* ``cmd/away`` from the central (:mod:`hub.commands`): ``from`` and ``until``
  are RFC 3339 instants with their offset, the central's clock; kept in the
  rule's state, so it survives a restart. A new ``cmd/away`` replaces the one
  before; one whose ``until`` is not after now, or ``cancel``, ends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.rules.clock import local_instant

__all__ = ["LOCAL_PATTERN", "Absence", "parse_local", "parse_instant"]

#: A local date, or a local date and time to the minute: ``2026-12-20`` or ``2026-12-20T14:00``.
LOCAL_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2})?$"
_LOCAL_RE = re.compile(LOCAL_PATTERN)


@dataclass(frozen=True)
class Absence:
    """The resident is away from ``start`` up to ``end`` (unix seconds); ``reason`` and ``by`` are for people."""

    start: float
    end: float
    reason: str | None = None
    by: str | None = None
    #: ``config`` (the config's absence list) or ``command`` (cmd/away)
    origin: str = "config"

    def overlaps(self, a: float, b: float) -> bool:
        """Whether any of ``[a, b)`` is inside the absence."""
        return self.start < b and a < self.end

    def covers(self, t: float) -> bool:
        """Whether instant ``t`` is inside the absence."""
        return self.start <= t < self.end

    def dump(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "reason": self.reason, "by": self.by}

    @classmethod
    def load(cls, d: dict[str, Any], origin: str = "command") -> Absence:
        start, end = d.get("start"), d.get("end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)) or isinstance(start, bool):
            raise ValueError(f"expected numbers start and end, found {start!r}, {end!r}")
        reason, by = d.get("reason"), d.get("by")
        if reason is not None and not isinstance(reason, str) or by is not None and not isinstance(by, str):
            raise ValueError("expected text reason and by")
        return cls(start=float(start), end=float(end), reason=reason, by=by, origin=origin)


def parse_local(text: str, tz: ZoneInfo, *, end: bool) -> float:
    """A config date (``2026-12-20``) or date-time (``2026-12-20T14:00``), local in ``tz``, as unix seconds.

    A date alone is its first instant, or with ``end`` the first instant of the next day (the
    day is included). Raises :class:`ValueError` saying what is wrong.
    """
    if not isinstance(text, str) or not _LOCAL_RE.match(text):
        raise ValueError(f"expected a local date 'YYYY-MM-DD' or date and time 'YYYY-MM-DDTHH:MM', found {text!r}")
    try:
        if "T" in text:
            return local_instant(datetime.fromisoformat(text), tz)
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date: {exc}") from None
    if end:
        day += timedelta(days=1)
    return local_instant(datetime.combine(day, time(0, 0)), tz)


def parse_instant(text: str) -> float:
    """An RFC 3339 instant with its offset (``2026-12-20T08:00:00+01:00``, ``...Z``) as unix seconds."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an RFC 3339 time such as '2026-12-20T08:00:00+01:00', found {text!r}") from None
    if t.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: give one ('Z' or '+01:00'), the hub cannot guess the zone")
    return t.timestamp()
