"""A rig in memory for the runner's unit tests: the Rig and Central protocols, no processes.

A press raises ``alarm.button`` (critical) from the device, taken by the "hub"
at once and delivered to the central after ``delay_s``; a serial frame or an
advert raises a normal-priority event. With the broker stopped, events wait in
a queue and are delivered on ``broker_start`` alarms first (``order =
"priority"``) or as they came (``"fifo"``, a hub that lets telemetry overtake).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.fixtures import FIXTURES
from hil.matching import is_alarm, rfc3339
from hil.model import Scenario

#: hil.measure's stand-in (only when that module is not in the tree yet): same signature, same rules.
PCT = {"p50": 50, "p90": 90, "p99": 99}


@dataclass
class Arrival:
    t: float
    event: dict[str, Any]
    duplicate: bool


class FakeCentral:
    def __init__(self, rig: FakeRig) -> None:
        self.rig = rig
        self.cond = threading.Condition()
        self.arr: list[Arrival] = []
        self.acks: list[tuple[str, str]] = []
        self.problem_list: list[str] = []

    def add(self, event: dict[str, Any]) -> None:
        with self.cond:
            dup = any(a.event["id"] == event["id"] for a in self.arr)
            self.arr.append(Arrival(time.monotonic(), dict(event), dup))
            self.cond.notify_all()

    def arrivals(self) -> list[Arrival]:
        with self.cond:
            return list(self.arr)

    def wait(self, start: int, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.arr) > start, timeout_s)

    def ack(self, event_id: str, by: str) -> dict[str, Any]:
        self.acks.append((event_id, by))
        return self.rig.on_ack(event_id, by)

    def status(self) -> str | None:
        return self.rig.status

    def problems(self) -> list[str]:
        return list(self.problem_list)

    def summary(self) -> dict[str, Any]:
        with self.cond:
            return {"received": len(self.arr), "unique": len({a.event["id"] for a in self.arr})}


class FakeRig:
    kind = "virtual"

    def __init__(self, *, name: str = "fake", fixtures: Any = None, delay_s: float = 0.02, order: str = "priority",
                 drop: tuple[str, ...] = (), duplicate: bool = False, raise_on: dict[str, BaseException] | None = None,
                 drop_on_setup: int = 0) -> None:
        self.name = name
        self.fixtures = frozenset(FIXTURES if fixtures is None else fixtures)
        self.central = FakeCentral(self)
        self.delay_s = delay_s
        self.order = order
        self.drop = set(drop)
        self.duplicate = duplicate
        self.raise_on = raise_on or {}
        self.drop_on_setup = drop_on_setup
        self.calls: list[tuple[Any, ...]] = []
        self.setups = 0
        self.seq = 0
        self.broker_up = True
        self.queue: list[dict[str, Any]] = []
        self.led: dict[str, str] = {}
        self.taken_ids: list[str] = []
        self.acked: set[str] = set()
        self.status: str | None = "online"
        self.lock = threading.Lock()

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.raise_on:
            raise self.raise_on[name]

    def _emit(self, type_: str, device: str, priority: str = "normal", **data: Any) -> dict[str, Any]:
        with self.lock:
            self.seq += 1
            ev = {"id": f"ev-{self.seq:04d}", "seq": self.seq, "ts": rfc3339(time.time()), "type": type_,
                  "priority": priority, "source": {"device": device, "kind": "x"}, "data": data}
        if is_alarm(ev):
            self.taken_ids.append(ev["id"])
        if device in self.drop:
            return ev
        if not self.broker_up:
            self.queue.append(ev)
            return ev
        threading.Timer(self.delay_s, self.central.add, [ev]).start()
        if self.duplicate:
            threading.Timer(self.delay_s * 2, self.central.add, [ev]).start()
        return ev

    # the rig's life
    def setup(self, scenario: Scenario, workdir: Path) -> None:
        self.setups += 1
        if self.setups == self.drop_on_setup:
            self.drop.add("button-1")
        elif self.drop_on_setup:
            self.drop.discard("button-1")
        self._call("setup", scenario.name)

    def teardown(self) -> None:
        self._call("teardown")

    def info(self) -> dict[str, Any]:
        return {"hub_version": "0.1.0", "config_hash": "c0ffee"}

    def taken(self) -> list[str]:
        return list(self.taken_ids)

    def log_tail(self, lines: int = 60) -> str:
        return "fake hub log: the end"

    # the resident
    def press(self, device: str, hold_s: float) -> float:
        self._call("press", device)
        t = time.monotonic()
        self._emit("alarm.button", device, "critical", gesture="press")
        self.led[device] = "fast_blink"
        time.sleep(hold_s)
        return t

    def hold(self, device: str) -> float:
        self._call("hold", device)
        return time.monotonic()

    def release(self, device: str) -> float:
        self._call("release", device)
        return time.monotonic()

    def feedback(self, device: str, output: str) -> str:
        return self.led.get(device, "off")

    # the devices
    def serial(self, device: str, send: str, args: dict[str, Any]) -> float:
        self._call("serial", device, send)
        t = time.monotonic()
        self._emit(f"sensor.{send}", device, **args)
        return t

    def advertise(self, device: str, values: dict[str, Any], replay: bool) -> float:
        self._call("advertise", device)
        t = time.monotonic()
        self._emit("sensor.ble", device, **values)
        return t

    # the world
    def broker_stop(self) -> None:
        self._call("broker_stop")
        self.broker_up = False

    def broker_start(self) -> None:
        self._call("broker_start")
        self.broker_up = True
        waiting, self.queue = self.queue, []
        if self.order == "priority":
            waiting.sort(key=lambda e: not is_alarm(e))
        for ev in waiting:
            self.central.add(ev)

    def check_config(self, set_: dict[str, Any], text: str) -> tuple[int, str]:
        self._call("check_config", set_, text)
        if set_ or text:
            return 1, "hub.toml:3:8: mqtt.port: expected int, found str\nhub.toml: 1 error; the hub would refuse to start"
        return 0, "hub.toml: valid"

    def push_config(self, version: int, set_: dict[str, Any], unreachable: bool) -> dict[str, Any]:
        self._call("push_config", version, set_, unreachable)
        return {"ok": True, "result": "applying", "version": version}

    def on_ack(self, event_id: str, by: str) -> dict[str, Any]:
        if event_id not in self.taken_ids or event_id in self.acked:
            return {"ok": False, "error": f"no open alarm with id {event_id}"}
        self.acked.add(event_id)
        device = next(a.event["source"]["device"] for a in self.central.arrivals() if a.event["id"] == event_id)
        self.led[device] = "steady"
        self._emit("alarm.acknowledged", device, "high", by=by)
        return {"ok": True}


def _noop(name: str) -> Any:
    def method(self: FakeRig, *args: Any) -> None:
        self._call(name, *args)

    return method


for _name in ("unplug", "replug", "ble_fault", "clock_step", "net_cut", "net_impair", "net_restore", "hub_kill",
              "hub_start", "power_cut", "disk_fill", "disk_free"):
    setattr(FakeRig, _name, _noop(_name))


def stand_in_evaluate(measure: Any, marks: dict[str, list[float]], kind: str) -> Any:
    """hil.measure.evaluate's stand-in: intervals from -> to paired in order (ms), the stat, the kind's limit."""
    from hil.results import MeasurementResult, Outcome

    if measure.stat == "count":
        samples: list[float] = []
        value: float | None = float(len(marks.get(measure.to, [])))
    else:
        samples = [(b - a) * 1000 for a, b in zip(marks.get(measure.from_ or "", []), marks.get(measure.to, []))]
        ordered = sorted(samples)
        if not ordered:
            value = None
        elif measure.stat in PCT:
            value = ordered[max(0, -(-len(ordered) * PCT[measure.stat] // 100) - 1)]
        else:
            value = {"max": max, "min": min, "mean": lambda s: sum(s) / len(s)}[measure.stat](ordered)
    limit = measure.limits.get(kind)
    outcome = Outcome.PASS
    if limit is not None:
        if value is None or (limit.max is not None and value > limit.max) or (limit.min is not None and value < limit.min):
            outcome = Outcome.FAIL
        elif limit.max is not None and value > limit.max * (1 - limit.marginal_pct / 100):
            outcome = Outcome.MARGINAL
    return MeasurementResult(name=measure.name, stat=measure.stat, unit=measure.unit, value=value, samples=samples,
                             limit=limit, outcome=outcome)
