"""The two measurements of bench/nodered_vs_hub.py, the same for either side.

:func:`burst`: warm up, then write ``n`` frame pairs into the side's pty as fast as it takes them
(bench/serial_throughput.py's frames: battery 19 then 30, exactly one ``device.battery_low`` per pair);
rate = unique events received / (first frame written -> last of them received), CPU of the side's
process per event from /proc, RSS before (idle, after the warm-up) and after (at the last event, and
again a second later).

:func:`outage`: frame pairs at a steady ``rate`` (events/s); the broker is stopped for ``window_s`` and
started again while they go on. The phase of each event is in its battery value (17 before the stop,
16 while the broker is down, 15 after it is back), so the subscriber's count per value against the
pairs written per value is what each phase lost.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from bench.common import Pacer, cpu_s
from bench.common import rss_mb
from bench.peers.nodered.sides import Inbox, Side
from hil.harness.mosquitto import Mosquitto

WARMUP_BATTERY = 18
BURST_BATTERY = 19
REARM = 30
PHASES = {"before": 17, "during": 16, "after": 15}


def unique_events(inbox: Inbox, topic: str, start: int, battery: int) -> dict[str, float]:
    """``{event id: first receive time}`` of ``topic`` messages from index ``start`` with ``data.battery_pct``."""
    out: dict[str, float] = {}
    for t, top, payload in inbox.messages[start:]:
        if top != topic:
            continue
        ev = json.loads(payload)
        if ev["data"].get("battery_pct") == battery and ev["id"] not in out:
            out[ev["id"]] = t
    return out


def wait_count(inbox: Inbox, side: Side, target: int, stall_s: float) -> bool:
    """Until ``inbox.count(side.topic) >= target``; False after ``stall_s`` without any progress."""
    last, since = -1, time.monotonic()
    while True:
        got = inbox.count(side.topic)
        if got >= target:
            return True
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return False
        if not side.alive():
            raise RuntimeError(f"{side.name} exited")
        time.sleep(0.01)


def warm_up(side: Side, inbox: Inbox, pairs: int, timeout: float) -> None:
    """A baseline frame (battery 100: nothing) and ``pairs`` warm-up events, all waited for."""
    before = inbox.count(side.topic)
    data = side.frames.frame(100) + side.frames.pairs(pairs, WARMUP_BATTERY)
    side.line.write_all(data, deadline=time.monotonic() + timeout, alive=side.alive)
    if not wait_count(inbox, side, before + pairs, timeout):
        raise RuntimeError(f"{side.name} warm-up: {inbox.count(side.topic) - before} of {pairs} events arrived")
    side.wait_drained(timeout)
    time.sleep(0.3)


def burst(side: Side, inbox: Inbox, n: int, *, broker_pid: int | None, timeout: float) -> dict[str, Any]:
    """``n`` events in one burst through ``side``; its rate, CPU per event and RSS (the side is warmed up)."""
    pid = side.pid
    start = len(inbox.messages)
    target = inbox.count(side.topic) + n
    acked0 = side.acked()
    data = side.frames.pairs(n, BURST_BATTERY)
    rss0 = rss_mb(pid)
    c0, b0 = cpu_s(pid), cpu_s(broker_pid)
    t0, _ = side.line.write_all(data, deadline=time.monotonic() + timeout * 4, alive=side.alive)
    complete = wait_count(inbox, side, target, timeout)
    c1, b1 = cpu_s(pid), cpu_s(broker_pid)
    rss1 = rss_mb(pid)
    pending = side.wait_drained(timeout)
    acked1 = side.acked()
    time.sleep(1.0)
    rss2 = rss_mb(pid)
    side.line.drain()
    got = unique_events(inbox, side.topic, start, BURST_BATTERY)
    received = len(got)
    sample = next((json.loads(p) for _, top, p in inbox.messages[start:] if top == side.topic), None)
    elapsed = (max(got.values()) - t0) if got else float("nan")
    cpu = (c1 - c0) if c0 is not None and c1 is not None else None
    return {
        "events": n,
        "received": received,
        "duplicates": sum(1 for _, top, _ in inbox.messages[start:] if top == side.topic) - received,
        "complete": complete and received >= n,
        "acked": (acked1 - acked0) if acked0 is not None and acked1 is not None else None,
        "pending_after": pending,
        "elapsed_s": round(elapsed, 4),
        "per_s": round(received / elapsed, 1) if received and elapsed > 0 else 0.0,
        "cpu_s": round(cpu, 3) if cpu is not None else None,
        "cpu_us_per_event": round(cpu / received * 1e6, 1) if cpu is not None and received else None,
        "broker_cpu_s": round(b1 - b0, 3) if b0 is not None and b1 is not None else None,
        "rss_before_mb": _r(rss0),
        "rss_after_mb": _r(rss1),
        "rss_after_1s_mb": _r(rss2),
        "sample": sample,
    }


class PacedWriter(threading.Thread):
    """Writes one frame pair every ``1/rate`` s into the side's pty; the battery value says the phase."""

    def __init__(self, side: Side, rate: float) -> None:
        super().__init__(name=f"paced-{side.name}", daemon=True)
        self.side = side
        self.rate = rate
        self.battery = PHASES["before"]
        self.made: dict[int, int] = {b: 0 for b in PHASES.values()}
        self.late = 0
        self.error: BaseException | None = None
        self._done = threading.Event()

    def run(self) -> None:
        pacer = Pacer(1.0 / self.rate)
        try:
            while not self._done.is_set():
                battery = self.battery
                pair = self.side.frames.frame(battery) + self.side.frames.frame(REARM)
                self.side.line.write_all(pair, deadline=time.monotonic() + 10, alive=self.side.alive)
                self.made[battery] += 1
                pacer.wait()
            self.late = pacer.late
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc

    def finish(self) -> None:
        self._done.set()
        self.join(15)
        if self.error is not None:
            raise RuntimeError(f"{self.side.name}: paced writer failed: {self.error}") from self.error


def outage(
    side: Side, inbox: Inbox, broker: Mosquitto, *, rate: float, pre_s: float, window_s: float, post_s: float,
    settle_s: float, timeout: float,
) -> dict[str, Any]:
    """Events made before, during and after a broker stop of ``window_s``, and how many of each arrived."""
    start = len(inbox.messages)
    connects0 = len(side.connects())
    lost0 = inbox.session_lost
    acked0 = side.acked()
    writer = PacedWriter(side, rate)
    writer.start()
    try:
        time.sleep(pre_s)
        writer.battery = PHASES["during"]
        t_stop = time.time()
        broker.stop()
        time.sleep(max(0.0, window_s - (time.time() - t_stop)))
        t_up = time.time()  # from here on it may connect (start() returns once it accepts a connection)
        broker.start()
        writer.battery = PHASES["after"]
        time.sleep(post_s)
    finally:
        writer.finish()
    made = {phase: writer.made[b] for phase, b in PHASES.items()}
    total = sum(made.values())
    end = time.monotonic() + timeout
    # until every event made arrived, or nothing more came for settle_s (what is lost stays lost)
    while True:
        got = {p: len(unique_events(inbox, side.topic, start, b)) for p, b in PHASES.items()}
        if sum(got.values()) >= total or time.monotonic() > end:
            break
        if not wait_count(inbox, side, inbox.count(side.topic) + 1, settle_s):
            break
    pending = side.wait_drained(5.0)
    acked1 = side.acked()
    got = {p: len(unique_events(inbox, side.topic, start, b)) for p, b in PHASES.items()}
    back = [t for t in side.connects()[connects0:] if t >= t_stop]
    return {
        "rate_per_s": rate,
        "window_s": round(t_up - t_stop, 2),
        "made": made,
        "received": got,
        "lost": {p: made[p] - got[p] for p in PHASES},
        "lost_total": total - sum(got.values()),
        "made_total": total,
        "late_slots": writer.late,
        "reconnect_s": round(back[0] - t_up, 3) if back else None,
        "pending_after": pending,
        "acked": (acked1 - acked0) if acked0 is not None and acked1 is not None else None,
        "missing_seqs": missing_seqs(inbox, side.topic, start)[:20],
        "subscriber_session_lost": inbox.session_lost - lost0,
        "problems": side.problems()[-5:],
    }


def missing_seqs(inbox: Inbox, topic: str, start: int) -> list[str]:
    """The gaps in the ``seq`` of ``topic``'s events from index ``start`` on, as ranges ("123-422")."""
    seqs = sorted({json.loads(p)["seq"] for _, top, p in inbox.messages[start:] if top == topic})
    return [f"{a + 1}-{b - 1}" if b - a > 2 else str(a + 1) for a, b in zip(seqs, seqs[1:]) if b - a > 1]


def shape(value: Any) -> Any:
    """An event's shape: its keys, nested, with the JSON type of each leaf (to compare the two sides')."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    return type(value).__name__


def _r(x: float | None) -> float | None:
    return round(x, 1) if x is not None else None
