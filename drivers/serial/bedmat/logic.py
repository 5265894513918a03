"""The bed mat's device logic: occupancy readings debounced into ``bed.exit`` / ``bed.return``."""

from __future__ import annotations

from typing import Any

from drivers.serial.base import BatteryWatch, DeviceLogic, Emit, Reading
from drivers.serial.bedmat.options import load_options
from hub.events import Priority


class BedMatLogic(DeviceLogic):
    """Occupancy readings → ``bed.exit`` / ``bed.return``; battery → ``device.battery_low``.

    * The first occupancy reading sets the baseline. If it is IN, a
      ``bed.return`` with ``data.baseline = true`` says so: after a hub restart
      this is how the rules learn that a resident who left before the crash
      is back, instead of alarming all night. An OUT baseline emits nothing
      (the hub did not see the resident leave).
    * ``bed.exit`` when the mat has read OUT without a break for ``exit_after_s``
      (measured from the first OUT reading); ``bed.return`` when it has then read
      IN for ``return_after_s``. A return is only reported after an exit this
      logic emitted, so exits and returns come in pairs.
    * A state is taken to hold until a reading says otherwise, and the timers are
      checked both on :meth:`tick` and on each reading (before the reading is
      applied), so the events do not depend on how often ``tick`` is called.
    * ``device.battery_low`` once when the battery is below ``battery_low_pct``
      (the first reading included), re-armed when it is back at or above
      ``battery_ok_pct``.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = load_options(options)
        self._now: float | None = None
        self._stable: str | None = None  # the debounced occupancy the hub reports
        self._stable_since: float | None = None
        self._raw: str | None = None  # what the mat reads now
        self._raw_since = 0.0  # the first reading of the current raw run
        self._raw_first: dict[str, Any] = {}
        self._exited_at: float | None = None  # when OUT began, for an exit emitted and not yet returned
        self._battery = BatteryWatch(self.opts.battery_low_pct, self.opts.battery_ok_pct)

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        self._now = now
        emits: list[Emit] = []
        f = reading.fields
        if reading.kind == "occupancy" and f.get("state") in ("in", "out"):
            state = f["state"]
            if self._raw is None:
                self._stable = self._raw = state
                self._stable_since = self._raw_since = now
                self._raw_first = dict(f)
                if state == "in":
                    emits.append(Emit("bed.return", Priority.NORMAL, {"baseline": True, "since_s": 0.0}))
            else:
                emits += self._due(now)  # the previous reading held until now
                if state != self._raw:
                    self._raw = state
                    self._raw_since = now
                    self._raw_first = dict(f)
                emits += self._due(now)
        battery = f.get("battery")
        if reading.kind in ("occupancy", "status") and isinstance(battery, int) and not isinstance(battery, bool):
            emits += self._battery_seen(battery)
        return emits

    def tick(self, now: float) -> list[Emit]:
        self._now = now
        return self._due(now)

    def state(self) -> dict[str, Any]:
        since = None
        if self._stable_since is not None and self._now is not None:
            since = round(max(0.0, self._now - self._stable_since), 3)
        return {"occupancy": self._stable, "since_s": since, "battery": self._battery.level}

    def _due(self, now: float) -> list[Emit]:
        if self._raw is None or self._raw == self._stable:
            return []
        first = self._raw_first
        data = {
            "since_s": round(now - self._raw_since, 3),
            "pressure": first.get("pressure"),
            "seq": first.get("seq"),
        }
        if self._raw == "out":
            if now < self._raw_since + self.opts.exit_after_s:
                return []
            self._stable, self._stable_since = "out", self._raw_since
            self._exited_at = self._raw_since
            return [Emit("bed.exit", Priority.NORMAL, data)]
        if now < self._raw_since + self.opts.return_after_s:
            return []
        self._stable, self._stable_since = "in", self._raw_since
        if self._exited_at is None:
            return []  # in bed after an OUT baseline: no exit was reported, so no return either
        data["away_s"] = round(self._raw_since - self._exited_at, 3)
        self._exited_at = None
        return [Emit("bed.return", Priority.NORMAL, data)]

    def _battery_seen(self, pct: int) -> list[Emit]:
        return self._battery.seen(pct)
