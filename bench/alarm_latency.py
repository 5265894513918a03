"""Alarm latency benchmark: simulated button edge -> hub -> Mosquitto -> subscriber.

A benchmark, not a test. Run from the repository root::

    python -m bench.alarm_latency [--presses N] [--period-ms MS] [--json-only]
    python bench/alarm_latency.py  [--presses N] [--period-ms MS] [--json-only]

What it does, all in one run and against one private broker:

1. Starts its own ``mosquitto`` (``tests.support.broker.Mosquitto``) on a free
   port in a temporary directory.
2. **Baseline (raw):** two paho-mqtt clients in this process (MQTT v5, each
   with ``loop_start``), one publishing, one subscribed, both QoS 1. N messages
   one at a time: publish, wait for the subscriber's ``on_message``, then (not
   timed) for the PUBACK. Latency = ``time.monotonic()`` in ``on_message``
   minus ``time.monotonic()`` just before ``publish()``.
3. **Floor:** the same raw exchange, but each message is first committed to a
   SQLite WAL store with the hub's schema (``synchronous=FULL``, one fsync),
   as any hub must before it publishes an alarm. ``floor/raw`` says how much
   of the 3x budget one durable commit takes on this disk; ``hub/floor`` is
   what the hub adds beyond it.
4. **Hub:** the real daemon as a subprocess (``tests.support.hubproc``),
   ``hold_s = 30`` (a hold never triggers), ``bounce_s = 0``, ack timeout and
   heartbeat one hour (no reminder or heartbeat traffic during the run). A
   subscriber in this process listens on ``carehub/v1/<hub>/event/alarm.button``;
   the button is driven over one persistent ``SimClient`` connection with
   ``press`` then ``release`` per press, waiting for the alarm at the
   subscriber before the next press.
5. **Reference:** raw paho again, back to back, with no idle time at all.

The same rhythm for every path
------------------------------
An alarm is a lone event on an idle machine, so every message and every press
starts ``--period-ms`` (default 20) after the previous one started: raw, floor
and hub alike. This matters on a VM, where a core that has been idle even a
few milliseconds is slow to wake (one fsync'd commit costs about 0.2 ms back
to back and 0.4 ms after 5 ms of idle time here). A baseline run back to back
is timed hot while each press meets a cold machine; the reference line shows
that figure and the ratio to it, but the target is judged against the raw
baseline with the same rhythm as the hub.

Which edge is timed
-------------------
Every press is a fresh alarm raised on the *press* edge (``hub/gestures.py``):
after each alarm arrives the bench releases the button and acknowledges the
alarm over ``cmd/ack`` as the central would, waiting for the hub's
``alarm.acknowledged``, so the next press does not count as a repeat of an
alarm still waiting for its ack. Latency is timed from the edge: the sim's
``press`` reply carries ``mono_ns``, the ``CLOCK_MONOTONIC`` time at which the
hub drove the simulated pin (the clock is shared by every process on the
host), and the subscriber stamps ``time.monotonic()`` on receipt. Between the
two: the simulated GPIO edge, gesture handler on the loop, ``Hub.emit_now`` ->
``Outbox.append_now`` (SQLite WAL commit, ``synchronous=FULL``) ->
``Forwarder.submit`` -> QoS 1 publish -> broker -> subscriber. The sim
socket that carries the rig's "finger" to the pin is not part of a real
hub's alarm path; "press request->receive" shows the latency with it. The
first press after start is reported apart; then ``--warmup`` presses are not
counted, then N are measured.

The ratios compare ``hub`` against ``raw``. Target: p99 ratio <= 3.0.

Breakdown: the hub logs ``event_committed`` with a wall-clock timestamp
after the outbox commit, the publish and the LED change; matching it by
event id against the edge's wall-clock time (in the sim reply) and receipt
splits each hub latency into "edge -> logged" (gesture, SQLite commit,
publish, LED, log line) and "logged -> subscriber". The broker and the
subscriber work while the hub still logs, so the second part is small and
can be negative. Wall clock, same host.

All processes (broker, hub, paho loop threads) are stopped at the end, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import queue
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

from bench.common import BenchSubscriber, iso_to_epoch, log, raise_interrupt, stop_hub
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.hubproc import HubProcess, hub_config  # noqa: E402

HUB_ID = "bench-hub"
TARGET_P99_RATIO = 3.0
PERIOD_MS = 20.0
RECEIVE_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- helpers


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def summary_ms(lat_s: Sequence[float]) -> dict[str, float]:
    ms = [x * 1000 for x in lat_s]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p90": round(percentile(ms, 90), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3),
        "mean": round(statistics.fmean(ms), 3),
        "min": round(min(ms), 3),
    }


class Cadence:
    """Start each message (or press) one ``period_s`` after the previous one started.

    Every measured path gets the same rhythm, so each message meets the same
    idle machine: on a VM an idle core is slow to wake, and a baseline run
    back to back would be timed hot while the hub is timed cold.
    ``period_s = 0`` runs back to back.
    """

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.next = time.monotonic()

    def wait(self) -> None:
        if self.period_s <= 0:
            return
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.next = max(self.next + self.period_s, time.monotonic())


class Client(BenchSubscriber):
    """A subscriber whose ``on_message`` stamps ``time.monotonic()`` (and ``time.time()``)
    first thing and queues the message. ``CLOCK_MONOTONIC`` is shared by every
    process on the host, so the hub's edge time can be subtracted from it."""

    def __init__(self, port: int, topics: Sequence[str] = (), name: str = "bench") -> None:
        self.received: queue.Queue[tuple[float, float, mqtt.MQTTMessage]] = queue.Queue()
        super().__init__(port, topics, name)

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        t = time.monotonic()
        w = time.time()
        self.received.put((t, w, msg))

    def get(self, timeout: float = RECEIVE_TIMEOUT_S) -> tuple[float, float, mqtt.MQTTMessage]:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None


# --------------------------------------------------------------------------- baseline


def _durable_store(path: Path) -> sqlite3.Connection:
    """The hub's own outbox schema, WAL, synchronous=FULL: what the floor commits to."""
    from hub.outbox import _SCHEMA

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_SCHEMA)
    return db


def bench_raw(
    port: int,
    n: int,
    warmup: int,
    payload_size: int,
    quiet: bool,
    *,
    period_s: float,
    commit_to: Path | None = None,
    name: str = "raw",
) -> list[float]:
    """Raw paho publish -> subscriber on_message, one at a time, QoS 1.

    With ``commit_to``, each message is first committed (one row, one
    synchronous=FULL transaction) to a SQLite WAL store there: the floor any
    hub pays that puts an alarm on disk before publishing it.
    """
    topic = f"bench/raw/{uuid.uuid4().hex[:8]}"
    sub = Client(port, [topic], name="bench-raw-sub")
    pub = Client(port, [], name="bench-raw-pub")
    db = _durable_store(commit_to) if commit_to is not None else None
    cadence = Cadence(period_s)
    try:
        lat: list[float] = []
        for i in range(warmup + n):
            body = json.dumps({"i": i}).encode()
            body += b" " * max(0, payload_size - len(body))  # the size of a hub event
            cadence.wait()
            t0 = time.monotonic()
            if db is not None:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO events (seq, id, type, rank, alarm, body, created) VALUES (?,?,?,?,?,?,?)",
                    (i + 1, uuid.uuid4().hex, "alarm.button", 0, 1, body, time.time()),
                )
                db.execute("COMMIT")
            info = pub.client.publish(topic, body, qos=1)
            t1, _, msg = sub.get()
            if json.loads(msg.payload)["i"] != i:
                raise RuntimeError(f"raw: expected message {i}, got {msg.payload[:40]!r}")
            info.wait_for_publish(RECEIVE_TIMEOUT_S)  # PUBACK, not timed
            if i >= warmup:
                lat.append(t1 - t0)
            if not quiet and (i + 1) % 250 == 0:
                log(f"  {name} {i + 1}/{warmup + n}", quiet=quiet)
        return lat
    finally:
        if db is not None:
            db.close()
        pub.close()
        sub.close()


# --------------------------------------------------------------------------- hub


def bench_hub(
    port: int, workdir: Path, n: int, warmup: int, period_s: float, quiet: bool, hubs: list[HubProcess]
) -> dict[str, Any]:
    config = hub_config(
        workdir / "hub",
        port=port,
        hub_id=HUB_ID,
        hold_s=30.0,
        ack_timeout_s=3600.0,
        unack_repeat_s=3600.0,
        heartbeat_s=3600.0,
    )
    hub = HubProcess(config)
    hubs.append(hub)
    base = f"carehub/v1/{HUB_ID}"
    sub = Client(port, [f"{base}/event/alarm.button", f"{base}/event/alarm.acknowledged"], name="bench-hub-sub")
    cadence = Cadence(period_s)
    try:
        hub.start(timeout=20)
        hub.wait_log(lambda e: e.get("event") == "mqtt_connected", timeout=20)
        hub.wait_log(lambda e: e.get("event") == "birth_published", timeout=20)
        sim = hub.sim
        time.sleep(0.2)  # let startup traffic (hub.started, birth, first heartbeat) settle

        def one(i: int) -> dict[str, Any]:
            cadence.wait()
            t_request = time.monotonic()
            # the reply is read after the alarm arrived: no bench thread wakes for it meanwhile
            sim.send({"op": "press", "device": "button-1"})
            t_rx, w_rx, msg = sub.get()
            reply = sim.reply()
            ev = json.loads(msg.payload)
            if ev["type"] != "alarm.button" or ev["data"].get("repeat"):
                raise RuntimeError(f"hub press {i}: unexpected event {ev}")
            sim.call({"op": "release", "device": "button-1"})
            # the central acknowledges, so the next press is a fresh alarm raised on its edge
            sub.client.publish(f"{base}/cmd/ack", json.dumps({"event_id": ev["id"]}), qos=1)
            _, _, ack = sub.get()
            ack_ev = json.loads(ack.payload)
            if ack_ev["type"] != "alarm.acknowledged" or ack_ev["cause"] != ev["id"]:
                raise RuntimeError(f"hub press {i}: expected the ack of {ev['id']}, got {ack_ev}")
            return {
                "i": i,
                "id": ev["id"],
                "seq": ev["seq"],
                "from_edge": t_rx - reply["mono_ns"] / 1e9,
                "from_request": t_rx - t_request,
                "w_edge": reply["t"],
                "w_rx": w_rx,
            }

        first = one(0)
        samples: list[dict[str, Any]] = []
        last_seq = first["seq"]
        for i in range(1, 1 + warmup + n):
            s = one(i)
            if s["seq"] <= last_seq:
                raise RuntimeError(f"hub press {i}: seq {s['seq']} not after {last_seq}")
            last_seq = s["seq"]
            if i > warmup:
                samples.append(s)
            if not quiet and i % 250 == 0:
                log(f"  hub {i}/{warmup + n}", quiet=quiet)
        extra = 0
        try:  # nothing else should arrive
            while True:
                sub.get(timeout=0.3)
                extra += 1
        except TimeoutError:
            pass

        # Breakdown from the hub's own log (wall clock, microseconds).
        committed: dict[str, float] = {}
        warnings = 0
        for e in hub.log_lines():
            ts = e.get("timestamp")
            if e.get("level") in ("warning", "error", "critical"):
                warnings += 1
            if not ts or "event_id" not in e:
                continue
            if e.get("event") == "event_committed":
                committed[e["event_id"]] = iso_to_epoch(ts)
        to_commit = [committed[s["id"]] - s["w_edge"] for s in samples if s["id"] in committed]
        commit_to_rx = [s["w_rx"] - committed[s["id"]] for s in samples if s["id"] in committed]
        return {
            "first_press": first["from_edge"],
            "from_edge": [s["from_edge"] for s in samples],
            "from_request": [s["from_request"] for s in samples],
            "to_commit": to_commit,
            "commit_to_rx": commit_to_rx,
            "extra_messages": extra,
            "hub_warnings": warnings,
        }
    finally:
        sub.close()


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.alarm_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=1000, help="measured messages/presses per side (default 1000)")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured messages/presses before measuring (default 20)")
    ap.add_argument("--keep-log", metavar="PATH", help="copy the hub's JSON log here for a breakdown")
    ap.add_argument(
        "--period-ms", type=float, default=PERIOD_MS,
        help=f"start of one message or press to the next, the same for every path (default {PERIOD_MS:g})",
    )
    ap.add_argument("--payload-size", type=int, default=420, help="raw baseline payload bytes (default 420, ~ a hub event)")
    ap.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    args = ap.parse_args(argv)
    n, quiet = args.presses, args.json_only
    if n < 1:
        ap.error("--presses must be >= 1")
    if args.period_ms < 0:
        ap.error("--period-ms must be >= 0")
    period_s = args.period_ms / 1000

    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    hubs: list[HubProcess] = []
    broker: Mosquitto | None = None
    tmp = tempfile.TemporaryDirectory(prefix="carehub-bench-")
    workdir = Path(tmp.name)
    try:
        broker = Mosquitto(workdir=workdir / "broker", persistence=False)
        broker.start()
        log(f"mosquitto on {broker.host}:{broker.port} (workdir {workdir})", quiet=quiet)

        log(f"raw paho baseline: {args.warmup} warm-up + {n} messages, one every {args.period_ms:g} ms", quiet=quiet)
        raw = bench_raw(broker.port, n, args.warmup, args.payload_size, quiet, period_s=period_s)

        log(f"raw paho with a durable commit before each publish, one every {args.period_ms:g} ms", quiet=quiet)
        floor = bench_raw(
            broker.port, n, args.warmup, args.payload_size, quiet,
            period_s=period_s, commit_to=workdir / "floor.db", name="raw+commit",
        )

        log("raw paho back to back (no idle time between messages), for reference", quiet=quiet)
        hot = bench_raw(broker.port, n, args.warmup, args.payload_size, quiet, period_s=0.0, name="raw hot")

        log(f"hub: 1 opening press + {args.warmup} warm-up + {n} presses, one every {args.period_ms:g} ms", quiet=quiet)
        hub = bench_hub(broker.port, workdir, n, args.warmup, period_s, quiet, hubs)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for h in hubs:
            stop_hub(h)
        if broker is not None:
            broker.stop()
        if args.keep_log:
            shutil.copy(workdir / "hub" / "hub.log", args.keep_log)
        tmp.cleanup()

    r = summary_ms(raw)
    f = summary_ms(floor)
    rh = summary_ms(hot)
    h = summary_ms(hub["from_edge"])
    hr = summary_ms(hub["from_request"])
    ratio50 = h["p50"] / r["p50"]
    ratio99 = h["p99"] / r["p99"]
    ok = ratio99 <= TARGET_P99_RATIO
    result = {
        "bench": "alarm_latency",
        "n": n,
        "warmup": args.warmup,
        "period_ms": args.period_ms,
        "raw_ms": r,
        "raw_commit_ms": f,
        "raw_back_to_back_ms": rh,
        "hub_ms": h,
        "hub_from_request_ms": hr,
        "hub_edge": "press (fresh alarm each time: the previous one was acknowledged)",
        "hub_first_press_ms": round(hub["first_press"] * 1000, 3),
        "hub_breakdown_ms": {
            "edge_to_committed": summary_ms(hub["to_commit"]) if hub["to_commit"] else None,
            "committed_to_subscriber": summary_ms(hub["commit_to_rx"]) if hub["commit_to_rx"] else None,
        },
        "ratio_p50": round(ratio50, 3),
        "ratio_p99": round(ratio99, 3),
        "ratio_p99_to_back_to_back": round(h["p99"] / rh["p99"], 3),
        "floor_ratio_p99": round(f["p99"] / r["p99"], 3),
        "ratio_p99_to_floor": round(h["p99"] / f["p99"], 3),
        "target_p99_ratio": TARGET_P99_RATIO,
        "pass": ok,
        "extra_messages": hub["extra_messages"],
        "hub_warnings": hub["hub_warnings"],
        "python": sys.version.split()[0],
        "host_cpus": os.cpu_count(),
    }
    if not quiet:
        def row(name: str, s: dict[str, float]) -> str:
            return f"{name:<34} {s['n']:>6} {s['p50']:>9.3f} {s['p90']:>9.3f} {s['p99']:>9.3f} {s['max']:>9.3f}"

        print(f"{'latency (ms)':<34} {'N':>6} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}")
        print(row("raw paho publish->receive", r))
        print(row("raw + durable commit (floor)", f))
        print(row("hub edge->receive", h))
        bd = result["hub_breakdown_ms"]
        if bd["edge_to_committed"]:
            print(row("  edge->logged (hub)", bd["edge_to_committed"]))
            print(row("  logged->subscriber", bd["committed_to_subscriber"]))
        print(row("hub press request->receive", hr))
        print(row("raw paho, back to back (reference)", rh))
        print(f"every path: one message or press every {args.period_ms:g} ms, except the back-to-back reference")
        print(f"hub first press after start: {result['hub_first_press_ms']:.3f} ms")
        print(f"ratio p50 hub/raw: {ratio50:.2f}")
        print(f"ratio p99 hub/raw: {ratio99:.2f}")
        print(f"ratio p99 floor/raw: {f['p99'] / r['p99']:.2f} (what one fsync'd commit alone costs)")
        print(f"ratio p99 hub/floor: {h['p99'] / f['p99']:.2f} (what the hub adds beyond that commit)")
        print(f"ratio p99 hub/raw back to back: {h['p99'] / rh['p99']:.2f} (reference: a baseline timed hot)")
        print(f"target: p99 ratio hub/raw <= {TARGET_P99_RATIO}")
        print("PASS" if ok else "MISS")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
