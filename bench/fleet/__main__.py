"""``python -m bench.fleet --hubs N [--processes P] [--seconds S] [--find-max]``: see :mod:`bench.fleet`.

Prints progress on stderr, the table of figures on stdout, and last one JSON line with the figures
and every phase's numbers (``--json-only``: only that line). Exit 0 when every goal held, 1 when
one missed, 2 on bad arguments, 3 when the bench itself broke (a worker or the central).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from bench.common import raise_interrupt
from bench.fleet.bench import find_max, measure
from bench.fleet.results import figures, max_figure, table
from bench.fleet.spec import Profile


def build_parser() -> argparse.ArgumentParser:
    d = Profile()
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--hubs", type=int, default=50, help="simulated hubs (with --find-max: the first size tried)")
    p.add_argument("--processes", type=int, default=2, help="worker processes the hubs are spread over (2)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of traffic per fleet (30)")
    p.add_argument("--find-max", action="store_true",
                   help="after the fleet, double N until alarm p99 >= 1 s or any loss, then narrow it down")
    p.add_argument("--max-hubs", type=int, default=20000, help="--find-max stops here (20000)")
    p.add_argument("--baseline-s", type=float, default=10.0, help="seconds of the one-hub baseline (0: none)")
    p.add_argument("--heartbeat-s", type=float, default=d.heartbeat_s, help=f"per hub ({d.heartbeat_s:g})")
    p.add_argument("--telemetry-s", type=float, default=d.telemetry_s,
                   help=f"mean seconds between a hub's telemetry events ({d.telemetry_s:g})")
    p.add_argument("--alarm-s", type=float, default=d.alarm_s, help=f"mean seconds between a hub's presses ({d.alarm_s:g})")
    p.add_argument("--outage-fraction", type=float, default=d.outage_fraction,
                   help=f"share of hubs that lose the network once ({d.outage_fraction:g})")
    p.add_argument("--outage-s", type=float, default=d.outage_s, help=f"how long ({d.outage_s:g})")
    p.add_argument("--outage-anytime", action="store_true",
                   help="cut a hub's network even while one of its alarms waits for the central's ack (that ack is "
                   "then lost: the central leaves a failed auto-ack to an operator)")
    p.add_argument("--keep", action="store_true", help="keep the broker's and central's directory (logs, central.db)")
    p.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.hubs < 1 or args.processes < 1 or args.seconds <= 0:
        print("--hubs, --processes and --seconds must be positive", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, raise_interrupt)
    profile = Profile(heartbeat_s=args.heartbeat_s, telemetry_s=args.telemetry_s, alarm_s=args.alarm_s,
                      outage_fraction=args.outage_fraction, outage_s=args.outage_s,
                      outage_waits_for_ack=not args.outage_anytime)
    quiet = args.json_only
    out: dict[str, Any] = {}
    try:
        fleet, solo = measure(args.hubs, processes=args.processes, seconds=args.seconds, profile=profile,
                              baseline_s=args.baseline_s, keep=args.keep, quiet=quiet)
        figs = figures(fleet, solo)
        out.update(fleet=fleet, baseline=solo)
        if args.find_max:
            def said(step: dict[str, Any]) -> None:
                if not quiet:
                    print(f"fleet {step['hubs']}: p99 {step['e2e_ms']['p99']} ms, loss {step['loss']}: "
                          f"{'ok' if step['ok'] else 'MISS'}", file=sys.stderr, flush=True)

            steps = find_max(args.hubs, processes=args.processes, seconds=args.seconds, profile=profile,
                             max_hubs=args.max_hubs, quiet=quiet, first=fleet, on_step=said)
            figs.append(max_figure(steps))
            out["find_max"] = steps
    except RuntimeError as exc:
        print(f"bench.fleet: {exc}", file=sys.stderr)
        return 3
    if not quiet:
        print(table(figs))
    out["figures"] = figs
    print(msgspec.json.encode(out).decode())  # NaN (a percentile of nothing) as null
    return 0 if all(f.ok is not False for f in figs) else 1


if __name__ == "__main__":
    sys.exit(main())
