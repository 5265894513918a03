"""The reports of a run, all views of one :class:`hil.results.RunSet`.

* :func:`hil.report.record.write` / :func:`~hil.report.record.read`: the JSON record
  (everything: every step's timing, every sample, seeds, the flaky summary); it reads back.
* :func:`hil.report.junit.write`: JUnit XML for Jenkins and GitLab.
* :func:`hil.report.html.write`: one self-contained HTML page for the acceptance officer.

:func:`write` writes whichever of the three it is given a path for. The helpers
below (the overall verdict, the figure a summary shows, how numbers read) are
shared by the three so they never disagree.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

from hil.model import Limit
from hil.results import MeasurementResult, Outcome, RunSet, ScenarioResult

#: The word a report shows for each outcome (never the colour alone).
WORDS: dict[Outcome, str] = {
    Outcome.PASS: "PASS",
    Outcome.MARGINAL: "MARGINAL",
    Outcome.FAIL: "FAIL",
    Outcome.SKIP: "SKIPPED",
    Outcome.ERROR: "ERROR",
}

#: A terminal's colour and cursor codes, as a log tail may carry them.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: Worst first: the order in which a report looks for what decided an outcome.
SEVERITY: tuple[Outcome, ...] = (Outcome.ERROR, Outcome.FAIL, Outcome.MARGINAL, Outcome.PASS, Outcome.SKIP)


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (``\\x1b[31m``)."""
    return _ANSI.sub("", text)


def verdict(runset: RunSet) -> Outcome:
    """The whole run's verdict over every pass: FAIL when any scenario failed (the hub did not do
    what was required, whatever else happened), else ERROR when the rig broke in any (no verdict
    on those), else MARGINAL or PASS; skipped scenarios do not count, and SKIP when nothing ran."""
    ran = {s.outcome for run in runset.runs for s in run.scenarios} - {Outcome.SKIP}
    for o in (Outcome.FAIL, Outcome.ERROR, Outcome.MARGINAL, Outcome.PASS):
        if o in ran:
            return o
    return Outcome.SKIP


def counts(scenarios: list[ScenarioResult]) -> dict[Outcome, int]:
    """How many scenarios ended in each outcome (every outcome present, zero or not)."""
    out = dict.fromkeys(Outcome, 0)
    for s in scenarios:
        out[s.outcome] += 1
    return out


def scenario_names(runset: RunSet) -> list[str]:
    """Every scenario's name across the passes, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runset.runs:
        for s in run.scenarios:
            seen.setdefault(s.name, None)
    return list(seen)


def attempts(runset: RunSet, name: str) -> list[ScenarioResult | None]:
    """The scenario called ``name`` in each pass (None where a pass lacks it)."""
    return [next((s for s in run.scenarios if s.name == name), None) for run in runset.runs]


def representative(results: list[ScenarioResult | None]) -> tuple[int, ScenarioResult]:
    """The attempt a report details: the worst one (first of equals), with its pass index (0-based)."""
    ranked = [(SEVERITY.index(r.outcome), i, r) for i, r in enumerate(results) if r is not None]
    _, i, r = min(ranked, key=lambda t: (t[0], t[1]))
    return i, r


def key_measurement(s: ScenarioResult) -> MeasurementResult | None:
    """The figure that says most about a scenario: the worst measurement that has a limit, else the first."""
    limited = [m for m in s.measurements if m.limit is not None]
    if limited:
        return min(limited, key=lambda m: SEVERITY.index(m.outcome))
    return s.measurements[0] if s.measurements else None


def fmt_number(value: float | None, unit: str = "") -> str:
    """``8.25 ms``, ``12.3 ms``, ``450 ms``, ``12.50 s`` for long ms figures, ``7`` for counts; ``n/a`` for none."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "ms":
        if abs(value) >= 10_000:
            return f"{value / 1000:.2f} s"
        if float(value).is_integer() or abs(value) >= 100:
            return f"{value:.0f} ms"
        return f"{value:.{1 if abs(value) >= 10 else 2}f} ms"
    text = str(int(value)) if float(value).is_integer() else f"{value:.2f}"
    return text if unit in ("", "count") else f"{text} {unit}"


def fmt_limit(limit: Limit | None, unit: str = "") -> str:
    """A limit as a reader says it: ``≤ 50 ms``, ``≥ 3``, ``10 ms – 50 ms``; ``no limit`` when none."""
    if limit is None or (limit.min is None and limit.max is None):
        return "no limit"
    if limit.min is not None and limit.max is not None:
        return f"{fmt_number(limit.min, unit)} – {fmt_number(limit.max, unit)}"
    if limit.max is not None:
        return f"≤ {fmt_number(limit.max, unit)}"
    return f"≥ {fmt_number(limit.min, unit)}"


def describe(m: MeasurementResult) -> str:
    """One line for a measurement: ``press_to_event p99 = 12.3 ms (limit ≤ 50 ms): pass``."""
    text = f"{m.name} {m.stat} = {fmt_number(m.value, m.unit)} (limit {fmt_limit(m.limit, m.unit)}): {m.outcome.value}"
    return f"{text}; {m.detail}" if m.detail else text


def fmt_duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_time(unix: float) -> str:
    """A wall-clock instant in the machine's local time with its offset: ``2026-05-09 09:35:25+02:00``."""
    if not unix:
        return "unknown"
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).astimezone().isoformat(sep=" ", timespec="seconds")


def write(
    runset: RunSet, *, junit: str | Path | None = None, record: str | Path | None = None, html: str | Path | None = None
) -> None:
    """Write each report a path is given for."""
    from hil.report import html as html_report
    from hil.report import junit as junit_report
    from hil.report import record as record_report

    if record is not None:
        record_report.write(runset, record)
    if junit is not None:
        junit_report.write(runset, junit)
    if html is not None:
        html_report.write(runset, html)
