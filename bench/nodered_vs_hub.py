"""The hub against Node-RED doing the same serial job, in the same run, on the same frames and broker.

A benchmark, not a test. Run from the repository root::

    python -m bench.nodered_vs_hub [--quick] [--big] [--loss-window S] [--repeat N] [--json-only]
    python -m bench.nodered_vs_hub --setup      # npm ci in bench/peers/nodered (also done when missing)

Node-RED 4.x is wired as a municipality's integrator would wire it (bench/peers/nodered/flow.json):
serial in on the emulator's pty, a function node checking the NMEA checksum, keeping the hub's battery
hysteresis and building the hub's ``device.battery_low`` JSON (seq from a flow counter), mqtt out at
QoS 1. The hub is the real daemon with one ``bed_mat``, configured as bench/serial_throughput.py does.
Both get the same ``$BED`` frames (``drivers.serial.bedmat.encode``) written into a pty master, and
publish to one private Mosquitto (persistence on, saved only at its stop; no queue limit), where one
subscriber with a session that survives the broker's restart counts what arrives.

For each size (events; two frames each) and repeat, each side is started afresh, warmed up, and sent the
burst as fast as the pty takes it (the order of the sides alternates between repeats):
throughput = unique events received / (first frame written -> last received), CPU of its process per
event (/proc), RSS idle after the warm-up and at the end of the burst (and one second later). The hub's
PUBACK count (cmd/status) is checked against the burst. Then, on the last processes, frame pairs go at
``--rate`` events/s while the broker is stopped for ``--loss-window`` s and started again: the events made
before, during and after the stop against those received once everything settled.

Goals (issue 15): hub throughput >= 2x Node-RED at every size; the hub loses nothing over the stop. CPU,
RSS and Node-RED's loss are reported beside the hub's, without a goal. Figures are medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from bench.common import log, raise_interrupt  # noqa: E402
from bench.peers.nodered import measure, runner  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bench.peers.nodered.sides import HubSide, Inbox, NodeRedSide, Side  # noqa: E402
from hil.harness.mosquitto import Mosquitto  # noqa: E402

TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Options:
    """What one run does; :func:`options` gives the quick and the full ones."""

    sizes: tuple[int, ...]
    repeat: int
    warmup: int = 50
    loss_window_s: float = 10.0
    rate: float = 100.0
    pre_s: float = 2.0
    post_s: float = 3.0
    settle_s: float = 5.0
    timeout: float = 30.0
    max_inflight: int = 50
    quiet: bool = True


def options(quick: bool, *, big: bool = False, **overrides: Any) -> Options:
    """Quick: about 2,000 events and a 3 s broker stop. Full: 10,000 and 50,000 (and 100,000 with ``big``), 5 repeats
    (one burst of either side moves by a third from run to run on two shared cores: the median of five holds)."""
    if quick:
        base = Options(sizes=(2_000,), repeat=1, warmup=20, loss_window_s=3.0, pre_s=1.0, post_s=2.0, settle_s=2.0)
    else:
        base = Options(sizes=(10_000, 50_000, 100_000) if big else (10_000, 50_000), repeat=5)
    fields = {k: v for k, v in overrides.items() if v is not None}
    return Options(**{**base.__dict__, **fields})


def node_red_version() -> str:
    try:
        return "Node-RED " + json.loads((runner.NODE_MODULES / "node-red" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "Node-RED"


def measure_all(opts: Options) -> dict[str, Any]:
    """Both sides at every size and repeat, then the broker stop; the raw results."""
    took = runner.ensure_installed(quiet=opts.quiet)
    if took:
        log(f"npm ci in {runner.HERE}: {took:.1f} s", quiet=opts.quiet)
    tmp = tempfile.TemporaryDirectory(prefix="carehub-bench-nr-")
    work = Path(tmp.name)
    broker = Mosquitto(
        workdir=work / "broker", persistence=True, extra_config=["max_queued_messages 0", "autosave_interval 0"]
    )
    bursts: dict[str, dict[int, list[dict[str, Any]]]] = {"hub": {}, "Node-RED": {}}
    starts: dict[str, list[float]] = {"hub": [], "Node-RED": []}
    loss: dict[str, dict[str, Any]] = {}
    sides: list[Side] = []
    inbox: Inbox | None = None
    try:
        broker.start()
        inbox = Inbox(broker.port)
        log(f"mosquitto on port {broker.port}; {node_red_version()}; sizes {opts.sizes} x {opts.repeat}", quiet=opts.quiet)
        for r in range(opts.repeat):
            kinds: list[type[Side]] = [HubSide, NodeRedSide] if r % 2 == 0 else [NodeRedSide, HubSide]
            for size in opts.sizes:
                last = r == opts.repeat - 1 and size == opts.sizes[-1]
                for kind in kinds:
                    side = make_side(kind, work / f"{kind.__name__}-{size}-{r}", broker.port, opts)
                    sides.append(side)
                    side.start()
                    connects = side.connects()
                    if connects:
                        starts[side.name].append(connects[0] - side.started_at)
                    measure.warm_up(side, inbox, opts.warmup, opts.timeout)
                    res = measure.burst(side, inbox, size, broker_pid=broker.pid, timeout=opts.timeout)
                    res["problems"] = side.problems()[-5:]
                    bursts[side.name].setdefault(size, []).append(res)
                    log(f"  {side.name:8} {size:>7} events: {res['per_s']:>8.0f}/s, {res['cpu_us_per_event']} µs CPU "
                        f"per event, RSS {res['rss_before_mb']} -> {res['rss_after_mb']} MB, "
                        f"{res['received']} received{'' if res['complete'] else ' (INCOMPLETE)'}", quiet=opts.quiet)
                    if last:
                        log(f"  {side.name}: {opts.rate:g} events/s, broker stopped for {opts.loss_window_s:g} s",
                            quiet=opts.quiet)
                        loss[side.name] = measure.outage(
                            side, inbox, broker, rate=opts.rate, pre_s=opts.pre_s, window_s=opts.loss_window_s,
                            post_s=opts.post_s, settle_s=opts.settle_s, timeout=opts.timeout,
                        )
                        log(f"    made {loss[side.name]['made']}, received {loss[side.name]['received']}",
                            quiet=opts.quiet)
                    sides.remove(side)
                    side.close()
    finally:
        for side in sides:
            try:
                side.close()
            except Exception as exc:  # noqa: BLE001 - cleanup goes on
                log(f"stopping {side.name}: {exc}", quiet=False)
        if inbox is not None:
            inbox.close()
        broker.stop()
        tmp.cleanup()
    return {"bursts": bursts, "start_to_connect_s": starts, "loss": loss}


def make_side(kind: type[Side], workdir: Path, port: int, opts: Options) -> Side:
    """A new side (not started) working in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind is HubSide:
        return HubSide(workdir, port, max_inflight=opts.max_inflight)
    return kind(workdir, port)


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def figures(raw: dict[str, Any], opts: Options) -> list[Figure]:
    """The figures for the table, from :func:`measure_all`'s results."""
    nr = node_red_version()
    out: list[Figure] = []
    hub_b, nr_b = raw["bursts"]["hub"], raw["bursts"]["Node-RED"]
    for size in opts.sizes:
        h, n = hub_b.get(size, []), nr_b.get(size, [])
        if not h or not n:
            continue
        hv, nv = _median(h, "per_s") or 0.0, _median(n, "per_s") or 0.0
        ratio = _ratio(hv, nv)
        complete = all(r["complete"] for r in h)
        acked = [r["acked"] for r in h]
        same = measure.shape(h[0]["sample"]) == measure.shape(n[0]["sample"])
        out.append(Figure(
            name=f"serial throughput, {size:,} events, vs Node-RED", value=hv, unit="events/s", baseline=nr,
            baseline_value=nv, ratio=ratio, goal=f"ratio >= {TARGET_RATIO:g}",
            ok=ratio is not None and ratio >= TARGET_RATIO and complete,
            note=f"median of {len(h)}; hub PUBACKs {acked}, complete {complete}; "
                 f"Node-RED received {[r['received'] for r in n]} of {size}; same event shape: {same}",
        ))
        hc, nc = _median(h, "cpu_us_per_event"), _median(n, "cpu_us_per_event")
        if hc is not None:
            out.append(Figure(
                name=f"CPU per event, {size:,} events", value=hc, unit="µs", baseline=nr, baseline_value=nc,
                ratio=_ratio(hc, nc), goal=None, ok=None, note="the process's utime+stime over the burst, /proc (10 ms ticks)",
            ))
        ha, na = _median(h, "rss_after_mb"), _median(n, "rss_after_mb")
        if ha is not None:
            out.append(Figure(
                name=f"RSS after {size:,} events", value=ha, unit="MB", baseline=nr, baseline_value=na,
                ratio=_ratio(ha, na), goal=None, ok=None,
                note=f"idle before: hub {_median(h, 'rss_before_mb')}, Node-RED {_median(n, 'rss_before_mb')} MB; "
                     f"1 s later: hub {_median(h, 'rss_after_1s_mb')}, Node-RED {_median(n, 'rss_after_1s_mb')} MB",
            ))
    hl, nl = raw["loss"].get("hub"), raw["loss"].get("Node-RED")
    if hl and nl:
        w = f"{opts.loss_window_s:g} s"
        # a subscriber that came back without its session missed what was queued for it: no verdict then
        void = hl["subscriber_session_lost"] or nl["subscriber_session_lost"]
        out.append(Figure(
            name=f"events lost, broker stopped {w}: hub", value=hl["lost_total"], unit="events", baseline=nr,
            baseline_value=nl["lost_total"], ratio=_ratio(hl["lost_total"], nl["lost_total"]), goal="0 lost",
            ok=None if void else hl["lost_total"] == 0 and hl["made_total"] > 0,
            note=_loss_note(hl) + f"; PUBACKed {hl['acked']}",
        ))
        out.append(Figure(
            name=f"events lost, broker stopped {w}: Node-RED", value=nl["lost_total"], unit="events",
            baseline="hub", baseline_value=hl["lost_total"], ratio=_ratio(nl["lost_total"], hl["lost_total"]),
            goal=None, ok=None, note=_loss_note(nl),
        ))
    return out


def _loss_note(r: dict[str, Any]) -> str:
    made, got = r["made"], r["received"]
    note = (f"{r['rate_per_s']:g}/s; made before/during/after the stop {made['before']}/{made['during']}/"
            f"{made['after']}, received {got['before']}/{got['during']}/{got['after']}; "
            f"reconnected {r['reconnect_s']} s after the broker's return; seqs missing {r['missing_seqs'][:3] or 'none'}")
    if r["subscriber_session_lost"]:
        note += "; VOID: the subscriber came back without its session"
    return note


def run(quick: bool) -> list[Figure]:
    """The bench runner's entry: quick (~2,000 events, a 3 s stop) or full (10k and 50k events, a 10 s stop)."""
    opts = options(quick)
    return figures(measure_all(opts), opts)


def table(figs: Sequence[Figure]) -> str:
    """The figures as a text table."""
    rows = [("figure", "value", "baseline", "ratio", "goal", "")]
    for f in figs:
        rows.append((
            f.name, f"{f.value:,.1f} {f.unit}",
            f"{f.baseline_value:,.1f} ({f.baseline})" if f.baseline_value is not None else "-",
            f"{f.ratio:.2f}" if f.ratio is not None else "-", f.goal or "-",
            {True: "pass", False: "MISS", None: ""}[f.ok],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.name}: {f.note}" for f in figs if f.note]
    return "\n".join(lines + ["notes:"] + notes)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.nodered_vs_hub", description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", action="store_true", help="npm ci in bench/peers/nodered, then exit")
    ap.add_argument("--quick", action="store_true", help="about 2,000 events, a 3 s broker stop, once")
    ap.add_argument("--big", action="store_true", help="100,000 events too (full run only)")
    ap.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), help="events per burst, e.g. 10000,50000")
    ap.add_argument("--repeat", type=int, help="bursts per size and side (median; default 5, quick 1)")
    ap.add_argument("--loss-window", type=float, dest="loss_window_s", help="seconds the broker is stopped (10; quick 3)")
    ap.add_argument("--rate", type=float, help="events/s during the broker stop run (default 100)")
    ap.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    args = ap.parse_args(argv)
    if args.setup:
        why = runner.missing()
        if why:
            print(why, file=sys.stderr)
            return 2
        took = runner.ensure_installed(force=True)
        print(f"npm ci in {runner.HERE}: {took:.1f} s; {node_red_version()}")
        return 0
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opts = options(args.quick, big=args.big, sizes=args.sizes, repeat=args.repeat, loss_window_s=args.loss_window_s,
                   rate=args.rate, quiet=args.json_only)
    t0 = time.monotonic()
    try:
        raw = measure_all(opts)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    figs = figures(raw, opts)
    if not args.json_only:
        print(table(figs))
    result = {
        "bench": "nodered_vs_hub",
        "options": opts.__dict__,
        "figures": [msgspec.to_builtins(f) for f in figs],
        "raw": raw,
        "pass": all(f.ok is not False for f in figs),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
