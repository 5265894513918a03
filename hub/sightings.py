"""When each device was last heard from, for ``status``: every report a driver makes, on the wall clock.

A driver calls :meth:`drivers.base.HubPort.report` for whatever the device
itself sent (a reading, an advert that decodes, a press); supervision keeps
its own view for its silence clock, which starts counting for a device never
heard as well. This is the plain record a person reads: heard or not (since
the hub started), when, how many times, and the last battery level sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.events import rfc3339


@dataclass
class _Seen:
    at: float
    count: int = 0
    battery: float | None = None


class Sightings:
    """Last report per device id (this run of the hub)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    def heard(self, device: str, battery: float | None = None) -> None:
        """``device`` reported now (the port's ``on_report`` hook)."""
        seen = self._seen.get(device)
        if seen is None:
            seen = self._seen[device] = _Seen(self.clock())
        seen.at = self.clock()
        seen.count += 1
        if battery is not None:
            seen.battery = battery

    def get(self, device: str) -> dict[str, Any] | None:
        """``{last_seen, last_seen_s_ago, reports, battery}``, or None when never heard since the start."""
        seen = self._seen.get(device)
        if seen is None:
            return None
        return {
            "last_seen": rfc3339(seen.at),
            "last_seen_s_ago": round(max(0.0, self.clock() - seen.at), 1),
            "reports": seen.count,
            "battery": seen.battery,
        }
