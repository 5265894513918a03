"""``python -m bench --quick``: every registered benchmark runs, and the table, JSON and chart say what it measured.

This checks that the benchmarks work, not how fast anything is: no figure's
value, ratio or pass/miss is asserted (the goals live in bench/, judged on a
quiet machine). What must hold: the run exits 0 (every benchmark ran), every
registered benchmark is in the record (``absent`` only while its module is
not in the tree), every figure of a benchmark that ran has a value and a
baseline from the same run with its ratio (an absolute figure, such as the
fleet's loss, has a goal or a note instead), the printed table shows each of
them, and ``<date-time>.json`` and a PNG were written. The whole quick run
takes about 110 s on this 2-core machine (Node-RED and the fleet included).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import REGISTRY

REPO = Path(__file__).resolve().parents[1]

#: figures each benchmark must give (the quick sizes' names)
EXPECTED = {
    "alarm_latency": ["alarm latency p99, idle", "alarm latency p50, idle", "alarm latency p99 beside one fsync'd commit"],
    "alarm_load": ["alarm latency p99 under all load"],
    "serial_throughput": ["serial throughput, 1k events", "serial throughput, 5k events",
                          "serial throughput flat, 5k vs 1k events", "serial burst RSS peak during 1k events",
                          "serial burst RSS after 5k events"],
    "ble_storm": ["BLE storm, presses delivered"],
    "ble_decode": ["BLE decode rate, plain BTHome adverts", "BLE decode rate, plain, beside bthome-ble",
                   "BLE decode rate, encrypted adverts", "BLE decode agreement, plain (hub, bthome-ble, Theengs)",
                   "BLE decode agreement, encrypted (hub, bthome-ble)"],
    "startup": ["start to birth message (median)"],
    "drain": ["drain: alarms ahead of the 5k buffered events", "drain: last alarm after the link's return",
              "drain: total time, 5k events buffered"],
    "rss": ["RSS after start", "RSS in service", "RSS with 5k events buffered (link down)", "RSS peak while buffering 5k events",
            "RSS after draining 5k events", "RSS peak during a 5k-event burst, link up",
            "RSS after a 5k-event burst, link up", "RSS after a mixed load (6 minutes equivalent)"],
}


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_quick_run_gives_every_figure_with_its_baseline(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--table-width", "400"],
        cwd=REPO, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"

    records = list(tmp_path.glob("*.json"))
    assert len(records) == 1, records
    png = records[0].with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    doc = json.loads(records[0].read_text())
    assert doc["quick"] is True

    runs = {r["name"]: r for r in doc["runs"]}
    assert list(runs) == [e.name for e in REGISTRY]
    figures = {f["name"]: f for f in doc["figures"]}
    for entry in REGISTRY:
        run = runs[entry.name]
        if run["status"] == "absent":
            assert importlib.util.find_spec(entry.module) is None, f"{entry.module} is there but was not run"
            continue
        assert run["status"] == "ok", run
        assert run["figures"], entry.name
        for name in EXPECTED.get(entry.name, []):
            assert name in run["figures"], f"{entry.name}: no figure {name!r} in {run['figures']}"
        for name in run["figures"]:
            f = figures[name]
            assert _number(f["value"]), f
            if f["baseline"]:
                assert _number(f["baseline_value"]), f
                if f["baseline_value"] != 0:  # a ratio to nothing (Node-RED's loss beside the hub's 0) has none
                    assert _number(f["ratio"]), f
            else:  # an absolute figure (the fleet's loss, its event rate): judged by its goal, or explained
                assert f["goal"] or f["note"], f
            assert f["ok"] in (True, False, None), f
            assert name in proc.stdout, f"the table lacks {name!r}"
    assert "baseline (same run)" in proc.stdout and "ratio" in proc.stdout
