"""Small helpers the hub and its drivers share: backoff, battery hysteresis, held tasks.

Neutral ground (no driver owns it, and it knows nothing of the hub): the MQTT
link, the BLE scanner and GATT back off with one formula; the drivers' own
battery watch and the supervision rule share one hysteresis; every component
keeps its background tasks in a :class:`TaskSet`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Iterator
from typing import Any

import structlog

log = structlog.get_logger("drivers.helpers")


# --- backoff -----------------------------------------------------------------------------


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


# --- battery -----------------------------------------------------------------------------


def battery_step(low: bool, pct: float, low_pct: float, ok_pct: float) -> tuple[bool, bool]:
    """One battery reading through the hysteresis: returns ``(low, warn)``.

    ``warn`` is True only on the reading that crosses below ``low_pct``; after
    it the warning is armed again only by a reading at or above ``ok_pct``, so
    a level hovering around the threshold warns once, not on every reading.

    >>> battery_step(False, 19, 20, 30), battery_step(True, 25, 20, 30), battery_step(True, 30, 20, 30)
    ((True, True), (True, False), (False, False))
    """
    if low:
        return pct < ok_pct, False
    if pct < low_pct:
        return True, True
    return False, False


# --- tasks -------------------------------------------------------------------------------


class TaskSet:
    """A set of running tasks: each is held until it ends; a failure is logged, never lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        """Start ``coro`` as a task and hold it until it ends."""
        task = asyncio.ensure_future(coro)
        if name is not None:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", task=task.get_name(), error=repr(task.exception()))

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)
