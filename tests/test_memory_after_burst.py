"""After a burst, once it is over, the hub gives the memory it used back; never during one, never for a trickle.

Housekeeping's round against a real outbox (SQLite in ``tmp_path``), with
the forwarder's "idle" stated by the test. What is checked is what the log
says a user would see (``memory_given_back``, once per burst), and that the
store works as before afterwards; RSS itself is measured by
``bench/serial_throughput.py``, not here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog

from hub.events import Draft, Priority, Source
from hub.health import HealthBoard
from hub.housekeeping import TRIM_AFTER_EVENTS, Housekeeping
from hub.memory import trim_malloc
from hub.outbox import Outbox

MAT = Source(device="bedmat-1", kind="bed_mat", room="bedroom")


class Link:
    """Only what housekeeping's health check reads."""

    def __init__(self) -> None:
        self.online = asyncio.Event()
        self.online.set()


async def burst(ob: Outbox, n: int) -> None:
    for start in range(0, n, 1000):
        drafts = [Draft(type="device.battery_low", priority=Priority.NORMAL, source=MAT, data={"battery_pct": 19})
                  for _ in range(min(1000, n - start))]
        assert not any(isinstance(r, Exception) for r in await ob.append_many(drafts))


async def test_memory_is_given_back_once_after_a_burst_when_the_forwarder_is_idle(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite3", hub="h", resident="r")
    await ob.open()
    idle = {"now": False}
    hk = Housekeeping(ob, Link(), HealthBoard(lambda *a: None), idle=lambda: idle["now"])  # type: ignore[arg-type]
    try:
        with structlog.testing.capture_logs() as logs:
            await burst(ob, 100)
            await hk.after_burst()
            await hk.after_burst()
            assert not _given_back(logs), "a trickle is not a burst"

            await burst(ob, TRIM_AFTER_EVENTS)
            await hk.after_burst()  # events came in since the last round: the burst is not over
            await hk.after_burst()  # quiet now, but the forwarder still has work
            assert not _given_back(logs)

            idle["now"] = True
            await hk.after_burst()
            await hk.after_burst()
            given = _given_back(logs)
            assert len(given) == 1, "once per burst"
            assert given[0]["burst_events"] == TRIM_AFTER_EVENTS + 100
            assert given[0]["malloc_trimmed"] in (True, False)

        (event,) = await ob.append_many([Draft(type="device.battery_low", priority=Priority.NORMAL, source=MAT)])
        assert not isinstance(event, Exception) and event.seq == TRIM_AFTER_EVENTS + 101, "the store goes on"
        assert (await ob.stats()).pending == TRIM_AFTER_EVENTS + 101
    finally:
        await ob.close()


def test_trim_malloc_answers_where_there_is_no_glibc_too() -> None:
    assert trim_malloc() in (True, False)


def _given_back(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "memory_given_back"]


async def test_ordinary_traffic_gives_memory_back_at_most_once_a_period(tmp_path: Path, monkeypatch: Any) -> None:
    """A trickle of events (a day's ordinary traffic) is given back too, when the store is quiet and the
    forwarder idle, at most once per TRIM_EVERY_S; logged at debug, as routine; nothing stored, nothing to do."""
    import hub.housekeeping as housekeeping

    monkeypatch.setattr(housekeeping, "TRIM_EVERY_S", 0.2)
    ob = Outbox(tmp_path / "outbox.sqlite3", hub="h", resident="r")
    await ob.open()
    hk = Housekeeping(ob, Link(), HealthBoard(lambda *a: None), idle=lambda: True)  # type: ignore[arg-type]
    try:
        with structlog.testing.capture_logs() as logs:
            await burst(ob, 10)
            await hk.after_burst()
            await hk.after_burst()
            assert not _given_back(logs), "not within the period"
            await asyncio.sleep(0.25)
            await hk.after_burst()
            (given,) = _given_back(logs)
            assert given["burst_events"] == 10 and given["log_level"] == "debug"
            await asyncio.sleep(0.25)
            await hk.after_burst()
            assert len(_given_back(logs)) == 1, "nothing stored since: nothing to give back"
    finally:
        await ob.close()
