"""A dose missed: ``rule.medication_missed``, routed to the nurses by default.

A dose is known by its dispenser and ``data.dose_id``. It alerts at most once,
on whichever comes first:

* ``medication.missed`` (the dispenser's own report, or the dispenser
  driver's grace timer): at once, cause = that event;
* ``medication.due`` with no ``medication.taken`` for the dose within
  ``grace_s``: at due + ``grace_s``, cause = the ``medication.due``.

So never both for the same dose. ``medication.taken`` closes the dose (a
later ``medication.missed`` for it is not an alert). A new
``medication.due`` for a dose id that was closed is a new dose, as the
dispenser reuses ids. Closed doses are remembered for a day, then forgotten.
There is no re-alert: the dose is missed, not ongoing.
"""

from __future__ import annotations

from typing import Any

from hub.events import Event, Priority, Route
from hub.rules.base import Rule, RuleOutput, _opt_str, _req_float, iso

#: How long a closed dose is remembered, so a late or repeated report about it is not a new alert.
CLOSED_MEMORY_S = 86400.0


class MedicationMissed(Rule):
    name = "medication_missed"
    event_type = "rule.medication_missed"

    def __init__(self, *, grace_s: float = 1800.0, priority: Priority = Priority.HIGH, route: Route = Route.NURSE) -> None:
        super().__init__(priority=priority, route=route)
        self.grace_s = grace_s
        #: "device/dose_id" -> {device, dose_id, due_at, cause}: doses due and not yet taken or missed
        self._open: dict[str, dict[str, Any]] = {}
        #: "device/dose_id" -> when it was closed (taken or alerted)
        self._closed: dict[str, float] = {}

    @staticmethod
    def _key(event: Event) -> tuple[str, Any]:
        dose_id = event.data.get("dose_id")
        if dose_id is None:
            return f"{event.source.device}/event:{event.id}", None  # no dose id: each report is its own dose
        return f"{event.source.device}/{dose_id}", dose_id

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        if not event.type.startswith("medication."):
            return []
        key, dose_id = self._key(event)
        device = event.source.device
        if event.type == "medication.due":
            if key not in self._open:
                self._closed.pop(key, None)  # a closed id due again is a new dose
                self._open[key] = {"device": device, "dose_id": dose_id, "due_at": now, "cause": event.id}
        elif event.type == "medication.taken":
            self._open.pop(key, None)
            self._closed.setdefault(key, now)
        elif event.type == "medication.missed":
            if key not in self._closed:
                dose = self._open.pop(key, None)
                self._closed[key] = now
                data = {
                    "dose_id": dose_id,
                    "reported_by": event.data.get("reported_by", "dispenser"),
                    "due_at": iso(dose["due_at"]) if dose else None,
                }
                return [self.output(self.event_type, data, cause=event.id, device=device)]
        return []

    def tick(self, now: float) -> list[RuleOutput]:
        if not self._open and not self._closed:  # no dose known: nothing to sort or forget (every event ticks)
            return []
        out: list[RuleOutput] = []
        for key, dose in sorted(self._open.items(), key=lambda kv: kv[1]["due_at"]):
            if now - dose["due_at"] >= self.grace_s:
                del self._open[key]
                self._closed[key] = now
                data = {
                    "dose_id": dose["dose_id"],
                    "reported_by": "rule",
                    "due_at": iso(dose["due_at"]),
                    "grace_s": self.grace_s,
                }
                out.append(self.output(self.event_type, data, cause=dose["cause"], device=dose["device"]))
        for key, when in list(self._closed.items()):
            if now - when > CLOSED_MEMORY_S:
                del self._closed[key]
        return out

    @property
    def open_doses(self) -> list[str]:
        """Keys (``device/dose_id``) of doses due and not yet taken or missed."""
        return list(self._open)

    def state(self) -> dict[str, Any]:
        return {"open": {k: dict(v) for k, v in self._open.items()}, "closed": dict(self._closed)}

    def clock_stepped(self, step: float) -> None:
        for dose in self._open.values():
            dose["due_at"] += step
        self._closed = {key: t + step for key, t in self._closed.items()}

    def restore(self, state: dict[str, Any], now: float) -> None:
        opened: dict[str, dict[str, Any]] = {}
        for key, d in dict(state.get("open", {})).items():
            opened[str(key)] = {
                "device": str(d["device"]),
                "dose_id": d.get("dose_id"),
                "due_at": _req_float(d["due_at"]),
                "cause": _opt_str(d.get("cause")),
            }
        closed = {str(k): _req_float(v) for k, v in dict(state.get("closed", {})).items()}
        self._open, self._closed = opened, closed
