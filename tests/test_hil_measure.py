"""Measurements: samples from marks, nearest-rank percentiles, and pass / marginal / fail against limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.measure import evaluate, judge, percentile, samples, stat, unpaired
from hil.model import Limit, Measure
from hil.results import Outcome

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# --- samples -----------------------------------------------------------------------------------------


def test_samples_pair_the_ith_from_with_the_ith_to_in_ms() -> None:
    assert samples([10.0, 11.0, 12.0], [10.012, 11.030, 12.001]) == pytest.approx([12.0, 30.0, 1.0])


def test_unequal_lengths_pair_what_pairs_and_say_what_was_left() -> None:
    press, alarm = [1.0, 2.0, 3.0], [1.010, 2.020]
    assert samples(press, alarm) == pytest.approx([10.0, 20.0])
    assert unpaired(press, alarm, "press", "alarm") == (
        "3 'press' marks but 2 'alarm' marks: the first 2 paired, 1 left over")
    assert unpaired(press, press) == ""


def test_without_from_the_samples_are_the_to_marks_themselves() -> None:
    assert samples(None, [5.0, 5.5, 7.0]) == pytest.approx([0.0, 500.0, 2000.0])
    assert samples(None, []) == []
    assert stat(samples(None, [5.0, 5.5, 7.0]), "count") == 3


# --- statistics --------------------------------------------------------------------------------------


def test_nearest_rank_percentiles_on_a_known_set() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert [stat(values, s) for s in ("p50", "p90", "p99", "max", "min", "count")] == [50, 90, 99, 100, 1, 100]
    assert stat(values, "mean") == 50.5
    # nearest rank, not interpolation: p50 of four samples is the 2nd, p90 and p99 the 4th
    assert [stat([1.0, 2.0, 3.0, 40.0], s) for s in ("p50", "p90", "p99")] == [2.0, 40.0, 40.0]
    assert stat([7.0], "p99") == stat([7.0], "p50") == 7.0


def test_no_samples_give_no_value_but_a_count_of_zero() -> None:
    assert [stat([], s) for s in ("p50", "p90", "p99", "max", "min", "mean")] == [None] * 6
    assert stat([], "count") == 0


@given(st.lists(finite, min_size=1, max_size=300))
def test_percentiles_are_ordered_and_are_samples(values: list[float]) -> None:
    p50, p90, p99, hi, lo = (stat(values, s) for s in ("p50", "p90", "p99", "max", "min"))
    assert lo <= p50 <= p90 <= p99 <= hi  # type: ignore[operator]
    assert {p50, p90, p99} <= set(values)


@given(st.lists(finite, min_size=1, max_size=300), st.integers(min_value=1, max_value=100))
def test_a_percentile_is_the_smallest_sample_with_pct_percent_at_or_below_it(values: list[float], pct: int) -> None:
    p = percentile(values, pct)
    n = len(values)
    assert sum(v <= p for v in values) * 100 >= pct * n  # at least pct% at or below
    assert sum(v < p for v in values) * 100 < pct * n  # and it is the smallest such sample


# --- judge -----------------------------------------------------------------------------------------

MAX50 = Limit(max=50)  # marginal_pct 20: marginal above 40
MIN10 = Limit(min=10, marginal_pct=20)  # marginal below 12


@pytest.mark.parametrize(
    ("value", "limit", "outcome"),
    [
        (50.0, MAX50, Outcome.MARGINAL),  # exactly at the maximum: passes, as marginal
        (50.001, MAX50, Outcome.FAIL),
        (40.001, MAX50, Outcome.MARGINAL),
        (40.0, MAX50, Outcome.PASS),  # the margin's edge itself is not inside it
        (0.0, MAX50, Outcome.PASS),
        (10.0, MIN10, Outcome.MARGINAL),  # exactly at the minimum
        (9.999, MIN10, Outcome.FAIL),
        (11.999, MIN10, Outcome.MARGINAL),
        (12.0, MIN10, Outcome.PASS),
        (2.0, Limit(min=2, max=2, marginal_pct=0), Outcome.PASS),  # no margin: at the bound passes
        (3.0, Limit(min=2, max=2, marginal_pct=0), Outcome.FAIL),
        (0.0, Limit(max=0), Outcome.PASS),  # "none at all" (duplicates, gaps)
        (1.0, Limit(max=0), Outcome.FAIL),
    ],
)
def test_judge_boundaries(value: float, limit: Limit, outcome: Outcome) -> None:
    assert judge(value, limit)[0] is outcome


def test_judge_says_value_bound_and_margin_in_words() -> None:
    assert judge(62.1, MAX50, "ms") == (Outcome.FAIL, "62.1 ms is over the maximum of 50 ms by 12.1 ms (24.2%)")
    assert judge(45.0, MAX50, "ms") == (
        Outcome.MARGINAL, "45 ms is within the maximum of 50 ms but only 5 ms (10%) below it, "
                          "inside the 20% margin, so marginal")
    assert judge(12.34, MAX50, "ms") == (
        Outcome.PASS, "12.3 ms is within the limit (at most 50 ms): 37.7 ms (75.3%) below the maximum")
    assert judge(1.0, Limit(min=2), "count") == (Outcome.FAIL, "1 is under the minimum of 2 by 1 (50%)")
    assert judge(11.0, MIN10) == (
        Outcome.MARGINAL,
        "11 is within the minimum of 10 but only 1 (10%) above it, inside the 20% margin, so marginal")
    assert judge(30.0, Limit(min=10, max=50), "ms")[1] == (
        "30 ms is within the limit (10 to 50 ms): 20 ms (40%) below the maximum, 20 ms (200%) above the minimum")


def test_judge_without_a_limit_or_without_samples() -> None:
    assert judge(123.0, None) == (Outcome.PASS, "no limit for this rig")
    assert judge(None, None) == (Outcome.PASS, "no limit for this rig")
    assert judge(None, MAX50, "ms") == (Outcome.FAIL, "no samples: nothing to hold against the limit (at most 50 ms)")


# --- evaluate ----------------------------------------------------------------------------------------

LATENCY = Measure(name="press_to_central", from_="press", to="alarm", stat="max",
                  limits={"virtual": Limit(max=50), "physical": Limit(max=150)})


def test_evaluate_on_each_rig_kind() -> None:
    marks = {"press": [100.0, 101.0, 102.0], "alarm": [100.010, 101.045, 102.020]}
    virtual = evaluate(LATENCY, marks, "virtual")
    assert (virtual.name, virtual.stat, virtual.unit) == ("press_to_central", "max", "ms")
    assert virtual.samples == pytest.approx([10.0, 45.0, 20.0])
    assert virtual.value == pytest.approx(45.0)
    assert virtual.limit == Limit(max=50)
    assert virtual.outcome is Outcome.MARGINAL
    assert virtual.detail.startswith("max of 3 intervals 'press' → 'alarm': 45 ms is within the maximum of 50 ms")
    physical = evaluate(LATENCY, marks, "physical")
    assert physical.outcome is Outcome.PASS and physical.limit == Limit(max=150)


def test_evaluate_a_rig_kind_without_a_limit_records_the_figure() -> None:
    only_virtual = Measure(name="m", from_="press", to="alarm", limits={"virtual": Limit(max=50)})
    r = evaluate(only_virtual, {"press": [1.0], "alarm": [1.5]}, "physical")
    assert (r.outcome, r.value, r.limit) == (Outcome.PASS, pytest.approx(500.0), None)
    assert r.detail == "p99 of 1 interval 'press' → 'alarm': 500 ms, no limit for this rig"


def test_evaluate_with_missing_and_unpaired_marks() -> None:
    r = evaluate(LATENCY, {"press": [1.0, 2.0]}, "virtual")  # no alarm arrived at all
    assert (r.outcome, r.value, r.samples) == (Outcome.FAIL, None, [])
    assert r.detail == ("max of 0 intervals 'press' → 'alarm': no samples: nothing to hold against the limit "
                        "(at most 50 ms); 2 'press' marks but 0 'alarm' marks: the first 0 paired, 2 left over")
    r = evaluate(LATENCY, {"press": [1.0, 2.0], "alarm": [1.02]}, "virtual")
    assert r.outcome is Outcome.PASS
    assert r.detail.endswith("; 2 'press' marks but 1 'alarm' marks: the first 1 paired, 1 left over")


def test_evaluate_a_count() -> None:
    count = Measure(name="alarms", to="alarm", stat="count", unit="count",
                    limits={"virtual": Limit(min=5, max=5, marginal_pct=0)})
    ok = evaluate(count, {"alarm": [1.0, 1.1, 1.2, 1.3, 1.4]}, "virtual")
    assert (ok.outcome, ok.value) == (Outcome.PASS, 5)
    assert ok.detail == ("count of the 'alarm' marks: 5 is within the limit (5 to 5): "
                         "0 (0%) below the maximum, 0 (0%) above the minimum")
    lost = evaluate(count, {"alarm": [1.0, 1.1, 1.2, 1.3]}, "virtual")
    assert (lost.outcome, lost.detail) == (
        Outcome.FAIL, "count of the 'alarm' marks: 4 is under the minimum of 5 by 1 (20%)")
    none = evaluate(count, {}, "virtual")
    assert (none.outcome, none.value) == (Outcome.FAIL, 0)
