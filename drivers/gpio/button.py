"""An alarm button or pull-cord on a GPIO pin.

The press is reported on the falling edge (pressed), not on release: an alarm
must leave the moment the resident presses. A press held for ``hold_s``
cancels the device's open alarm. While an alarm is already open, a new press
is only classified on release (a repeat alarm) or on hold (a cancel), so the
hold that cancels an alarm does not raise a second one.

The pin is a gpiozero :class:`~gpiozero.DigitalInputDevice` (pull-up,
debounce and the pin factory are gpiozero's). The hold is timed on the
asyncio loop (``call_later``) rather than by gpiozero's ``Button``, which
keeps a polling thread per button: on the loop there is no thread to wake
on every press, and a hold and a release can never race each other.

gpiozero calls back from its own threads on a real Pi; every callback is
passed to the asyncio loop with ``call_soon_threadsafe``. The simulated
factory calls back on the loop thread itself, so no hop is needed there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import DigitalInputDevice, Factory


@dataclass(frozen=True)
class ButtonHandlers:
    """What the daemon does on the loop for each gesture. ``t`` is the wall-clock time of the edge."""

    press: Callable[[float], None]
    hold: Callable[[float], None]
    release: Callable[[float, float], None]  # (t, how long it was held)


class AlarmButton:
    """A GPIO input whose press, hold and release reach the asyncio loop as gestures."""

    def __init__(
        self,
        pin: int | str,
        *,
        factory: Factory,
        handlers: ButtonHandlers,
        loop: asyncio.AbstractEventLoop,
        pull_up: bool = True,
        bounce_s: float = 0.02,
        hold_s: float = 3.0,
    ) -> None:
        self.handlers = handlers
        self.loop = loop
        self.hold_s = hold_s
        self.button = DigitalInputDevice(pin, pull_up=pull_up, bounce_time=bounce_s or None, pin_factory=factory)
        self._pressed_at = 0.0
        self._hold_timer: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()
        self.button.when_activated = self._edge_pressed
        self.button.when_deactivated = self._edge_released

    # gpiozero's side: any thread

    def _edge_pressed(self) -> None:
        self._on_loop(self._pressed, time.time())

    def _edge_released(self) -> None:
        self._on_loop(self._released, time.time())

    def _on_loop(self, fn: Callable[[float], None], t: float) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(t)
        else:
            self.loop.call_soon_threadsafe(fn, t)

    # the loop's side

    def _pressed(self, t: float) -> None:
        self._pressed_at = t
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._hold_timer = self.loop.call_later(self.hold_s, self._held)
        self.handlers.press(t)

    def _held(self) -> None:
        self._hold_timer = None
        self.handlers.hold(time.time())

    def _released(self, t: float) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.handlers.release(t, t - self._pressed_at)

    @property
    def is_pressed(self) -> bool:
        return bool(self.button.is_active)

    @property
    def pin(self) -> object:
        """The gpiozero pin (a :class:`~drivers.gpio.sim.SimPin` on the simulated factory)."""
        return self.button.pin

    def close(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.button.close()
