"""``python -m bench``: every benchmark, one table, a JSON record and a chart.

    python -m bench                 # every benchmark at full size (tens of minutes)
    python -m bench --quick         # each at a tiny size, same table (a few minutes)
    python -m bench --only ble_decode [--only startup]
    python -m bench --list

Benchmarks come from :data:`REGISTRY` (name, module, function); each function
takes ``quick`` and returns :class:`~bench.figures.Figure` rows (and maybe
:class:`~bench.figures.Samples`). A registered module that is not in the tree
yet gets an ``absent`` row; a benchmark that raises gets a ``FAILED`` row.
The table shows each figure beside its baseline from the same run, the
ratio, the goal and pass/MISS; ``bench/results/<date-time>.json`` and
``.png`` keep it (``--out DIR`` to put them elsewhere).

Exit status: 0 when every benchmark ran (misses are reported, not failures),
1 when one failed to run, 2 on a bad argument, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.figures import Figure, Samples, absent, failed, is_failed, render_table  # noqa: E402
from bench.report import RESULTS, write_chart, write_json  # noqa: E402


@dataclass(frozen=True)
class Entry:
    """One benchmark: ``--only`` name, the module, its ``run(quick)``-like function, what it measures."""

    name: str
    module: str
    func: str
    what: str


REGISTRY: tuple[Entry, ...] = (
    Entry("alarm_latency", "bench.adapters", "alarm_idle", "alarm p99/p50 vs raw paho at the same pace"),
    Entry("alarm_load", "bench.adapters", "alarm_load", "alarm p99 under serial/BLE/command load vs idle"),
    Entry("serial_throughput", "bench.adapters", "serial", "serial events/s vs raw paho, small vs large burst"),
    Entry("ble_storm", "bench.adapters", "ble_storm", "hub CPU under 2,000 adverts/s, presses delivered"),
    Entry("ble_decode", "bench.ble_decode", "run", "BTHome decode rate: hub vs TheengsDecoder and bthome-ble"),
    Entry("startup", "bench.startup", "run", "start to birth message vs a bare paho process"),
    Entry("drain", "bench.outage", "run_drain", "drain after an outage: alarms first, total time"),
    Entry("rss", "bench.outage", "run_rss", "RSS after start, buffered, after mixed load vs import-only"),
    Entry("nodered_vs_hub", "bench.nodered_vs_hub", "run", "the hub vs a Node-RED flow on the same frames"),
    Entry("fleet", "bench.fleet", "run", "N simulated hubs against one broker and the central: latency, loss, max N"),
)


def _missing_module(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``module`` itself (or a package above it) is what is missing, not one of its imports."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def load(entry: Entry) -> Callable[[bool], list[Figure | Samples]] | None:
    """The entry's function, or None when its module is not in the tree yet (other import errors raise)."""
    try:
        mod = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if _missing_module(exc, entry.module):
            return None
        raise
    return getattr(mod, entry.func)


def run_entry(entry: Entry, quick: bool) -> tuple[list[Figure], list[Samples], str, float]:
    """Run one benchmark: its figures, samples, status (``ok``, ``failed``, ``absent``) and wall time."""
    t0 = time.monotonic()
    try:
        fn = load(entry)
        if fn is None:
            return [absent(entry.name, entry.module)], [], "absent", 0.0
        out = fn(quick)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a benchmark that breaks is a row, the others still run
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"[bench] {entry.name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        return [failed(entry.name, detail.splitlines()[0][:300])], [], "failed", time.monotonic() - t0
    figs = [f for f in out if isinstance(f, Figure)]
    samples = [s for s in out if isinstance(s, Samples)]
    if not figs:
        figs = [failed(entry.name, "it returned no figure")]
    status = "failed" if any(is_failed(f) for f in figs) else "ok"
    return figs, samples, status, time.monotonic() - t0


def settle_disk(limit_kb: int = 2048, timeout_s: float = 60.0) -> tuple[int | None, float]:
    """Write back what earlier work left dirty in the page cache before measuring (a suite run just before
    leaves hundreds of MB to write, and the first benchmarks, whose alarms wait on fsync, measured that):
    ``sync``, then wait until Dirty + Writeback is under ``limit_kb``. Returns (kB left, seconds waited)."""
    t0 = time.monotonic()
    os.sync()
    left: int | None = None
    while time.monotonic() - t0 < timeout_s:
        try:
            with open("/proc/meminfo") as f:
                left = sum(int(line.split()[1]) for line in f if line.startswith(("Dirty:", "Writeback:")))
        except (OSError, ValueError, IndexError):
            return None, time.monotonic() - t0
        if left < limit_kb:
            break
        time.sleep(0.5)
    return left, time.monotonic() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="each benchmark at a tiny size (a few minutes in all)")
    ap.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable; --list)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"where the JSON and PNG go (default {RESULTS})")
    ap.add_argument("--no-chart", action="store_true", help="write no PNG")
    ap.add_argument("--table-width", type=int, default=170, help="the table's width in columns (default 170)")
    args = ap.parse_args(argv)
    names = [e.name for e in REGISTRY]
    if args.list:
        for e in REGISTRY:
            print(f"{e.name:<18} {e.module}:{e.func:<12} {e.what}")
        return 0
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; have: {', '.join(names)}")
    entries = [e for e in REGISTRY if not args.only or e.name in args.only]

    if not args.quick:  # a full run measures; a quick one (the suite runs it beside other tests) only checks
        dirty_kb, waited = settle_disk()
        print(f"[bench] page cache written back: {dirty_kb} kB dirty left after {waited:.1f} s", file=sys.stderr,
              flush=True)
    started = time.time()
    loadavg0 = os.getloadavg()
    figures: list[Figure] = []
    samples: list[Samples] = []
    runs: list[dict[str, object]] = []
    try:
        for e in entries:
            print(f"[bench] {e.name}: {e.what}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
            figs, smp, status, wall = run_entry(e, args.quick)
            print(f"[bench] {e.name}: {status} in {wall:.1f} s", file=sys.stderr, flush=True)
            figures += figs
            samples += smp
            runs.append({"name": e.name, "module": e.module, "status": status, "wall_s": round(wall, 1),
                         "figures": [f.name for f in figs]})
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130
    wall = time.time() - started
    title = f"carehub benchmarks{' (quick)' if args.quick else ''}: {len(entries)} run in {wall:.0f} s"
    print(render_table(figures, title=title, width=args.table_width, color=sys.stdout.isatty()))
    loadavg1 = os.getloadavg()
    print(f"load average (1 min) {loadavg0[0]:.2f} at the start, {loadavg1[0]:.2f} at the end, "
          f"{os.cpu_count()} CPUs")
    meta = {"quick": args.quick, "started": started, "wall_s": round(wall, 1), "runs": runs,
            "loadavg_start": loadavg0, "loadavg_end": loadavg1}
    json_path = write_json(args.out, figures, samples, meta)
    print(f"results: {json_path}")
    if not args.no_chart:
        print(f"chart:   {write_chart(json_path.with_suffix('.png'), figures, samples, title)}")
    return 1 if any(r["status"] == "failed" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
