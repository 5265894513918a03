"""The physical rig without a Pi: its rig file, its LED classifier, its fixtures on gpiozero's MockFactory
(the loopback wire a MockConnectedPin, the hub's side the hub's own button and LED code), its
steps against a fake command runner, and the dry run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import FeedbackMode
from drivers.ble import bthome
from drivers.gpio.button import AlarmButton, ButtonHandlers
from drivers.gpio.feedback import GpioIndicator
from hil.fixtures import FIXTURES, RigError
from hil.model import decode
from hil.rigs import hostops
from hil.rigs.check import check_rig
from hil.rigs.commands import Result, SshRunner
from hil.rigs.ledpattern import WINDOW_S, classify
from hil.rigs.physical import PhysicalRig
from hil.rigs.pi_ble import BleAdvertiser
from hil.rigs.pi_fixtures import LedSense, LoopbackButton, UartEmulator
from hil.rigs.rigfile import BleWiring, GpioWiring, RigFile, SerialWiring, load_rig
from hil.rigs.tomlout import deep_merge, dumps

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "hil" / "rigs" / "pi-example.toml"


# --- helpers -------------------------------------------------------------------------------------


class FakeRunner:
    """Records every command; answers with ``answer(argv, input)`` (exit 0, no output by default)."""

    def __init__(self, answer: Callable[[tuple[str, ...], str | None], Result | None] | None = None) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.answer = answer or (lambda argv, data: None)

    def run(self, argv: Any, *, input: str | None = None, timeout: float = 30.0, check: bool = True) -> Result:  # noqa: A002
        args = tuple(str(a) for a in argv)
        self.calls.append((args, input))
        return self.answer(args, input) or Result(args, 0)

    def argvs(self) -> list[str]:
        return [" ".join(a) for a, _ in self.calls]


BIRTH = json.dumps({"__CURSOR": "c2", "MESSAGE": json.dumps({"event": "birth_published", "topic": "t"})})
COMMITTED = [
    json.dumps({"__CURSOR": "c3", "MESSAGE": json.dumps({"event": "event_committed", "event_id": i, "type": t})})
    for i, t in (("id-1", "alarm.button"), ("id-2", "device.online"), ("id-1", "alarm.button"))
] + [json.dumps({"__CURSOR": "c4", "MESSAGE": json.dumps({"event": "event_held", "event_id": "id-3",
                                                           "type": "alarm.button"})})]
BENCH_CONFIG = (REPO / "config" / "examples" / "minimal.toml").read_text()


def bench_answers(state: dict[str, str]) -> Callable[[tuple[str, ...], str | None], Result | None]:
    """A hub host: the bench config, a journal with a birth, a unit whose state ``state['unit']`` says."""

    def answer(argv: tuple[str, ...], data: str | None) -> Result | None:
        if argv[:1] == ("cat",):
            return Result(argv, 0, BENCH_CONFIG)
        if argv[:2] == ("journalctl", "-n"):
            return Result(argv, 0, json.dumps({"__CURSOR": "c1"}) + "\n")
        if argv[:2] == ("journalctl", "-u") and "json" in argv:
            return Result(argv, 0, "\n".join([BIRTH, *COMMITTED]) + "\n")
        if argv[:2] == ("systemctl", "show"):
            return Result(argv, 0, f"{state['unit']}\ninv-1\n")
        if argv[:2] == ("systemctl", "kill"):
            state["unit"] = "activating"
        if argv[:2] == ("systemctl", "start"):
            state["unit"] = "active"
        if argv[:2] == ("date", "+%s.%N"):
            return Result(argv, 0, "1000.250\n")
        if argv[:2] == ("df", "--output=avail"):
            return Result(argv, 0, " Avail\n 5242880\n")
        return None

    return answer


def mock_bench(rig: RigFile) -> MockFactory:
    """A MockFactory whose rig pins are wired to the hub's pins as the rig file says (the loopback wires)."""
    f = MockFactory()
    for w in rig.device.values():
        if isinstance(w, GpioWiring):
            if w.drive_pin is not None and w.hub_pin is not None:
                f.pin(w.drive_pin, pin_class=MockConnectedPin, input_pin=f.pin(w.hub_pin))
            for sense, hub in ((w.led_sense_pin, w.hub_led_pin), (w.buzzer_sense_pin, w.hub_buzzer_pin)):
                if sense is not None and hub is not None:
                    f.pin(hub, pin_class=MockConnectedPin, input_pin=f.pin(sense))
    return f


@pytest.fixture
def example() -> RigFile:
    return load_rig(EXAMPLE)


def scenario(steps: list[dict[str, Any]], *, name: str = "s", needs: list[str] | None = None,
             config: dict[str, Any] | None = None, start: bool = True) -> Any:
    sc = decode({"scenario": {"title": name, "needs": needs or []}, "hub": {"config": config or {}, "start": start},
                 "step": steps})
    return msgspec.structs.replace(sc, name=name, path=f"hil/scenarios/{name}.toml")


def write_rig(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rig.toml"
    p.write_text(text)
    return p


# --- the rig file ---------------------------------------------------------------------------------


def test_example_rig_file_wires_every_device_id_the_scenarios_use(example: RigFile) -> None:
    assert example.rig.kind == "physical" and set(example.rig.fixtures) <= set(FIXTURES)
    assert example.path == str(EXAMPLE)
    ids = {"button-1", "cord-1", "bed", "door", "dispenser", "espa", "ble-button", "ble-door"}
    assert set(example.device) == ids
    b = example.device["button-1"]
    assert isinstance(b, GpioWiring) and (b.drive_pin, b.hub_pin, b.led_sense_pin, b.hub_led_pin) == (5, 17, 6, 27)
    assert isinstance(example.device["bed"], SerialWiring) and example.device["bed"].protocol == "bedmat"
    assert isinstance(example.device["ble-button"], BleWiring) and example.device["ble-button"].bindkey
    assert example.broker.control is not None and example.broker.control.unit == "mosquitto"
    assert example.hub.unit == "carehub" and example.ble is not None and example.ble.adapter == "hci1"


@pytest.mark.parametrize(("mistake", "key"), [
    ('fixtures = ["gpio_loopbak"]', "rig.fixtures"),
    ('fixtures = []\nbogus = 1', "bogus"),
])
def test_a_bad_rig_file_is_refused_naming_the_file_and_the_key(tmp_path: Path, mistake: str, key: str) -> None:
    path = write_rig(tmp_path, f'[rig]\nname = "r"\nkind = "physical"\n{mistake}\n')
    with pytest.raises(Exception) as err:
        load_rig(path)
    msg = str(err.value)
    assert str(path) in msg and (key in msg or key.replace(".", "`.`") in msg or f"$.{key}" in msg), msg
    try:
        import hil.loader  # noqa: F401
    except ImportError:
        return
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: .*{re.escape(key)}", msg), msg  # once the loader is merged


@pytest.mark.parametrize("device", [
    'wiring = "gpio"\ndrive_pin = 40',          # no such BCM pin
    'wiring = "relay"\npin = 3',                # unknown wiring
    'wiring = "serial"\nprotocol = "modbus"',   # unknown protocol
    'wiring = "ble"\naddress = "nope"',
    'wiring = "gpio"\ndrive_pin = 5\nled_pin = 6',  # a hub-config key, not a rig-file one
])
def test_device_wiring_is_checked_as_it_loads(tmp_path: Path, device: str) -> None:
    path = write_rig(tmp_path, f'[rig]\nname = "r"\nkind = "physical"\n[device.x]\n{device}\n')
    with pytest.raises(Exception, match="device"):
        load_rig(path)


def test_toml_writer_round_trips_the_example_configs() -> None:
    for p in [*(REPO / "config" / "examples").glob("*.toml"), EXAMPLE]:
        data = tomllib.loads(p.read_text())
        assert tomllib.loads(dumps(data)) == data, p
    merged = deep_merge({"alarm": {"a": 1, "b": 2}, "x": [1]}, {"alarm": {"b": 3}, "x": [2]})
    assert merged == {"alarm": {"a": 1, "b": 3}, "x": [2]}


# --- the LED classifier ---------------------------------------------------------------------------

PATTERNS = {
    "fast_blink": [(1, 0.1), (0, 0.1)],
    "slow_blink": [(1, 0.5), (0, 0.5)],
    "fault": [(1, 0.1), (0, 0.15)] * 3 + [(0, 1.0)],
}


def synth(pattern: str, start: float, window: float, jitter: float, dt: float, rnd: random.Random,
          then: str | None = None, change_at: float = 0.0) -> list[tuple[float, int]]:
    """Samples of ``pattern`` (each run's length off by up to ``jitter``, as a busy Pi's timers are) taken
    every ``dt`` (itself jittered) from ``start`` for ``window`` s; ``then``: the pattern after ``change_at``."""

    def runs(p: str, t0: float, t_end: float) -> list[tuple[float, float, int]]:
        if p in ("steady", "off"):
            return [(t0, t_end, int(p == "steady"))]
        out, t = [], t0
        while t < t_end:
            for level, d in PATTERNS[p]:
                d = max(0.01, d + rnd.uniform(-jitter, jitter))
                out.append((t, t + d, level))
                t += d
        return out

    end = start + window + 1
    segs = runs(pattern, 0.0, change_at if then else end)
    if then:
        segs = [s for s in segs if s[0] < change_at]
        segs[-1] = (segs[-1][0], change_at, segs[-1][2])
        segs += runs(then, change_at, end)
    out, t, i = [], start, 0
    while t <= start + window:
        while segs[i][1] <= t:
            i += 1
        out.append((t, segs[i][2]))
        t += dt * rnd.uniform(0.5, 1.5)
    return out


PATTERN = st.sampled_from(["fast_blink", "slow_blink", "fault", "steady", "off"])


@settings(max_examples=300, deadline=None)
@given(PATTERN, st.floats(0, 2.0), st.floats(0, 0.04), st.floats(0.001, 0.01), st.integers(0, 2**32))
def test_classifier_names_each_pattern_over_a_window_despite_jitter(
    pattern: str, start: float, jitter: float, dt: float, seed: int
) -> None:
    samples = synth(pattern, start, WINDOW_S, jitter, dt, random.Random(seed))
    assert classify(samples) == pattern


@settings(max_examples=300, deadline=None)
@given(PATTERN, st.floats(0, 2.0), st.floats(0.2, WINDOW_S), st.floats(0, 0.04), st.integers(0, 2**32))
def test_classifier_on_a_short_window_is_right_or_says_unsettled(
    pattern: str, start: float, window: float, jitter: float, seed: int
) -> None:
    samples = synth(pattern, start, window, jitter, 0.005, random.Random(seed))
    assert classify(samples) in (pattern, "unsettled")


@settings(max_examples=200, deadline=None)
@given(PATTERN, PATTERN, st.floats(0.1, 2.9), st.integers(0, 2**32))
def test_classifier_after_a_change_never_names_a_third_pattern(old: str, new: str, at: float, seed: int) -> None:
    """The LED changes inside the window (fast -> slow on the broker's ack): the answer is the old pattern
    (what most of the window shows), the new one, or 'unsettled' (the rig samples on), never a pattern
    the LED did not show; and a new pattern on for 3 s is named."""
    samples = synth(old, 0.0, WINDOW_S, 0.02, 0.005, random.Random(seed), then=new, change_at=at)
    assert classify(samples) in (old, new, "unsettled")
    later = synth(old, 0.0, WINDOW_S + at, 0.02, 0.005, random.Random(seed), then=new, change_at=at)
    assert classify([s for s in later if s[0] >= at]) == new


def test_classifier_edge_cases() -> None:
    assert classify([]) == "unsettled"
    assert classify([(0.0, 1), (0.5, 1)]) == "unsettled"  # too short to call steady
    assert classify([(0.0, 1), (1.4, 1)]) == "steady"
    assert classify([(0.0, 0), (1.4, 0)]) == "off"
