"""The simulated GPIO backend: gpiozero's MockFactory with pins the rig can drive.

:class:`SimPin` is a :class:`~gpiozero.pins.mock.MockPin` that keeps a bounded
history (an LED blinking for a day must not grow memory) and counts its
changes. :func:`register` exposes the residence's buttons and feedback
outputs on the hub's sim control socket, so the demo, the tests and the
hardware-in-the-loop rig press buttons and read LEDs from outside the process
exactly as a finger and an eye would on a real Pi.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin, PinState

from drivers.gpio.button import AlarmButton
from drivers.gpio.feedback import GpioIndicator
from drivers.base import SimCommandError, SimOps


class SimPin(MockPin):
    """A MockPin with a bounded state history and a change counter."""

    changes = 0

    def clear_states(self) -> None:
        self._last_change = time.monotonic()
        self.states = deque([PinState(0.0, self._state)], maxlen=256)  # type: ignore[assignment]

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            self.changes += 1
        return changed


def sim_factory() -> MockFactory:
    """A MockFactory whose pins are :class:`SimPin`."""
    return MockFactory(pin_class=SimPin)


@dataclass
class SimButton:
    """One simulated button and its feedback, as the sim socket sees them."""

    device: str
    button: AlarmButton
    pull_up: bool
    indicator: GpioIndicator | None


def _output_state(dev: Any) -> dict[str, Any] | None:
    if dev is None:
        return None
    pin = dev.pin
    return {"pin": str(pin.info.name), "value": int(bool(pin.state)), "changes": getattr(pin, "changes", None)}


def register(ctl: SimOps, buttons: dict[str, SimButton]) -> None:
    """Add the GPIO operations to the sim control socket.

    ``press``/``release``/``click``/``hold`` drive a button's input pin the way
    its wiring would (low when pressed with a pull-up) and answer with the
    edge's time: ``t`` (wall clock) and, for ``press`` and ``release``,
    ``mono_ns`` (``CLOCK_MONOTONIC``, which every process on the host shares,
    so a rig can time edge to subscriber); ``state`` reads the
    button, the LED and the buzzer (``feedback`` is the pattern shown: ``off``,
    ``fast_blink``, ``slow_blink``, ``steady``, ``fault`` or ``checkin``, the
    :class:`~drivers.base.FeedbackMode` values); ``devices`` lists what can be driven.
    """

    def lookup(req: dict[str, Any]) -> SimButton:
        name = req.get("device")
        if name not in buttons:
            raise SimCommandError(f"no simulated GPIO device {name!r}; have: {', '.join(sorted(buttons))}")
        return buttons[name]

    def drive(b: SimButton, pressed: bool) -> tuple[float, int]:
        """Drive the pin; returns when the edge happened, as wall-clock seconds and monotonic ns."""
        pin = b.button.pin
        t, mono = time.time(), time.monotonic_ns()
        if pressed == b.pull_up:
            pin.drive_low()
        else:
            pin.drive_high()
        return t, mono

    async def press(req: dict[str, Any]) -> dict[str, Any]:
        b = lookup(req)
        t, mono = drive(b, True)
        return {"device": b.device, "t": t, "mono_ns": mono}

    async def release(req: dict[str, Any]) -> dict[str, Any]:
        b = lookup(req)
        t, mono = drive(b, False)
        return {"device": b.device, "t": t, "mono_ns": mono}

    async def click(req: dict[str, Any]) -> dict[str, Any]:
        b = lookup(req)
        t, _ = drive(b, True)
        await asyncio.sleep(float(req.get("seconds", 0.05)))
        drive(b, False)
        return {"device": b.device, "t": t}

    async def hold(req: dict[str, Any]) -> dict[str, Any]:
        b = lookup(req)
        seconds = float(req.get("seconds", b.button.hold_s + 0.5))
        t, _ = drive(b, True)
        await asyncio.sleep(seconds)
        drive(b, False)
        return {"device": b.device, "t": t, "held_s": seconds}

    async def state(req: dict[str, Any]) -> dict[str, Any]:
        b = lookup(req)
        ind = b.indicator
        return {
            "device": b.device,
            "pressed": b.button.is_pressed,
            "feedback": ind.mode.value if ind else None,
            "led": _output_state(ind.led) if ind else None,
            "buzzer": _output_state(ind.buzzer) if ind else None,
        }

    async def devices(req: dict[str, Any]) -> dict[str, Any]:
        return {"gpio": sorted(buttons)}

    for name, fn in {
        "press": press,
        "release": release,
        "click": click,
        "hold": hold,
        "state": state,
        "devices": devices,
    }.items():
        ctl.register(name, fn)
