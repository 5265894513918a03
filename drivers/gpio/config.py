"""The GPIO driver's part of the residence config: ``[gpio]`` and ``[device.gpio]``.

Structs and checks only: this module is imported by the config loader, so it
imports no gpiozero (the loader stays fast on a hub that has no GPIO at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from drivers.base import DriverConfig, Report

__all__ = ["CONFIG", "GpioDevice", "GpioSection", "normalise_pin"]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of the GPIO tables: keyword-only, frozen, unknown keys refused (as the loader's)."""


class GpioSection(_Section):
    """``[gpio]``: which gpiozero pin factory drives the pins.

    ``sim`` is gpiozero's MockFactory, driven from outside the process through
    the sim control socket (see ``[sim]``); the others are gpiozero's real ones.
    """

    factory: Annotated[
        Literal["sim", "lgpio", "rpigpio", "pigpio", "native"],
        msgspec.Meta(description="gpiozero pin factory: lgpio on a Raspberry Pi 5 or 4; sim simulates the pins "
                                 "(demo and tests, driven through the sim socket)."),
    ] = "lgpio"


class GpioDevice(_Section):
    """``[device.gpio]``: a button or pull-cord on a GPIO pin, with optional feedback outputs."""

    pin: Annotated[
        int | str,
        msgspec.Meta(description="Input pin of the button or cord: a BCM number (17) or name ('GPIO17')."),
    ]
    pull_up: Annotated[
        bool,
        msgspec.Meta(description="true: wired between the pin and ground (internal pull-up); "
                                 "false: between the pin and 3.3 V."),
    ] = True
    bounce_s: Annotated[
        float, msgspec.Meta(ge=0, le=1, description="Seconds of contact bounce ignored after an edge.")
    ] = 0.02
    hold_s: Annotated[
        float, msgspec.Meta(gt=0, le=60, description="Holding the button this many seconds cancels its alarm.")
    ] = 3.0
    led_pin: Annotated[
        int | str | None,
        msgspec.Meta(description="Output pin of the LED that shows the alarm's state (sent, acknowledged). "
                                 "Unset: no LED."),
    ] = None
    buzzer_pin: Annotated[
        int | str | None,
        msgspec.Meta(description="Output pin of a buzzer that sounds with the LED's pattern. Unset: no buzzer."),
    ] = None


#: The outputs and the input of a device, in the order their pins are checked.
PIN_KEYS = ("pin", "led_pin", "buzzer_pin")


def normalise_pin(pin: int | str) -> str:
    """One spelling per pin: ``17``, ``"17"``, ``"GPIO17"`` and ``"gpio17"`` are all ``"17"``."""
    s = str(pin).upper()
    return s[4:] if s.startswith("GPIO") else s


def check(devices: Sequence[Any], settings: Any, report: Report) -> None:
    """No pin is used twice, as an input or an output, within a device or across devices."""
    pins: dict[str, tuple[int, str, int | str]] = {}
    for i, dev in enumerate(devices):
        if dev.gpio is None:
            continue
        for key in PIN_KEYS:
            pin = getattr(dev.gpio, key)
            if pin is None:
                continue
            norm = normalise_pin(pin)
            if norm in pins:
                j, other, first = pins[norm]
                report(
                    ("device", i, "gpio", key),
                    f"expected a pin no other input or output uses, found {pin!r}"
                    f" (the same pin as device[{j}].gpio.{other} = {first!r})",
                )
            pins.setdefault(norm, (i, key, pin))


CONFIG = DriverConfig(
    name="gpio",
    device_sections={"gpio": GpioDevice},
    kinds={"gpio": ("alarm_button", "pull_cord", "checkin_button")},
    settings=("gpio", GpioSection),
    check=check,
)
