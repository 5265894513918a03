"""The resident's feedback: an LED (and optional buzzer) that tells where the alarm stands."""

from __future__ import annotations

from gpiozero import LED, Buzzer, Factory

from hub.alarms import FeedbackMode

#: Blink timings (on, off) in seconds.
FAST = (0.1, 0.1)
SLOW = (0.5, 0.5)


class GpioIndicator:
    """LED plus optional buzzer on GPIO pins; implements :class:`hub.alarms.Indicator`.

    gpiozero runs blinking and beeping on its own background thread; ``show``
    only switches the pattern and never blocks the loop.

    >>> from gpiozero.pins.mock import MockFactory
    >>> ind = GpioIndicator(led_pin=27, factory=MockFactory())
    >>> ind.show(FeedbackMode.STEADY); ind.led.value
    1
    """

    def __init__(self, *, led_pin: int | str | None, buzzer_pin: int | str | None = None, factory: Factory) -> None:
        self.led = LED(led_pin, pin_factory=factory) if led_pin is not None else None
        self.buzzer = Buzzer(buzzer_pin, pin_factory=factory) if buzzer_pin is not None else None
        self.mode = FeedbackMode.OFF

    def show(self, mode: FeedbackMode) -> None:
        """Switch the LED pattern; the buzzer sounds on the changes a resident must hear."""
        previous, self.mode = self.mode, mode
        if self.led is not None:
            if mode is FeedbackMode.FAST:
                self.led.blink(*FAST, background=True)
            elif mode is FeedbackMode.SLOW:
                self.led.blink(*SLOW, background=True)
            elif mode is FeedbackMode.STEADY:
                self.led.on()
            else:
                self.led.off()
        if self.buzzer is not None and mode is not previous:
            if mode is FeedbackMode.STEADY:
                self.buzzer.beep(0.15, 0.15, n=3, background=True)  # help is coming
            elif mode is FeedbackMode.SLOW:
                self.buzzer.beep(0.1, 0.1, n=1, background=True)  # the alarm went out
            elif mode is FeedbackMode.OFF and previous is not FeedbackMode.STEADY:
                self.buzzer.beep(0.6, 0.1, n=1, background=True)  # cancelled

    def close(self) -> None:
        for dev in (self.led, self.buzzer):
            if dev is not None:
                dev.close()
