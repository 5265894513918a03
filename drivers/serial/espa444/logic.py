"""ESPA's device logic: call records to ``alarm.nursecall`` events, resets to ``alarm.cancelled``."""

from __future__ import annotations

from typing import Any

from drivers.serial.base import DeviceLogic, Emit, Reading
from drivers.serial.espa444.options import DEFAULT_PRIORITIES, convert_options
from drivers.serial.espa444.wire import RESET_CALL_TYPE
from hub.events import Priority


class EspaLogic(DeviceLogic):
    """Each call record becomes one ``alarm.nursecall`` event, each reset record one
    ``alarm.cancelled`` naming the call address; repeats within ``dedup_s`` are dropped."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = convert_options(options)
        self._priorities = {**DEFAULT_PRIORITIES, **self.opts.priorities}
        self._recent: dict[tuple[Any, ...], float] = {}  # record key -> when it last raised an event
        self._calls = 0
        self._resets = 0
        self._suppressed = 0
        self._last: dict[str, Any] | None = None

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        if reading.kind != "call":
            return []
        f = reading.fields
        address, text = f.get("address"), f.get("text")
        espa_priority, call_type = f.get("priority"), f.get("call_type")
        reset = call_type == RESET_CALL_TYPE
        key = (address, text, call_type, espa_priority)
        seen = self._recent.get(key)
        if seen is not None and now - seen < self.opts.dedup_s:
            self._suppressed += 1
            return []
        if self.opts.dedup_s > 0:
            # A reset ends the call at its address and a call after a reset is a new one: neither
            # may be taken as a repeat of what came before the other.
            self._recent = {
                k: t for k, t in self._recent.items() if k[0] != address or (k[2] == RESET_CALL_TYPE) == reset
            }
            self._recent[key] = now
        data = {
            "call_address": address,
            "room": self.opts.rooms.get(address) if address is not None else None,
            "text": text,
            "espa_priority": espa_priority,
            "call_type": call_type,
        }
        if reset:
            self._resets += 1
            return [
                Emit(
                    "alarm.cancelled",
                    Priority.CRITICAL,
                    {"how": "nursecall_reset", **data},
                    closes={"call_address": address},
                )
            ]
        self._calls += 1
        priority = Priority(self._priorities.get(espa_priority or "", self.opts.default_priority))
        self._last = {**data, "priority": priority.value, "at": now}
        return [Emit("alarm.nursecall", priority, data)]

    def tick(self, now: float) -> list[Emit]:
        if self._recent:
            horizon = self.opts.dedup_s
            self._recent = {k: t for k, t in self._recent.items() if now - t < horizon}
        return []

    def state(self) -> dict[str, Any]:
        return {"calls": self._calls, "resets": self._resets, "suppressed": self._suppressed, "last_call": self._last}
