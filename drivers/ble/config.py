"""Provisional: the BLE driver's config (the config work moves the structs here)."""

from drivers.base import DriverConfig

CONFIG = DriverConfig(
    name="ble", device_sections={"ble": object, "gatt": object}, kinds={"ble": (), "gatt": ()}, settings=("ble", object)
)
