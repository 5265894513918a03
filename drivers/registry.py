"""The drivers the hub knows. A new driver is a new package plus one line here.

Each entry names the driver's config module (a :class:`~drivers.base.DriverConfig`
called ``CONFIG``: light, structs only, no hardware libraries imported) and its
way in (``attach(port, devices, settings) -> Driver``), imported only when a
residence has devices for it, as bleak picks its backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from drivers.base import DriverConfig


@dataclass(frozen=True)
class Registered:
    """One driver: its name, its config module and its ``attach`` (``module:function``)."""

    name: str
    config: str
    attach: str

    def load_config(self) -> DriverConfig:
        """The driver's :class:`DriverConfig`."""
        return importlib.import_module(self.config).CONFIG

    def load_attach(self) -> Any:
        """The driver's ``attach`` function (imports the driver and its backends)."""
        module, _, func = self.attach.partition(":")
        return getattr(importlib.import_module(module), func)


DRIVERS: tuple[Registered, ...] = (
    Registered("gpio", config="drivers.gpio.config", attach="drivers.gpio.driver:attach"),
    Registered("serial", config="drivers.serial.config", attach="drivers.serial.driver:attach"),
    Registered("ble", config="drivers.ble.config", attach="drivers.ble.driver:attach"),
    Registered("modem", config="drivers.modem.config", attach="drivers.modem.driver:attach"),
)


def configs() -> list[DriverConfig]:
    """Every registered driver's config, in registry order."""
    return [d.load_config() for d in DRIVERS]
