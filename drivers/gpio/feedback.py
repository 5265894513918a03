"""The resident's feedback: an LED (and optional buzzer) that tells where the alarm stands.

| mode | LED | buzzer (on the change) |
| --- | --- | --- |
| ``FAST`` | 0.1 s on / 0.1 s off | - |
| ``SLOW`` | 0.5 s on / 0.5 s off | one short beep (the broker has it) |
| ``STEADY`` | on | three beeps (help is coming) |
| ``FAULT`` | three short pulses (0.1 s on / 0.15 s off), then 1 s dark, repeated | the same, three times over |
| ``CHECKIN`` | two long glows (0.9 s on / 0.3 s off), then off | two short chirps (all is well) |
| ``OFF`` | off | one long beep when cancelled |

``FAULT`` means the hub could not store the alarm (disk full, I/O error) and is
sending it from memory: a rhythm, not an even blink, so a resident or an
installer tells it from ``FAST`` and ``SLOW`` at a glance (the three-pulse
group is the common "attention" pattern of medical alarm signals).

``CHECKIN`` confirms the resident's daily check-in (a press of a check-in
button, or a BLE button's check-in gesture): played once, then dark. Its
glows are longer than any blink's on-time and it ends dark, so it is told from
``SLOW`` and ``FAST`` and from ``STEADY`` (help is coming, three beeps) at a
glance and by ear: two short chirps, never three.
"""

from __future__ import annotations

import asyncio

from gpiozero import LED, Buzzer, Factory, OutputDevice

from drivers.base import FeedbackMode

#: Blink timings (on, off) in seconds.
FAST = (0.1, 0.1)
SLOW = (0.5, 0.5)

#: Buzzer patterns (on, off, count) for the changes a resident must hear.
BEEP_HELP_COMING = (0.15, 0.15, 3)
BEEP_SENT = (0.1, 0.1, 1)
BEEP_CANCELLED = (0.6, 0.1, 1)

#: The FAULT pattern: ``pulses`` of (on, off) seconds, then ``pause`` seconds dark.
FAULT_PULSES = 3
FAULT_ON_OFF = (0.1, 0.15)
FAULT_PAUSE = 1.0
#: How many FAULT groups the buzzer sounds on entering FAULT (the LED repeats them until the mode changes).
FAULT_BEEP_GROUPS = 3

#: The CHECKIN glows (on, off, count), once; and its chirps on the buzzer.
CHECKIN_GLOW = (0.9, 0.3, 2)
BEEP_CHECKIN = (0.05, 0.1, 2)


async def _toggle(dev: OutputDevice, on_s: float, off_s: float, n: int | None) -> None:
    """Switch ``dev`` on and off ``n`` times (forever when None), ending off.

    A cancelled pattern stops where it is, without touching the pin again:
    whoever cancelled it sets the next state.
    """
    i = 0
    while n is None or i < n:
        dev.on()
        await asyncio.sleep(on_s)
        dev.off()
        await asyncio.sleep(off_s)
        i += 1


async def _groups(dev: OutputDevice, groups: int | None) -> None:
    """The FAULT rhythm on ``dev``: ``FAULT_PULSES`` short pulses, a pause; ``groups`` times (forever when None)."""
    i = 0
    while groups is None or i < groups:
        await _toggle(dev, *FAULT_ON_OFF, FAULT_PULSES)
        await asyncio.sleep(FAULT_PAUSE)
        i += 1


class GpioIndicator:
    """LED plus optional buzzer on GPIO pins; implements :class:`drivers.base.Indicator`.

    The pins are gpiozero output devices; blinking and beeping are timed by
    tasks on the asyncio loop rather than by gpiozero's ``blink``, which
    starts a thread for every pattern and joins it on the next change. So a
    change of pattern never waits for a thread, and ``show`` never blocks.
    Blinking and beeping need a running loop; ``STEADY`` and ``OFF`` do not.
    The patterns are in the module docstring.

    >>> from gpiozero.pins.mock import MockFactory
    >>> ind = GpioIndicator(led_pin=27, factory=MockFactory())
    >>> ind.show(FeedbackMode.STEADY); ind.led.value
    1
    """

    def __init__(self, *, led_pin: int | str | None, buzzer_pin: int | str | None = None, factory: Factory) -> None:
        self.led = LED(led_pin, pin_factory=factory) if led_pin is not None else None
        self.buzzer = Buzzer(buzzer_pin, pin_factory=factory) if buzzer_pin is not None else None
        self.mode = FeedbackMode.OFF
        self._blink: asyncio.Task[None] | None = None
        self._beep: asyncio.Task[None] | None = None

    def show(self, mode: FeedbackMode) -> None:
        """Switch the LED pattern; the buzzer sounds on the changes a resident must hear."""
        previous, self.mode = self.mode, mode
        if self.led is not None:
            self._blink = self._stop(self._blink)
            if mode is FeedbackMode.FAST:
                self._blink = asyncio.get_running_loop().create_task(_toggle(self.led, *FAST, None))
            elif mode is FeedbackMode.SLOW:
                self._blink = asyncio.get_running_loop().create_task(_toggle(self.led, *SLOW, None))
            elif mode is FeedbackMode.FAULT:
                self._blink = asyncio.get_running_loop().create_task(_groups(self.led, None))
            elif mode is FeedbackMode.CHECKIN:
                self._blink = asyncio.get_running_loop().create_task(_toggle(self.led, *CHECKIN_GLOW))
            elif mode is FeedbackMode.STEADY:
                self.led.on()
            else:
                self.led.off()
        if self.buzzer is not None and mode is not previous:
            if mode is FeedbackMode.FAULT:
                self._beep = self._stop(self._beep)
                self._beep = asyncio.get_running_loop().create_task(_groups(self.buzzer, FAULT_BEEP_GROUPS))
                return
            if previous is FeedbackMode.FAULT:
                self._beep = self._stop(self._beep)
                self.buzzer.off()
            beep = None
            if mode is FeedbackMode.STEADY:
                beep = BEEP_HELP_COMING
            elif mode is FeedbackMode.SLOW:
                beep = BEEP_SENT
            elif mode is FeedbackMode.CHECKIN:
                beep = BEEP_CHECKIN
            elif mode is FeedbackMode.OFF and previous not in (FeedbackMode.STEADY, FeedbackMode.CHECKIN):
                beep = BEEP_CANCELLED
            if beep is not None:
                self._beep = self._stop(self._beep)
                self._beep = asyncio.get_running_loop().create_task(_toggle(self.buzzer, *beep))

    @staticmethod
    def _stop(task: asyncio.Task[None] | None) -> None:
        if task is not None:
            task.cancel()
        return None

    def close(self) -> None:
        self._blink = self._stop(self._blink)
        self._beep = self._stop(self._beep)
        for dev in (self.led, self.buzzer):
            if dev is not None:
                dev.close()
