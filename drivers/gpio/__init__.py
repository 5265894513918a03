"""GPIO alarm buttons and pull-cords, with LED and buzzer feedback, over gpiozero.

The pin factory is chosen by ``[gpio] factory`` in the config and passed in,
never set globally: ``sim`` is gpiozero's MockFactory, driven from outside the
process through the hub's sim control socket (:mod:`drivers.gpio.sim`); the
others are gpiozero's real factories for the Raspberry Pi.

The public names below are imported on first use, not with the package, so
that the config loader can import :mod:`drivers.gpio.config` without gpiozero.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.gpio.button import AlarmButton, ButtonHandlers
    from drivers.gpio.factory import make_pin_factory
    from drivers.gpio.feedback import GpioIndicator

__all__ = ["AlarmButton", "ButtonHandlers", "GpioIndicator", "make_pin_factory"]

_WHERE = {
    "AlarmButton": "drivers.gpio.button",
    "ButtonHandlers": "drivers.gpio.button",
    "make_pin_factory": "drivers.gpio.factory",
    "GpioIndicator": "drivers.gpio.feedback",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first asked for (PEP 562)."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
