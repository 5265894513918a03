"""Pick a gpiozero pin factory by name, importing the real backends lazily (as bleak picks its backend)."""

from __future__ import annotations

from gpiozero import Factory


def make_pin_factory(name: str) -> Factory:
    """A pin factory for ``[gpio] factory``.

    ``sim`` gives gpiozero's :class:`~gpiozero.pins.mock.MockFactory`, whose
    pins the sim control socket drives; ``lgpio``, ``rpigpio``, ``pigpio`` and
    ``native`` give the real factory (importing it only then, so a laptop
    without the Pi libraries can still run the simulated residence).
    """
    if name == "sim":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory()
    if name == "native":
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    raise ValueError(f"unknown pin factory {name!r}")
