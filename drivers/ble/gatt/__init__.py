"""GATT connections: configured devices kept connected, battery polled, notifications turned into events.

Some BLE devices are not read from their adverts but through a connection:
a fall sensor that notifies on a characteristic, a bed sensor whose battery
is only in the Battery Service. This package keeps those connected.

* :mod:`~drivers.ble.gatt.client` -- :class:`GattClient`, the connection API
  every backend implements, and :func:`make_client`, which picks one by its
  config name and imports it only then: ``bleak``
  (:mod:`drivers.ble.gatt_bleak`) or ``sim`` (:mod:`drivers.ble.gatt_sim`);
* :mod:`~drivers.ble.gatt.notify` -- :class:`NotifyMapping`: which
  characteristic's notifications become which event, and how the payload is
  decoded into its data;
* :mod:`~drivers.ble.gatt.device` -- :class:`GattDevice`, a configured
  device, and the manager's per-device state and health;
* :mod:`~drivers.ble.gatt.manager` -- :class:`GattManager`, which keeps every
  device connected (connection limit, backoff, ``device.offline`` /
  ``device.online``, battery polling, notifications to events).

Every public name is re-exported here: ``from drivers.ble.gatt import
GattDevice, GattManager, NotifyMapping, make_client``.
"""

from __future__ import annotations

from drivers.ble.gatt.client import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    DisconnectedCallback,
    GattClient,
    GattError,
    NotifyCallback,
    make_client,
)
from drivers.ble.gatt.device import GattDevice
from drivers.ble.gatt.manager import ERROR_LOG_INTERVAL_S, MAX_QUEUED, BatteryFn, EmitFn, GattManager
from drivers.ble.gatt.notify import DECODERS, Decode, DecodeError, NotifyMapping

__all__ = [
    "BATTERY_LEVEL_UUID",
    "BATTERY_SERVICE_UUID",
    "DECODERS",
    "ERROR_LOG_INTERVAL_S",
    "MAX_QUEUED",
    "BatteryFn",
    "Decode",
    "DecodeError",
    "DisconnectedCallback",
    "EmitFn",
    "GattClient",
    "GattDevice",
    "GattError",
    "GattManager",
    "NotifyCallback",
    "NotifyMapping",
    "make_client",
]
