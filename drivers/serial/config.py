"""Provisional: the serial driver's config (the config work moves the structs here)."""

from drivers.base import DriverConfig

CONFIG = DriverConfig(name="serial", device_sections={"serial": object}, kinds={"serial": ()})
