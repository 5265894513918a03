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
from hil.rigs.rigfile import BleWiring, Disk, GpioWiring, Power, RigFile, SerialWiring, load_rig
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


@settings(max_examples=300, deadline=None)
@given(PATTERN, PATTERN, st.floats(0.1, WINDOW_S), st.floats(0.3, WINDOW_S), st.integers(0, 2**32))
def test_classifier_after_a_change_never_names_a_third_pattern(
    old: str, new: str, at: float, window: float, seed: int
) -> None:
    """The LED changes inside the window (fast -> slow on the broker's ack): whatever the window's length
    (the rig classifies from 1.3 s on), the answer is the old pattern, the new one, or 'unsettled' (the rig
    samples on), never a pattern the LED did not show; and a new pattern on for a whole window is named."""
    seq = synth(old, 0.0, 2 * WINDOW_S + at, 0.02, 0.005, random.Random(seed), then=new, change_at=at)
    start = max(0.0, at + 0.05 - window)  # windows that end just after the change and later
    for end in (at + 0.05, at + window / 2, at + window):
        assert classify([s for s in seq if start <= s[0] <= end]) in (old, new, "unsettled")
    assert classify([s for s in seq if at <= s[0] <= at + WINDOW_S]) == new


def test_classifier_edge_cases() -> None:
    assert classify([]) == "unsettled"
    assert classify([(0.0, 1), (0.5, 1)]) == "unsettled"  # too short to call steady
    assert classify([(0.0, 1), (1.4, 1)]) == "steady"
    assert classify([(0.0, 0), (1.4, 0)]) == "off"


# --- the fixtures on MockFactory: the loopback wire and the hub's own GPIO code -------------------


def test_loopback_press_reaches_the_hubs_button_at_the_edge_instant() -> None:
    """GPIO5 (rig) wired to GPIO17 (hub, pull-up): the hub's own AlarmButton sees the press at the instant
    the rig returns, held for hold_s, released after."""
    factory = MockFactory()
    hub_pin = factory.pin(17)
    factory.pin(5, pin_class=MockConnectedPin, input_pin=hub_pin)
    seen: list[tuple[str, float]] = []
    loop = asyncio.new_event_loop()
    try:
        button = AlarmButton(17, factory=factory, loop=loop, bounce_s=0, hold_s=3.0, handlers=ButtonHandlers(
            press=lambda t: seen.append(("press", time.monotonic())),
            hold=lambda t: seen.append(("hold", time.monotonic())),
            release=lambda t, held: seen.append(("release", time.monotonic())),
        ))
        rig = LoopbackButton(5, factory=factory)
        assert hub_pin.state is True and not button.is_pressed  # idle: high, the hub reads released
        before, n = time.monotonic(), len(hub_pin.states)
        edge = rig.press(0.05)
        assert before <= edge
        assert [k for k, _ in seen] == ["press", "release"]
        (_, t_press), (_, t_release) = seen
        assert abs(t_press - edge) < 0.005  # the hub saw the edge when the rig says it made it
        assert t_release - t_press >= 0.05
        changes = hub_pin.states[n:]  # (time since the previous change, new state) of the hub's pin
        assert [c.state for c in changes] == [False, True]  # pulled low once, back high
        assert changes[1].timestamp >= 0.05  # low for hold_s
        seen.clear()
        t_hold = rig.hold()
        assert button.is_pressed and hub_pin.state is False and seen[0][0] == "press"
        assert rig.release() >= t_hold and not button.is_pressed
        button.close()
        rig.close()
    finally:
        loop.close()


def _run_indicator(factory: MockFactory, mode: FeedbackMode) -> Iterator[GpioIndicator]:
    """The hub's own LED code on GPIO27 showing ``mode`` on an asyncio loop in a thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, GpioIndicator] = {}

    def show() -> None:
        holder["ind"] = GpioIndicator(led_pin=27, factory=factory)
        holder["ind"].show(mode)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    loop.call_soon_threadsafe(show)
    ready.wait(5)
    try:
        yield holder["ind"]
    finally:
        loop.call_soon_threadsafe(holder["ind"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize("mode", [FeedbackMode.FAST, FeedbackMode.FAULT, FeedbackMode.STEADY, FeedbackMode.OFF])
def test_led_sense_reads_the_hubs_led_pattern_through_the_wire(mode: FeedbackMode) -> None:
    """GPIO27 (the hub's LED output) wired to GPIO6 (rig sense): the rig names the pattern the hub shows."""
    factory = MockFactory()
    factory.pin(27, pin_class=MockConnectedPin, input_pin=factory.pin(6))
    sense = LedSense(6, factory=factory)
    expected = {FeedbackMode.FAST: "fast_blink", FeedbackMode.FAULT: "fault",
                FeedbackMode.STEADY: "steady", FeedbackMode.OFF: "off"}[mode]
    for _ in _run_indicator(factory, mode):
        t0 = time.monotonic()
        assert sense.read() == expected
        assert time.monotonic() - t0 < WINDOW_S + 0.5
    sense.close()


def test_uart_emulator_plays_the_device_on_a_real_serial_port(tmp_path: Path) -> None:
    """The emulator on the rig's port (here a pty's device end): the hub's end (the master) gets the frame."""
    master, slave = os.openpty()
    try:
        emu = UartEmulator(os.ttyname(slave), "bedmat", workdir=tmp_path, name="bed").start()
        try:
            t0 = time.monotonic()
            t = emu.send("occupancy", {"state": "out"})
            assert t >= t0
            got = b""
            deadline = time.monotonic() + 5
            while b"\n" not in got and time.monotonic() < deadline:
                got += os.read(master, 256)
            assert got.startswith(b"$BED,") and b",OUT," in got, got
        finally:
            emu.stop()
    finally:
        os.close(master)
        os.close(slave)


def test_uart_emulator_on_a_missing_adapter_is_a_rig_error(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="no such serial port"):
        UartEmulator("/dev/serial/by-id/usb-none", "bedmat", workdir=tmp_path, name="x").start()


# --- BLE: the raw HCI advert ------------------------------------------------------------------------

KEY = "231d39c1d7cc1ab1aee224cd096db932"


def _adv_data(argv: tuple[str, ...]) -> bytes:
    """The AD bytes of an LE Set Advertising Data command."""
    raw = bytes(int(x, 16) for x in argv[6:])
    return raw[1 : 1 + raw[0]]


def test_ble_advertiser_sends_the_hci_commands_for_an_encrypted_bthome_advert() -> None:
    runner = FakeRunner()
    adv = BleAdvertiser(runner, adapter="hci1", advert_s=0.05, counter_start=41)
    t = adv.advertise("ble-button", {"button": "press", "battery": 80}, address="C4:7C:8D:6A:00:01", bindkey=KEY)
    cmds = [a for a, _ in runner.calls]
    assert [c[:6] for c in cmds] == [("hcitool", "-i", "hci1", "cmd", "0x08", ocf)
                                     for ocf in ("0x000a", "0x0005", "0x0006", "0x0008", "0x000a")]
    assert cmds[0][6:] == ("00",) and cmds[4][6:] == ("01",)
    assert cmds[1][6:] == ("01", "00", "6a", "8d", "7c", "c4")  # the address, least significant byte first
    assert cmds[2][10:12] == ("03", "01")  # non-connectable, from the random (static) address
    ad = _adv_data(cmds[3])
    assert ad[:3] == bytes([2, 1, 6]) and ad[4:7] == bytes([0x16, 0xD2, 0xFC])
    decoded = bthome.decode(ad[7 : 3 + ad[3] + 1], mac="C4:7C:8D:6A:00:01", bindkey=KEY)
    assert decoded.encrypted and decoded.counter == 42 and decoded.buttons == ("press",)
    assert {m.name: m.value for m in decoded.values}["battery"] == 80
    assert t <= time.monotonic()
    time.sleep(0.2)  # advert_s later it is taken off the air
    assert runner.calls[-1][0][4:] == ("0x08", "0x000a", "00") and len(runner.calls) == 6
    adv.advertise("ble-button", {}, address="ignored", bindkey=None, replay=True)
    assert _adv_data(runner.calls[-2][0]) == ad  # byte for byte
    second = adv.advertise("ble-button", {"button": "press"}, address="C4:7C:8D:6A:00:01", bindkey=KEY)
    assert bthome.decode(_adv_data(runner.calls[-2][0])[7:], mac="C4:7C:8D:6A:00:01", bindkey=KEY).counter == 43
    assert second > t
    adv.stop()


def test_ble_advertiser_refuses_what_a_bench_cannot_send() -> None:
    adv = BleAdvertiser(FakeRunner(), counter_start=1)
    with pytest.raises(RigError, match="static random"):
        adv.advertise("x", {"opening": 1}, address="12:34:56:78:9A:BC", bindkey=None)
    with pytest.raises(RigError, match="no BTHome object"):
        adv.advertise("x", {"pressure_of_doom": 1}, address="C4:00:00:00:00:01", bindkey=None)
    with pytest.raises(RigError, match="not advertised yet"):
        adv.advertise("y", {}, address="C4:00:00:00:00:01", bindkey=None, replay=True)
    plain = adv.service_data({"opening": 1}, address="C4:00:00:00:00:01", bindkey=None)
    again = adv.service_data({"opening": 1}, address="C4:00:00:00:00:01", bindkey=None)
    p1, p2 = (bthome.decode(d, mac="C4:00:00:00:00:01") for d in (plain, again))
    assert p1.packet_id != p2.packet_id  # the hub drops repeats of one packet id; each advert is new
    assert [m.value for m in p1.states] == [True]


# --- --dry-run -----------------------------------------------------------------------------------

PRESS_ACK = [{"do": "press", "device": "button-1", "mark": "edge"},
             {"do": "expect_event", "type": "alarm.button", "mark": "alarm"},
             {"do": "ack", "event": "alarm"},
             {"do": "expect_feedback", "device": "button-1", "state": "steady"}]


def test_dry_run_of_the_example_rig(example: RigFile) -> None:
    scenarios = [
        scenario(PRESS_ACK, name="press_ack"),
        scenario([{"do": "power_cut"}, {"do": "disk_fill"}], name="power_cut"),
        scenario([{"do": "unplug", "device": "bed"}, {"do": "replug", "device": "bed"}], name="serial_unplug"),
        scenario([{"do": "advertise", "device": "ble-button", "values": {"button": "press"}},
                  {"do": "advertise", "device": "ble-button", "replay": True}], name="ble_encrypted_button"),
        scenario([{"do": "repeat", "times": 3, "steps": [{"do": "press", "device": "button-9"}]},
                  {"do": "advertise", "device": "bed"}], name="miswired"),
        scenario([{"do": "wait", "ms": 1}], name="bad_config", needs=["check_config"]),
    ]
    report = check_rig(example, scenarios)
    by = {s.name: s for s in report.scenarios}
    assert report.problems == []
    assert by["press_ack"].verdict == "runs" and by["serial_unplug"].verdict == "runs"
    assert by["ble_encrypted_button"].verdict == "runs"
    assert (by["power_cut"].verdict, by["power_cut"].missing) == ("skip", ["disk_fill", "power_cut"])
    assert (by["bad_config"].verdict, by["bad_config"].missing) == ("skip", ["check_config"])
    assert by["miswired"].verdict == "problems"
    assert by["miswired"].problems == ["step 1.1 (press): device 'button-9' is not in the rig file",
                                       "step 2 (advertise): device 'bed' is wired as serial, the step needs ble"]
    text = report.render()
    assert re.search(r"power_cut\s+skip\s+lacks disk_fill, power_cut", text)
    assert "2 run" not in text and "3 run, 2 skipped, 1 with problems" in text
    assert not report.ok


def test_dry_run_finds_fixtures_declared_without_their_wiring(tmp_path: Path) -> None:
    path = write_rig(tmp_path, '''
[rig]
name = "half-wired"
kind = "physical"
fixtures = ["gpio_loopback", "led_readback", "uart_loopback", "ble_fault", "power_cut", "net_cut", "hub_control"]
[device.button-1]
wiring = "gpio"
hub_pin = 17
hub_led_pin = 27
[device.cord-1]
wiring = "gpio"
drive_pin = 12
hub_pin = 12
[device.bed]
wiring = "serial"
protocol = "bedmat"
hub_port = "/dev/ttyUSB0"
''')
    rig = load_rig(path)
    report = check_rig(rig, [
        scenario([{"do": "press", "device": "button-1"}], name="press"),
        scenario([{"do": "serial", "device": "bed", "send": "occupancy"}, {"do": "unplug", "device": "bed"}],
                 name="unplug"),
        scenario([{"do": "net_cut"}, {"do": "hub_kill"}], name="net"),
        scenario([{"do": "ble_fault", "kind": "in_progress"}], name="ble"),
    ])
    problems = {(p.fixture, p.message) for p in report.problems}
    assert (None, "GPIO12 used twice: device.cord-1.drive_pin and device.cord-1.hub_pin") in problems
    assert ("gpio_loopback", "device.button-1: no drive_pin (the rig output wired to the hub's input)") in problems
    assert ("led_readback", "device.button-1: hub_led_pin = 27 but no led_sense_pin reads it back") in problems
    assert ("led_readback", "declared, but no device has a sense pin") in problems
    assert ("uart_loopback", "device.bed: no port (the rig's adapter its emulator plays on)") in problems
    assert ("ble_fault", "declared, but no [ble] hub_usb (the hub's dongle, which adapter_gone unplugs)") in problems
    assert {p.fixture for p in report.problems} >= {"power_cut"}
    by = {s.name: s for s in report.scenarios}
    assert by["press"].verdict == "problems"
    assert "step 1 (press): device 'button-1' has no drive_pin" in by["press"].problems
    assert "step 2 (unplug): device 'bed' has no port for its emulator" in by["unplug"].problems
    assert not any("gpio_loopback" in p for p in by["unplug"].problems)  # only what this scenario needs
    assert by["net"].problems == ["GPIO12 used twice: device.cord-1.drive_pin and device.cord-1.hub_pin"]
    assert "step 1 (ble_fault): BlueZ's InProgress cannot be provoked on real hardware" in by["ble"].problems


def test_dry_run_checks_the_wires_against_the_hubs_config(example: RigFile) -> None:
    hub = tomllib.loads(BENCH_CONFIG)  # button-1 on 17 with its LED on 27; nothing else
    hub["device"][0]["gpio"]["led_pin"] = 26
    report = check_rig(example, [scenario(PRESS_ACK, name="press_ack")], hub_config=hub)
    msgs = [p.message for p in report.problems]
    assert "device.button-1: hub_led_pin = 27, but the hub config's button-1 has led_pin = 26" in msgs
    assert "device.cord-1: no device in the hub config has its input on GPIO23" in msgs
    assert any(m.startswith("device.bed: no device in the hub config reads /dev/serial/by-id/") for m in msgs)
    assert "device.ble-button: no device in the hub config has address C4:7C:8D:6A:00:01" in msgs
    assert report.scenarios[0].verdict == "problems"


# --- PhysicalRig's steps against a fake runner and MockFactory ---------------------------------------


class FakeCentral:
    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bench(example: RigFile, tmp_path: Path) -> Iterator[tuple[PhysicalRig, FakeRunner, dict[str, str]]]:
    state = {"unit": "inactive"}
    runner = FakeRunner(bench_answers(state))
    rig = PhysicalRig(example, factory=mock_bench(example), runner=runner, central_factory=FakeCentral,
                      sleep=lambda s: None)
    yield rig, runner, state
    rig.close()


def test_setup_writes_the_scenario_config_and_starts_the_unit(bench: Any, tmp_path: Path) -> None:
    rig, runner, state = bench
    rig.setup(scenario(PRESS_ACK, config={"alarm": {"ack_timeout_s": 2}}), tmp_path)
    written = {a[1]: data for a, data in runner.calls if a[0] == "tee"}
    cfg = tomllib.loads(written["/etc/carehub/hub.hil.toml"])
    assert cfg["alarm"]["ack_timeout_s"] == 2 and cfg["hub"]["id"] == "minimal-hub"  # merged over the bench's
    assert cfg["log"]["format"] == "json" and cfg["store"]["dir"] == "/var/lib/carehub/hil"
    dropin = written["/run/systemd/system/carehub.service.d/hil.conf"]
    assert "ExecStart=\nExecStart=/opt/carehub/.venv/bin/carehub run --config /etc/carehub/hub.hil.toml" in dropin
    cmds = runner.argvs()
    order = [cmds.index(c) for c in ("systemctl stop carehub", "systemctl daemon-reload",
                                      "rm -rf --one-file-system /var/lib/carehub/hil", "systemctl start carehub")]
    assert order == sorted(order)
    assert isinstance(rig.central, FakeCentral) and rig.central.broker.port == 8883
    assert rig.taken() == ["id-1", "id-3"]  # alarms stored or held, once each; not the device.online
    assert rig.info()["config_hash"] and rig.info()["fixtures"] == sorted(rig.fixtures)
    runner.calls.clear()
    rig.teardown()
    cmds = runner.argvs()
    assert "systemctl stop carehub" in cmds
    assert "rm -f /run/systemd/system/carehub.service.d/hil.conf /etc/carehub/hub.hil.toml" in cmds
    assert "systemctl start carehub" not in cmds  # it was not running before the rig
    assert not any(c.startswith("nft") for c in cmds)  # no fault was made, none undone


def test_hub_kill_is_systemctl_kill_9_and_the_restart_is_cancelled(bench: Any) -> None:
    rig, runner, state = bench
    state["unit"] = "active"
    rig.hub_kill(restart=False)
    assert runner.argvs() == [
        "systemctl kill -s KILL carehub",
        "systemctl show -p ActiveState -p InvocationID --value carehub",  # dead? (activating: auto-restart pending)
        "systemctl stop carehub",                                          # cancel Restart=always
    ]
    runner.calls.clear()
    rig.hub_kill(restart=True)
    cmds = runner.argvs()
    assert cmds[0] == "systemctl kill -s KILL carehub" and "systemctl start carehub" in cmds
    assert cmds[-1].startswith("journalctl -u carehub -o json") and cmds[-1].endswith("--after-cursor c1")


def test_hub_start_waits_for_the_birth_and_says_why_when_it_never_comes(example: RigFile) -> None:
    state = {"unit": "inactive"}
    answers = bench_answers(state)

    def no_birth(argv: tuple[str, ...], data: str | None) -> Result | None:
        if argv[:2] == ("journalctl", "-u") and "json" in argv:
            return Result(argv, 0, "")
        if argv[:2] == ("journalctl", "-u"):
            return Result(argv, 0, '{"event": "link_connect_failed", "error": "connection refused"}\n')
        return answers(argv, data)

    clock = iter(range(0, 1000, 10))
    rig = PhysicalRig(example, factory=mock_bench(example), runner=FakeRunner(no_birth), central_factory=FakeCentral,
                      sleep=lambda s: None)
    rig.service.clock = lambda: float(next(clock))
    with pytest.raises(RigError, match=r"did not come online within 60 s \(unit active\):\n.*link_connect_failed"):
        rig.hub_start()
    rig.close()


def test_broker_network_and_cable_steps_run_the_documented_commands(bench: Any) -> None:
    rig, runner, _ = bench
    rig.broker_stop()
    rig.broker_start()
    assert runner.argvs() == ["systemctl stop mosquitto", "systemctl start mosquitto"]
    runner.calls.clear()
    rig.net_cut()
    (argv, ruleset), = runner.calls
    assert argv == ("nft", "-f", "-")
    assert 'meta skuid "carehub" ct mark set 0x4c1 drop' in ruleset and "hook input" in ruleset
    runner.calls.clear()
    rig.net_impair(100, 10, 5)
    assert runner.argvs()[1:] == [
        "tc qdisc replace dev lo root handle 1: prio bands 4",
        "tc qdisc replace dev lo parent 1:4 handle 40: netem delay 100ms 10ms loss 5%",
        "tc filter replace dev lo parent 1: protocol all prio 1 handle 0x4c2 fw flowid 1:4",
    ]
    assert 'meta skuid "carehub" meta mark set 0x4c2' in runner.calls[0][1]
    assert "ct mark set 0x4c1 drop" in runner.calls[0][1]  # the cut still stands
    runner.calls.clear()
    rig.net_restore()
    assert runner.calls[0][1] == "table inet carehub_hil\ndelete table inet carehub_hil\n"
    assert runner.argvs()[1] == "tc qdisc del dev lo root"
    runner.calls.clear()
    rig.unplug("bed")
    rig.replug("bed")
    assert runner.calls == [(("tee", "/sys/bus/usb/devices/1-1.1.2/authorized"), "0\n"),
                            (("tee", "/sys/bus/usb/devices/1-1.1.2/authorized"), "1\n")]


def test_press_and_feedback_through_the_rig_reach_the_hub_pins(bench: Any) -> None:
    rig, runner, _ = bench
    hub_in = rig.factory.pin(17)
    hub_in.function = "input"  # as the hub's DigitalInputDevice sets it
    n = len(hub_in.states)
    rig.press("button-1", 0.02)
    assert [s.state for s in hub_in.states[n:]] == [False, True]
    hub_led = rig.factory.pin(27)
    hub_led.function = "output"
    hub_led.state = True
    assert rig.feedback("button-1", "led") == "steady"
    with pytest.raises(RigError, match="no buzzer_sense_pin"):
        rig.feedback("cord-1", "buzzer")
    with pytest.raises(RigError, match="no gpio wiring"):
        rig.press("bed", 0.05)
    assert runner.calls == []  # pins only, no program run


def test_what_the_pi_rig_cannot_do_is_a_rig_error_not_a_hub_failure(bench: Any) -> None:
    rig, runner, _ = bench
    with pytest.raises(RigError, match="check_config"):
        rig.check_config({}, "")
    with pytest.raises(RigError, match="InProgress"):
        rig.ble_fault("in_progress", 1, False)
    with pytest.raises(RigError, match=r"no \[power\]"):
        rig.power_cut(True)
    with pytest.raises(RigError, match=r"no \[disk\]"):
        rig.disk_fill()
    with pytest.raises(RigError, match="no hub_usb"):
        rig.ble_fault("adapter_gone", 1, False)
    rig.ble_fault("silent", 1, False)
    assert runner.argvs() == ["systemctl restart bluetooth"]


def test_clock_step_turns_ntp_off_once_and_back_on_at_teardown(bench: Any, tmp_path: Path) -> None:
    rig, runner, _ = bench
    rig.setup(scenario([{"do": "clock_step", "seconds": 3600}], start=False), tmp_path)
    runner.calls.clear()
    rig.clock_step(3600)
    rig.clock_step(-0.5)
    assert runner.argvs() == ["timedatectl set-ntp false", "date +%s.%N", "date -s @4600.250",
                              "date +%s.%N", "date -s @999.750"]
    runner.calls.clear()
    rig.teardown()
    assert runner.argvs()[0] == "timedatectl set-ntp true"


def test_power_cut_and_disk_fill_on_a_two_machine_bench(example: RigFile) -> None:
    rig_file = msgspec.structs.replace(
        example, rig=msgspec.structs.replace(example.rig, fixtures=[*example.rig.fixtures, "power_cut", "disk_fill"]),
        hub=msgspec.structs.replace(example.hub, ssh="pi@hub.local"),
        power=Power(relay_pin=26, off_s=2), disk=Disk(fill_file="/var/lib/carehub/hil-fill"),
    )
    local, remote = FakeRunner(), FakeRunner(bench_answers({"unit": "active"}))
    slept: list[float] = []
    rig = PhysicalRig(rig_file, factory=mock_bench(rig_file), runner=local, hub_runner=remote,
                      central_factory=FakeCentral, sleep=slept.append)
    relay = rig.factory.pin(26)
    rig.power_cut(restart=False)
    assert relay.state is True and slept == [2] and rig.relay is not None and rig.relay.cutting
    rig.hub_start()  # power back, then wait for the birth after the cut
    assert relay.state is False
    assert rig.service.dropin.startswith("/etc/systemd/system/")  # the drop-in must outlive the reboot
    rig.disk_fill()
    assert remote.argvs()[-2:] == [
        "fallocate -l 4194304 /var/lib/carehub/hil-fill",
        "dd if=/dev/zero of=/var/lib/carehub/hil-fill bs=4096 oflag=append conv=notrunc",
    ]
    rig.disk_free()
    assert remote.argvs()[-1] == "rm -f /var/lib/carehub/hil-fill"
    assert local.calls == []  # every hub-side command went to the hub's machine
    rig.close()


def test_ssh_runner_quotes_the_command_for_the_remote_shell() -> None:
    via = FakeRunner()
    SshRunner("pi@hub.local", via).run(["tee", "/sys/bus/usb/devices/1-1.2/authorized"], input="0\n")
    (argv, data), = via.calls
    assert argv[:3] == ("ssh", "-o", "BatchMode=yes") and argv[-3:] == ("pi@hub.local", "--",
                                                                         "tee /sys/bus/usb/devices/1-1.2/authorized")
    assert data == "0\n"


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (apt-get install nftables)")
def test_the_nftables_ruleset_is_valid_nft() -> None:
    for cut, impair in ((True, False), (False, True), (True, True), (False, False)):
        text = hostops.nft_ruleset(user="root", cut=cut, impair=impair)
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
