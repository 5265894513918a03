"""python -m bench's serial RSS rows: the burst's peak and what it leaves, within 5 % of the idle hub before it."""

from __future__ import annotations

from bench.adapters import _serial_rss


def burst(idle: float, peak: float, after: float) -> dict[str, float]:
    return {"hub_rss_idle_mb": idle, "hub_rss_peak_mb": peak, "hub_rss_after_mb": after}


def test_the_run_that_grew_most_is_the_figure() -> None:
    peak, after = _serial_rss(100_000, [burst(50, 51, 50.5), burst(50, 52, 50.2), burst(52, 52.5, 52)])
    assert peak.name == "serial burst RSS peak during 100k events"
    assert (peak.value, peak.baseline_value, peak.ok) == (52, 50, True)  # 1.04x
    assert (after.value, after.baseline_value, after.ok) == (50.5, 50, True)
    assert "1.020x, 1.040x, 1.010x" in (peak.note or "")


def test_one_burst_past_5_percent_misses_though_the_others_are_flat() -> None:
    peak, after = _serial_rss(10_000, [burst(50, 50.5, 50), burst(50, 53, 52.6), burst(50, 50.4, 50)])
    assert peak.ok is False and after.ok is False  # 1.06x and 1.052x
    assert after.ratio is not None and round(after.ratio, 3) == 1.052


def test_a_burst_without_readings_misses() -> None:
    (peak, _after) = _serial_rss(10_000, [burst(50, 50.5, 50), {"hub_rss_idle_mb": 50}])
    assert peak.ok is False
