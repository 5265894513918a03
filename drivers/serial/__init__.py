"""Serial sensors: bed-occupancy mat, medication dispenser, ESPA 4.4.4 nurse-call input.

Each protocol is a package (``drivers.serial.bedmat``, ``.dispenser``,
``.espa444``) with the same pieces, one module each (see :mod:`drivers.serial.base`):
``wire`` (the bytes), ``parser`` (a Parser), ``logic`` (a DeviceLogic),
``emulator`` (an Emulator) and ``options`` (its options struct); the package
re-exports them all. :func:`protocol` looks one up by its config name,
importing it only then. :mod:`drivers.serial.port` runs a device over a real
port; :mod:`drivers.serial.emulator` plays the device on a pty (or a real
USB-serial port) for the demo, the tests and the rig.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProtocolSpec:
    """Where a protocol's pieces are: the package, and the class name of each piece.

    Each piece is in the package's module of the same name: ``parser`` in
    ``<module>.parser``, ``logic`` in ``<module>.logic``, and so on.
    """

    #: The protocol's package (``drivers.serial.bedmat``); each piece is in its module of that name.
    module: str
    parser: str
    logic: str
    emulator: str
    #: The options struct (``[device.serial.<protocol>]``); the config loader's serial section
    #: (:mod:`drivers.serial.config`) imports it from the package by this name.
    options: str

    def load(self, attr: str) -> Any:
        """The class of a piece (``"parser"``, ``"logic"``, ``"emulator"`` or ``"options"``), imported now."""
        return getattr(importlib.import_module(f"{self.module}.{attr}"), getattr(self, attr))

    def options_struct(self) -> type:
        """The protocol's options struct, imported from the protocol's package."""
        struct: type = self.load("options")
        return struct


PROTOCOLS: dict[str, ProtocolSpec] = {
    "bedmat": ProtocolSpec("drivers.serial.bedmat", "BedMatParser", "BedMatLogic", "BedMatEmulator", "BedMatOptions"),
    "dispenser": ProtocolSpec(
        "drivers.serial.dispenser", "DispenserParser", "DispenserLogic", "DispenserEmulator", "DispenserOptions"
    ),
    "espa444": ProtocolSpec("drivers.serial.espa444", "EspaParser", "EspaLogic", "EspaEmulator", "EspaOptions"),
}


def protocol(name: str) -> ProtocolSpec:
    """The spec of a protocol by its config name; KeyError when unknown."""
    return PROTOCOLS[name]
