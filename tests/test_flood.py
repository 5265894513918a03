"""The per-device telemetry limit: a device gone mad is cut to its rate, told once, and counted."""

from __future__ import annotations

from pathlib import Path

from hub.flood import FloodGuard
from hil.harness.hubproc import hub_config


def test_a_device_over_its_rate_is_cut_told_once_and_counted() -> None:
    guard = FloodGuard(rate=10.0, burst=5.0, calm_s=2.0)
    t = 100.0
    admitted = told = 0
    for i in range(100):  # 100 events in one second
        ok, flooding = guard.admit("mat", t + i * 0.01)
        admitted += ok
        if flooding is not None:
            told += 1
            assert flooding["state"] == "started" and flooding["limit_per_s"] == 10.0
    assert 5 <= admitted <= 5 + 10 + 1, admitted  # the burst, then the rate
    assert told == 1
    assert guard.status("mat") == {"flooding": True, "dropped": 100 - admitted}
    assert guard.admit("other", t)[0], "one device's flood does not limit another"
    assert guard.tick(t + 1.5) == []  # not calm for long enough yet
    (ended,) = guard.tick(t + 4.0)
    assert ended[0] == "mat" and ended[1]["state"] == "ended" and ended[1]["dropped"] == 100 - admitted
    assert guard.status("mat")["flooding"] is False


def test_the_limit_comes_from_the_config(tmp_path: Path) -> None:
    from hub.config import load
    from hub.daemon import Hub

    path = hub_config(tmp_path, port=1883, extra="[limits]\ntelemetry_per_s = 500\ntelemetry_burst = 50\n")
    hub = Hub(load(path))
    assert (hub.emitter.flood.rate, hub.emitter.flood.burst) == (500.0, 50.0)
    default = Hub(load(hub_config(tmp_path / "d", port=1883)))
    assert (default.emitter.flood.rate, default.emitter.flood.burst) == (20.0, 200.0)
