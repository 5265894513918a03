"""The seam between the hub and its drivers: the one way in, and the value types both sides speak.

No driver owns this module and it knows nothing of the hub's internals. The
hub knows a driver only through its registry line (:mod:`drivers.registry`):
its :class:`DriverConfig` and ``attach(port, devices, settings) -> Driver``.

* The hub hands every driver a :class:`HubPort`: ``emit`` / ``post`` / ``emit_many`` an
  :class:`Emit` for a device (the hub adds source, route, id and seq, commits
  it and publishes it), ``report`` that a device was heard (supervision, its
  battery), ``now`` (the rules' clock), ``spawn``, ``button`` (what presses
  mean), ``feedback`` (register an LED or buzzer, an :class:`Indicator` showing
  a :class:`FeedbackMode`) and ``sim`` (the sim socket's :class:`SimOps`).
* A driver with a second way to reach people (an SMS modem) registers it as a
  :class:`TextPath` (``text_path``): the hub decides when to send (the alarm
  fallback) and names no driver; the driver tells the hub what comes back
  (``text_received``) and how its path stands (``path_state``, a :class:`PathState`).
* A :class:`Driver` gives back the long-running ``tasks`` the hub supervises,
  ``health`` per device, the commands it owns (``command``), and ``close``.

As Home Assistant's integrations have one ``async_setup_entry``, gpiozero's
devices one pin factory and bleak one backend per platform: a new sensor is a
new package with a config module and an ``attach``, plus one registry line.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from hub.events import Priority

__all__ = [
    "ButtonInput",
    "Driver",
    "DriverConfig",
    "HubPort",
    "Task",
    "Emit",
    "FeedbackMode",
    "Indicator",
    "PathState",
    "Priority",
    "Report",
    "SimCommandError",
    "SimHandler",
    "SimOps",
    "TextPath",
    "TextSendError",
]

#: A long-running job of a driver, run (and restarted when it dies) by the hub's supervisor.
Task = tuple[str, Callable[[], Awaitable[Any]]]


class Emit(msgspec.Struct, frozen=True):
    """An event a device's logic wants the hub to emit (the hub adds source, route, id, seq)."""

    type: str
    priority: Priority
    data: dict[str, Any] = {}
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
    #: The resident's daily check-in was taken ("all is well"), shown once and then back to what
    #: the device showed: two long glows, not a blink and not steady (:mod:`drivers.gpio.feedback`).
    CHECKIN = "checkin"


class Indicator(Protocol):
    """A device's feedback output: an LED, a buzzer, or both."""

    def show(self, mode: FeedbackMode) -> None:
        """Switch to ``mode``; must not block."""


class TextSendError(Exception):
    """A text message a :class:`TextPath` could not send.

    ``reason`` is one word the hub reports (``cms_error``: the network refused it,
    ``timeout``: the modem did not answer in time, ``unavailable``: no modem, no SIM
    or not registered, ``error``: anything else); ``detail`` says more (``+CMS ERROR: 500``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TextPath(Protocol):
    """A way to send short text messages beside the MQTT link (an SMS modem), registered by its driver.

    One message at a time; never blocks the loop (the driver runs its hardware off it).
    """

    async def send_text(self, number: str, text: str) -> str | None:
        """Send ``text`` to ``number`` (E.164, ``+4791234567``); the network's reference for it (None when the
        path gives none). Raises :class:`TextSendError` when it could not be sent."""


@dataclass(frozen=True)
class PathState:
    """How a communication path stands, as its driver sees it.

    ``up``; ``reason`` when it is not (``no_sim``, ``not_registered``, ``weak_signal``,
    ``not_answering``, ``unplugged``); ``detail`` what was read (``sim``, ``registration``,
    ``signal`` ...), shown in ``status`` and the heartbeat.
    """

    up: bool
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


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
    * ``advise(devices, settings, base, report)``: warnings, not errors: what looks wrong on
      this machine now but may be right when the hub runs (a serial adapter not plugged in
      yet); ``base`` is the config file's directory (relative paths start there).
    """

    name: str
    device_sections: Mapping[str, type]
    kinds: Mapping[str, tuple[str, ...]]
    settings: tuple[str, type] | None = None
    check: Callable[[Sequence[Any], Any, Report], None] | None = None
    advise: Callable[[Sequence[Any], Any, Path, Report], None] | None = None


class ButtonInput(Protocol):
    """What a button's press, hold and release mean: the hub's gestures for one device.

    ``t`` is the wall-clock time of the edge (the alarm's ``ts``); ``held_s``
    how long it was held. Called on the loop; never blocks.
    """

    def press(self, t: float) -> None: ...

    def hold(self, t: float) -> None: ...

    def release(self, t: float, held_s: float) -> None: ...

    def gesture(self, name: str, t: float) -> None:
        """A gesture the button classified itself (a BTHome button event: ``press``, ``double_press``,
        ``long_press``, ``hold_press`` ...): the hub decides what it means (an alarm, a cancel, a check-in)."""


class HubPort(Protocol):
    """What the hub gives a driver: the only way a driver reaches the hub."""

    async def emit(self, device: str | None, e: Emit) -> bool:
        """Commit ``e`` as an event of ``device`` (None: of the hub itself) and publish it.

        True when it was taken (committed, held as an alarm after a failed
        commit, or dropped by the device's telemetry limit); False when the
        store refused it (telemetry on a full disk)."""

    def post(self, device: str, e: Emit) -> None:
        """Emit from a callback without waiting: over the device's telemetry limit it is dropped at
        once (no task for it), else committed and published by a task the hub holds."""

    async def emit_many(self, device: str, emits: Sequence[Emit]) -> list[Emit]:
        """Emit a burst (one read of a port) in order; returns the Emits the store refused."""

    def report(self, device: str, *, battery: float | None = None) -> None:
        """``device`` was heard from (any reading, events or not): for supervision, with its battery."""

    def now(self) -> float:
        """The wall-clock time the rules use (wall-clock steps already accounted for)."""

    def path(self, name: str) -> str:
        """A path from the config, relative to the config file's directory when not absolute."""

    def spawn(self, coro: Awaitable[Any], name: str) -> Any:
        """Run a short job as a task the hub holds and whose failure is logged."""

    def button(self, device: str, *, input_name: str) -> ButtonInput:
        """The gestures of button ``device`` (``input_name``: gpio, ble, ...)."""

    def feedback(self, device: str, indicator: Indicator) -> None:
        """Register ``device``'s LED or buzzer: the hub shows alarms on it."""

    @property
    def sim(self) -> SimOps:
        """The sim socket, for a simulated backend's operations (created on first use)."""

    def text_path(self, device: str, path: TextPath) -> None:
        """Register ``device`` as a way to send text messages (the hub's alarm fallback uses it)."""

    def text_received(self, device: str, number: str, text: str) -> None:
        """A text message from ``number`` arrived on ``device`` (a reply to the fallback: ``OK``)."""

    def path_state(self, device: str, state: PathState) -> None:
        """How ``device``'s communication path stands now (told on every check; the hub reports changes)."""


class Driver(Protocol):
    """What ``attach`` returns: the driver as the hub sees it."""

    name: str

    def tasks(self) -> Sequence[Task]:
        """The driver's long-running jobs: ``(name, run)`` each; the hub supervises them."""

    def health(self) -> dict[str, dict[str, Any]]:
        """For ``status`` and the heartbeat: per device id (or a part of the driver), what it knows."""

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A central's command this driver owns (``ble-forget``): the reply, or None if not its own."""

    def close(self) -> None:
        """Release the hardware (the hub is stopping); the tasks are cancelled already."""
