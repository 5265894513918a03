"""The figure every benchmark hands ``python -m bench``, and the one table they make together.

A benchmark module offers ``def run(quick: bool) -> list[Figure]`` (it may
spawn subprocesses). Each :class:`Figure` is one measured value beside its
baseline measured in the same run, the ratio between the two and the goal it
is judged by; a miss is reported as a miss (``ok = False``), never hidden.
A benchmark that also has raw samples (latencies) may add :class:`Samples`
to the list it returns: the runner draws them as distributions in the chart
and keeps them in the JSON; they are not rows of the table.

Helpers: :func:`ratio` (value / baseline, None when either is missing or the
baseline is zero), :func:`failed` (the row of a benchmark that did not run),
:func:`absent` (the row of a benchmark whose module is not there yet),
:func:`render_table` (the table with ``rich``) and :func:`verdict`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
from rich.console import Console
from rich.table import Table


class Figure(msgspec.Struct, kw_only=True):
    """One row of the table: a measured value beside its baseline from the same run."""

    name: str  # "serial throughput, 10k events"
    value: float
    unit: str  # "events/s", "ms", "MB", "% of a core"
    baseline: str | None  # "raw paho QoS 1" / "Node-RED 4.x" / "import-only process"
    baseline_value: float | None
    ratio: float | None  # value / baseline_value
    goal: str | None  # "ratio >= 2", "p99 < 1000 ms"
    ok: bool | None  # None when the figure has no goal
    note: str | None = None


class Samples(msgspec.Struct, kw_only=True):
    """Raw samples behind a figure (e.g. each alarm's latency), for the chart and the JSON; not a table row."""

    name: str  # "alarm latency, idle"
    unit: str  # "ms"
    values: list[float]
    baseline: str | None = None  # what the baseline_values are: "raw paho QoS 1"
    baseline_values: list[float] | None = None


def ratio(value: float | None, baseline_value: float | None) -> float | None:
    """``value / baseline_value``; None when either is missing, not finite, or the baseline is zero."""
    if value is None or baseline_value is None:
        return None
    if not (math.isfinite(value) and math.isfinite(baseline_value)) or baseline_value == 0:
        return None
    return value / baseline_value


def failed(name: str, error: str) -> Figure:
    """The row of a benchmark (or one of its figures) that failed to run: no value, ``ok = False``."""
    return Figure(
        name=name,
        value=math.nan,
        unit="",
        baseline=None,
        baseline_value=None,
        ratio=None,
        goal="runs",
        ok=False,
        note=f"FAILED: {error}",
    )


def absent(name: str, module: str) -> Figure:
    """The row of a registered benchmark whose module is not in the tree yet: no value, no verdict."""
    return Figure(
        name=name,
        value=math.nan,
        unit="",
        baseline=None,
        baseline_value=None,
        ratio=None,
        goal=None,
        ok=None,
        note=f"ABSENT: module {module} is not present yet",
    )


def is_failed(fig: Figure) -> bool:
    """True for the row of a benchmark that failed to run (:func:`failed`)."""
    return bool(fig.note and fig.note.startswith("FAILED"))


def is_absent(fig: Figure) -> bool:
    """True for the row of a benchmark whose module is missing (:func:`absent`)."""
    return bool(fig.note and fig.note.startswith("ABSENT"))


def verdict(fig: Figure) -> str:
    """``pass``, ``MISS``, ``FAILED`` (did not run), ``absent`` (no module yet) or ``-`` (no goal)."""
    if is_failed(fig):
        return "FAILED"
    if is_absent(fig):
        return "absent"
    if fig.ok is None:
        return "-"
    return "pass" if fig.ok else "MISS"


def fmt_num(x: float | None) -> str:
    """A figure's number as a person reads it: thousands separated, three significant digits below 100."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    ax = abs(x)
    if ax >= 1000 or (x == int(x) and ax < 1e15):
        return f"{x:,.0f}"
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    return f"{x:.3g}"


def _style(v: str) -> str:
    return {"pass": "green", "MISS": "bold red", "FAILED": "bold magenta"}.get(v, "dim")


def table(figures: Sequence[Figure], title: str = "carehub benchmarks") -> Table:
    """The rich table: figure, value, baseline (what and how much), ratio, goal, result, note."""
    t = Table(title=title, show_lines=False, header_style="bold")
    t.add_column("figure", overflow="fold")
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("baseline (same run)", overflow="fold")
    t.add_column("ratio", justify="right", no_wrap=True)
    t.add_column("goal", overflow="fold")
    t.add_column("result", no_wrap=True)
    t.add_column("note", overflow="fold")
    for f in figures:
        value = f"{fmt_num(f.value)} {f.unit}".strip()
        if f.baseline is None:
            base = "-"
        else:
            base = f"{f.baseline}: {fmt_num(f.baseline_value)} {f.unit}".strip()
        r = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        v = verdict(f)
        t.add_row(f.name, value, base, r, f.goal or "-", f"[{_style(v)}]{v}[/]", f.note or "")
    return t


def render_table(
    figures: Sequence[Figure], *, title: str = "carehub benchmarks", width: int | None = 170, color: bool | None = None
) -> str:
    """The table as text (ANSI colours only when ``color``; by default when stdout is a terminal)."""
    console = Console(width=width, record=True, force_terminal=color, no_color=color is False, soft_wrap=False)
    with console.capture() as cap:
        console.print(table(figures, title=title))
    return cap.get()
