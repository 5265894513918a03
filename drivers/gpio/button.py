"""An alarm button or pull-cord on a GPIO pin.

The press is reported on the falling edge (pressed), not on release: an alarm
must leave the moment the resident presses. A press held for ``hold_s``
cancels the device's open alarm. While an alarm is already open, a new press
is only classified on release (a repeat alarm) or on hold (a cancel), so the
hold that cancels an alarm does not raise a second one.

gpiozero calls back from its own threads on a real Pi; every callback is
passed to the asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import Button, Factory


@dataclass(frozen=True)
class ButtonHandlers:
    """What the daemon does on the loop for each gesture. ``t`` is the wall-clock time of the edge."""

    press: Callable[[float], None]
    hold: Callable[[float], None]
    release: Callable[[float, float], None]  # (t, how long it was held)


class AlarmButton:
    """A gpiozero :class:`~gpiozero.Button` whose gestures reach the asyncio loop."""

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
        self.button = Button(
            pin, pull_up=pull_up, bounce_time=bounce_s or None, hold_time=hold_s, pin_factory=factory
        )
        self._pressed_at = 0.0
        self._loop_thread = threading.get_ident()
        self.button.when_pressed = self._pressed
        self.button.when_held = self._held
        self.button.when_released = self._released

    def _call(self, fn: Callable[..., None], *args: float) -> None:
        # the simulated factory calls back on the loop thread itself: no need for a hop
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def _pressed(self) -> None:
        t = time.time()
        self._pressed_at = t
        self._call(self.handlers.press, t)

    def _held(self) -> None:
        self._call(self.handlers.hold, time.time())

    def _released(self) -> None:
        t = time.time()
        self._call(self.handlers.release, t, t - self._pressed_at)

    @property
    def is_pressed(self) -> bool:
        return bool(self.button.is_pressed)

    def close(self) -> None:
        self.button.close()
