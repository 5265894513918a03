"""The fleet measurements: one fleet against its one-hub baseline, and the search for the largest fleet.

:func:`measure` runs, on one broker and one central, first a single hub pressing alarms on its
own (the baseline: what the central answers with nothing else to do), then the fleet of ``n``
hubs; :func:`find_max` measures fleets of growing size, each on a fresh broker and central,
until one misses (alarm p99 end to end at 1 s or more, or any loss); :func:`run` is what the
bench runner calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec

from bench.figures import Figure
from bench.fleet.results import figures, max_figure, summarize
from bench.fleet.session import Session
from bench.fleet.spec import Profile

#: The baseline hub: the fleet's profile, but four buttons pressed about four times a second (when one
#: is free: no alarm waiting, none acked in the last ``repress_gap_s``), and no outage.
SOLO = {"alarm_s": 0.25, "buttons": 4, "outage_fraction": 0.0}


def measure(n: int, *, processes: int = 2, seconds: float = 30.0, profile: Profile | None = None,
            baseline_s: float = 10.0, keep: bool = False, quiet: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The fleet's summary and the baseline's (None when ``baseline_s`` is 0)."""
    profile = profile or Profile()
    with Session(keep=keep, quiet=quiet) as session:
        solo = None
        if baseline_s > 0:
            solo = summarize(session.phase("solo", 1, processes=1, seconds=baseline_s,
                                           profile=msgspec.structs.replace(profile, **SOLO)))
        fleet = summarize(session.phase("fleet", n, processes=processes, seconds=seconds, profile=profile))
    return fleet, solo


def find_max(start: int, *, processes: int = 2, seconds: float = 30.0, profile: Profile | None = None,
             max_hubs: int = 20000, refine: int = 2, quiet: bool = False, first: dict[str, Any] | None = None,
             on_step: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Fleets of ``start``, twice that, ... until one misses (or ``max_hubs``); then ``refine`` halvings
    of the interval between the last pass and the first miss. Each step's summary, in order. ``first``:
    a fleet of ``start`` hubs measured already (the same seconds), taken as the first step."""
    steps: list[dict[str, Any]] = []

    def step(n: int) -> bool:
        if first is not None and n == first["hubs"] and not steps:
            fleet = first
        else:
            try:
                fleet, _ = measure(n, processes=processes, seconds=seconds, profile=profile, baseline_s=0,
                                   quiet=quiet)
            except RuntimeError as exc:  # a worker could not connect its hubs, or fell silent: a miss at this size
                print(f"fleet {n}: {exc}", file=sys.stderr)
                fleet = {"hubs": n, "ok": False, "loss": None, "e2e_ms": {"p99": None}, "error": str(exc)[:500]}
        steps.append(fleet)
        if on_step is not None:
            on_step(fleet)
        return bool(fleet["ok"])

    good, bad, n = 0, None, start
    while n <= max_hubs:
        if not step(n):
            bad = n
            break
        good, n = n, n * 2
    for _ in range(refine if bad is not None else 0):
        mid = (good + bad) // 2  # type: ignore[operator]
        if mid <= good or bad - mid < max(5, good // 20):  # type: ignore[operator]
            break
        if step(mid):
            good = mid
        else:
            bad = mid
    return steps


def run(quick: bool) -> list[Figure]:
    """For ``python -m bench``: quick, 50 hubs for 15 s; else 250 hubs for 30 s, then the largest fleet
    (250, 500, 1000 ... hubs, 30 s each)."""
    if quick:
        fleet, solo = measure(50, seconds=15, baseline_s=6, quiet=True)
        return figures(fleet, solo)
    fleet, solo = measure(250, seconds=30, baseline_s=10, quiet=True)
    return [*figures(fleet, solo), max_figure(find_max(250, seconds=30, quiet=True, first=fleet))]
