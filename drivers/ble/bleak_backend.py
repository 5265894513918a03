"""The real radio: :class:`bleak.BleakScanner` behind :class:`~drivers.ble.backend.ScannerBackend`.

Kept thin, since nothing here can run without Bluetooth: build an
:class:`~drivers.ble.backend.Advert` per detection, map bleak's exceptions to
ours, and watch that the adapter still exists. Importing this module needs
bleak but no adapter, no D-Bus and no bluetoothd; nothing talks to BlueZ
before :meth:`BleakBackend.start`.

Scanning is passive where BlueZ supports it (``scanning_mode="passive"``
needs an advertisement monitor, i.e. ``or_patterns``; BlueZ >= 5.56 with
``--experimental`` and a 5.10+ kernel): the sensors' battery is spared the
scan requests, and BlueZ filters to the patterns (by default BTHome's
service data UUID 0xFCD2). Where it is refused we fall back to active
scanning, which delivers every advert in range (the scanner's allowlist
drops the others).

A running BlueZ scan does not report that its adapter was unplugged, nor
that bluetoothd restarted: the first is seen here by watching
``/sys/class/bluetooth/<adapter>`` (reported through ``on_error`` as
:class:`~drivers.ble.backend.AdapterGoneError`), the second by the scanner's
silence watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import structlog
from bleak import BleakScanner
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from drivers.ble.backend import (
    AdapterGoneError,
    Advert,
    AdvertCallback,
    BackendError,
    ErrorCallback,
    InProgressError,
    ScannerBackend,
)

log = structlog.get_logger("drivers.ble")

#: BTHome v2 service data (UUID 0xFCD2, little-endian in the AD structure): what passive scanning asks BlueZ for.
BTHOME_OR_PATTERNS: list[tuple[int, AdvertisementDataType, bytes]] = [
    (0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),
]

#: D-Bus errors meaning "this adapter cannot scan now" (rebuilding, maybe on another adapter, helps).
_ADAPTER_GONE_DBUS = {
    "org.bluez.Error.NotReady",
    "org.bluez.Error.DoesNotExist",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
}

SYS_BLUETOOTH = Path("/sys/class/bluetooth")


def map_bleak_error(exc: BaseException) -> BackendError:
    """Our exception for one raised by bleak (or by D-Bus underneath it)."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        if name == "org.bluez.Error.InProgress":
            return InProgressError(str(exc))
        if name in _ADAPTER_GONE_DBUS:
            return AdapterGoneError(str(exc))
        return BackendError(str(exc))
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return AdapterGoneError(str(exc))
    text = str(exc)
    if isinstance(exc, BleakError) and "adapter" in text and "not found" in text:
        return AdapterGoneError(text)  # bleak: "adapter 'hci0' not found"
    if isinstance(exc, (FileNotFoundError, ConnectionError, EOFError)):
        return AdapterGoneError(f"no D-Bus / bluetoothd: {exc!r}")  # the system bus socket is missing or closed
    return BackendError(text or repr(exc))


async def default_adapter() -> str:
    """The adapter bleak would pick (the first powered one with the BLE central role), as ``hciN``."""
    if sys.platform != "linux":
        return "default"
    from bleak.backends.bluezdbus.manager import get_global_bluez_manager

    manager = await get_global_bluez_manager()
    return manager.get_default_adapter().rsplit("/", 1)[-1]


class BleakBackend(ScannerBackend):
    """Scan with bleak: passive where BlueZ allows it, else active.

    ``adapter=None`` takes the default adapter at each start, so a dongle
    that comes back as ``hci1`` is picked up by the next rebuild; a
    configured name sticks to that adapter.
    """

    def __init__(
        self,
        adapter: str | None = None,
        *,
        passive: bool = True,
        or_patterns: list[Any] | None = None,
        watch_adapter_s: float = 2.0,
    ) -> None:
        self._configured = adapter
        self._adapter = adapter or "default"
        self.passive = passive
        self.or_patterns = list(or_patterns) if or_patterns is not None else list(BTHOME_OR_PATTERNS)
        self.watch_adapter_s = watch_adapter_s
        self.mode: str | None = None  # "passive" / "active" once started
        self._scanner: BleakScanner | None = None
        self._callback: AdvertCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def adapter(self) -> str:
        return self._adapter

    async def start(self, callback: AdvertCallback, on_error: ErrorCallback | None = None) -> None:
        if self._scanner is not None:
            raise BackendError("already scanning")
        try:
            self._adapter = self._configured or await default_adapter()
        except Exception as exc:
            raise map_bleak_error(exc) from exc
        self._callback, self._on_error = callback, on_error
        modes = ("passive", "active") if self.passive and sys.platform == "linux" else ("active",)
        for mode in modes:
            bluez: dict[str, Any] = {"adapter": self._adapter} if sys.platform == "linux" else {}
            if mode == "passive":
                bluez["or_patterns"] = self.or_patterns
            try:
                scanner = BleakScanner(detection_callback=self._detected, scanning_mode=mode, bluez=bluez)  # type: ignore[arg-type]
                await scanner.start()
            except Exception as exc:
                err = map_bleak_error(exc)
                if mode == "passive" and type(err) is BackendError:
                    log.info("ble_passive_unavailable", adapter=self._adapter, error=str(err))
                    continue
                self._callback = self._on_error = None
                raise err from exc
            self._scanner, self.mode = scanner, mode
            break
        log.info("ble_scanning", adapter=self._adapter, mode=self.mode)
        if self.watch_adapter_s > 0 and sys.platform == "linux" and SYS_BLUETOOTH.is_dir():
            self._watch = asyncio.create_task(self._watch_adapter(), name=f"ble-watch:{self._adapter}")

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        scanner, self._scanner = self._scanner, None
        self._callback = self._on_error = None
        if scanner is None:
            return
        try:
            await scanner.stop()
        except Exception as exc:  # the adapter or bluetoothd may already be gone
            log.info("ble_stop_failed", adapter=self._adapter, error=str(map_bleak_error(exc)))

    def _detected(self, device: BLEDevice, adv: AdvertisementData) -> None:
        cb = self._callback
        if cb is None:
            return
        cb(
            Advert(
                address=device.address,
                name=adv.local_name,
                rssi=adv.rssi,
                service_data=adv.service_data,
                manufacturer_data=adv.manufacturer_data,
                t=time.monotonic(),
            )
        )

    def _fail(self, err: BackendError) -> None:
        on_error, self._on_error = self._on_error, None
        self._callback = None
        if on_error is not None:
            on_error(err)

    async def _watch_adapter(self) -> None:
        path = SYS_BLUETOOTH / self._adapter
        while True:
            await asyncio.sleep(self.watch_adapter_s)
            if not path.exists():
                self._fail(AdapterGoneError(f"adapter {self._adapter} removed"))
                return
