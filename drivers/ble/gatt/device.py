"""A GATT device: as configured (:class:`GattDevice`) and as the manager follows it (:class:`DeviceState`).

:class:`DeviceState` is the manager's bookkeeping for one device: its
connection state (waiting, connecting, connected, offline, stopped), the
current client, counters, the outage being reported, and the health report
built from them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from drivers.ble.gatt.client import GattClient
from drivers.ble.gatt.notify import NotifyMapping


@dataclass(frozen=True, slots=True)
class GattDevice:
    """A configured connected device. ``battery_interval_s`` None or 0: no battery reads."""

    device_id: str
    address: str
    mappings: tuple[NotifyMapping, ...] = ()
    battery_interval_s: float | None = 3600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.upper())
        object.__setattr__(self, "mappings", tuple(self.mappings))


class DeviceState:
    """One device's connection state and counters, while :class:`~drivers.ble.gatt.GattManager` runs."""

    def __init__(self, dev: GattDevice) -> None:
        self.dev = dev
        self.state = "waiting"  # waiting, connecting, connected, offline, stopped
        self.client: GattClient | None = None
        self.connects = 0
        self.failures = 0
        self.losses = 0
        self.attempt = 0
        self.notifications = 0
        self.decode_errors = 0
        self.battery_errors = 0
        self.notify_errors = 0
        self.last_battery: int | None = None
        self.last_battery_t: float | None = None
        self.last_notify: float | None = None
        self.reported_offline = False
        self.offline_since: float | None = None
        self.last_reason: str | None = None
        self.gen = 0  # bumped per connection: callbacks of older ones are ignored
        self.lost: asyncio.Event = asyncio.Event()
        self.last_error_log = float("-inf")

    def health(self, now: float) -> dict[str, Any]:
        """State and counters, for the heartbeat and ``status``."""
        h: dict[str, Any] = {
            "state": self.state,
            "driver": "ble_gatt",
            "address": self.dev.address,
            "connects": self.connects,
            "failures": self.failures,
            "losses": self.losses,
            "notifications": self.notifications,
            "last_battery": self.last_battery,
            "last_notify_s_ago": round(now - self.last_notify, 1) if self.last_notify is not None else None,
        }
        if self.state == "offline":
            h["reason"] = self.last_reason
            h["offline_s"] = round(now - self.offline_since, 1) if self.offline_since is not None else None
        for k in ("decode_errors", "battery_errors", "notify_errors"):
            if getattr(self, k):
                h[k] = getattr(self, k)
        return h


def stopped_health(dev: GattDevice) -> dict[str, Any]:
    """The health of a device the manager is not running for."""
    return {"state": "stopped", "driver": "ble_gatt", "address": dev.address}
