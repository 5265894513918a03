"""The dispenser's device logic: doses due, taken and missed (with the hub's own grace timer), faults, battery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.serial.base import BatteryWatch, DeviceLogic, Emit, Reading
from drivers.serial.dispenser.options import options_from
from hub.events import Priority


@dataclass
class _Dose:
    dose_id: int
    scheduled: int | None
    compartment: int | None
    due_at: float


#: How long a finished dose is remembered, so late or repeated reports about it are not taken as new.
CLOSED_MEMORY_S = 86400.0


class DispenserLogic(DeviceLogic):
    """Doses due, taken and missed (with the hub's own grace timer), faults and battery."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = options_from(options)
        self._open: dict[int, _Dose] = {}
        #: dose_id -> ("taken" | "missed", when): finished doses
        self._closed: dict[int, tuple[str, float]] = {}
        self._last_fault: str | None = None
        self._battery = BatteryWatch(self.opts.battery_low_pct, self.opts.battery_ok_pct)
        self._doses_left: int | None = None

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        f = reading.fields
        handler = {
            "dose_due": self._due,
            "dose_taken": self._taken,
            "dose_missed": self._missed,
            "fault": self._fault,
            "status": self._status,
        }.get(reading.kind)
        return handler(f, now) if handler else []

    def _due(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        if dose_id in self._open:  # announced again while still open: one dose, one timer
            return []
        self._closed.pop(dose_id, None)  # a finished id scheduled again is a new dose
        self._open[dose_id] = _Dose(dose_id, f.get("scheduled"), f.get("compartment"), now)
        data = {"dose_id": dose_id, "scheduled": f.get("scheduled"), "compartment": f.get("compartment")}
        return [Emit("medication.due", Priority.NORMAL, data)]

    def _taken(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        closed = self._closed.get(dose_id)
        if closed is not None and closed[0] == "taken":
            return []
        dose = self._open.pop(dose_id, None)
        self._closed[dose_id] = ("taken", now)
        data: dict[str, Any] = {"dose_id": dose_id, "taken_at": f.get("taken_at"), "late": closed is not None}
        if dose is not None:
            data["compartment"] = dose.compartment
        return [Emit("medication.taken", Priority.NORMAL, data)]

    def _missed(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        if dose_id in self._closed:  # already missed (by the hub's timer) or taken
            return []
        self._open.pop(dose_id, None)
        self._closed[dose_id] = ("missed", now)
        return [Emit("medication.missed", Priority.HIGH, {"dose_id": dose_id, "reported_by": "dispenser"})]

    def _fault(self, f: dict[str, Any], now: float) -> list[Emit]:
        fault = f["fault"]
        if fault == "cleared":
            self._last_fault = None
            return []
        self._last_fault = fault
        return [Emit("device.fault", Priority.HIGH, {"fault": fault, "code": f.get("code")})]

    def _status(self, f: dict[str, Any], now: float) -> list[Emit]:
        battery = f.get("battery")
        self._doses_left = f.get("doses_left")
        if battery is None:
            return []
        return self._battery.seen(battery)

    def tick(self, now: float) -> list[Emit]:
        out: list[Emit] = []
        for dose in sorted(self._open.values(), key=lambda d: d.due_at):
            if now - dose.due_at >= self.opts.grace_s:
                del self._open[dose.dose_id]
                self._closed[dose.dose_id] = ("missed", now)
                data = {"dose_id": dose.dose_id, "reported_by": "hub", "grace_s": self.opts.grace_s}
                out.append(Emit("medication.missed", Priority.HIGH, data))
        for dose_id, (_, when) in list(self._closed.items()):
            if now - when > CLOSED_MEMORY_S:
                del self._closed[dose_id]
        return out

    def state(self) -> dict[str, Any]:
        return {
            "open_doses": [
                {"dose_id": d.dose_id, "scheduled": d.scheduled, "compartment": d.compartment}
                for d in sorted(self._open.values(), key=lambda d: d.due_at)
            ],
            "last_fault": self._last_fault,
            "battery": self._battery.level,
            "battery_low": self._battery.low,
            "doses_left": self._doses_left,
        }
