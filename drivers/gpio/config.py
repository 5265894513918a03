"""Provisional: the GPIO driver's config (the config work moves the structs here)."""

from drivers.base import DriverConfig

CONFIG = DriverConfig(name="gpio", device_sections={"gpio": object}, kinds={"gpio": ()}, settings=("gpio", object))
