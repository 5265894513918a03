"""Which events open or clear a device problem (a device that needs a visit), and how it reads.

Pure: :func:`problem_steps` maps one event to what it does to the central's list of problems,
keyed by (hub, device, problem). The event types are the hub's (:data:`hub.events.EVENT_TYPES`):

========================  ====================================================
``device.offline``        opens ``offline`` (``data.reason``)
``device.online``         clears ``offline`` and ``fault``; clears ``battery_low`` too: the contract
                          has no "battery fine" event, and a device that comes back after being
                          away has most likely had its battery changed
``device.battery_low``    opens ``battery_low`` (``data.battery_pct``)
``device.fault``          opens ``fault`` (``data.fault``)
``device.flooding``       ``data.state`` started opens ``flooding``, ended clears it
``hub.degraded``          opens ``degraded:<component>`` on the device ``hub`` (``data.reason``)
``hub.recovered``         clears ``degraded:<component>``
``hub.ble_degraded``      opens ``ble`` on the device ``hub``; ``hub.ble_recovered`` clears it
========================  ====================================================

An event older than the problem's last change (a replay, a backlog drained out of order) changes
nothing: the store compares the events' ``ts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec


class ProblemStep(msgspec.Struct, frozen=True, kw_only=True):
    """Open (or refresh) or clear one problem of one device."""

    action: Literal["open", "clear"]
    device: str
    problem: str
    detail: str | None = None


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _device(event: Mapping[str, Any]) -> str:
    source = event.get("source")
    return str(source.get("device")) if isinstance(source, dict) else "?"


def _detail(*parts: Any) -> str | None:
    words = [str(p) for p in parts if p not in (None, "")]
    return " ".join(words)[:200] if words else None


def problem_steps(event: Mapping[str, Any]) -> list[ProblemStep]:
    """What ``event`` does to the device problems (nothing for most types)."""
    type_ = event.get("type")
    data = _data(event)
    device = _device(event)
    if type_ == "device.offline":
        return [ProblemStep(action="open", device=device, problem="offline", detail=_detail(data.get("reason")))]
    if type_ == "device.online":
        return [ProblemStep(action="clear", device=device, problem=p) for p in ("offline", "fault", "battery_low")]
    if type_ == "device.battery_low":
        pct = data.get("battery_pct")
        return [ProblemStep(action="open", device=device, problem="battery_low",
                            detail=None if pct is None else f"{pct} %")]
    if type_ == "device.fault":
        return [ProblemStep(action="open", device=device, problem="fault", detail=_detail(data.get("fault")))]
    if type_ == "device.flooding":
        action: Literal["open", "clear"] = "clear" if data.get("state") == "ended" else "open"
        return [ProblemStep(action=action, device=device, problem="flooding",
                            detail=_detail("limit", data.get("limit_per_s"), "/s") if action == "open" else None)]
    if type_ in ("hub.degraded", "hub.recovered"):
        problem = f"degraded:{data.get('component')}"
        if type_ == "hub.recovered":
            return [ProblemStep(action="clear", device="hub", problem=problem)]
        return [ProblemStep(action="open", device="hub", problem=problem, detail=_detail(data.get("reason")))]
    if type_ == "hub.ble_degraded":
        return [ProblemStep(action="open", device="hub", problem="ble", detail=_detail(data.get("reason")))]
    if type_ == "hub.ble_recovered":
        return [ProblemStep(action="clear", device="hub", problem="ble")]
    return []
