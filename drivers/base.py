"""The seam between the hub and its drivers: the value types both sides speak.

No driver owns this module and it knows nothing of the hub's internals. A
driver tells the hub what happened as :class:`Emit` values (the hub adds
source, route, id and seq); it shows the resident where an alarm stands
through an :class:`Indicator` (:class:`FeedbackMode`); a simulated backend
registers its operations on the sim socket through :class:`SimOps`, raising
:class:`SimCommandError` for a request it cannot carry out.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.events import Priority

__all__ = [
    "DriverConfig",
    "Emit",
    "FeedbackMode",
    "Indicator",
    "Priority",
    "Report",
    "SimCommandError",
    "SimHandler",
    "SimOps",
]


@dataclass(frozen=True)
class Emit:
    """An event a device's logic wants the hub to emit (the hub adds source, route, id, seq)."""

    type: str
    priority: Priority
    data: dict[str, Any] = field(default_factory=dict)
    #: For ``alarm.cancelled`` only: which of the device's open alarms this closes, as key/values
    #: that alarm's ``data`` holds (an ESPA reset names the call address). The hub closes the
    #: matching alarm and sets the event's ``cause`` to its id; with no match it logs and counts.
    closes: dict[str, Any] | None = None


class FeedbackMode(str, enum.Enum):
    """What a device's LED (and buzzer) shows the resident."""

    OFF = "off"
    FAST = "fast_blink"
    SLOW = "slow_blink"
    STEADY = "steady"
    #: The alarm could not be stored (disk full, I/O error) and is sent from memory:
    #: three short pulses then a pause (:mod:`drivers.gpio.feedback`).
    FAULT = "fault"


class Indicator(Protocol):
    """A device's feedback output: an LED, a buzzer, or both."""

    def show(self, mode: FeedbackMode) -> None:
        """Switch to ``mode``; must not block."""


class SimCommandError(Exception):
    """A sim request that cannot be carried out (unknown op or device, bad fields)."""


#: A sim operation: the request's fields in, the reply's fields out.
SimHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class SimOps(Protocol):
    """Where a simulated backend makes its operations callable through the sim socket."""

    def register(self, op: str, handler: SimHandler) -> None:
        """Make ``op`` callable; the handler raises :class:`SimCommandError` for a bad request."""


#: Where a config check reports a problem: the key path (``("device", 3, "gpio", "pin")``) and what
#: was expected, found; the loader turns it into ``FILE:LINE:COL: device[3].gpio.pin: ...``.
Report = Callable[[tuple[str | int, ...], str], None]


@dataclass(frozen=True)
class DriverConfig:
    """What a driver adds to the residence config; the loader knows drivers only through this.

    * ``device_sections``: the ``[device.<key>]`` tables the driver reads, key to struct
      (msgspec, keyword-only, unknown keys refused), e.g. ``{"gpio": GpioDevice}``;
    * ``kinds``: for each of those keys, the device kinds that may use it;
    * ``settings``: the hub-wide ``[<key>]`` table and its struct (all fields defaulted:
      the defaults apply when the table is absent), e.g. ``("gpio", GpioSection)``;
    * ``check(devices, settings, report)``: what the structs cannot say alone, across
      devices (a pin or a port used twice); ``devices`` is the whole ``[[device]]`` list
      in file order, so an index is a key path.
    """

    name: str
    device_sections: Mapping[str, type]
    kinds: Mapping[str, tuple[str, ...]]
    settings: tuple[str, type] | None = None
    check: Callable[[Sequence[Any], Any, Report], None] | None = None
