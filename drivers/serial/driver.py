"""The serial driver's way in: one :class:`~drivers.serial.port.SerialDevice` per device.

Each device's ``[device.serial]`` names its port and protocol; the protocol's
parser and logic come from the protocol registry (:func:`drivers.serial.protocol`).
A port's events go to the hub as one burst per read (``port.emit_many``),
every reading tells supervision the device was heard, and each port's read
loop is a task the hub supervises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from drivers.base import Emit, HubPort, Task
from drivers.serial import protocol
from drivers.serial.port import SerialDevice

log = structlog.get_logger("drivers.serial")


class SerialDriver:
    """The residence's serial sensors, a port each."""

    name = "serial"

    def __init__(self, port: HubPort, devices: Sequence[Any]) -> None:
        self.ports: dict[str, SerialDevice] = {}
        self._kinds = {dev.id: dev.kind for dev in devices}
        for dev in devices:
            s = dev.serial
            spec = protocol(s.protocol)
            options = msgspec.structs.asdict(s.options())

            async def emit(e: Emit, dev_id: str = dev.id) -> bool:
                return await port.emit(dev_id, e)

            async def emit_many(es: list[Emit], dev_id: str = dev.id) -> list[Emit]:
                return await port.emit_many(dev_id, es)

            self.ports[dev.id] = SerialDevice(
                device_id=dev.id,
                port=port.path(s.port),
                parser=spec.load("parser")(**options),
                logic=spec.load("logic")(**options),
                emit=emit,
                emit_many=emit_many,
                on_reading=lambda dev_id=dev.id: port.report(dev_id),
                baudrate=s.baud,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
            )
        log.info("serial_started", devices=list(self.ports))

    def tasks(self) -> Sequence[Task]:
        return [(f"serial:{dev_id}", p.run) for dev_id, p in self.ports.items()]

    def health(self) -> dict[str, dict[str, Any]]:
        return {dev_id: {"kind": self._kinds[dev_id], **p.health()} for dev_id, p in self.ports.items()}

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        for p in self.ports.values():
            p.stop()


def attach(port: HubPort, devices: Sequence[Any], settings: Any) -> SerialDriver:
    """The serial driver for ``devices`` (each with a ``[device.serial]`` table); it has no hub-wide settings."""
    return SerialDriver(port, devices)
