"""Device supervision: ``device.offline`` / ``device.online`` from silence, ``device.battery_low``.

Every supervised device has an expected reporting interval (per kind, or its
own). A device is *heard from* only on :meth:`Supervision.report`, which
every driver calls for what the device itself sent, including readings that
make no event (a bed mat repeats its state every 60 s; a BLE sensor
advertises every few seconds): a serial reading (``SerialDevice.on_reading``
-> ``HubPort.report``), a BLE advert that decodes, a GATT notification
or battery read, a GPIO button's press.

Events are never taken as "heard from", whatever their source: many that
carry a device's source are the hub's own words about it, not the device's
(``alarm.unacknowledged`` and ``alarm.acknowledged`` from the alarm tracker,
``alarm.cancelled`` by a reset, ``alarm.test``, a device logic's timed
event, rule outputs, ``device.offline`` / ``device.online``), and a device
whose port has vanished must not come back "online" because the hub keeps
reminding the central of its open alarm. (An event a device did send came
with a reading, which reported it already.) Events still carry what they
say: a battery level in their data, a driver's own ``device.battery_low``.

Silence for longer than the interval gives ``device.offline`` once; the next
report gives ``device.online``. A ``device.offline`` / ``device.online``
from elsewhere (a serial port that closed or reopened, a GATT connection)
updates the state without a second event, so the central is not told
twice; such a ``device.online`` restarts the silence clock (the device gets
a full interval to speak) but is not a report.

Battery: ``battery_pct`` or ``battery`` (percent) in a report or an event's
data. ``device.battery_low`` once when it drops below ``battery_low_pct``,
re-armed only when it is back at or above ``battery_ok_pct`` (hysteresis, as
:class:`drivers.serial.base.BatteryWatch`). A ``device.battery_low`` from the
device's driver counts as that warning: supervision does not send another.

Silence only counts while the hub listens: after a restart, the time the hub
was down is not held against the devices (the silence seen before the stop is
kept). Until the first report, a device's silence counts from when the rule
first ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.helpers import battery_step
from hub.events import Event, Priority, Route
from hub.rules.base import Rule, RuleOutput, _opt_float, iso, shifted

#: Expected reporting interval (seconds) per device kind when neither the
#: device nor ``[rules.supervision] intervals`` says. Kinds not listed (GPIO
#: buttons and cords: wired, nothing to report; the nurse-call link) are not supervised.
DEFAULT_INTERVALS: dict[str, float] = {
    "bed_mat": 3600.0,
    "medication_dispenser": 86400.0,
    "door": 86400.0,
    "motion": 86400.0,
}

#: Marks the events supervision emits, so it does not take them back.
MARK = "supervision"

#: Event types the hub makes about a device (never the device's own words): their data is not read either.
HUB_MADE = frozenset({"alarm.unacknowledged", "alarm.acknowledged", "alarm.cancelled", "alarm.test"})


@dataclass
class _Device:
    kind: str
    interval_s: float | None  # None: battery only, silence not supervised
    last_seen: float | None = None
    offline: bool = False
    offline_since: float | None = None
    battery: float | None = None
    battery_low: bool = False


def _battery(data: dict[str, Any]) -> float | None:
    for key in ("battery_pct", "battery"):
        v = data.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


class Supervision(Rule):
    name = "supervision"

    def __init__(
        self,
        devices: dict[str, tuple[str, float | None]],
        *,
        battery_low_pct: float = 20,
        battery_ok_pct: float = 30,
        priority: Priority = Priority.NORMAL,
        route: Route = Route.ANY,
    ) -> None:
        """``devices``: device id -> (kind, expected interval in seconds, or None/0 for no silence check)."""
        super().__init__(priority=priority, route=route)
        if battery_ok_pct <= battery_low_pct:
            raise ValueError(f"battery_ok_pct ({battery_ok_pct}) must be above battery_low_pct ({battery_low_pct})")
        self.battery_low_pct, self.battery_ok_pct = battery_low_pct, battery_ok_pct
        self._devices = {d: _Device(kind, float(iv) if iv else None) for d, (kind, iv) in devices.items()}
        self._now: float | None = None  # last time the rule ran: what state() was saved at

    # ------------------------------------------------------------------ inputs

    def report(self, device: str, now: float, *, battery: float | None = None) -> list[RuleOutput]:
        """The device was heard from at ``now`` (with its battery level, if it sent one)."""
        out = self.tick(now)
        dev = self._devices.get(device)
        if dev is None:
            return out
        dev.last_seen = now
        if dev.offline:
            out.append(self._out("device.online", device, {"offline_s": _since(dev.offline_since, now)}))
            dev.offline, dev.offline_since = False, None
        if battery is not None:
            out += self._battery_seen(device, dev, battery)
        return out

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        device = event.source.device
        dev = self._devices.get(device)
        if dev is None or event.type.startswith("rule.") or event.data.get("rule") == MARK:
            return []
        if event.type == "device.offline":  # said elsewhere (the port closed): no second offline
            if not dev.offline:
                dev.offline, dev.offline_since = True, now
            return []
        if event.type == "device.online":  # the port is back, already announced: its silence counts from now
            dev.offline, dev.offline_since, dev.last_seen = False, None, now
            return []
        if event.type == "device.battery_low":  # the driver warned already: that is the warning
            dev.battery_low = True
            level = _battery(event.data)
            if level is not None:
                dev.battery = level
            return []
        if event.type in HUB_MADE:
            return []
        level = _battery(event.data)  # what the event says, not a sign of life (see the module docstring)
        return [] if level is None else self._battery_seen(device, dev, level)

    def _battery_seen(self, device: str, dev: _Device, pct: float) -> list[RuleOutput]:
        dev.battery = pct
        dev.battery_low, warn = battery_step(dev.battery_low, pct, self.battery_low_pct, self.battery_ok_pct)
        if warn:
            return [self._out("device.battery_low", device, {"battery_pct": pct, "threshold_pct": self.battery_low_pct})]
        return []

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[RuleOutput]:
        self._now = now
        out: list[RuleOutput] = []
        for device, dev in self._devices.items():
            if dev.last_seen is None:
                dev.last_seen = now  # silence counts from when the rule first ran
            if dev.interval_s is None or dev.offline:
                continue
            if now - dev.last_seen > dev.interval_s:
                dev.offline, dev.offline_since = True, now
                data = {
                    "reason": "silent",
                    "silent_s": round(now - dev.last_seen, 3),
                    "expected_interval_s": dev.interval_s,
                    "last_seen": iso(dev.last_seen),
                }
                out.append(self._out("device.offline", device, data))
        return out

    def _out(self, type: str, device: str, data: dict[str, Any]) -> RuleOutput:
        return self.output(type, {**data, "rule": MARK}, device=device)

    # ------------------------------------------------------------------ views and state

    def status(self, device: str) -> dict[str, Any] | None:
        """What supervision knows about a device (for ``status`` and the heartbeat)."""
        dev = self._devices.get(device)
        if dev is None:
            return None
        return {
            "kind": dev.kind,
            "expected_interval_s": dev.interval_s,
            "last_seen": iso(dev.last_seen),
            "offline": dev.offline,
            "battery": dev.battery,
            "battery_low": dev.battery_low,
        }

    def clock_stepped(self, step: float) -> None:
        self._now = shifted(self._now, step)
        for dev in self._devices.values():
            dev.last_seen = shifted(dev.last_seen, step)
            dev.offline_since = shifted(dev.offline_since, step)

    def state(self) -> dict[str, Any]:
        return {
            "at": self._now,
            "devices": {
                d: {
                    "last_seen": v.last_seen,
                    "offline": v.offline,
                    "offline_since": v.offline_since,
                    "battery": v.battery,
                    "battery_low": v.battery_low,
                }
                for d, v in self._devices.items()
            },
        }

    def restore(self, state: dict[str, Any], now: float) -> None:
        at = _opt_float(state.get("at"))
        down = max(0.0, now - at) if at is not None else 0.0  # the hub was not listening: not silence
        saved = dict(state.get("devices", {}))
        restored: dict[str, tuple[float | None, bool, float | None, float | None, bool]] = {}
        for device in self._devices:
            s = saved.get(device)
            if s is None:
                continue
            last = _opt_float(s.get("last_seen"))
            restored[device] = (
                None if last is None else min(now, last + down),
                bool(s.get("offline", False)),
                _opt_float(s.get("offline_since")),
                _opt_float(s.get("battery")),
                bool(s.get("battery_low", False)),
            )
        for device, (last, offline, since, battery, low) in restored.items():
            dev = self._devices[device]
            dev.last_seen, dev.offline, dev.offline_since, dev.battery, dev.battery_low = last, offline, since, battery, low
        self._now = now


def _since(t: float | None, now: float) -> float | None:
    return None if t is None else round(now - t, 3)


__all__ = ["DEFAULT_INTERVALS", "HUB_MADE", "MARK", "Supervision"]
