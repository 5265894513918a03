"""Jittered, capped exponential backoff: one formula for the MQTT link, the BLE scanner and GATT."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float, r: float) -> float:
    """Delay before retry number ``attempt`` (0-based): ``initial_s * 2**attempt`` capped at ``max_s``,
    then reduced by up to ``jitter`` (a fraction) times ``r`` in [0, 1), so hubs restarted together spread out."""
    base = min(max_s, initial_s * (2 ** min(attempt, 32)))
    return base * (1.0 - jitter * r)


def backoff_delays(initial_s: float, max_s: float, *, rng: random.Random | None = None) -> Iterator[float]:
    """An endless iterator of :func:`backoff_delay` values, each jittered down by up to half."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield backoff_delay(attempt, initial_s, max_s, 0.5, rng.random())
        attempt += 1
