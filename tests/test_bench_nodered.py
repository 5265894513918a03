"""bench/nodered_vs_hub.py at its quick size: Node-RED and the hub both turn the pty frames into events.

Only that the bench runs end to end is checked here (both sides delivered the burst, the same event
shape, the loss figures exist); its speed, memory and loss figures are the benchmark's to judge, never
a test's. Skipped, with the reason, where node or npm is missing; ``npm ci`` runs first when
bench/peers/nodered/node_modules is missing (about 40 s more, once).
"""

from __future__ import annotations

import pytest

from bench import nodered_vs_hub as bench
from bench.peers.nodered import measure, runner

WHY_NOT = runner.missing()

@pytest.mark.slow
@pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
def test_quick_run_both_sides_deliver_and_the_loss_figures_exist() -> None:
    opts = bench.options(True)
    raw = bench.measure_all(opts)
    figs = bench.figures(raw, opts)

    (size,) = opts.sizes
    for side in ("hub", "Node-RED"):
        (burst,) = raw["bursts"][side][size]
        assert burst["received"] == size, (side, burst)
        assert burst["duplicates"] == 0, (side, burst)
        assert burst["sample"]["type"] == "device.battery_low"
        loss = raw["loss"][side]
        assert loss["made"]["during"] > 0, (side, loss)
        assert loss["subscriber_session_lost"] == 0, (side, loss)
    hub_ev, nr_ev = raw["bursts"]["hub"][size][0]["sample"], raw["bursts"]["Node-RED"][size][0]["sample"]
    assert measure.shape(hub_ev) == measure.shape(nr_ev)
    assert raw["bursts"]["hub"][size][0]["acked"] == size  # the hub's PUBACK count agrees

    by_name = {f.name: f for f in figs}
    throughput = by_name[f"serial throughput, {size:,} events, vs Node-RED"]
    assert throughput.value > 0 and throughput.baseline_value and throughput.ratio is not None
    assert throughput.goal == "ratio >= 2" and throughput.ok is not None
    hub_loss = by_name[f"events lost, broker stopped {opts.loss_window_s:g} s: hub"]
    nr_loss = by_name[f"events lost, broker stopped {opts.loss_window_s:g} s: Node-RED"]
    assert hub_loss.goal == "0 lost" and hub_loss.ok is not None
    assert nr_loss.baseline == "hub" and nr_loss.baseline_value == hub_loss.value
    assert hub_loss.baseline_value == nr_loss.value


def test_missing_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.shutil, "which", lambda name: None if name == "npm" else f"/usr/bin/{name}")
    assert runner.missing() == "node-red needs node and npm on PATH (node: /usr/bin/node, npm: missing)"
