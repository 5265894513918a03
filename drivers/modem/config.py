"""The modem driver's part of the residence config: ``[device.modem]``.

Structs and checks only: imported by the config loader, so no atlib or pyserial here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import os
from pathlib import Path

import msgspec

from drivers.base import DriverConfig, Report

__all__ = ["CONFIG", "ModemDevice"]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of the modem's tables: keyword-only, frozen, unknown keys refused (as the loader's)."""


class ModemDevice(_Section):
    """``[device.modem]``: a GSM/LTE modem on a serial port (AT commands), for SMS when the central cannot be
    reached and as a supervised second path."""

    port: Annotated[
        str,
        msgspec.Meta(description="Serial port of the modem's AT interface, e.g. /dev/serial/by-id/usb-...-if02-port0 "
                                 "or /dev/ttyUSB2; relative paths start at the config file's directory.",
                     min_length=1),
    ]
    baud: Annotated[int, msgspec.Meta(description="Baud rate of the AT interface.", ge=1200, le=4_000_000)] = 115200
    backend: Annotated[
        Literal["atlib", "sim"],
        msgspec.Meta(description="atlib: a real modem (or the emulator, carehub emulate modem) on the port; sim: a "
                                 "simulated modem in the hub, driven through the sim socket (demo); port unused."),
    ] = "atlib"
    check_s: Annotated[
        float, msgspec.Meta(description="Seconds between checks of the SIM (AT+CPIN?), the registration (AT+CREG?) "
                                        "and the signal (AT+CSQ); also how soon a modem that is gone is tried again.",
                            ge=0.2, le=3600)
    ] = 30.0
    inbox_s: Annotated[
        float, msgspec.Meta(description="Seconds between reads of the messages received (AT+CMGL): how soon an OK "
                                        "reply is seen.", ge=0.2, le=600)
    ] = 5.0
    command_timeout_s: Annotated[
        float, msgspec.Meta(description="Seconds a modem may take to answer one AT command before it counts as not "
                                        "answering (the port is closed and opened again).", gt=0, le=120)
    ] = 10.0
    send_timeout_s: Annotated[
        float, msgspec.Meta(description="Seconds a modem may take to send one SMS (+CMGS), network included.",
                            gt=0, le=300)
    ] = 60.0
    min_signal: Annotated[
        int, msgspec.Meta(description="Lowest AT+CSQ signal (rssi 0-31; 99 unknown) the path counts as up; below: "
                                      "path.lost, weak_signal. 5 is about -103 dBm.", ge=0, le=31)
    ] = 5


def check(devices: Sequence[Any], settings: Any, report: Report) -> None:
    """No two modems on one port."""
    seen: dict[str, int] = {}
    for i, dev in enumerate(devices):
        m = getattr(dev, "modem", None)
        if m is None or m.backend == "sim":
            continue
        if m.port in seen:
            report(("device", i, "modem", "port"),
                   f"expected a port no other modem uses, found {m.port!r} again (first at device[{seen[m.port]}])")
        seen.setdefault(m.port, i)


def advise(devices: Sequence[Any], settings: Any, base: Path, report: Report) -> None:
    """A warning for a modem port that does not exist on this machine now (the modem may be plugged in later:
    the hub starts anyway, reports path.lost unplugged, and opens the port as soon as it appears)."""
    for i, dev in enumerate(devices):
        m = getattr(dev, "modem", None)
        if m is None or m.backend == "sim":
            continue
        where = m.port if os.path.isabs(m.port) else os.path.join(base, m.port)
        if not os.path.exists(where):
            report(("device", i, "modem", "port"),
                   f"no such port {m.port!r}: the modem may be unplugged (fine at install time); the hub starts "
                   "anyway, reports path.lost (unplugged) and opens the port as soon as it appears")


CONFIG = DriverConfig(
    name="modem",
    device_sections={"modem": ModemDevice},
    kinds={"modem": ("modem",)},
    check=check,
    advise=advise,
)
