"""The simulated BLE backend: adverts and radio faults injected from outside the process.

:class:`SimBackend` is a :class:`~drivers.ble.backend.ScannerBackend` with no
radio: :meth:`~SimBackend.inject` delivers an advert as if it had been heard,
and the fault methods reproduce what goes wrong with BlueZ in the field:

* :meth:`~SimBackend.fail_next_start` -- the next start(s) raise
  ``InProgressError`` (bluetoothd's discovery state stuck) or
  ``AdapterGoneError``;
* :meth:`~SimBackend.fail_now` -- the running scan reports a failure through
  ``on_error``;
* :meth:`~SimBackend.go_silent` -- keeps "running" but delivers nothing, as
  after bluetoothd restarted under us (a fresh start clears it);
* :meth:`~SimBackend.remove_adapter` / :meth:`~SimBackend.add_adapter` -- the
  dongle is unplugged (a running scan reports ``AdapterGoneError``, starts
  fail) and comes back, possibly as another ``hciN``.

The scanner rebuilds its backend through a factory; with the simulator the
factory returns the same instance every time (``lambda: sim``), since it is
restartable and the sim ops are registered on it.

:func:`register_sim_ops` puts ``ble_advert``, ``ble_fault`` and ``ble_state``
on the hub's sim control socket, so the demo, the tests and the rig drive all
of it from another process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Literal

from drivers.ble.backend import (
    AdapterGoneError,
    Advert,
    AdvertCallback,
    BackendError,
    ErrorCallback,
    InProgressError,
    ScannerBackend,
    normalize_uuid,
)
from drivers.base import SimCommandError, SimOps

if TYPE_CHECKING:
    from drivers.ble.scanner import BleScanner

FaultKind = Literal["in_progress", "adapter_gone"]

_ERRORS: dict[str, type[BackendError]] = {"in_progress": InProgressError, "adapter_gone": AdapterGoneError}
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class SimBackend(ScannerBackend):
    """A restartable backend fed by :meth:`inject`, with fault injection."""

    def __init__(self, adapter: str = "hci0") -> None:
        self._present: str | None = adapter
        self._last_adapter = adapter
        self._callback: AdvertCallback | None = None
        self._on_error: ErrorCallback | None = None
        self.running = False
        self.silent = False
        self._fail_starts: deque[str] = deque()
        self.counts: Counter[str] = Counter()
        #: (monotonic time, outcome) of recent starts: "ok", "in_progress", "adapter_gone".
        self.start_log: deque[tuple[float, str]] = deque(maxlen=64)

    # --- ScannerBackend -----------------------------------------------------------------

    @property
    def adapter(self) -> str:
        return self._present or self._last_adapter

    async def start(self, callback: AdvertCallback, on_error: ErrorCallback | None = None) -> None:
        await asyncio.sleep(0)
        if self.running:
            raise BackendError("already scanning")
        self.counts["starts"] += 1
        kind = self._fail_starts.popleft() if self._fail_starts else None
        if kind is None and self._present is None:
            kind = "adapter_gone"
        if kind is not None:
            self.counts["start_failures"] += 1
            self.start_log.append((time.monotonic(), kind))
            if kind == "in_progress":
                raise InProgressError(f"org.bluez.Error.InProgress on {self.adapter} (simulated)")
            raise AdapterGoneError(f"adapter {self.adapter} not found (simulated)")
        self.start_log.append((time.monotonic(), "ok"))
        self._callback, self._on_error = callback, on_error
        self.running = True
        self.silent = False  # a fresh registration with bluetoothd hears again

    async def stop(self) -> None:
        if self.running:
            self.counts["stops"] += 1
        self.running = False
        self._callback = self._on_error = None

    # --- driving it ---------------------------------------------------------------------

    def inject(self, advert: Advert) -> bool:
        """Deliver ``advert`` as if heard now; False when nothing would hear it (stopped, silent, no adapter)."""
        self.counts["injected"] += 1
        cb = self._callback
        if not self.running or self.silent or self._present is None or cb is None:
            return False
        self.counts["delivered"] += 1
        cb(advert)
        return True

    def fail_next_start(self, kind: FaultKind, times: int = 1) -> None:
        """Make the next ``times`` starts raise ``InProgressError`` or ``AdapterGoneError``."""
        if kind not in _ERRORS:
            raise ValueError(f"unknown start failure {kind!r}; have: {', '.join(_ERRORS)}")
        self._fail_starts.extend([kind] * times)

    def fail_now(self, kind: FaultKind) -> bool:
        """The running scan reports ``kind`` through ``on_error`` and stops delivering; False if not running."""
        if kind not in _ERRORS:
            raise ValueError(f"unknown failure {kind!r}; have: {', '.join(_ERRORS)}")
        return self._report(_ERRORS[kind](f"{kind} on {self.adapter} while scanning (simulated)"))

    def go_silent(self) -> None:
        """Keep running but deliver nothing, like a scan orphaned by a bluetoothd restart."""
        self.silent = True

    def remove_adapter(self) -> None:
        """Unplug the adapter: a running scan reports ``AdapterGoneError``; starts fail until :meth:`add_adapter`."""
        if self._present is None:
            return
        self._last_adapter, self._present = self._present, None
        self._report(AdapterGoneError(f"adapter {self._last_adapter} removed (simulated)"))

    def add_adapter(self, name: str | None = None) -> str:
        """Plug an adapter in, by default as the next ``hciN`` after the last one; returns its name."""
        if name is None:
            m = re.fullmatch(r"hci(\d+)", self._last_adapter)
            name = f"hci{int(m.group(1)) + 1}" if m else "hci0"
        self._present = self._last_adapter = name
        return name

    def state(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "adapter_present": self._present is not None,
            "running": self.running,
            "silent": self.silent,
            "pending_start_failures": list(self._fail_starts),
            **{k: self.counts[k] for k in ("starts", "start_failures", "stops", "injected", "delivered", "errors")},
        }

    def _report(self, err: BackendError) -> bool:
        on_error = self._on_error
        if not self.running:
            return False
        self.running = False
        self._callback = self._on_error = None
        self.counts["errors"] += 1
        if on_error is not None:
            on_error(err)
        return True


def advert_from_request(req: dict[str, Any]) -> Advert:
    """Build an :class:`Advert` from a ``ble_advert`` request (hex payloads, short or full UUIDs)."""
    address = req.get("address")
    if not isinstance(address, str) or not _MAC.match(address):
        raise SimCommandError(f"'address' must be a MAC like AA:BB:CC:DD:EE:FF, got {address!r}")
    name = req.get("name")
    if name is not None and not isinstance(name, str):
        raise SimCommandError("'name' must be a string")
    rssi = req.get("rssi", -60)
    if rssi is not None and (not isinstance(rssi, int) or isinstance(rssi, bool)):
        raise SimCommandError("'rssi' must be an integer")
    sd = req.get("service_data_hex") or {}
    md = req.get("manufacturer_data_hex") or {}
    if not isinstance(sd, dict) or not isinstance(md, dict):
        raise SimCommandError("'service_data_hex' and 'manufacturer_data_hex' must be objects")
    return Advert(
        address=address.upper(),
        name=name,
        rssi=rssi,
        service_data={normalize_uuid(str(k)): bytes.fromhex(v) for k, v in sd.items()},
        manufacturer_data={int(k, 0) if isinstance(k, str) else int(k): bytes.fromhex(v) for k, v in md.items()},
        t=time.monotonic(),
    )


def register_sim_ops(ctl: SimOps, backend: SimBackend, *, scanner: BleScanner | None = None) -> None:
    """Add the BLE operations to the sim control socket.

    * ``ble_advert`` {address, name?, rssi?, service_data_hex?: {uuid: hex},
      manufacturer_data_hex?: {company_id: hex}} -- hear an advert now;
      replies ``delivered`` (false while stopped, silent or without adapter).
      UUIDs may be short (``"fcd2"``) or full.
    * ``ble_adverts`` {adverts: [<ble_advert fields>, ...]} -- hear a batch of
      adverts now, in order (at most 10,000; all are checked before any is
      delivered); replies ``count`` and ``delivered``. For load tests, where
      one request per advert would measure the socket rather than the scanner.
    * ``ble_fault`` {kind, adapter?, times?, running?} -- ``in_progress``: the
      next ``times`` starts fail with InProgress (and, with ``running: true``,
      the running scan fails too); ``adapter_gone``: unplug the adapter;
      ``silent``: stop hearing while still "running"; ``adapter_back``: plug
      the adapter in again, as ``adapter`` (default: the next ``hciN``).
    * ``ble_state`` -- the backend's state and counters, and the scanner's
      health when one was given.
    """

    async def ble_advert(req: dict[str, Any]) -> dict[str, Any]:
        advert = advert_from_request(req)
        return {"address": advert.address, "delivered": backend.inject(advert)}

    async def ble_adverts(req: dict[str, Any]) -> dict[str, Any]:
        items = req.get("adverts")
        if not isinstance(items, list) or len(items) > 10_000:
            raise SimCommandError("'adverts' must be a list of at most 10000 advert objects")
        if not all(isinstance(a, dict) for a in items):
            raise SimCommandError("each entry of 'adverts' must be an object")
        adverts = [advert_from_request(a) for a in items]
        delivered = sum(1 for a in adverts if backend.inject(a))
        return {"count": len(adverts), "delivered": delivered}

    async def ble_fault(req: dict[str, Any]) -> dict[str, Any]:
        kind = req.get("kind")
        if kind == "in_progress":
            times = req.get("times", 1)
            if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= 1000:
                raise SimCommandError("'times' must be an integer from 0 to 1000")
            backend.fail_next_start("in_progress", times)
            if req.get("running"):
                backend.fail_now("in_progress")
        elif kind == "adapter_gone":
            backend.remove_adapter()
        elif kind == "silent":
            backend.go_silent()
        elif kind == "adapter_back":
            adapter = req.get("adapter")
            if adapter is not None and (not isinstance(adapter, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", adapter)):
                raise SimCommandError(f"bad adapter name {adapter!r}")
            backend.add_adapter(adapter)
        else:
            raise SimCommandError(f"unknown BLE fault {kind!r}; have: in_progress, adapter_gone, silent, adapter_back")
        return {"kind": kind, **backend.state()}

    async def ble_state(req: dict[str, Any]) -> dict[str, Any]:
        out = backend.state()
        if scanner is not None:
            out["scanner"] = scanner.health()
        return out

    ctl.register("ble_advert", ble_advert)
    ctl.register("ble_adverts", ble_adverts)
    ctl.register("ble_fault", ble_fault)
    ctl.register("ble_state", ble_state)
