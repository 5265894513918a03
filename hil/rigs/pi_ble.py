"""Advertising as the residence's BLE devices from the rig's second adapter (``hci1``).

bleak cannot advertise, and BlueZ's D-Bus advertising API (``bluetoothctl``'s
advertise menu, ``btmgmt add-adv``) picks the address itself: a non-connectable
advert goes out from a fresh private address, which no configured device has and
which breaks BTHome's encryption (its nonce holds the sender's address). So the rig
speaks raw HCI with ``hcitool -i hci1 cmd`` (package ``bluez``), five commands per advert:

=====================================  ======================================================
``cmd 0x08 0x000a 00``                 LE Set Advertising Enable: off (to change the address)
``cmd 0x08 0x0005 <addr, LSB first>``  LE Set Random Address: the device's static address
``cmd 0x08 0x0006 a0 00 a0 00 03 01``  LE Set Advertising Parameters: 100 ms, ADV_NONCONN_IND,
``  00 00 00 00 00 00 00 07 00``          own address random, all three channels
``cmd 0x08 0x0008 <len> <AD> <pad>``   LE Set Advertising Data: flags, then service data 0xFCD2
``cmd 0x08 0x000a 01``                 LE Set Advertising Enable: on
=====================================  ======================================================

and ``cmd 0x08 0x000a 00`` again after ``advert_ms`` (a BTHome button repeats its
event for about a second). One device is on the air at a time. The address must be
a static random one (first byte C0-FF), the one the hub's config gives the device.

The service data is BTHome v2 built with :mod:`drivers.ble.bthome`: the values by
object name (``button = "press"``, ``opening = 1``, ``battery = 80``), a packet id
that changes on every advert (the hub drops repeats of the same one), and for a
device with a bindkey, AES-CCM with a counter that starts at the wall clock's
seconds when the rig starts and grows by one per advert, so it is above anything
an earlier run on the same bench sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog

from drivers.ble import bthome
from hil.fixtures import RigError
from hil.rigs.commands import CommandRunner
from hil.rigs.hostops import hcitool

log = structlog.get_logger("hil.rigs.pi_ble")

OGF_LE = 0x08
OCF_SET_RANDOM_ADDRESS = 0x0005
OCF_SET_ADV_PARAMS = 0x0006
OCF_SET_ADV_DATA = 0x0008
OCF_SET_ADV_ENABLE = 0x000A
ADV_NONCONN_IND = 0x03
OWN_ADDRESS_RANDOM = 0x01
#: LE General Discoverable, BR/EDR not supported: what a BTHome device sends.
AD_FLAGS = bytes([0x02, 0x01, 0x06])
AD_SERVICE_DATA_16 = 0x16
ADV_DATA_MAX = 31


def object_pairs(values: Mapping[str, Any]) -> list[tuple[int, Any]]:
    """BTHome ``(object id, value)`` pairs for values by object name; a list value repeats the object
    (``button = ["press", "none"]``: two buttons). Unknown names raise :class:`RigError`."""
    ids: dict[str, int] = {}
    for oid in sorted(bthome.OBJECTS):
        ids.setdefault(bthome.OBJECTS[oid].name, oid)
    pairs: list[tuple[int, Any]] = []
    for name, value in values.items():
        if name not in ids:
            raise RigError(f"advertise: {name!r} is no BTHome object name")
        for v in value if isinstance(value, list) else [value]:
            pairs.append((ids[name], v))
    return pairs


def adv_data(service_data: bytes) -> bytes:
    """The advertising data: flags, then the 16-bit service data of UUID 0xFCD2 (at most 31 bytes)."""
    sd = bytes([len(service_data) + 3, AD_SERVICE_DATA_16]) + bthome.UUID16.to_bytes(2, "little") + service_data
    data = AD_FLAGS + sd
    if len(data) > ADV_DATA_MAX:
        raise RigError(f"advertise: {len(data)} bytes of advertising data, a legacy advert holds {ADV_DATA_MAX}")
    return data


def static_address(address: str) -> bytes:
    """A static random address for LE Set Random Address: 6 bytes, least significant first."""
    raw = bytes.fromhex(address.replace(":", ""))
    if len(raw) != 6 or raw[0] & 0xC0 != 0xC0:
        raise RigError(f"{address}: not a static random address (its first byte must be C0-FF)")
    return raw[::-1]


def advert_commands(adapter: str, address: str, service_data: bytes, *, interval_ms: float = 100) -> list[list[str]]:
    """The ``hcitool`` commands that put ``service_data`` on the air from ``address`` (see the module doc)."""
    units = max(0x20, min(0x4000, round(interval_ms / 0.625)))
    interval = units.to_bytes(2, "little")
    params = interval + interval + bytes([ADV_NONCONN_IND, OWN_ADDRESS_RANDOM, 0, 0, 0, 0, 0, 0, 0, 0x07, 0x00])
    data = adv_data(service_data)
    return [
        hcitool(adapter, OGF_LE, OCF_SET_ADV_ENABLE, b"\x00"),
        hcitool(adapter, OGF_LE, OCF_SET_RANDOM_ADDRESS, static_address(address)),
        hcitool(adapter, OGF_LE, OCF_SET_ADV_PARAMS, params),
        hcitool(adapter, OGF_LE, OCF_SET_ADV_DATA, bytes([len(data)]) + data.ljust(ADV_DATA_MAX, b"\0")),
        hcitool(adapter, OGF_LE, OCF_SET_ADV_ENABLE, b"\x01"),
    ]


class BleAdvertiser:
    """The rig's second adapter advertising BTHome service data as one device at a time."""

    def __init__(
        self, runner: CommandRunner, *, adapter: str = "hci1", advert_s: float = 1.0, counter_start: int | None = None
    ) -> None:
        self.runner = runner
        self.adapter = adapter
        self.advert_s = advert_s
        self._counter = (int(time.time()) if counter_start is None else counter_start) & 0xFFFFFFFF
        self._packet_id = 0
        self._last: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()
        self._off: threading.Timer | None = None
        self._generation = 0

    def service_data(self, values: Mapping[str, Any], *, address: str, bindkey: str | None) -> bytes:
        """BTHome v2 service data for ``values``: a new packet id; encrypted with a new counter when keyed."""
        self._packet_id = (self._packet_id + 1) % 256
        pairs = [*object_pairs(values), (0x00, self._packet_id)]
        try:
            payload = bthome.encode_payload(pairs)
            if bindkey is None:
                return bthome.build_advert(payload)
            self._counter = (self._counter + 1) & 0xFFFFFFFF
            return bthome.build_advert(payload, bindkey=bindkey, mac=address, counter=self._counter)
        except bthome.EncodeError as exc:
            raise RigError(f"advertise: {exc}") from None

    def advertise(
        self, device: str, values: Mapping[str, Any], *, address: str, bindkey: str | None, replay: bool = False
    ) -> float:
        """Put the device's advert on the air (``replay``: its last one again, byte for byte) for
        ``advert_s``; the instant advertising was enabled."""
        if replay:
            if device not in self._last:
                raise RigError(f"advertise: replay of {device}, which has not advertised yet")
            address, data = self._last[device]
        else:
            data = self.service_data(values, address=address, bindkey=bindkey)
        commands = advert_commands(self.adapter, address, data)
        with self._lock:
            self._cancel_off()
            for argv in commands:
                self.runner.run(argv, timeout=5)
            t = time.monotonic()
            self._last[device] = (address, data)
            self._generation += 1
            self._off = threading.Timer(self.advert_s, self._expire, args=(self._generation,))
            self._off.daemon = True
            self._off.start()
        log.info("ble_advertised", device=device, address=address, bytes=len(data), replay=replay)
        return t

    def _cancel_off(self) -> None:
        if self._off is not None:
            self._off.cancel()
            self._off = None

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:  # not a later advert's air time
                self._off = None
                self.runner.run(hcitool(self.adapter, OGF_LE, OCF_SET_ADV_ENABLE, b"\x00"), timeout=5, check=False)

    def stop(self) -> None:
        """Take the advert off the air."""
        with self._lock:
            self._cancel_off()
            self._generation += 1
            self.runner.run(hcitool(self.adapter, OGF_LE, OCF_SET_ADV_ENABLE, b"\x00"), timeout=5, check=False)
