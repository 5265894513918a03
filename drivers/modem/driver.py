"""The modem driver's way in: each ``[device.modem]`` becomes a :class:`~drivers.modem.link.ModemLink`.

Each link is registered with the hub as a text path (``port.text_path``) and
runs one supervised task (``modem:<id>``): its checks and its inbox. The
backend is atlib on the configured port, or the simulated modem
(``backend = "sim"``), whose operations go on the sim socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from drivers.base import HubPort, Task
from drivers.modem.link import ModemLink

log = structlog.get_logger("drivers.modem")


class ModemDriver:
    """The residence's modems (normally one)."""

    name = "modem"

    def __init__(self, port: HubPort, devices: Sequence[Any], settings: Any) -> None:
        self.links: dict[str, ModemLink] = {}
        sims: dict[str, Any] = {}
        for dev in devices:
            opts = dev.modem
            if opts.backend == "sim":
                from drivers.modem.sim import SimModem

                backend: Any = sims.setdefault(dev.id, SimModem())
            else:
                from drivers.modem.atmodem import AtlibModem

                backend = AtlibModem(port.path(opts.port), opts.baud, command_timeout_s=opts.command_timeout_s)
            link = ModemLink(dev.id, opts, backend, port)
            self.links[dev.id] = link
            port.text_path(dev.id, link)
        if sims:
            from drivers.modem import sim

            sim.register(port.sim, sims)
        log.info("modem_started", devices=[d.id for d in devices])

    def tasks(self) -> Sequence[Task]:
        return [(f"modem:{dev_id}", link.run) for dev_id, link in self.links.items()]

    def health(self) -> dict[str, dict[str, Any]]:
        return {dev_id: link.health() for dev_id, link in self.links.items()}

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        for link in self.links.values():
            link.close()


def attach(port: HubPort, devices: Sequence[Any], settings: Any) -> ModemDriver:
    """The modem driver for ``devices`` (each with a ``[device.modem]`` table)."""
    return ModemDriver(port, devices, settings)
