"""GPIO alarm buttons and pull-cords, with LED and buzzer feedback, over gpiozero.

The pin factory is chosen by ``[gpio] factory`` in the config and passed in,
never set globally: ``sim`` is gpiozero's MockFactory, driven from outside the
process through the hub's sim control socket (:mod:`drivers.gpio.sim`); the
others are gpiozero's real factories for the Raspberry Pi.
"""

from drivers.gpio.button import AlarmButton, ButtonHandlers
from drivers.gpio.factory import make_pin_factory
from drivers.gpio.feedback import GpioIndicator

__all__ = ["AlarmButton", "ButtonHandlers", "GpioIndicator", "make_pin_factory"]
