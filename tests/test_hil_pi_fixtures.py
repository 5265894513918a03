"""The physical rig's fixtures without a Pi: the LED classifier (hypothesis-made jitter and pattern changes),
the loopback button and the LED readback on gpiozero's MockFactory (the wire a MockConnectedPin, the hub's
side the hub's own AlarmButton and GpioIndicator), the UART emulator on a pty, the raw-HCI BTHome advert."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockConnectedPin, MockFactory
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivers.base import FeedbackMode
from drivers.ble import bthome
from drivers.gpio.button import AlarmButton, ButtonHandlers
from drivers.gpio.feedback import GpioIndicator
from hil.fixtures import RigError
from hil.rigs.commands import Result
from hil.rigs.ledpattern import WINDOW_S, classify
from hil.rigs.pi_ble import BleAdvertiser
from hil.rigs.pi_fixtures import LedSense, LoopbackButton, UartEmulator


class FakeRunner:
    """Records every command; each exits 0 with no output."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def run(self, argv: Any, *, input: str | None = None, timeout: float = 30.0, check: bool = True) -> Result:  # noqa: A002
        self.calls.append((tuple(str(a) for a in argv), input))
        return Result(tuple(argv), 0)


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
@example("fault", "fault", 3.0030341994645355, 1.2552668745115598, 3205158975)  # a pause cut to 0.649 s: not fast
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
