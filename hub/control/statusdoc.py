"""The status document over the socket: ``cmd/status``'s, and what an installer needs beside it.

First the very document the central gets from ``cmd/status`` (the same
:class:`~hub.command_runner.CommandRunner` handler), then, added:

* ``link.online``; ``outbox.oldest_pending_age_s``;
* ``device_list``: every configured device in config order, heard or not:
  its driver, state (``never heard`` until it first reports since the hub
  started), last seen, battery, RSSI (BLE), port and its state (serial),
  supervision's view (offline, expected interval);
* ``rules``: the active rules and their state;
* ``degraded``: every part that is not well, in a person's words;
* ``control``: the socket's own clients and counters.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from hub import commands

#: The driver tables a device may have, in the order the registry lists them.
DRIVER_TABLES = ("gpio", "serial", "ble", "gatt", "modem")


async def status_document(hub: Any, control: dict[str, Any]) -> dict[str, Any]:
    """The installer's status of ``hub`` (a :class:`~hub.daemon.Hub`)."""
    doc = await hub.runner.run(commands.Status())
    doc["link"] = {**doc["link"], "online": hub.link.online.is_set()}
    doc["outbox"] = {**doc["outbox"], "oldest_pending_age_s": age_s(doc["outbox"].get("oldest_pending_ts"))}
    supervision = hub.rules_runner.rules.get("supervision")
    doc["device_list"] = [device_row(d, doc["devices"].get(d.id, {}), hub.sightings.get(d.id),
                                     supervision.status(d.id) if supervision else None) for d in hub.cfg.devices]
    doc["rules"] = [rule_row(r) for r in hub.rules_runner.rules]
    doc["degraded"] = degraded(doc)
    doc["control"] = control
    return doc


def age_s(ts: str | None, now: float | None = None) -> float | None:
    """Seconds since an RFC 3339 time (None for None)."""
    if not ts:
        return None
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return round(max(0.0, (time.time() if now is None else now) - t), 1)


def device_row(dev: Any, health: dict[str, Any], seen: dict[str, Any] | None,
               sup: dict[str, Any] | None) -> dict[str, Any]:
    """One configured device as a person reads it."""
    driver = next((t for t in DRIVER_TABLES if getattr(dev, t, None) is not None), None)
    last_seen = health.get("last_seen") or (seen or {}).get("last_seen")
    battery = _first(health.get("battery"), health.get("last_battery"), (seen or {}).get("battery"),
                     (sup or {}).get("battery"))
    state = health.get("state") or "unknown"
    quiet = ("ok", "unknown", "waiting", "connecting", "stopped")
    if last_seen is None and driver in ("ble", "gatt") and state in quiet:
        state = "never heard"  # a radio device that has not spoken since the hub started
    offline = bool((sup or {}).get("offline"))
    if offline and state not in ("offline",):
        state = "offline"
    row: dict[str, Any] = {
        "id": dev.id,
        "kind": dev.kind,
        "room": dev.room,
        "driver": driver,
        "state": state,
        "last_seen": last_seen,
        "last_seen_s_ago": age_s(last_seen),
        "battery": battery,
        "rssi": health.get("rssi"),
        "offline": offline,
        "expected_interval_s": (sup or {}).get("expected_interval_s"),
    }
    if driver == "serial":
        row["port"] = health.get("port")
        row["port_state"] = "open" if health.get("state") == "ok" else "closed"
    if driver in ("ble", "gatt"):
        row["address"] = health.get("address")
    if "reason" in health:
        row["reason"] = health["reason"]
    return row


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def rule_row(rule: Any) -> dict[str, Any]:
    """An active rule: name, priority, route, and its state (supervision's in counts: the devices say the rest)."""
    state = rule.state()
    if rule.name == "supervision":
        devices = state.get("devices", {})
        state = {
            "devices": len(devices),
            "offline": sorted(d for d, s in devices.items() if s.get("offline")),
            "battery_low": sorted(d for d, s in devices.items() if s.get("battery_low")),
        }
    return {"name": rule.name, "priority": rule.priority.value, "route": rule.route.value, "state": state}


def degraded(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every part that is not well: the hub's health, its tasks, the link, the devices."""
    out: list[dict[str, str]] = []
    for component, p in doc.get("health", {}).get("problems", {}).items():
        out.append({"part": component, "reason": str(p.get("reason"))})
    told = {d["part"] for d in out}
    for name, task in doc.get("tasks", {}).items():
        if task.get("state") != "running" and f"task:{name}" not in told:
            out.append({"part": f"task:{name}", "reason": f"{task.get('state')}: {task.get('last_error')}"})
    link = doc.get("link", {})
    if not link.get("online") and "link" not in told:
        why = link.get("last_error") or link.get("state")
        out.append({"part": "link", "reason": f"not connected to the broker ({why})"})
    scanner = doc.get("devices", {}).get("ble")
    if isinstance(scanner, dict) and scanner.get("state") == "degraded":
        out.append({"part": "ble", "reason": str(scanner.get("reason"))})
    for name, path in doc.get("paths", {}).items():
        if name != "mqtt" and path.get("state") == "down":
            out.append({"part": f"path:{name}", "reason": f"down ({path.get('reason')})"})
    for row in doc.get("device_list", []):
        if row["state"] in ("offline", "degraded", "failed"):
            reason = row.get("reason") or ("silent" if row["offline"] else row["state"])
            out.append({"part": f"device:{row['id']}", "reason": str(reason)})
    return out
