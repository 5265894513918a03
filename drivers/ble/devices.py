"""What a configured BLE device's adverts mean: BTHome v2 values → hub events.

:class:`BtHomeDevice` decodes one device's service data (decrypting with its
bindkey), refuses replays and repeats (:class:`~drivers.ble.bthome.ReplayGuard`),
and maps the result by the device's kind:

* ``alarm_button`` and ``checkin_button``: each button event as BTHome names
  it (``press``, ``double_press``, ``long_press``, ``hold_press`` ...) goes to
  the hub's gestures, which say what it means (an alarm at once, a cancel, or
  the resident's check-in where the config makes it one);
* ``door``: opening/door/window state changes → ``door.open`` / ``door.close``;
* ``motion``: motion or occupancy detected → ``motion.activity`` (at most one
  per ``activity_interval_s``, never per advert);
* every kind: other readings become ``sensor.reading`` telemetry (low), sent
  when a value changes or at least every ``telemetry_interval_s``, never per
  advert; the battery goes to supervision.

Decoding is pure; the daemon passes the events on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.ble import bthome
from drivers.base import Emit
from hub.events import Priority

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"

#: Binary states that say a door or window is open.
OPEN_STATES = ("door", "opening", "window")
#: Binary states that say someone is moving about.
ACTIVITY_STATES = ("motion", "occupancy")
#: Device kinds whose button events go to the hub's gestures.
BUTTON_KINDS = frozenset({"alarm_button", "checkin_button"})


@dataclass
class Decoded:
    """What one advert gave: events to emit, button gestures, a battery level for supervision."""

    emits: list[Emit] = field(default_factory=list)
    gestures: list[str] = field(default_factory=list)  # BTHome button events: "press", "double_press", ...
    battery: int | None = None
    accepted: bool = False
    reason: str | None = None  # why it was dropped
    #: (last counter, new counter) when the device's counter started again (new battery, reflash)
    counter_restart: tuple[int, int] | None = None


class BtHomeDevice:
    """One configured BTHome device."""

    def __init__(
        self,
        *,
        device_id: str,
        kind: str,
        address: str,
        bindkey: bytes | None,
        telemetry_interval_s: float = 900.0,
        activity_interval_s: float = 60.0,
    ) -> None:
        self.device_id = device_id
        self.kind = kind
        self.address = address.upper()
        self.bindkey = bindkey
        self.telemetry_interval_s = telemetry_interval_s
        self.activity_interval_s = activity_interval_s
        self.guard = bthome.ReplayGuard()
        self.counts: dict[str, int] = {}
        self._door_open: bool | None = None
        self._last_activity = float("-inf")
        self._telemetry: dict[str, Any] = {}
        self._telemetry_sent = float("-inf")

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def feed(self, service_data: dict[str, bytes], now: float) -> Decoded:
        """One advert's service data (keyed by full UUID). Never raises."""
        raw = service_data.get(BTHOME_UUID)
        if raw is None:
            self._count("not_bthome")
            return Decoded(reason="not_bthome")
        try:
            advert = bthome.decode(raw, mac=self.address, bindkey=self.bindkey)
        except bthome.BTHomeError as exc:
            self._count(type(exc).__name__)
            return Decoded(reason=str(exc))
        previous = self.guard.last_counter(advert.mac)
        verdict = self.guard.check(advert, now=now)
        if verdict not in bthome.ACCEPTED:
            self._count(verdict.value)
            return Decoded(reason=verdict.value)
        self._count("accepted")
        out = Decoded(accepted=True)
        if verdict is bthome.Verdict.RESTART and previous is not None and advert.counter is not None:
            self._count("counter_restart")
            out.counter_restart = (previous, advert.counter)
        battery = advert.value("battery")
        if isinstance(battery, (int, float)):
            out.battery = int(battery)
        out.gestures.extend(b for b in advert.buttons if b)  # None: that button did nothing this time
        for name in OPEN_STATES:
            state = advert.state(name)
            if state is not None:
                is_open = bool(state)
                if is_open != self._door_open:
                    if self._door_open is not None or is_open:
                        out.emits.append(Emit("door.open" if is_open else "door.close", Priority.NORMAL, {"sensor": name}))
                    self._door_open = is_open
                break
        for name in ACTIVITY_STATES:
            if advert.state(name) and now - self._last_activity >= self.activity_interval_s:
                self._last_activity = now
                out.emits.append(Emit("motion.activity", Priority.NORMAL, {"sensor": name}))
                break
        values = {m.name: m.value for m in advert.values if m.name not in ("packet_id",)}
        if values and (values != self._telemetry or now - self._telemetry_sent >= self.telemetry_interval_s):
            changed = values != self._telemetry
            self._telemetry, self._telemetry_sent = values, now
            out.emits.append(Emit("sensor.reading", Priority.LOW, {"values": values, "changed": changed}))
        return out

    def health(self) -> dict[str, Any]:
        return {"driver": "ble", "address": self.address, "encrypted": self.bindkey is not None, "adverts": dict(self.counts)}
