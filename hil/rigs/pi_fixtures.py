"""The physical rig's fixtures, one small class per kind of wiring.

Each takes the gpiozero pin factory it is given (never ``Device.pin_factory``), so
the tests run them on gpiozero's ``MockFactory``, with ``MockConnectedPin``
standing in for the wire between the rig's pin and the hub's.

* :class:`LoopbackButton` -- an output wired to the hub's button input: pressing
  drives it low, as the resident's button shorts the input (pulled up) to ground;
* :class:`LedSense` -- an input wired from the hub's LED (or buzzer) output,
  sampled over a window and classified by :func:`hil.rigs.ledpattern.classify`;
* :class:`Relay` -- an output driving a relay (the hub Pi's supply, for power_cut);
* :class:`UartEmulator` -- a serial device's emulator playing on a USB-serial
  adapter whose null-modem partner is the hub's port.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from gpiozero import DigitalOutputDevice, Factory, InputDevice

from hil.fixtures import RigError
from hil.harness.emulators import EmulatedDevice
from hil.rigs.ledpattern import SETTLED_S, WINDOW_S, State, classify

log = structlog.get_logger("hil.rigs.pi_fixtures")


class LoopbackButton:
    """The rig's output ``drive_pin`` wired (through a 330 ohm resistor) to a hub button input.

    Active low: idle, the pin is high and the hub's input reads released; pressed, it
    is low. Each method returns the edge's instant, ``time.monotonic()`` read right
    after the pin was written.
    """

    def __init__(self, drive_pin: int, *, factory: Factory, sleep: Callable[[float], None] = time.sleep) -> None:
        self.pin = drive_pin
        self.out = DigitalOutputDevice(drive_pin, active_high=False, initial_value=False, pin_factory=factory)
        self._sleep = sleep

    def hold(self) -> float:
        """Press and keep it pressed; the press edge's instant."""
        self.out.on()
        return time.monotonic()

    def release(self) -> float:
        """Let go; the release edge's instant."""
        self.out.off()
        return time.monotonic()

    def press(self, hold_s: float) -> float:
        """Press, wait ``hold_s``, let go; the press edge's instant."""
        t = self.hold()
        try:
            self._sleep(hold_s)
        finally:
            self.release()
        return t

    def close(self) -> None:
        """Release the pin (it goes back to an input; the hub's pull-up keeps its input released)."""
        self.out.close()


class LedSense:
    """The rig's input ``sense_pin``, wired from a hub LED or buzzer output (lit = high).

    :meth:`read` samples it every ``sample_s`` and, from :data:`~hil.rigs.ledpattern.SETTLED_S`
    on, classifies the last ``window_s`` of samples until the pattern is decided (a steady
    LED after 1.3 s, a fast blink after about 2.5 s), or ``max_s`` has passed.
    """

    def __init__(
        self, sense_pin: int, *, factory: Factory, window_s: float = WINDOW_S, sample_s: float = 0.005,
        max_s: float | None = None,
    ) -> None:
        self.pin = sense_pin
        self.dev = InputDevice(sense_pin, pull_up=False, pin_factory=factory)
        self.window_s = window_s
        self.sample_s = sample_s
        self.max_s = max_s if max_s is not None else 2 * window_s

    def read(self) -> State:
        """The pattern the output shows now: off, steady, fast_blink, slow_blink, fault, checkin (or unsettled)."""
        start = last_try = time.monotonic()
        samples: deque[tuple[float, int]] = deque()
        state: State = "unsettled"
        while True:
            now = time.monotonic()
            samples.append((now, int(self.dev.value)))
            while now - samples[0][0] > self.window_s:
                samples.popleft()
            if now - start >= SETTLED_S and now - last_try >= 0.05:
                last_try = now
                state = classify(samples)
                if state != "unsettled" or now - start >= self.max_s:
                    break
            time.sleep(self.sample_s)
        log.debug("led_sensed", pin=self.pin, state=state, samples=len(samples), took_s=round(now - start, 3))
        return state

    def close(self) -> None:
        self.dev.close()


class Relay:
    """A relay on an output of the rig; :meth:`cut` opens the circuit it is in."""

    def __init__(self, pin: int, *, factory: Factory, active_high: bool = True) -> None:
        self.pin = pin
        self.out = DigitalOutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=factory)

    def cut(self) -> float:
        self.out.on()
        return time.monotonic()

    def restore(self) -> float:
        self.out.off()
        return time.monotonic()

    @property
    def cutting(self) -> bool:
        return bool(self.out.value)

    def close(self) -> None:
        self.out.close()


class UartEmulator:
    """``python -m drivers.serial.emulator PROTOCOL --port PORT --control SOCK``: the device played on
    the rig's USB-serial adapter ``port``, whose null-modem partner is the hub's port.

    A thin wrapper of :class:`hil.harness.emulators.EmulatedDevice` (which the virtual rig
    runs on ptys), so both rigs speak to their emulators the same way.
    """

    def __init__(self, port: str, protocol: str, *, workdir: Path, name: str) -> None:
        self.port, self.protocol = port, protocol
        self.device = EmulatedDevice(protocol, workdir, name, port=port)

    def start(self) -> UartEmulator:
        if not Path(self.port).exists():
            raise RigError(f"{self.port}: no such serial port (is the adapter plugged in? see hil/README.md)")
        try:
            self.device.start()
        except AssertionError as exc:
            raise RigError(f"emulator {self.protocol} on {self.port} did not start: {exc}") from None
        return self

    def send(self, what: str, args: dict[str, Any]) -> float:
        """Send one frame (``what``: occupancy, dose_due, call, corrupt...); the instant it was written."""
        self.device.send(what, **args)
        return time.monotonic()

    def state(self) -> dict[str, Any]:
        return self.device.state()

    def stop(self) -> None:
        self.device.stop()
