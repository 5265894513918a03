"""The serial driver's part of the residence config: ``[device.serial]`` and its protocols' options.

The protocol option tables (``[device.serial.<protocol>]``) come from the
protocol registry (:data:`drivers.serial.PROTOCOLS`): each protocol's package
exports its options struct, and :class:`SerialSettings` gets one optional
field per protocol. A new protocol is a new registry line, not an edit here.

Structs and checks only: this module is imported by the config loader, so it
imports no pyserial and no port code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from drivers.base import DriverConfig, Report
from drivers.serial import PROTOCOLS

__all__ = ["CONFIG", "OPTIONS", "PROTOCOL_FOR_KIND", "SerialSettings"]

#: Each protocol's options struct, by protocol name, imported from the protocol's package.
OPTIONS: dict[str, type] = {name: spec.options_struct() for name, spec in PROTOCOLS.items()}

#: The protocol names, as the ``protocol`` key accepts them.
ProtocolName = Literal[tuple(PROTOCOLS)]  # type: ignore[valid-type]

#: Serial protocol each serial device kind speaks.
PROTOCOL_FOR_KIND = {"bed_mat": "bedmat", "medication_dispenser": "dispenser", "nurse_call": "espa444"}


class _SerialPort(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[device.serial]`` without the protocol option tables (added below from the registry)."""

    port: Annotated[
        str,
        msgspec.Meta(min_length=1, description="The serial port; a /dev/serial/by-id/... link finds a replugged "
                                               "USB adapter again whatever ttyUSB number it gets."),
    ]
    protocol: Annotated[
        ProtocolName,
        msgspec.Meta(description="What the device speaks: bedmat (bed_mat), dispenser (medication_dispenser), "
                                 "espa444 (nurse_call)."),
    ]
    baud: Annotated[int, msgspec.Meta(ge=50, le=4_000_000, description="Line speed in bits a second.")] = 9600
    bytesize: Annotated[Literal[7, 8], msgspec.Meta(description="Data bits a character.")] = 8
    parity: Annotated[Literal["N", "E", "O"], msgspec.Meta(description="Parity: none, even or odd.")] = "N"
    stopbits: Annotated[Literal[1, 2], msgspec.Meta(description="Stop bits a character.")] = 1

    def options(self) -> Any:
        """The protocol's options struct (its defaults when the table is absent)."""
        opts = getattr(self, self.protocol)
        return opts if opts is not None else OPTIONS[self.protocol]()


SerialSettings = msgspec.defstruct(
    "SerialSettings",
    [
        (name, Annotated[struct | None, msgspec.Meta(description=f"Options of protocol {name!r} (only with it); "
                                                                 "its defaults when absent.")], None)
        for name, struct in OPTIONS.items()
    ],
    bases=(_SerialPort,),
    module=__name__,
    namespace={
        "__doc__": """``[device.serial]``: a sensor on a serial port, and its protocol's options.

    ``port`` may be a ``/dev/serial/by-id/...`` link, so a replugged adapter
    is found again whatever ttyUSB number it gets. The protocol's own options
    go in ``[device.serial.<protocol>]``; defaults apply when it is absent.
    """
    },
    kw_only=True,
    forbid_unknown_fields=True,
    frozen=True,
)


def check(devices: Sequence[Any], settings: Any, report: Report) -> None:
    """The protocol fits the kind, options only for that protocol and valid, no port used twice."""
    ports: dict[str, int] = {}
    for i, dev in enumerate(devices):
        serial = dev.serial
        if serial is None:
            continue
        want = PROTOCOL_FOR_KIND.get(dev.kind)
        if want is not None and serial.protocol != want:
            report(("device", i, "serial", "protocol"), f"expected {want!r} for kind {dev.kind!r}, found {serial.protocol!r}")
        for other in OPTIONS:
            if other != serial.protocol and getattr(serial, other) is not None:
                report(
                    ("device", i, "serial", other),
                    f"expected options for protocol {serial.protocol!r} only, found [device.serial.{other}]",
                )
        own_check = getattr(serial.options(), "check", None)
        for key, message in own_check() if own_check else []:
            report(("device", i, "serial", serial.protocol, key), message)
        port = os.path.realpath(serial.port) if os.path.exists(serial.port) else serial.port
        if port in ports:
            report(
                ("device", i, "serial", "port"),
                f"expected a port no other device uses, found {serial.port!r} (also device[{ports[port]}])",
            )
        ports.setdefault(port, i)


def advise(devices: Sequence[Any], settings: Any, base: os.PathLike[str], report: Report) -> None:
    """A warning for each configured port that does not exist on this machine now.

    Not an error: at install time the USB-serial adapter may not be plugged in
    yet, and the hub starts anyway (the device is reported offline until its
    port appears, then read within a second or two).
    """
    for i, dev in enumerate(devices):
        if dev.serial is None:
            continue
        port = dev.serial.port
        where = port if os.path.isabs(port) else os.path.join(base, port)
        if os.path.exists(where):
            continue
        looked = "" if os.path.isabs(port) else f" (looked for {where})"
        folder = os.path.dirname(where)
        if os.path.isdir(folder):
            listing = f"; plugged in now: ls {folder}"
        elif folder == "/dev/serial/by-id":
            listing = "; no USB-serial adapter is plugged in now (/dev/serial/by-id is missing)"
        else:
            listing = ""
        report(
            ("device", i, "serial", "port"),
            f"no such port {port!r}{looked}: the adapter may be unplugged (fine at install time); "
            f"the hub starts anyway, reports the device offline and reads it as soon as the port appears{listing}",
        )


CONFIG = DriverConfig(
    name="serial",
    device_sections={"serial": SerialSettings},
    kinds={"serial": tuple(PROTOCOL_FOR_KIND)},
    check=check,
    advise=advise,
)
