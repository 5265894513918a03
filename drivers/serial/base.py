"""The small interfaces every serial protocol implements.

A serial device is three pure pieces, each testable without a port:

* a :class:`Parser` (hub side) turns bytes into :class:`Reading` objects and
  the bytes the hub must answer with (ACK frames, ESPA ACK/NAK); an answer that
  tells the device its data was taken is a :class:`Confirm`, written only after
  the commit. It never raises on any input: garbage is counted in
  :attr:`Parser.errors` and skipped, and it resynchronises on the next valid frame;
* a :class:`DeviceLogic` turns readings (and the passing of time) into the
  events the hub emits, e.g. ``bed.exit`` only after the bed has been empty
  for ``exit_after_s``;
* an :class:`Emulator` (device side) produces what a real device would send,
  valid or corrupt on request, and answers the hub's replies as the device
  would (a dispenser re-sends until acked).

:mod:`drivers.serial.port` drives a Parser and a DeviceLogic over a real
port; :mod:`drivers.serial.emulator` drives an Emulator over a pty.
Time is always passed in (``now``, monotonic seconds): no sleeping, no clock reads.
"""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from drivers.base import Emit
from drivers.helpers import battery_step
from hub.events import Priority

#: The error counters every parser keeps (more may be added per protocol).
ERROR_KINDS = ("checksum", "framing", "overlong", "noise", "duplicate")


class Reading(msgspec.Struct, frozen=True):
    """One decoded message from a device, before any rule or debounce (a struct: a burst makes hundreds
    a read, and a struct is built in C, about a sixth of a frozen dataclass's cost)."""

    kind: str
    fields: dict[str, Any] = {}


class Confirm(msgspec.Struct, frozen=True):
    """Bytes that tell the device "taken" (ESPA's block ACK, the dispenser's ACK frame).

    The port writes them only once every event from the first ``readings`` readings of the
    same :class:`FeedResult` is committed to the outbox (or, for an alarm, held by the hub
    in memory after a failed commit). If that fails, the bytes are not written and the port
    calls :meth:`Parser.unconfirmed`, so the device's re-send is read again, not dropped as a
    duplicate.
    """

    data: bytes
    readings: int


@dataclass
class FeedResult:
    """What feeding bytes to a parser gave: readings, and bytes to write back in order."""

    readings: list[Reading] = field(default_factory=list)
    #: bytes to write back, in order; a Confirm (and everything after it) waits for the commit
    replies: list[bytes | Confirm] = field(default_factory=list)


class BatteryWatch:
    """``device.battery_low`` once when the level drops below ``low_pct``; re-armed at ``ok_pct`` or above.

    The hysteresis keeps a battery hovering around the threshold from
    sending a warning on every reading.
    """

    def __init__(self, low_pct: int, ok_pct: int) -> None:
        self.low_pct, self.ok_pct = low_pct, ok_pct
        self.level: int | None = None
        self.low = False

    def seen(self, pct: int) -> list[Emit]:
        """A battery reading; returns the warning when this reading crosses below the threshold."""
        self.level = pct
        self.low, warn = battery_step(self.low, pct, self.low_pct, self.ok_pct)
        if warn:
            return [Emit("device.battery_low", Priority.NORMAL, {"battery_pct": pct, "threshold_pct": self.low_pct})]
        return []


class Parser(abc.ABC):
    """Hub side of a protocol. Subclasses implement :meth:`feed`."""

    #: the ``protocol = "..."`` name in the config
    name: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.errors: Counter[str] = Counter()

    @abc.abstractmethod
    def feed(self, data: bytes, now: float) -> FeedResult:
        """Consume bytes read from the port. Must not raise, whatever ``data`` is."""

    def tick(self, now: float) -> list[bytes]:
        """Bytes to send on a timer (e.g. a poll); most protocols send nothing."""
        return []

    def reset(self) -> None:
        """Forget any partial frame (the port was closed and reopened)."""

    def unconfirmed(self, confirm: Confirm) -> None:
        """The events behind ``confirm`` could not be stored and it was not sent: forget that
        its frame was taken, so the device's re-send is parsed again. Default: nothing."""


class DeviceLogic(abc.ABC):
    """Turns readings into events, with timers. Subclasses implement :meth:`on_reading`."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abc.abstractmethod
    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        """A decoded reading arrived."""

    def tick(self, now: float) -> list[Emit]:
        """Called about every 0.5 s: emit what became due (a state that has now held long enough)."""
        return []

    def state(self) -> dict[str, Any]:
        """What ``status`` and the heartbeat show about this device (e.g. last occupancy, battery)."""
        return {}


class Emulator(abc.ABC):
    """Device side of a protocol, for the demo, the tests and the rig."""

    name: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abc.abstractmethod
    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        """Bytes for a control request, e.g. ``op="occupancy", args={"state": "out"}``.

        Every emulator also understands ``op="corrupt"`` with ``args["how"]`` one of
        ``bad_checksum``, ``truncate``, ``noise``, ``overlong``: a frame spoilt that way.
        Raises ``ValueError`` for an unknown op or bad args.
        """

    def on_data(self, data: bytes, now: float) -> bytes:
        """The hub wrote ``data``; return what the device answers (often nothing)."""
        return b""

    def tick(self, now: float) -> bytes:
        """Bytes the device sends on its own timers (re-sends until acked)."""
        return b""

    def state(self) -> dict[str, Any]:
        """What the emulator knows (frames unacked, acks seen), for tests and the rig."""
        return {}
