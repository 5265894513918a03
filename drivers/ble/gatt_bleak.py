"""The real radio: :class:`bleak.BleakClient` behind :class:`~drivers.ble.gatt.GattClient`.

Kept thin, since nothing here can run without Bluetooth: map bleak's
exceptions to :class:`~drivers.ble.gatt.GattError`, strip the characteristic
argument from notification callbacks, and report a lost connection through
the callback set with ``set_disconnected_callback`` (not our own
disconnects). Importing this module needs bleak but no adapter, no D-Bus and
no bluetoothd; nothing talks to BlueZ before :meth:`BleakGattClient.connect`.

A fresh :class:`~bleak.BleakClient` is made per connection attempt (bleak's
advice after a failed connect on BlueZ).
"""

from __future__ import annotations

from typing import Any

import structlog
from bleak import BleakClient
from bleak.exc import BleakError

from drivers.ble.backend import normalize_uuid
from drivers.ble.gatt import DisconnectedCallback, GattClient, GattError, NotifyCallback

log = structlog.get_logger("drivers.ble.gatt")


class BleakGattClient(GattClient):
    """One peripheral through bleak; ``adapter`` (``hci0``) picks the BlueZ adapter."""

    def __init__(self, address: str, *, adapter: str | None = None) -> None:
        self._address = address.upper()
        self.adapter = adapter
        self._client: BleakClient | None = None
        self._on_disconnect: DisconnectedCallback | None = None
        self._closing = False

    @property
    def address(self) -> str:
        return self._address

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    def set_disconnected_callback(self, callback: DisconnectedCallback | None) -> None:
        self._on_disconnect = callback

    def _disconnected(self, client: BleakClient) -> None:
        if client is not self._client or self._closing:
            return
        cb = self._on_disconnect
        if cb is not None:
            try:
                cb()
            except Exception:
                log.exception("gatt_disconnect_callback_failed", address=self._address)

    async def connect(self, timeout: float) -> None:
        await self.disconnect()
        kw: dict[str, Any] = {"timeout": timeout}
        if self.adapter:
            kw["bluez"] = {"adapter": self.adapter}
        client = self._client = BleakClient(self._address, self._disconnected, **kw)
        self._closing = False
        try:
            await client.connect()
        except BleakError as exc:
            self._client = None
            raise GattError(f"cannot connect to {self._address}: {exc}") from exc
        except OSError as exc:  # D-Bus socket gone with bluetoothd
            self._client = None
            raise GattError(f"cannot connect to {self._address}: {exc!r}") from exc

    async def disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        self._closing = True
        try:
            await client.disconnect()
        except (BleakError, OSError, EOFError) as exc:
            log.debug("gatt_disconnect_error", address=self._address, error=repr(exc))
        finally:
            self._client = None

    def _live(self) -> BleakClient:
        if self._client is None or not self._client.is_connected:
            raise GattError(f"{self._address} is not connected")
        return self._client

    async def read(self, char_uuid: str) -> bytes:
        try:
            return bytes(await self._live().read_gatt_char(normalize_uuid(char_uuid)))
        except BleakError as exc:
            raise GattError(f"read {char_uuid} on {self._address}: {exc}") from exc

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        def on_notify(_char: Any, data: bytearray) -> None:
            callback(bytes(data))

        try:
            await self._live().start_notify(normalize_uuid(char_uuid), on_notify)
        except BleakError as exc:
            raise GattError(f"subscribe {char_uuid} on {self._address}: {exc}") from exc
