"""Telling a wall-clock step from time passing.

A Raspberry Pi has no real-time clock: it boots with the time it saved at
shutdown (fake-hwclock), and NTP sets the clock right once the network is up,
often hours later after a power cut. Without care every rule would take that
step for elapsed time: every device silent for hours (a ``device.offline``
for each), a bed exit a minute ago "not returned for 20 minutes".

:class:`ClockWatch` compares how far the wall clock moved with how far
``CLOCK_MONOTONIC`` moved since it last looked; a difference beyond its
threshold is a step (NTP's gentle slewing stays far below it). The daemon
shifts the rules' instants by the step (:meth:`hub.rules.Rules.clock_stepped`),
so their durations stay real elapsed seconds while their windows ("the night
is 22:00-07:00") follow the corrected local time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A wall-clock move this much beyond the monotonic clock's is a step, not drift.
STEP_THRESHOLD_S = 2.0


class ClockWatch:
    """Reports by how much the wall clock was set since the last look."""

    def __init__(
        self,
        *,
        threshold_s: float = STEP_THRESHOLD_S,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold_s = threshold_s
        self._wall, self._mono = wall, mono
        self._last_wall, self._last_mono = wall(), mono()

    def read(self) -> tuple[float, float]:
        """The wall-clock time now, and the seconds it was set by since the last read (+ forward, - back) or 0.0."""
        wall, mono = self._wall(), self._mono()
        step = (wall - self._last_wall) - (mono - self._last_mono)
        self._last_wall, self._last_mono = wall, mono
        return wall, (step if abs(step) > self.threshold_s else 0.0)
