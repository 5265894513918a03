"""Time for the rules: an injectable clock, and local wall-clock windows.

Two kinds of time, never mixed:

* **Durations** ("20 minutes after the bed exit", "re-alert every 15
  minutes", "silent for an hour") are real elapsed seconds: differences of
  unix time (:meth:`Clock.now`). A DST change does not stretch or shrink
  them. A 20-minute timer started at 01:50 local on the night of the last
  Sunday of March (Europe/Oslo: 02:00 CET jumps to 03:00 CEST) fires 20 real
  minutes later, at 03:10 local; one started at 02:50 on the first pass of
  the last Sunday of October (03:00 CEST falls back to 02:00 CET) fires at
  02:10 on the second pass.
* **Windows** ("the night is 22:00-07:00") are local wall-clock times in the
  hub's time zone (``[hub] timezone``, default Europe/Oslo), read with
  :mod:`zoneinfo`. A window end of 07:00 is 07:00 local whatever the UTC
  offset, so the March night is 8 real hours long and the October night 10.

A window is a run of intervals, one opening per local date: the occurrence
that opens on date *D* starts at the **first** instant the wall clock reads
``start`` on *D* and ends at the first instant it reads ``end`` (on *D*, or on
*D* + 1 for a window that crosses midnight). Hence, for a boundary in one of
the two odd hours of a DST night:

* **skipped hour** (02:00-03:00 does not exist on the last Sunday of March):
  a boundary inside it (say 02:30) falls on the jump itself, 03:00 CEST, the
  first instant the clock reads 02:30 or later;
* **repeated hour** (02:00-03:00 happens twice on the last Sunday of
  October): a boundary inside it is its first occurrence (CEST, fold 0).
  An occurrence is always one unbroken interval: a window ending at 02:30
  closes at the first 02:30 and does not open again on the second pass;
  a window starting at 02:30 opens at the first 02:30 and stays open through
  the second pass.

Windows that avoid 02:00-03:00, like the defaults, never meet either case.
"""

from __future__ import annotations

import functools
import math
import re
import time as _time
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = ["WINDOW_HELP", "WINDOW_PATTERN", "Clock", "FakeClock", "SystemClock", "Window", "parse_window", "local_instant"]

#: ``HH:MM-HH:MM``, 00:00 to 23:59, or 24:00 as an end, for the config structs (start equal to end:
#: :func:`parse_window` says why not).
WINDOW_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
#: What :data:`WINDOW_PATTERN` means, for the config loader's ``PATTERN_HELP`` (:mod:`hub.config.sections`).
WINDOW_HELP = "a local time window 'HH:MM-HH:MM' such as '22:00-07:00' (it may cross midnight; '00:00-24:00' is the whole day)"


@runtime_checkable
class Clock(Protocol):
    """Where the rules' ``now`` comes from: unix seconds (UTC-based, DST-free)."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock: :func:`time.time`."""

    def now(self) -> float:
        return _time.time()


class FakeClock:
    """A clock the tests move by hand: no sleeping, ever.

    ``start`` is unix seconds or an aware :class:`datetime`.
    """

    def __init__(self, start: float | datetime = 0.0) -> None:
        self._t = _seconds(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> float:
        """Move forward ``seconds`` (not backwards: use :meth:`set`); returns the new time."""
        if seconds < 0:
            raise ValueError(f"advance() goes forward only, not by {seconds}")
        self._t += seconds
        return self._t

    def set(self, t: float | datetime) -> float:
        """Jump to ``t`` (either way, as an NTP step would); returns it."""
        self._t = _seconds(t)
        return self._t


def _seconds(t: float | datetime) -> float:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("a naive datetime has no instant: give it a tzinfo")
        return t.timestamp()
    return float(t)


def local_instant(naive: datetime, tz: ZoneInfo) -> float:
    """The first instant (unix seconds) at which the wall clock in ``tz`` reads ``naive`` or later.

    An ordinary local time has one instant; a repeated one (the October hour)
    gives its first occurrence; a skipped one (the March hour) gives the
    instant of the jump, when the clock first reads a later time.
    """
    naive = naive.replace(tzinfo=None)
    first = naive.replace(tzinfo=tz, fold=0).timestamp()
    if _wall(first, tz) == naive:
        return first
    # In a gap: fold=1 reads the time with the offset after the jump (an earlier instant,
    # before the gap), fold=0 with the offset before it (a later instant, after the gap).
    lo = math.floor(naive.replace(tzinfo=tz, fold=1).timestamp())
    hi = math.ceil(first)
    if lo > hi:  # pragma: no cover - a zone whose offsets shrink across a gap: none known
        lo, hi = hi, lo
    while lo < hi:  # first whole second whose wall time is at or after ``naive``
        mid = (lo + hi) // 2
        if _wall(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)


def _wall(t: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


@dataclass(frozen=True)
class Window:
    """A daily local wall-clock window ``[start, end)``, e.g. 22:00-07:00.

    ``start > end`` crosses midnight. ``start == end`` is the whole day
    (written ``00:00-24:00``). See the module docstring for DST.
    """

    start: time
    end: time
    #: per time zone, the last span found to lie inside one occurrence or between two (lo, hi, what
    #: :meth:`_around` answers for any instant in it): most calls (one per event and per tick) fall there
    _memo: dict[ZoneInfo, tuple[float, float, tuple[float, float] | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def whole_day(self) -> bool:
        return self.start == self.end

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def occurrence(self, day: date, tz: ZoneInfo) -> tuple[float, float]:
        """The occurrence opening on local date ``day``: (open, close) in unix seconds."""
        return _occurrence(self, day, tz)

    def _around(self, t: float, tz: ZoneInfo) -> tuple[float, float] | None:
        if self.whole_day:
            return (-math.inf, math.inf)
        memo = self._memo.get(tz)
        if memo is not None and memo[0] <= t < memo[1]:
            return memo[2]
        today = datetime.fromtimestamp(t, tz).date()
        for day in (today, today - timedelta(days=1)):
            opens, closes = self.occurrence(day, tz)
            if opens <= t < closes:
                self._memo[tz] = (opens, closes, (opens, closes))
                return opens, closes
        # Outside: between the close of one occurrence and the opening of the next (they follow one
        # another, each opening at or after the previous one closed), which is outside for any instant.
        opens, closes = self.occurrence(today, tz)
        if t < opens:
            lo, hi = self.occurrence(today - timedelta(days=1), tz)[1], opens
        else:
            lo, hi = closes, self.occurrence(today + timedelta(days=1), tz)[0]
        if lo <= t < hi:
            self._memo[tz] = (lo, hi, None)
        return None

    def contains(self, t: float, tz: ZoneInfo) -> bool:
        """Whether unix time ``t`` is inside the window, read on the wall clock of ``tz``."""
        return self._around(t, tz) is not None

    def opened_at(self, t: float, tz: ZoneInfo) -> float | None:
        """When the occurrence containing ``t`` opened (``-inf`` for the whole day); None when outside."""
        around = self._around(t, tz)
        return None if around is None else around[0]

    def closes_at(self, t: float, tz: ZoneInfo) -> float | None:
        """When the occurrence containing ``t`` closes (``inf`` for the whole day); None when outside."""
        around = self._around(t, tz)
        return None if around is None else around[1]

    def __str__(self) -> str:
        end = "24:00" if self.whole_day else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


@functools.lru_cache(maxsize=256)
def _occurrence(w: Window, day: date, tz: ZoneInfo) -> tuple[float, float]:
    end_day = day + timedelta(days=1) if w.start >= w.end else day
    opens = local_instant(datetime.combine(day, w.start), tz)
    closes = local_instant(datetime.combine(end_day, w.end), tz)
    return opens, closes


_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> Window:
    """``"22:00-07:00"`` → :class:`Window`; ``"00:00-24:00"`` is the whole day.

    Raises :class:`ValueError` saying what is wrong.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a time window 'HH:MM-HH:MM' such as '22:00-07:00', found {text!r}")
    m = _WINDOW_RE.match(text)
    if not m:
        raise ValueError(f"expected a time window 'HH:MM-HH:MM' such as '22:00-07:00', found {text!r}")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if sh > 23 or sm > 59:
        raise ValueError(f"window {text!r}: start {sh:02d}:{sm:02d} is not a time of day (00:00 to 23:59)")
    if (eh, em) == (24, 0):  # midnight at the end of the day: 00:00-24:00 is the whole day
        return Window(time(sh, sm), time(0, 0))
    if eh > 23 or em > 59:
        raise ValueError(f"window {text!r}: end {eh:02d}:{em:02d} is not a time of day (00:00 to 23:59, or 24:00)")
    if (sh, sm) == (eh, em):
        raise ValueError(
            f"window {text!r}: start and end are both {sh:02d}:{sm:02d}, an empty window; "
            "write '00:00-24:00' for the whole day"
        )
    return Window(time(sh, sm), time(eh, em))
