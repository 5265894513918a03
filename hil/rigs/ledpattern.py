"""Which pattern an LED (or buzzer) shows, from (time, level) samples of the pin that reads it back.

The hub's patterns are in :mod:`drivers.gpio.feedback`: ``FAST`` 0.1 s on / 0.1 s off,
``SLOW`` 0.5 s / 0.5 s, ``FAULT`` three pulses of 0.1 s on / 0.15 s off then 1 s dark,
``STEADY`` on, ``OFF`` off. :func:`classify` tells them apart by the lengths of the
runs between edges, with thresholds half-way between the patterns' own timings, so a
real Pi's scheduling jitter (tens of ms) does not move a run across a threshold:

* the last run lasting :data:`SETTLED_S` (longer than any dark gap of a blinking
  pattern): ``steady`` or ``off`` by its level;
* on-runs of about 0.5 s (off-runs too): ``slow_blink``;
* short pulses, three between two dark gaps over :data:`PAUSE_S`: ``fault``; without
  such a gap, and with no dark run as long as :data:`LONG_ON_S` (a pause the pattern's
  change cut short), seen over long enough to have met one: ``fast_blink``;
* two glows of about 0.9 s with a 0.3 s gap (the second one begun): ``checkin`` (played once,
  then dark: named while a window holds both glows);
* anything else (the pattern changed inside the window, too few edges): ``unsettled``;
  the caller samples on and asks again.

The first run is cut by the window's start and may belong to an earlier pattern; it is
not used. The runs are measured edge to edge, an edge being half-way between the two
samples that differ. A window of :data:`WINDOW_S` always holds enough to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from drivers.gpio.feedback import CHECKIN_GLOW, FAST, FAULT_ON_OFF, FAULT_PAUSE, FAULT_PULSES, SLOW

State = Literal["off", "steady", "fast_blink", "slow_blink", "fault", "checkin", "unsettled"]

#: An on-run at least this long is a slow blink's (between FAST's 0.1 s and SLOW's 0.5 s).
LONG_ON_S = (FAST[0] + SLOW[0]) / 2
#: The longest a slow blink's run may be (SLOW's 0.5 s with as much margin as LONG_ON_S leaves).
SLOW_MAX_S = SLOW[0] + (SLOW[0] - LONG_ON_S) * 1.5
#: A dark run at least this long is FAULT's pause (between its 0.15 s gaps and its 1.15 s pause).
PAUSE_S = (FAULT_ON_OFF[1] + FAULT_ON_OFF[1] + FAULT_PAUSE) / 2
#: A run this long is no blink's: the longest dark gap of any pattern (FAULT's pause) plus a margin.
SETTLED_S = FAULT_ON_OFF[1] + FAULT_PAUSE + 0.15
#: FAULT's period: three pulses, then the pause.
FAULT_PERIOD_S = FAULT_PULSES * sum(FAULT_ON_OFF) + FAULT_PAUSE
#: Short pulses seen for this long after the first edge without a pause are FAST, not FAULT.
FAST_EVIDENCE_S = FAULT_PERIOD_S + PAUSE_S
#: An on-run this long is CHECKIN's glow (0.9 s): longer than any blink's, shorter than a settled run.
CHECKIN_ON_S = (SLOW_MAX_S, (CHECKIN_GLOW[0] + SETTLED_S) / 2)
#: CHECKIN's gap between its glows (0.3 s): longer than FAULT's 0.15 s gaps, shorter than SLOW's 0.5 s.
CHECKIN_GAP_S = ((FAULT_ON_OFF[1] + CHECKIN_GLOW[1]) / 2, (CHECKIN_GLOW[1] + SLOW[1]) / 2)
#: A sampling window that always decides a settled pattern: FAULT's worst case is just under a pause's
#: worth of dark, a group, a whole pause, a group and PAUSE_S of the next pause (3.6 s), plus slack.
WINDOW_S = 4.0


def classify(samples: Sequence[tuple[float, int]]) -> State:
    """The pattern shown over ``samples``: ``(monotonic seconds, level)`` pairs in time order, level 1 = lit."""
    samples = list(samples)
    if len(samples) < 2:
        return "unsettled"
    edges: list[float] = []
    levels: list[int] = []
    prev_t, prev_level = samples[0][0], int(bool(samples[0][1]))
    for t, level in samples[1:]:
        lvl = int(bool(level))
        if lvl != prev_level:
            edges.append((prev_t + t) / 2)
            levels.append(lvl)
        prev_t, prev_level = t, lvl
    end = samples[-1][0]
    last_start = edges[-1] if edges else samples[0][0]
    if end - last_start >= SETTLED_S:
        return "steady" if prev_level else "off"
    if not edges:
        return "unsettled"
    # runs after the first edge: (level, length, complete)
    runs = [(levels[i], edges[i + 1] - edges[i], True) for i in range(len(edges) - 1)]
    runs.append((levels[-1], end - edges[-1], False))
    on = [d for lvl, d, done in runs if lvl and done]
    off = [d for lvl, d, done in runs if not lvl and done]
    last_level, last_len, _ = runs[-1]
    if not on:
        return "unsettled"
    if _checkin(runs):
        return "checkin"
    if all(d >= LONG_ON_S for d in on):
        slow = all(d <= SLOW_MAX_S for d in on) and all(LONG_ON_S <= d <= SLOW_MAX_S for d in off)
        return "slow_blink" if slow and off and last_len <= SLOW_MAX_S else "unsettled"
    if any(d >= LONG_ON_S for d in on) or (last_level and last_len >= LONG_ON_S):
        return "unsettled"  # short pulses and long ones: the pattern changed in the window
    # FAULT: a group of exactly three pulses between two pauses; every other group at most three.
    # The first run counts as a pause when it was dark long enough (off -> fault); a long dark
    # run after more pulses is a blink that stopped, not a pause.
    first_level = 1 - levels[0]
    first_len = edges[0] - samples[0][0]
    seq = [(first_level, first_len), *((lvl, d) for lvl, d, _ in runs)]
    groups: list[int] = []  # pulses between consecutive pauses
    pulses, pauses = 0, 0
    for lvl, d in seq:
        if lvl:
            pulses += 1
        elif d >= PAUSE_S:
            if pauses:
                groups.append(pulses)
            pulses, pauses = 0, pauses + 1
    if any(not lvl and d >= PAUSE_S for lvl, d, _ in runs):  # a pause after the first edge
        whole = bool(groups) and all(n == FAULT_PULSES for n in groups) and pulses <= FAULT_PULSES
        return "fault" if whole else "unsettled"
    if any(not lvl and d >= LONG_ON_S for lvl, d, _ in runs):
        return "unsettled"  # a dark run no fast blink has, yet no whole pause: FAULT's pause cut short by a change
    return "fast_blink" if end - edges[0] >= FAST_EVIDENCE_S else "unsettled"


def _checkin(runs: list[tuple[int, float, bool]]) -> bool:
    """CHECKIN's signature: a whole glow, its gap, and the second glow begun (a pattern that changed, such as
    a slow blink started again, can leave one long on-run, but never two with a short gap between)."""
    lo, hi = CHECKIN_ON_S
    for (l1, d1, c1), (l2, d2, c2), (l3, d3, c3) in zip(runs, runs[1:], runs[2:]):
        if l1 and c1 and lo < d1 <= hi and not l2 and c2 and CHECKIN_GAP_S[0] <= d2 <= CHECKIN_GAP_S[1] and l3:
            if (not c3 and d3 >= LONG_ON_S) or (c3 and lo < d3 <= hi):
                return True
    return False
