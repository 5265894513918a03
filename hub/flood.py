"""Per-device limits on telemetry: a device gone mad costs a counter, not the disk or the alarms.

A bed mat with a broken cable can send thousands of frames a second, each a
"battery low, battery fine" flip; a BLE sensor in a loop, the same. Every
device's non-critical events pass :meth:`FloodGuard.admit`, a token bucket
(``rate`` per second, ``burst`` saved up). What is over the limit is dropped
and counted; the first drop of an episode is said once as ``device.flooding``
(``data.state = "started"``), and when the device has kept within its limit
for ``calm_s`` the episode ends with ``data.state = "ended"`` and how many
events were dropped. Alarms (critical events) are never limited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

#: Telemetry events per second a device may send, and how many it may save up.
DEFAULT_RATE = 20.0
DEFAULT_BURST = 200.0
#: A flooding episode ends after this long within the limit.
CALM_S = 30.0


@dataclass
class _Bucket:
    tokens: float
    at: float
    flooding: bool = False
    dropped: int = 0  # in this episode
    dropped_total: int = 0
    last_drop: float = 0.0
    since: float = 0.0


class FloodGuard:
    """Token buckets per device; tells when a device starts and stops flooding."""

    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST, calm_s: float = CALM_S) -> None:
        self.rate, self.burst, self.calm_s = rate, burst, calm_s
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, device: str, now: float | None = None) -> tuple[bool, dict[str, Any] | None]:
        """(admitted, device.flooding data to emit or None) for one telemetry event of ``device``."""
        now = time.monotonic() if now is None else now
        b = self._buckets.get(device)
        if b is None:
            b = self._buckets[device] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True, self._maybe_ended(b, now)
        b.dropped += 1
        b.dropped_total += 1
        b.last_drop = now
        if not b.flooding:
            b.flooding, b.since = True, now
            return False, {"state": "started", "limit_per_s": self.rate, "burst": self.burst}
        return False, None

    def _maybe_ended(self, b: _Bucket, now: float) -> dict[str, Any] | None:
        if b.flooding and now - b.last_drop >= self.calm_s:
            data = {"state": "ended", "dropped": b.dropped, "lasted_s": round(b.last_drop - b.since, 1)}
            b.flooding, b.dropped = False, 0
            return data
        return None

    def tick(self, now: float | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Episodes that ended while the device stayed quiet: (device, device.flooding data)."""
        now = time.monotonic() if now is None else now
        out = []
        for device, b in self._buckets.items():
            ended = self._maybe_ended(b, now)
            if ended is not None:
                out.append((device, ended))
        return out

    def status(self, device: str) -> dict[str, Any] | None:
        """For the device's health: flooding now, dropped in all; None if never limited."""
        b = self._buckets.get(device)
        if b is None or not b.dropped_total:
            return None
        return {"flooding": b.flooding, "dropped": b.dropped_total}
