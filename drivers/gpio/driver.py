"""The GPIO driver's way in: buttons and pull-cords on pins, their LEDs and buzzers.

``attach`` builds one :class:`~drivers.gpio.button.AlarmButton` per device
(and a :class:`~drivers.gpio.feedback.GpioIndicator` where it has an LED or a
buzzer) on the pin factory ``[gpio] factory`` names: ``sim`` is gpiozero's
MockFactory, driven through the sim socket; the others are the Pi's. Every
edge goes to the hub's gestures for the device (``port.button``); a press
also tells supervision the button was heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from drivers.base import HubPort, Task
from drivers.gpio.button import AlarmButton, ButtonHandlers
from drivers.gpio.feedback import GpioIndicator

log = structlog.get_logger("drivers.gpio")


class GpioDriver:
    """The residence's GPIO buttons; nothing runs in the background (edges arrive on the loop)."""

    name = "gpio"

    def __init__(self, port: HubPort, devices: Sequence[Any], settings: Any) -> None:
        self._closers: list[Any] = []
        self._health: dict[str, dict[str, Any]] = {}
        sim_buttons: dict[str, Any] = {}
        if settings.factory == "sim":
            from drivers.gpio import sim as gpio_sim

            factory = gpio_sim.sim_factory()
        else:
            from drivers.gpio.factory import make_pin_factory

            factory = make_pin_factory(settings.factory)
        loop = asyncio.get_running_loop()
        for dev in devices:
            g = dev.gpio
            indicator = None
            if g.led_pin is not None or g.buzzer_pin is not None:
                indicator = GpioIndicator(led_pin=g.led_pin, buzzer_pin=g.buzzer_pin, factory=factory)
                port.feedback(dev.id, indicator)
                self._closers.append(indicator.close)
            gestures = port.button(dev.id, input_name="gpio")

            def press(t: float, gestures: Any = gestures, dev_id: str = dev.id) -> None:
                gestures.press(t)  # the alarm first; then supervision hears the button
                port.report(dev_id)

            button = AlarmButton(
                g.pin,
                factory=factory,
                handlers=ButtonHandlers(press=press, hold=gestures.hold, release=gestures.release),
                loop=loop,
                pull_up=g.pull_up,
                bounce_s=g.bounce_s,
                hold_s=g.hold_s,
            )
            self._closers.append(button.close)
            self._health[dev.id] = {"kind": dev.kind, "state": "ok", "driver": "gpio"}
            if settings.factory == "sim":
                sim_buttons[dev.id] = gpio_sim.SimButton(dev.id, button, g.pull_up, indicator)
        if sim_buttons:
            gpio_sim.register(port.sim, sim_buttons)
        log.info("gpio_started", factory=settings.factory, devices=[d.id for d in devices])

    def tasks(self) -> Sequence[Task]:
        return ()

    def health(self) -> dict[str, dict[str, Any]]:
        return dict(self._health)

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # a pin that will not close must not stop the others
                log.exception("gpio_close_failed")


def attach(port: HubPort, devices: Sequence[Any], settings: Any) -> GpioDriver:
    """The GPIO driver for ``devices`` (each with a ``[device.gpio]`` table), on ``[gpio]`` ``settings``."""
    return GpioDriver(port, devices, settings)
