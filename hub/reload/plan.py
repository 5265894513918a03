"""What a new config changes, compared with the running one: a pure diff, no side effects.

:func:`make_plan` compares two validated configs table by table and device
by device and says what a reload must do: which keys need a restart (then
nothing is applied), which drivers to detach and attach again, and which of
the hub's parts take new settings in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.registry import DRIVERS
from hub.config import LoadedConfig
from hub.drivertable import driver_devices, driver_settings

#: Keys a running hub cannot take over, and why: a reload that changes one is refused.
RESTART_KEYS: dict[str, str] = {
    "hub.id": "the hub id is in every topic, the client id, the last will and every stored event",
    "mqtt.prefix": "the prefix is in every topic the hub and the central's broker ACL use",
    "store.dir": "the outbox stays open for the whole run: nothing accepted may be lost",
    "store.reserve_kb": "the reserve for alarms is set aside when the store opens",
    "sim.socket": "the sim socket is bound once at start",
    "log.format": "the log format is chosen once at start",
}


def secrets_digest(loaded: LoadedConfig) -> str:
    """A digest of the files the MQTT link reads (CA, certificate, key, password): a renewed
    certificate at the same path is a change too. A file that cannot be read counts as empty."""
    m = loaded.config.mqtt
    names = [m.password_file] + ([m.tls.ca, m.tls.cert, m.tls.key] if m.tls is not None else [])
    h = hashlib.sha256()
    for name in names:
        if name is None:
            continue
        try:
            h.update(loaded.resolve(name).read_bytes())
        except OSError:
            pass
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Plan:
    """What a reload does. Empty ``restart`` and nothing else set: the configs mean the same."""

    #: keys whose change needs a restart (the reload is refused)
    restart: list[str] = field(default_factory=list)
    #: the tables that changed (``alarm``, ``rules``, ``mqtt`` ...) and ``device:<id> added|removed|changed``
    changed: list[str] = field(default_factory=list)
    #: registered drivers to detach and attach again with the new config, in registry order
    drivers: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    rules: bool = False

    @property
    def empty(self) -> bool:
        return not (self.restart or self.changed or self.drivers)


def _restart_keys(old: LoadedConfig, new: LoadedConfig) -> list[str]:
    o, n = old.config, new.config
    differs = {
        "hub.id": o.hub.id != n.hub.id,
        "mqtt.prefix": o.mqtt.prefix != n.mqtt.prefix,
        "store.dir": old.state_dir != new.state_dir,
        "store.reserve_kb": o.store.reserve_kb != n.store.reserve_kb,
        "sim.socket": old.sim_socket != new.sim_socket,
        "log.format": o.log.format != n.log.format,
    }
    return [k for k, d in differs.items() if d]


def _device_changes(old: Sequence[Any], new: Sequence[Any]) -> tuple[list[str], list[str], list[str]]:
    before = {d.id: d for d in old}
    after = {d.id: d for d in new}
    added = [i for i in after if i not in before]
    removed = [i for i in before if i not in after]
    modified = [i for i in after if i in before and after[i] != before[i]]
    return added, removed, modified


def _supervised(cfg: Any) -> dict[str, tuple[str, float | None]]:
    return {d.id: (d.kind, d.expected_interval_s) for d in cfg.devices}


def make_plan(old: LoadedConfig, new: LoadedConfig, *, old_secrets: str = "", new_secrets: str = "") -> Plan:
    """What reloading ``new`` over the running ``old`` must do (``*_secrets``: :func:`secrets_digest`)."""
    plan = Plan(restart=_restart_keys(old, new))
    o, n = old.config, new.config
    for table in ("hub", "mqtt", "store", "log", "sim", "alarm", "limits", "rules", "fallback", "push"):
        if getattr(o, table) != getattr(n, table):
            plan.changed.append(table)
    if old_secrets != new_secrets and "mqtt" not in plan.changed:
        plan.changed.append("mqtt")
    plan.rules = (o.rules != n.rules or o.hub.timezone != n.hub.timezone or _supervised(o) != _supervised(n))
    plan.added, plan.removed, plan.modified = _device_changes(o.devices, n.devices)
    plan.changed += [f"device:{i} added" for i in plan.added]
    plan.changed += [f"device:{i} removed" for i in plan.removed]
    plan.changed += [f"device:{i} changed" for i in plan.modified]
    for registered in DRIVERS:
        spec = registered.load_config()
        before = {d.id: d for d in driver_devices(spec, o)}
        after = {d.id: d for d in driver_devices(spec, n)}
        if before != after or driver_settings(spec, o) != driver_settings(spec, n):
            plan.drivers.append(registered.name)
            if spec.settings and driver_settings(spec, o) != driver_settings(spec, n):
                plan.changed.append(spec.settings[0])
    return plan
