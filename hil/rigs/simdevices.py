"""The residence's devices as the virtual rig drives them, all from outside the hub process.

* GPIO buttons and cords (a device with a ``gpio`` table): the hub's simulated
  pins, driven through its sim socket (``press`` / ``release``, whose replies
  carry ``mono_ns``, the ``CLOCK_MONOTONIC`` instant of the edge); the LED and
  buzzer read back with ``state``.
* Serial devices (a ``serial`` table whose port is :data:`~hil.rigs.residence.EMULATOR`):
  one emulator process per device on a pty pair (:class:`hil.harness.emulators.EmulatedDevice`).
* The modem (a ``modem`` table whose port is :data:`~hil.rigs.residence.EMULATOR`): the
  modem emulator on a pty (:class:`hil.harness.emulators.EmulatedModem`), driven like a serial
  device (``serial`` sends ``sms`` or ``fault``; ``unplug``, ``replug``), its SMS read with :meth:`SimDevices.sms`.
* BLE devices (a ``ble`` table): BTHome v2 adverts built with
  :func:`drivers.ble.bthome.encode`, encrypted with the device's bindkey and a
  counter that rises with every advert, or plain with a rising packet id; sent
  into the hub's simulated radio with the ``ble_advert`` sim op. A replay sends
  the device's last advert again, byte for byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drivers.ble import bthome
from drivers.ble.bthome.objects import OBJECTS
from hil.fixtures import RigError
from hil.harness.emulators import EmulatedDevice, EmulatedModem
from hil.rigs.residence import EMULATOR, device

__all__ = ["SimDevices", "advert_bytes"]

FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"

#: BTHome object ids by name (the first id of a name: ``temperature`` is 0x02, 0.01 °C).
OBJECT_IDS: dict[str, int] = {}
for _oid in sorted(OBJECTS):
    OBJECT_IDS.setdefault(OBJECTS[_oid].name, _oid)

Sim = Callable[[dict[str, Any]], dict[str, Any]]


def advert_bytes(values: dict[str, Any], *, bindkey: str | None, mac: str, counter: int, packet_id: int) -> bytes:
    """A BTHome advert of ``values`` (``{"button": "press", "battery": 80}``; a list gives one object each):
    encrypted with ``bindkey`` and ``counter``, or plain with ``packet_id`` (unless ``values`` has one)."""
    objects: list[tuple[int, Any]] = []
    for name, value in values.items():
        oid = OBJECT_IDS.get(name)
        if oid is None:
            raise RigError(f"unknown BTHome object {name!r}; known: {', '.join(sorted(OBJECT_IDS))}")
        objects += [(oid, v) for v in (value if isinstance(value, list) else [value])]
    try:
        if bindkey:
            return bthome.encode(objects, bindkey=bindkey, mac=mac, counter=counter)
        return bthome.encode(objects, packet_id=None if "packet_id" in values else packet_id)
    except bthome.EncodeError as exc:
        raise RigError(f"cannot encode {values!r}: {exc}") from exc


class SimDevices:
    """Drive the devices of the config ``doc``; ``sim`` calls the running hub's sim socket."""

    def __init__(self, doc: dict[str, Any], dir: Path, sim: Sim) -> None:  # noqa: A002
        self.doc = doc
        self.dir = dir
        self.sim = sim
        self.emulators: dict[str, EmulatedDevice] = {}
        self.unplugged: set[str] = set()
        self.modems: set[str] = set()
        self._counters: dict[str, int] = {}
        self._last: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._serial_locks: dict[str, threading.Lock] = {}

    # --- lifecycle ----------------------------------------------------------------------

    def start_emulators(self) -> None:
        """Start an emulator for each serial device on :data:`EMULATOR` (in parallel) and put its pty in the config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        wanted = [d for d in self.doc.get("device", []) if d.get("serial", {}).get("port") == EMULATOR]
        modems = [d for d in self.doc.get("device", []) if d.get("modem", {}).get("port") == EMULATOR]
        for d in wanted:
            self.emulators[d["id"]] = EmulatedDevice(d["serial"]["protocol"], self.dir, d["id"])
        for d in modems:
            self.emulators[d["id"]] = EmulatedModem(self.dir, d["id"])
            self.modems.add(d["id"])
        with ThreadPoolExecutor(max_workers=max(1, len(self.emulators))) as pool:
            for fut in [pool.submit(e.start) for e in self.emulators.values()]:
                fut.result()
        for d in wanted:
            d["serial"]["port"] = str(self.emulators[d["id"]].link)
        for d in modems:
            d["modem"]["port"] = str(self.emulators[d["id"]].link)

    def serial_ids(self) -> set[str]:
        """The emulated serial devices that are plugged in (not the modems: they are no serial driver's)."""
        return set(self.emulators) - self.unplugged - self.modems

    def ble_configured(self) -> bool:
        return any("ble" in d for d in self.doc.get("device", []))

    def stop(self) -> None:
        """Stop every emulator (again: a no-op)."""
        emulators, self.emulators = self.emulators, {}
        for e in emulators.values():
            try:
                e.stop()
            except Exception:  # noqa: BLE001 - the others must stop too
                if e.proc is not None and e.proc.poll() is None:
                    e.proc.kill()

    # --- GPIO ---------------------------------------------------------------------------

    def _gpio(self, name: str) -> None:
        d = device(self.doc, name)
        if d is None or "gpio" not in d:
            raise RigError(f"{name!r} is not a GPIO device of this residence")

    def press(self, name: str, hold_s: float) -> float:
        """Press, keep ``hold_s``, let go; the press edge's instant."""
        t = self.hold(name)
        time.sleep(hold_s)
        self.release(name)
        return t

    def hold(self, name: str) -> float:
        """Press and keep pressed; the edge's instant."""
        self._gpio(name)
        return int(self.sim({"op": "press", "device": name})["mono_ns"]) / 1e9

    def release(self, name: str) -> float:
        """Let go; the edge's instant."""
        self._gpio(name)
        return int(self.sim({"op": "release", "device": name})["mono_ns"]) / 1e9

    def feedback(self, name: str, output: str) -> str:
        """The pattern the hub shows on the device's LED (the buzzer follows the same mode)."""
        self._gpio(name)
        st = self.sim({"op": "state", "device": name})
        if output not in ("led", "buzzer") or st.get(output) is None:
            raise RigError(f"{name!r} has no {output}")
        return str(st["feedback"])

    # --- serial -------------------------------------------------------------------------

    def _emulator(self, name: str) -> EmulatedDevice:
        e = self.emulators.get(name)
        if e is None:
            raise RigError(f"{name!r} is not an emulated serial device; have: {', '.join(sorted(self.emulators))}")
        return e

    def serial(self, name: str, send: str, args: dict[str, Any]) -> float:
        """One frame (or garbage: ``send = "corrupt"``) from the device; the instant before sending."""
        e = self._emulator(name)
        with self._serial_locks.setdefault(name, threading.Lock()):
            t = time.monotonic()
            try:
                e.send(send, **args)
            except Exception as exc:
                raise RigError(f"{name}: the emulator refused {send!r}: {exc}") from exc
        return t

    def unplug(self, name: str) -> None:
        self._emulator(name).unplug()
        self.unplugged.add(name)

    def replug(self, name: str) -> None:
        self._emulator(name).replug()
        self.unplugged.discard(name)

    def sms(self, name: str) -> dict[str, Any]:
        """What the modem ``name`` was asked to send: ``cmgs`` (numbers) and ``sent`` (to, text, ref)."""
        if name not in self.modems:
            raise RigError(f"{name!r} is not an emulated modem; have: {', '.join(sorted(self.modems)) or 'none'}")
        state = self.emulators[name].state()["emulator"]
        return {"cmgs": list(state["cmgs"]), "sent": list(state["sent"])}

    # --- BLE ----------------------------------------------------------------------------

    def advertise(self, name: str, values: dict[str, Any], replay: bool) -> float:
        """Send an advert of the device (its last one again with ``replay``); the instant before sending."""
        d = device(self.doc, name)
        if d is None or "ble" not in d:
            raise RigError(f"{name!r} is not a BTHome device of this residence")
        mac, key = d["ble"]["address"], d["ble"].get("bindkey")
        with self._lock:
            if replay:
                data = self._last.get(name)
                if data is None:
                    raise RigError(f"{name}: nothing to replay, it never advertised")
            else:
                n = self._counters[name] = self._counters.get(name, 0) + 1
                data = advert_bytes(values, bindkey=key, mac=mac, counter=n, packet_id=n % 256)
                self._last[name] = data
        t = time.monotonic()
        self.sim({"op": "ble_advert", "address": mac, "service_data_hex": {FCD2: data.hex()}})
        return t

    def ble_fault(self, kind: str, times: int, running: bool) -> None:
        self.sim({"op": "ble_fault", "kind": kind, "times": times, "running": running})
