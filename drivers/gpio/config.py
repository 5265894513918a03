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

    factory: Literal["sim", "lgpio", "rpigpio", "pigpio", "native"] = "lgpio"


class GpioDevice(_Section):
    """``[device.gpio]``: a button or pull-cord on a GPIO pin, with optional feedback outputs."""

    pin: int | str
    pull_up: bool = True
    bounce_s: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02
    hold_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    led_pin: int | str | None = None
    buzzer_pin: int | str | None = None


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
    kinds={"gpio": ("alarm_button", "pull_cord")},
    settings=("gpio", GpioSection),
    check=check,
)
