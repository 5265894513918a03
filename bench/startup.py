"""Start to birth: from ``carehub run`` being started to its birth message at the central.

A benchmark, not a test::

    python -m bench.startup [--starts N] [--json-only]

A private Mosquitto on a free port and a subscriber on ``carehub/v1/+/status``
(the central's view). Each start: ``time.time()`` just before the process is
spawned, then the subscriber's ``time.time()`` when ``{"state": "online"}``
of that hub arrives (the retained birth, published on CONNACK after the
store is open, the drivers attached and the command topics subscribed).
The hub is the real daemon (``hil.harness.hubproc``: the alarm button and
cord on sim GPIO), stopped with SIGTERM between starts and started again on
the same state directory, as systemd restarts it; the first start creates
that state.

Baseline, the same way, as many times: a Python process that only imports
paho-mqtt, connects to the same broker and publishes one retained QoS 1
status (what any Python MQTT client must do before it can say it is there).

Goal (issue 15): the median start to birth under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

from bench.common import BenchSubscriber, stop_hub  # noqa: E402
from bench.figures import Figure, Samples, ratio  # noqa: E402
from hil.harness.hubproc import HubProcess, hub_config  # noqa: E402
from hil.harness.mosquitto import Mosquitto  # noqa: E402

HUB_ID = "bench-start"
BARE_ID = "bench-bare"
GOAL_S = 1.0
BARE = """
import sys, json
import paho.mqtt.client as mqtt
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=sys.argv[2], protocol=mqtt.MQTTv5)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=30)
c.loop_start()
c.publish(f"carehub/v1/{sys.argv[2]}/status", json.dumps({"state": "online"}), qos=1, retain=True).wait_for_publish(10)
c.disconnect()
c.loop_stop()
"""


class Births(BenchSubscriber):
    """Every ``online`` status, as (hub id, wall-clock receipt)."""

    def __init__(self, port: int) -> None:
        self.online: list[tuple[str, float]] = []
        self.cond = threading.Condition()
        super().__init__(port, ["carehub/v1/+/status"], "bench-births")

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        t = time.time()
        try:
            state = json.loads(msg.payload).get("state")
        except ValueError:
            return
        if state == "online" and not msg.retain:
            with self.cond:
                self.online.append((msg.topic.split("/")[2], t))
                self.cond.notify_all()

    def wait(self, hub_id: str, after: float, timeout: float = 30.0) -> float:
        """Receipt time of ``hub_id``'s first birth after ``after``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for hid, t in self.online:
                    if hid == hub_id and t >= after:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no birth of {hub_id} within {timeout} s")
                self.cond.wait(left)


def measure(starts: int) -> dict[str, Any]:
    hub_s: list[float] = []
    bare_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="carehub-bench-start-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir=workdir / "broker", persistence=False)
        broker.start()
        sub = None
        hub = None
        try:
            sub = Births(broker.port)
            config = hub_config(workdir / "hub", port=broker.port, hub_id=HUB_ID, heartbeat_s=3600.0)
            for _ in range(starts):
                hub = HubProcess(config)
                t0 = time.time()
                hub.start(wait_ready=False)
                hub_s.append(sub.wait(HUB_ID, t0) - t0)
                stop_hub(hub)
                hub = None
                t0 = time.time()
                subprocess.run([sys.executable, "-c", BARE, str(broker.port), BARE_ID], check=True, timeout=30)
                bare_s.append(sub.wait(BARE_ID, t0) - t0)
        finally:
            if hub is not None:
                stop_hub(hub)
            if sub is not None:
                sub.close()
            broker.stop()
    return {"starts": starts, "hub_s": hub_s, "bare_s": bare_s}


def figures(r: dict[str, Any]) -> list[Figure | Samples]:
    hub_ms = [1000 * x for x in r["hub_s"]]
    bare_ms = [1000 * x for x in r["bare_s"]]
    med, base = statistics.median(hub_ms), statistics.median(bare_ms)
    return [
        Figure(name="start to birth message (median)", value=med, unit="ms",
               baseline="bare paho process: start, connect, publish", baseline_value=base, ratio=ratio(med, base),
               goal=f"< {1000 * GOAL_S:g} ms", ok=med < 1000 * GOAL_S,
               note=f"{r['starts']} starts, max {max(hub_ms):.0f} ms (first, creating the state: {hub_ms[0]:.0f} ms)"),
        Samples(name="start to birth", unit="ms", values=hub_ms, baseline="bare paho process", baseline_values=bare_ms),
    ]


def run(quick: bool) -> list[Figure | Samples]:
    """``python -m bench``'s entry: 3 starts quick, 10 in full."""
    return figures(measure(3 if quick else 10))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.startup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=10, help="starts of each (default 10)")
    ap.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    args = ap.parse_args(argv)
    r = measure(args.starts)
    if not args.json_only:
        from bench.figures import render_table

        print(render_table([f for f in figures(r) if isinstance(f, Figure)], title="start to birth"))
    print(json.dumps(r, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
