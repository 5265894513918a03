"""Measurements: samples from a run's marks, their statistic, and the verdict against the rig's limit.

A scenario declares its measurements before the run (:class:`hil.model.Measure`);
after it, :func:`evaluate` turns the marks the steps set (instants, CLOCK_MONOTONIC
seconds) into a :class:`hil.results.MeasurementResult`:

1. :func:`samples`: the intervals ``from`` → ``to`` in ms, the i-th ``from`` with the i-th ``to``;
   without ``from``, the ``to`` instants themselves (ms after the first), so that ``count`` counts them;
2. :func:`stat`: p50, p90, p99 (nearest rank), max, min, mean, count;
3. :func:`judge`: pass, marginal or fail against the limit for the rig's kind, with a sentence an
   acceptance officer reads ("62.1 ms is over the maximum of 50 ms by 12.1 ms").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from hil.model import Limit, Measure
from hil.results import MeasurementResult, Outcome

__all__ = ["PERCENTILES", "evaluate", "judge", "percentile", "samples", "stat", "unpaired"]

#: The percentile statistics and their rank.
PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}


def samples(from_marks: Sequence[float] | None, to_marks: Sequence[float]) -> list[float]:
    """The samples behind a measurement, in ms.

    With ``from_marks``: the interval from the i-th ``from`` to the i-th ``to``, for as many pairs as
    both have (:func:`unpaired` says what was left over). Without (``stat = "count"``): each ``to``
    instant in ms after the first, one sample per mark, so that their count is the measurement.
    """
    if from_marks is None:
        return [(t - to_marks[0]) * 1000.0 for t in to_marks]
    return [(t - f) * 1000.0 for f, t in zip(from_marks, to_marks)]


def unpaired(from_marks: Sequence[float] | None, to_marks: Sequence[float], from_name: str = "from",
             to_name: str = "to") -> str:
    """Empty when every mark found its pair; else what was left unpaired, in words."""
    if from_marks is None or len(from_marks) == len(to_marks):
        return ""
    n = min(len(from_marks), len(to_marks))
    return (f"{len(from_marks)} {from_name!r} marks but {len(to_marks)} {to_name!r} marks: "
            f"the first {n} paired, {abs(len(from_marks) - len(to_marks))} left over")


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The ``pct``-th percentile by the nearest-rank method: the smallest sample with at least ``pct``%
    of the samples at or below it (rank ⌈pct·n/100⌉ of the sorted samples). Always one of the samples,
    never an interpolation; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))  # ceil without floating point
    return ordered[rank - 1]


def stat(values: Sequence[float], name: str) -> float | None:
    """``name`` (p50, p90, p99, max, min, mean, count) of ``values``. None when there are no values,
    but ``count``, which is 0 then (a count of none is a figure, to compare with its limit)."""
    if name == "count":
        return float(len(values))
    if not values:
        return None
    if name in PERCENTILES:
        return percentile(values, PERCENTILES[name])
    if name == "max":
        return max(values)
    if name == "min":
        return min(values)
    if name == "mean":
        return statistics.fmean(values)
    raise ValueError(f"unknown statistic {name!r}")


def _num(x: float) -> str:
    """A figure as a report prints it: 50, 12.3, 0.42, 1234."""
    if math.isfinite(x) and x == int(x):
        return str(int(x))
    digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


def _with_unit(x: float, unit: str) -> str:
    return f"{_num(x)} {unit}" if unit and unit != "count" else _num(x)


def _share(gap: float, bound: float) -> str:
    return f" ({_num(abs(gap) / abs(bound) * 100)}%)" if bound else ""


def judge(value: float | None, limit: Limit | None, unit: str = "") -> tuple[Outcome, str]:
    """The outcome of ``value`` against ``limit``, and why, in words.

    * no limit (none declared for this rig's kind): PASS, "no limit for this rig";
    * no value (no samples) with a limit: FAIL;
    * above ``max`` or below ``min``: FAIL;
    * within ``marginal_pct`` of a bound: MARGINAL (a pass that says how close it came):
      ``value > max·(1 − pct/100)``, or ``value < min·(1 + pct/100)``; exactly at a bound is marginal;
    * else PASS.
    """
    if limit is None:
        return Outcome.PASS, "no limit for this rig"
    if value is None:
        return Outcome.FAIL, f"no samples: nothing to hold against the limit ({_bounds(limit, unit)})"
    v = _with_unit(value, unit)
    hi, lo, pct = limit.max, limit.min, limit.marginal_pct
    if hi is not None and value > hi:
        gap = value - hi
        return Outcome.FAIL, (f"{v} is over the maximum of {_with_unit(hi, unit)} "
                              f"by {_with_unit(gap, unit)}{_share(gap, hi)}")
    if lo is not None and value < lo:
        gap = lo - value
        return Outcome.FAIL, (f"{v} is under the minimum of {_with_unit(lo, unit)} "
                              f"by {_with_unit(gap, unit)}{_share(gap, lo)}")
    margin = f"inside the {_num(pct)}% margin, so marginal"
    if hi is not None and value > hi * (1 - pct / 100):
        gap = hi - value
        return Outcome.MARGINAL, (f"{v} is within the maximum of {_with_unit(hi, unit)} but only "
                                  f"{_with_unit(gap, unit)}{_share(gap, hi)} below it, {margin}")
    if lo is not None and value < lo * (1 + pct / 100):
        gap = value - lo
        return Outcome.MARGINAL, (f"{v} is within the minimum of {_with_unit(lo, unit)} but only "
                                  f"{_with_unit(gap, unit)}{_share(gap, lo)} above it, {margin}")
    spare = []
    if hi is not None:
        spare.append(f"{_with_unit(hi - value, unit)}{_share(hi - value, hi)} below the maximum")
    if lo is not None:
        spare.append(f"{_with_unit(value - lo, unit)}{_share(value - lo, lo)} above the minimum")
    return Outcome.PASS, f"{v} is within the limit ({_bounds(limit, unit)}): " + ", ".join(spare)


def _bounds(limit: Limit, unit: str) -> str:
    if limit.min is not None and limit.max is not None:
        return f"{_num(limit.min)} to {_with_unit(limit.max, unit)}"
    if limit.max is not None:
        return f"at most {_with_unit(limit.max, unit)}"
    if limit.min is not None:
        return f"at least {_with_unit(limit.min, unit)}"
    return "no bound"


def evaluate(measure: Measure, marks: dict[str, list[float]], rig_kind: str) -> MeasurementResult:
    """``measure`` computed from a run's ``marks`` (name → instants, s) and judged against the limit
    for ``rig_kind``. A mark no step reached counts as no instants."""
    to_marks = marks.get(measure.to, [])
    from_marks = marks.get(measure.from_, []) if measure.from_ is not None else None
    values = samples(from_marks, to_marks)
    value = stat(values, measure.stat)
    limit = measure.limits.get(rig_kind)  # type: ignore[call-overload]
    outcome, verdict = judge(value, limit, measure.unit)
    if limit is None and value is not None:
        verdict = f"{_with_unit(value, measure.unit)}, {verdict}"
    if measure.from_ is None:
        what = f"{measure.stat} of the {measure.to!r} marks"
    else:
        intervals = "interval" if len(values) == 1 else "intervals"
        what = f"{measure.stat} of {len(values)} {intervals} {measure.from_!r} → {measure.to!r}"
    left = unpaired(from_marks, to_marks, measure.from_ or "", measure.to)
    detail = f"{what}: {verdict}" + (f"; {left}" if left else "")
    return MeasurementResult(name=measure.name, stat=measure.stat, unit=measure.unit, value=value,
                             samples=values, limit=limit, outcome=outcome, detail=detail)
