"""The attached drivers, by registry name: attached at start, detached and attached again on a reload.

Each registered driver (:data:`drivers.registry.DRIVERS`) that has devices in
the config is attached through the hub's port (``attach(port, devices,
settings)``). The table remembers, per driver, the devices it serves and the
sim operations it registered, so that a config reload
(:mod:`hub.reload`) can take exactly that driver away (its supervised tasks,
its LEDs, its sim operations, its hardware) and attach it again with the new
config, while every other driver runs on untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from drivers.base import DriverConfig
from drivers.registry import DRIVERS

log = structlog.get_logger("hub.drivertable")


def driver_devices(spec: DriverConfig, cfg: Any) -> list[Any]:
    """The devices of ``cfg`` that driver ``spec`` serves (those with one of its ``[device.<x>]`` tables)."""
    return [d for d in cfg.devices if any(getattr(d, k) is not None for k in spec.device_sections)]


def driver_settings(spec: DriverConfig, cfg: Any) -> Any:
    """The driver's ``[<x>]`` settings table of ``cfg`` (None when it has none)."""
    return getattr(cfg, spec.settings[0]) if spec.settings else None


class AttachFailed(Exception):
    """A driver's ``attach`` raised: ``driver`` names it, the cause is chained."""

    def __init__(self, driver: str, error: BaseException) -> None:
        super().__init__(f"{driver}: {type(error).__name__}: {error}")
        self.driver = driver


@dataclass
class Attached:
    """One attached driver, the devices it serves and the sim operations it registered."""

    driver: Any
    devices: list[str]
    sim_ops: dict[str, Any] = field(default_factory=dict)


class DriverTable:
    """The hub's attached drivers; ``drivers`` is the list the status and the commands read, kept in registry order."""

    def __init__(self, *, port: Any, alarms: Any, supervisor: Any, devices: dict[str, Any], drivers: list[Any]) -> None:
        self.port = port
        self.alarms = alarms
        self.supervisor = supervisor
        self.devices = devices
        self.drivers = drivers
        self.entries: dict[str, Attached] = {}

    def attach_all(self, cfg: Any) -> None:
        """At start: each registered driver that has devices in ``cfg``, attached (tasks started by the lifecycle)."""
        self._attach([r.name for r in DRIVERS], cfg, start_tasks=False)

    async def stop_tasks(self, names: Sequence[str]) -> None:
        """Stop supervising the tasks of drivers ``names`` (the first step of a swap; their devices go quiet)."""
        for name in names:
            entry = self.entries.get(name)
            if entry is None:
                continue
            for task_name, _ in entry.driver.tasks():
                await self.supervisor.retire(task_name)

    def swap(self, names: Sequence[str], cfg: Any) -> None:
        """Detach drivers ``names`` and attach them again with ``cfg``'s devices and settings, at once.

        No await in here: nothing else on the loop runs between one driver's
        ``close`` and its new ``attach``. ``devices`` (the hub's device table)
        becomes ``cfg``'s first, since the port looks devices up in it. Raises
        :class:`AttachFailed`; the drivers attached before the failure stay
        attached (the caller swaps back).
        """
        self.devices.clear()
        self.devices.update({d.id: d for d in cfg.devices})
        for name in names:
            if name in self.entries:
                self._detach(name)
        self._attach(names, cfg, start_tasks=True)

    def _attach(self, names: Sequence[str], cfg: Any, *, start_tasks: bool) -> None:
        try:
            for registered in DRIVERS:
                if registered.name not in names:
                    continue
                spec = registered.load_config()
                devices = driver_devices(spec, cfg)
                if not devices:
                    continue
                before = self._sim_handlers()
                try:
                    driver = registered.load_attach()(self.port, devices, driver_settings(spec, cfg))
                except Exception as exc:
                    raise AttachFailed(registered.name, exc) from exc
                after = self._sim_handlers()
                ops = {op: h for op, h in after.items() if before.get(op) is not h}
                self.entries[registered.name] = Attached(driver, [d.id for d in devices], ops)
                if start_tasks:  # a reload: the hub runs already
                    for task_name, run in driver.tasks():
                        self.supervisor.start(task_name, run)
                    for dev in devices:  # a device's open alarm shows on its new LED as it did on the old one
                        self.alarms.reshow(dev.id)
                log.info("driver_attached", driver=registered.name, devices=[d.id for d in devices])
        finally:
            self.drivers[:] = [self.entries[r.name].driver for r in DRIVERS if r.name in self.entries]

    def _detach(self, name: str) -> None:
        entry = self.entries.pop(name)
        for dev in entry.devices:
            self.alarms.forget_indicator(dev)
            forget = getattr(self.port, "forget", None)  # a text path and its path state (hub.fallback)
            if forget is not None:
                forget(dev)
        sim = self.port.sim_control
        if sim is not None:
            for op, handler in entry.sim_ops.items():
                sim.unregister(op, handler)
        try:
            entry.driver.close()
        except Exception:  # a pin that will not close must not keep the new config out
            log.exception("driver_close_failed", driver=name)
        log.info("driver_detached", driver=name, devices=entry.devices)

    def _sim_handlers(self) -> dict[str, Any]:
        sim = self.port.sim_control
        return dict(sim.handlers) if sim is not None else {}

    def devices_of(self, name: str) -> list[str]:
        """The device ids driver ``name`` serves now (empty when it is not attached)."""
        entry = self.entries.get(name)
        return list(entry.devices) if entry is not None else []
