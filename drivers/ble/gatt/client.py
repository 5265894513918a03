"""The GATT connection API every backend implements, and :func:`make_client`, which picks a backend lazily.

:class:`GattClient` is to connections what
:class:`~drivers.ble.backend.ScannerBackend` is to scanning. The backends:
``bleak`` (:mod:`drivers.ble.gatt_bleak`, the real radio through BlueZ) and
``sim`` (:mod:`drivers.ble.gatt_sim`, peripherals driven through the hub's
sim control socket); :func:`make_client` imports one only when asked for it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from drivers.ble.backend import normalize_uuid

#: Battery Service and its Battery Level characteristic (one byte, 0..100 %).
BATTERY_SERVICE_UUID = normalize_uuid("180f")
BATTERY_LEVEL_UUID = normalize_uuid("2a19")

NotifyCallback = Callable[[bytes], None]
DisconnectedCallback = Callable[[], None]


class GattError(Exception):
    """A GATT operation failed (cannot connect, not connected, no such characteristic...)."""


class GattClient(abc.ABC):
    """One connection to one peripheral; may be connected again after a disconnect.

    Callbacks are called on the event loop's thread and must not block.
    """

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The peripheral's upper-case MAC."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    async def connect(self, timeout: float) -> None:
        """Connect within ``timeout`` seconds; raises :class:`GattError` or ``TimeoutError``."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Disconnect. Idempotent; never raises because the link is already gone."""

    @abc.abstractmethod
    async def read(self, char_uuid: str) -> bytes:
        """Read a characteristic's value (``char_uuid`` in any form :func:`normalize_uuid` takes)."""

    @abc.abstractmethod
    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        """Call ``callback(payload)`` for each notification of the characteristic, until disconnected."""

    @abc.abstractmethod
    def set_disconnected_callback(self, callback: DisconnectedCallback | None) -> None:
        """Call ``callback()`` when an established connection is lost (not on our own disconnect)."""


def make_client(backend: str, address: str, **kw: Any) -> GattClient:
    """A GATT client for ``[ble] backend``, importing the backend only then.

    ``bleak`` gives :class:`~drivers.ble.gatt_bleak.BleakGattClient` (keyword:
    ``adapter``), ``sim`` gives :class:`~drivers.ble.gatt_sim.SimGattClient`
    (keyword: ``registry``, a :class:`~drivers.ble.gatt_sim.SimGattRegistry`).
    """
    if backend == "bleak":
        from drivers.ble.gatt_bleak import BleakGattClient

        return BleakGattClient(address, **kw)
    if backend == "sim":
        from drivers.ble.gatt_sim import SimGattClient

        return SimGattClient(address=address, **kw)
    raise ValueError(f"unknown BLE backend {backend!r}; have: bleak, sim")
