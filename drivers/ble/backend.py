"""The BLE scanning API every backend implements, as bleak picks its platform backend.

:class:`Advert` is one received advertisement as a plain value; a
:class:`ScannerBackend` delivers them to a callback between ``start`` and
``stop``. :func:`make_backend` picks a backend by its config name and imports
it only then: ``bleak`` (:mod:`drivers.ble.bleak_backend`, the real radio
through BlueZ) or ``sim`` (:mod:`drivers.ble.sim`, adverts and faults injected
through the hub's sim control socket). :class:`~drivers.ble.scanner.BleScanner`
owns a backend and rebuilds it when it fails.

How a backend reports trouble:

* ``start`` raises :class:`InProgressError` (BlueZ ``org.bluez.Error.InProgress``:
  bluetoothd's discovery state is stuck), :class:`AdapterGoneError` (no such
  adapter, powered off, bluetoothd gone) or another :class:`BackendError`;
* once running, a failure is reported by calling the ``on_error`` callback
  passed to ``start`` with one of those exceptions, at most once per start;
  after that the backend delivers nothing more and waits for ``stop``;
* ``stop`` is idempotent and never raises because the adapter vanished.

Both callbacks are called on the event loop's thread and must not block.
A backend may be started again after ``stop``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The Bluetooth base UUID: 16- and 32-bit UUIDs are short forms of it.
BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def normalize_uuid(uuid: str) -> str:
    """The full 128-bit lower-case form of a service UUID: ``"FCD2"`` gives ``"0000fcd2-0000-1000-8000-00805f9b34fb"``."""
    u = uuid.strip().lower()
    if u.startswith("0x"):
        u = u[2:]
    if len(u) == 4:
        u = "0000" + u
    if len(u) == 8:
        int(u, 16)  # ValueError on garbage
        return u + BASE_UUID_SUFFIX
    if len(u) == 36 and u.count("-") == 4:
        int(u.replace("-", ""), 16)
        return u
    raise ValueError(f"not a Bluetooth UUID: {uuid!r}")


def short_uuid(uuid: str) -> str:
    """``"fcd2"`` for a base UUID, the full form otherwise (for logs and reprs)."""
    if uuid.endswith(BASE_UUID_SUFFIX) and uuid.startswith("0000"):
        return uuid[4:8]
    return uuid


@dataclass(frozen=True, slots=True, repr=False)
class Advert:
    """One received BLE advertisement.

    ``address`` is the upper-case MAC; ``service_data`` is keyed by the full
    128-bit service UUID in lower case (``0000fcd2-0000-1000-8000-00805f9b34fb``
    for BTHome); ``manufacturer_data`` by the company id; ``t`` is
    ``time.monotonic()`` when it was received.
    """

    address: str
    name: str | None = None
    rssi: int | None = None
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    t: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.address.isupper():
            object.__setattr__(self, "address", self.address.upper())
        sd = self.service_data
        if any(k != k.lower() or len(k) != 36 for k in sd):
            object.__setattr__(self, "service_data", {normalize_uuid(k): v for k, v in sd.items()})

    def __repr__(self) -> str:
        parts = [self.address]
        if self.name:
            parts.append(repr(self.name))
        if self.rssi is not None:
            parts.append(f"{self.rssi} dBm")
        if self.service_data:
            sd = ", ".join(f"{short_uuid(k)}: {v.hex(' ')}" for k, v in self.service_data.items())
            parts.append(f"service_data={{{sd}}}")
        if self.manufacturer_data:
            md = ", ".join(f"0x{k:04x}: {v.hex(' ')}" for k, v in self.manufacturer_data.items())
            parts.append(f"manufacturer_data={{{md}}}")
        parts.append(f"t={self.t:.3f}")
        return f"Advert({' '.join(parts)})"


class BackendError(Exception):
    """The backend cannot scan (start failed, or the running scan broke)."""

    #: Short machine-readable reason, used in ``hub.ble_degraded`` events.
    reason = "error"


class InProgressError(BackendError):
    """BlueZ ``org.bluez.Error.InProgress``: bluetoothd's discovery state is stuck."""

    reason = "in_progress"


class AdapterGoneError(BackendError):
    """The adapter is missing, not ready / powered off, or bluetoothd is gone."""

    reason = "adapter_gone"


AdvertCallback = Callable[[Advert], None]
ErrorCallback = Callable[[BackendError], None]


class ScannerBackend(abc.ABC):
    """A source of :class:`Advert` objects: the radio, or the simulator."""

    @property
    @abc.abstractmethod
    def adapter(self) -> str:
        """The adapter scanned with (``hci0``), or the last one known when it is gone."""

    @abc.abstractmethod
    async def start(self, callback: AdvertCallback, on_error: ErrorCallback | None = None) -> None:
        """Start delivering adverts to ``callback``.

        Raises :class:`BackendError` (or a subclass) when scanning cannot
        start. A failure while running is reported through ``on_error``
        (at most once per start), never raised into the loop.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop delivering adverts. Idempotent; does not raise when the adapter is gone."""


def make_backend(name: str, **kw: Any) -> ScannerBackend:
    """A scanner backend for ``[ble] backend``, importing it only then.

    ``bleak`` gives :class:`~drivers.ble.bleak_backend.BleakBackend` (keywords:
    ``adapter``, ``passive``, ``or_patterns``...), ``sim`` gives
    :class:`~drivers.ble.sim.SimBackend` (keyword: ``adapter``).
    """
    if name == "bleak":
        from drivers.ble.bleak_backend import BleakBackend

        return BleakBackend(**kw)
    if name == "sim":
        from drivers.ble.sim import SimBackend

        return SimBackend(**kw)
    raise ValueError(f"unknown BLE backend {name!r}; have: bleak, sim")
