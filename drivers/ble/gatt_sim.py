"""Simulated GATT peripherals, driven from outside the process through the sim control socket.

:class:`SimGattRegistry` holds :class:`SimPeripheral` objects by address:
their characteristic values, whether they are in range (``reachable``), and
the clients connected to them. :class:`SimGattClient` is a
:class:`~drivers.ble.gatt.GattClient` against the registry, so a
:class:`~drivers.ble.gatt.GattManager` runs on it unchanged
(``client_factory=registry.client``).

Faults and traffic, from tests or through the socket:

* :meth:`SimGattRegistry.set_link` -- out of range (connected clients lose
  their connection, attempts fail) and back;
* :meth:`SimGattRegistry.drop` -- the connection drops now, the peripheral
  stays reachable;
* :meth:`SimGattRegistry.notify` -- the peripheral notifies a characteristic;
* :meth:`SimGattRegistry.set_value` -- a characteristic's value (e.g. the
  battery level) changes.

The registry counts connections and attempts in progress (``busy``) and
keeps the highest count seen (``max_busy``), so tests can check the
manager's connection limit.

:func:`register_gatt_sim_ops` puts ``gatt_notify``, ``gatt_set``,
``gatt_link``, ``gatt_drop`` and ``gatt_state`` on the hub's sim control socket.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from drivers.ble.backend import normalize_uuid, short_uuid
from drivers.ble.gatt import BATTERY_LEVEL_UUID, DisconnectedCallback, GattClient, GattError, NotifyCallback
from drivers.base import SimCommandError, SimOps

if TYPE_CHECKING:
    from drivers.ble.gatt import GattManager

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class SimPeripheral:
    """One simulated device: characteristic values by full UUID, and whether it is in range."""

    def __init__(self, address: str, values: dict[str, bytes] | None = None, *, battery: int | None = 100,
                 reachable: bool = True, connect_delay_s: float = 0.0) -> None:
        self.address = address.upper()
        self.values: dict[str, bytes] = {normalize_uuid(k): bytes(v) for k, v in (values or {}).items()}
        if battery is not None:
            self.values.setdefault(BATTERY_LEVEL_UUID, bytes([battery]))
        self.reachable = reachable
        self.connect_delay_s = connect_delay_s
        self.clients: set[SimGattClient] = set()
        self.counts: Counter[str] = Counter()

    def state(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "reachable": self.reachable,
            "connected": sum(1 for c in self.clients if c.is_connected),
            "values": {short_uuid(k): v.hex() for k, v in self.values.items()},
            "counts": dict(self.counts),
        }


class SimGattRegistry:
    """The simulated peripherals in range of the hub, and the bookkeeping of connections to them."""

    def __init__(self) -> None:
        self.peripherals: dict[str, SimPeripheral] = {}
        self.busy = 0  # connections established or being attempted
        self.max_busy = 0

    def add(self, address: str, values: dict[str, bytes] | None = None, **kw: Any) -> SimPeripheral:
        p = SimPeripheral(address, values, **kw)
        self.peripherals[p.address] = p
        return p

    def get(self, address: str) -> SimPeripheral:
        p = self.peripherals.get(address.upper())
        if p is None:
            raise KeyError(f"no simulated GATT peripheral {address}")
        return p

    def client(self, address: str) -> SimGattClient:
        """A client factory for :class:`~drivers.ble.gatt.GattManager`."""
        return SimGattClient(self, address)

    def set_link(self, address: str, up: bool) -> None:
        """Bring the peripheral in range or out of it (dropping its connections)."""
        p = self.get(address)
        p.reachable = up
        if not up:
            self.drop(address)

    def drop(self, address: str) -> int:
        """Drop every connection to the peripheral now; how many were dropped."""
        p = self.get(address)
        dropped = 0
        for c in list(p.clients):
            if c.is_connected:
                c._lost()
                dropped += 1
        p.counts["drops"] += dropped
        return dropped

    def set_value(self, address: str, uuid: str, value: bytes) -> None:
        self.get(address).values[normalize_uuid(uuid)] = bytes(value)

    def notify(self, address: str, uuid: str, payload: bytes) -> int:
        """Notify ``uuid`` with ``payload`` to every subscribed connected client; how many got it."""
        p = self.get(address)
        u = normalize_uuid(uuid)
        delivered = 0
        for c in list(p.clients):
            if c.is_connected and u in c._subs:
                c._subs[u](bytes(payload))
                delivered += 1
        p.counts["notifications"] += 1
        return delivered

    def state(self) -> dict[str, Any]:
        return {"busy": self.busy, "max_busy": self.max_busy,
                "peripherals": {a: p.state() for a, p in self.peripherals.items()}}

    def _enter(self) -> None:
        self.busy += 1
        self.max_busy = max(self.max_busy, self.busy)

    def _leave(self) -> None:
        self.busy -= 1


class SimGattClient(GattClient):
    """A :class:`~drivers.ble.gatt.GattClient` connecting to a :class:`SimPeripheral`."""

    def __init__(self, registry: SimGattRegistry, address: str) -> None:
        self.registry = registry
        self._address = address.upper()
        self._state = "idle"  # idle, connecting, connected
        self._subs: dict[str, NotifyCallback] = {}
        self._on_disconnect: DisconnectedCallback | None = None

    @property
    def address(self) -> str:
        return self._address

    @property
    def is_connected(self) -> bool:
        return self._state == "connected"

    def set_disconnected_callback(self, callback: DisconnectedCallback | None) -> None:
        self._on_disconnect = callback

    async def connect(self, timeout: float) -> None:
        if self._state != "idle":
            raise GattError("already connected or connecting")
        self._state = "connecting"
        self.registry._enter()
        ok = False
        try:
            p = self.registry.peripherals.get(self._address)
            delay = p.connect_delay_s if p is not None else 0.0
            await asyncio.sleep(min(delay, timeout))
            if delay > timeout:
                raise TimeoutError(f"{self._address}: connect timed out")
            if p is None or not p.reachable:
                if p is not None:
                    p.counts["refused"] += 1
                raise GattError(f"{self._address}: device not found")
            p.clients.add(self)
            p.counts["connects"] += 1
            self._state = "connected"
            ok = True
        finally:
            if not ok:
                self._state = "idle"
                self.registry._leave()

    async def disconnect(self) -> None:
        await asyncio.sleep(0)
        self._close()

    def _close(self) -> None:
        if self._state == "idle":
            return
        self._state = "idle"
        self._subs.clear()
        p = self.registry.peripherals.get(self._address)
        if p is not None:
            p.clients.discard(self)
        self.registry._leave()

    def _lost(self) -> None:
        self._close()
        if self._on_disconnect is not None:
            self._on_disconnect()

    def _peripheral(self) -> SimPeripheral:
        if not self.is_connected:
            raise GattError(f"{self._address} is not connected")
        return self.registry.get(self._address)

    async def read(self, char_uuid: str) -> bytes:
        await asyncio.sleep(0)
        p = self._peripheral()
        u = normalize_uuid(char_uuid)
        if u not in p.values:
            raise GattError(f"{self._address} has no characteristic {short_uuid(u)}")
        p.counts["reads"] += 1
        return p.values[u]

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        await asyncio.sleep(0)
        p = self._peripheral()
        u = normalize_uuid(char_uuid)
        if u not in p.values:
            raise GattError(f"{self._address} has no characteristic {short_uuid(u)}")
        self._subs[u] = callback


def _address(req: dict[str, Any], registry: SimGattRegistry) -> str:
    a = req.get("address")
    if not isinstance(a, str) or not _MAC.match(a):
        raise SimCommandError(f"bad address {a!r}")
    if a.upper() not in registry.peripherals:
        raise SimCommandError(f"no simulated GATT peripheral {a.upper()}; have: {', '.join(sorted(registry.peripherals))}")
    return a.upper()


def _uuid(req: dict[str, Any]) -> str:
    u = req.get("uuid")
    if not isinstance(u, str):
        raise SimCommandError("'uuid' must be a string")
    try:
        return normalize_uuid(u)
    except ValueError as exc:
        raise SimCommandError(str(exc)) from None


def _hex(req: dict[str, Any]) -> bytes:
    h = req.get("hex")
    if not isinstance(h, str):
        raise SimCommandError("'hex' must be a string")
    try:
        return bytes.fromhex(h)
    except ValueError:
        raise SimCommandError(f"bad hex {h!r}") from None


def register_gatt_sim_ops(ctl: SimOps, registry: SimGattRegistry, *, manager: GattManager | None = None) -> None:
    """Add the GATT operations to the sim control socket.

    * ``gatt_notify`` {address, uuid, hex} -- the peripheral notifies now;
      replies ``delivered`` (the number of subscribed connections);
    * ``gatt_set`` {address, uuid, hex} -- set a characteristic's value (read
      on the next poll, e.g. battery ``2a19``);
    * ``gatt_link`` {address, up} -- out of range (``up: false``, connections
      drop, attempts fail) or back in range;
    * ``gatt_drop`` {address} -- drop the connection now, staying in range;
    * ``gatt_state`` -- the registry's state, and the manager's health when one was given.

    UUIDs may be short (``"2a19"``) or full.
    """

    async def gatt_notify(req: dict[str, Any]) -> dict[str, Any]:
        a, u, data = _address(req, registry), _uuid(req), _hex(req)
        return {"address": a, "uuid": short_uuid(u), "delivered": registry.notify(a, u, data)}

    async def gatt_set(req: dict[str, Any]) -> dict[str, Any]:
        a, u, data = _address(req, registry), _uuid(req), _hex(req)
        registry.set_value(a, u, data)
        return {"address": a, "uuid": short_uuid(u)}

    async def gatt_link(req: dict[str, Any]) -> dict[str, Any]:
        a = _address(req, registry)
        up = req.get("up")
        if not isinstance(up, bool):
            raise SimCommandError("'up' must be true or false")
        registry.set_link(a, up)
        return registry.get(a).state()

    async def gatt_drop(req: dict[str, Any]) -> dict[str, Any]:
        a = _address(req, registry)
        return {"address": a, "dropped": registry.drop(a)}

    async def gatt_state(req: dict[str, Any]) -> dict[str, Any]:
        out = registry.state()
        if manager is not None:
            out["manager"] = manager.health()
        return out

    ctl.register("gatt_notify", gatt_notify)
    ctl.register("gatt_set", gatt_set)
    ctl.register("gatt_link", gatt_link)
    ctl.register("gatt_drop", gatt_drop)
    ctl.register("gatt_state", gatt_state)
