"""From a phase's raw results to numbers: latency percentiles, loss, rates, and the figures for the table.

Latency, for the alarms pressed while the hub was connected (those pressed during, or waiting
across, an outage are counted apart: their time includes the outage):

* **end to end**: press at the sim hub -> the central's ``cmd/ack`` reaching that hub (one
  process's monotonic clock);
* **stored**: press -> the alarm's first line on the central's ``--json`` feed (the feed prints it
  once the store committed it; the wall clock of one machine, read every 2 ms);
* **received**: press -> the ``received`` time the central stamps (ms; when its ingest took the batch).

Percentiles are nearest-rank: with fewer than 100 samples p99 is the largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.figures import Figure
from bench.fleet.session import Phase

#: The alarm latency every residence is promised at the central.
GOAL_MS = 1000.0
BASELINE = "one hub alone, same broker and central, same run"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..100); None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p90, p99 and max, in ms rounded to 0.1."""
    out: dict[str, Any] = {"n": len(values)}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = percentile(values, q)
        out[name] = None if v is None else round(v, 1)
    return out


def summarize(ph: Phase) -> dict[str, Any]:
    """Everything a phase measured, as one JSON-able dict (``ok``: p99 end to end under 1 s, zero loss)."""
    online = [a for a in ph.alarms if not a.offline]
    e2e = [a.e2e_ms for a in online if a.e2e_ms is not None]
    stored = [(ph.feed[a.id][0] - a.press_wall) * 1000 for a in online if a.id in ph.feed]
    received = [(ph.feed[a.id][1] - a.press_wall) * 1000 for a in online if a.id in ph.feed]
    not_acked = sum(a.e2e_ms is None for a in ph.alarms)
    events = sum(h.last_seq for h in ph.reports)
    heartbeats = sum(h.heartbeats for h in ph.reports)
    acks = sum(h.acks for h in ph.reports)
    c = ph.check
    # an alarm left unacked shows at both ends: counted once
    loss = c.missing + c.lost + max(not_acked, c.alarms - c.alarms_acked)
    p99 = percentile(e2e, 99)
    ran = max(ph.ran_s, 1e-9)
    return {
        "tag": ph.tag, "hubs": ph.hubs, "processes": ph.processes, "seconds": ph.seconds, "ran_s": ph.ran_s,
        "connect_s": ph.connect_s, "profile": {k: getattr(ph.profile, k) for k in ph.profile.__struct_fields__},
        "e2e_ms": spread(e2e), "stored_ms": spread(stored), "received_ms": spread(received),
        "alarms": len(ph.alarms), "alarms_offline": len(ph.alarms) - len(online), "alarms_not_acked": not_acked,
        "auto_ack_failed": c.auto_ack_failed,
        "alarms_not_on_feed": sum(a.id not in ph.feed for a in ph.alarms),
        "events": events, "heartbeats": heartbeats, "acks": acks,
        "events_per_s": round(events / ran, 1),
        # hub -> broker (events, heartbeats, ack replies) and central -> broker (acks): what the broker takes in
        "messages_in_per_s": round((events + heartbeats + 2 * acks) / ran, 1),
        "replays": sum(h.replays for h in ph.reports), "replayed": sum(h.replayed for h in ph.reports),
        "acks_odd": sum(h.acks_odd for h in ph.reports), "outage_hubs": ph.outage_hubs,
        "reconnects": sum(max(0, h.connects - 1) for h in ph.reports),
        "drained": ph.drained, "central": {k: getattr(c, k) for k in c.__struct_fields__},
        "loss": loss, "cpu_pct_of_core": ph.cpu, "rss_mb": ph.rss_mb,
        "ok": bool(ph.drained and c.complete and loss == 0 and p99 is not None and p99 < GOAL_MS),
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 2)


def figures(fleet: dict[str, Any], solo: dict[str, Any] | None) -> list[Figure]:
    """The figures of one fleet run, against the one-hub baseline of the same run."""
    n = fleet["hubs"]
    out: list[Figure] = []
    for key, what in (("e2e_ms", "press -> central's ack at the hub"), ("stored_ms", "press -> stored at the central")):
        for q in ("p50", "p99"):
            value = fleet[key][q]
            base = solo[key][q] if solo else None
            goal = f"{q} < {GOAL_MS:g} ms" if q == "p99" else None
            out.append(Figure(
                name=f"fleet alarm {what}, {q}, {n} hubs", value=float("nan") if value is None else value, unit="ms",
                baseline=BASELINE if solo else None, baseline_value=base, ratio=_ratio(value, base), goal=goal,
                ok=(value is not None and value < GOAL_MS) if goal else None,
                note=f"{fleet[key]['n']} alarms" + (f"; baseline {solo[key]['n']}" if solo else "")))
    c = fleet["central"]
    out.append(Figure(
        name=f"fleet loss, {n} hubs", value=float(fleet["loss"]), unit="events", baseline=None, baseline_value=None,
        ratio=None, goal="0: every seq stored, every alarm acked", ok=fleet["loss"] == 0 and fleet["drained"],
        note=f"{c['stored']}/{c['expected']} seqs stored, {c['lost']} lost, "
             f"{fleet['alarms'] - fleet['alarms_not_acked']}/{fleet['alarms']} alarms acked at the hubs "
             f"({fleet['alarms_offline']} pressed in an outage, {fleet['auto_ack_failed']} auto-acks sent while the hub "
             f"was away), {fleet['outage_hubs']} hubs with an outage"))
    cpu = fleet["cpu_pct_of_core"]
    out.append(Figure(
        name=f"fleet events into the central, {n} hubs", value=fleet["events_per_s"], unit="events/s", baseline=None,
        baseline_value=None, ratio=None, goal=None, ok=None,
        note=f"broker takes {fleet['messages_in_per_s']} msgs/s; CPU % of a core: central {cpu.get('central')}, "
             f"mosquitto {cpu.get('broker')}, sim hubs {cpu.get('workers')}; RSS MB: central "
             f"{fleet['rss_mb'].get('central')}, mosquitto {fleet['rss_mb'].get('broker')}"))
    return out


def max_figure(steps: list[dict[str, Any]]) -> Figure:
    """The largest fleet that passed (p99 end to end under 1 s, zero loss), from the find-max steps."""
    passed = [s["hubs"] for s in steps if s["ok"]]
    trail = ", ".join(f"{s['hubs']}: p99 {s['e2e_ms']['p99']} ms loss {s['loss']} {'ok' if s['ok'] else 'MISS'}"
                      for s in steps)
    return Figure(name="fleet: largest N at alarm p99 < 1 s, zero loss", value=float(max(passed, default=0)),
                  unit="hubs", baseline=None, baseline_value=None, ratio=None, goal=None, ok=None, note=trail)


def table(figs: Sequence[Figure]) -> str:
    """The figures as a plain text table."""
    rows = [("figure", "value", "baseline", "ratio", "goal", "ok")]
    for f in figs:
        rows.append((f.name, f"{f.value:g} {f.unit}", "" if f.baseline_value is None else f"{f.baseline_value:g}",
                     "" if f.ratio is None else f"{f.ratio:g}x", f.goal or "",
                     "" if f.ok is None else ("pass" if f.ok else "MISS")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [f"  {f.name}: {f.note}" for f in figs if f.note]
    return "\n".join([*lines, "notes:", *notes])
