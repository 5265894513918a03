"""The outbox on a full disk: a real small tmpfs (mounted by the test, as root) filled by another file.

What a user of the hub would check: an alarm is never dropped (the reserve
takes it, or it is held in memory with seq 0 and stored with the next seq
once space is back), telemetry is refused and counted instead of eating the
alarms' space, a failed commit reports SQLite's own error and leaves the
counts right, failed delivered marks are kept (no re-send storm) and written
later, and the store can be opened late when the disk was full at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub.events import Draft, Event, Priority, Source
from hub.outbox import Outbox, StoreError, StoreFull
from hil.harness.smallfs import Filler, free_bytes, mount_small_fs, unmount

SRC = Source(device="btn1", kind="alarm_button")


def alarm(**data: object) -> Draft:
    return Draft(type="alarm.button", priority=Priority.CRITICAL, source=SRC, data=dict(data))


def telemetry(**data: object) -> Draft:
    return Draft(type="device.battery_low", priority=Priority.NORMAL, source=SRC, data=dict(data))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "state"
    mount_small_fs(mnt, "2m")
    yield mnt
    unmount(mnt)


@pytest.fixture
async def fillers(small_fs: Path) -> AsyncIterator[list[Filler]]:
    made: list[Filler] = []
    yield made
    for f in made:
        f.stop()


def drop_wal(db: Path) -> None:
    """Checkpoint and truncate the WAL from outside, so the next commit needs new blocks."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def stored_seqs(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        return [s for (s,) in con.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        con.close()


async def full_disk(small_fs: Path, fillers: list[Filler], db: Path, *, runaway: bool = False) -> Filler:
    drop_wal(db)
    filler = Filler(small_fs / "filler", runaway=runaway).start()
    fillers.append(filler)
    await asyncio.sleep(0.1)
    assert free_bytes(small_fs) < 8192
    return filler


async def test_an_alarm_the_disk_refuses_is_held_and_stored_with_the_next_seq(small_fs, fillers):
    db = small_fs / "outbox.sqlite3"
    ob = Outbox(db, hub="h", resident="r", reserve_bytes=0)
    await ob.open()
    for i in range(3):
        await ob.append(telemetry(i=i))
    stored: list[Event] = []
    ob.on_stored.append(stored.append)
    filler = await full_disk(small_fs, fillers, db, runaway=True)

    held = await ob.append(alarm(n=1))
    assert held.seq == 0 and [e.id for e in ob.held] == [held.id]
    with pytest.raises(StoreError):
        await ob.append(telemetry(i=99))
    assert "full" in (ob.last_error or ""), ob.last_error
    stats = await ob.stats()
    assert stats.held == 1 and stats.pending_alarms == 1 and stats.stored == 3 == len(stored_seqs(db))

    filler.stop()
    await ob.check_space()
    for _ in range(300):
        if stored:
            break
        await asyncio.sleep(0.01)
    (event,) = stored
    assert event.id == held.id and event.seq == 4 and event.data == {"n": 1}
    assert ob.held == [] and stored_seqs(db) == [1, 2, 3, 4]
    assert (await ob.append(telemetry(i=5))).seq == 5, "telemetry flows again"
    await ob.close()


async def test_the_reserve_takes_an_alarm_and_telemetry_is_refused_while_space_is_short(small_fs, fillers):
    db = small_fs / "outbox.sqlite3"
    ob = Outbox(db, hub="h", resident="r", reserve_bytes=256 << 10)
    await ob.open()
    assert ob.ballast.held
    await ob.append(telemetry(i=0))
    filler = await full_disk(small_fs, fillers, db)

    event = await ob.append(alarm(n=1))
    assert event.seq == 2, "the alarm is stored, not held: the reserve made room"
    assert not ob.ballast.held and ob.space_short
    with pytest.raises(StoreFull):
        await ob.append(telemetry(i=1))
    assert ob.refused_full == 1 and (await ob.stats()).refused_full == 1
    assert (await ob.append(alarm(n=2))).seq == 3, "alarms still go in"

    filler.stop()
    assert await ob.check_space() is False
    assert ob.ballast.held, "the reserve is put back once there is room"
    assert (await ob.append(telemetry(i=2))).seq == 4
    assert stored_seqs(db) == [1, 2, 3, 4]
    await ob.close()


async def test_delivered_marks_the_disk_refuses_are_kept_and_written_later(small_fs, fillers):
    db = small_fs / "outbox.sqlite3"
    ob = Outbox(db, hub="h", resident="r", reserve_bytes=0)
    await ob.open()
    events = [await ob.append(telemetry(i=i)) for i in range(5)]
    filler = await full_disk(small_fs, fillers, db, runaway=True)
    for e in events:
        ob.mark_delivered(e.seq)
    await asyncio.sleep(0.5)
    # not on disk, but not pending either: the forwarder does not send them again and again
    assert await ob.pending(limit=10) == []
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM events WHERE delivered IS NULL").fetchone()[0] == 5
    filler.stop()
    for _ in range(100):
        if con.execute("SELECT count(*) FROM events WHERE delivered IS NULL").fetchone()[0] == 0:
            break
        await asyncio.sleep(0.05)
    assert con.execute("SELECT count(*) FROM events WHERE delivered IS NULL").fetchone()[0] == 0
    con.close()
    await ob.close()


async def test_a_store_that_cannot_open_on_a_full_disk_holds_alarms_until_it_opens(small_fs, fillers):
    db = small_fs / "outbox.sqlite3"
    ob = Outbox(db, hub="h", resident="r", reserve_bytes=0)
    await ob.open()
    await ob.append(telemetry(i=0))
    await ob.close()  # a clean stop removes the WAL and shared-memory files: reopening must create them
    filler = Filler(small_fs / "filler", runaway=True).start()
    fillers.append(filler)

    ob = Outbox(db, hub="h", resident="r", reserve_bytes=0)
    with pytest.raises(StoreError):
        await ob.open()
    assert not ob.is_open and ob.last_error
    held = await ob.append(alarm(n=1))
    assert held.seq == 0
    with pytest.raises(StoreError):
        await ob.append(telemetry(i=1))
    assert (await ob.stats()).held == 1

    stored: list[Event] = []
    ob.on_stored.append(stored.append)
    filler.stop()
    await ob.open()
    ob.retry_held()
    for _ in range(300):
        if stored:
            break
        await asyncio.sleep(0.01)
    assert [(e.id, e.seq) for e in stored] == [(held.id, 2)]
    await ob.close()


async def test_the_store_bounded_by_bytes_never_fills_the_disk_itself(tmp_path):
    """A long outage: pending telemetry grows and grows. Retention counts bytes (not only rows), so
    the oldest, lowest-priority telemetry is evicted (and counted) before the store fills the disk;
    alarms are never evicted and a commit never fails."""
    fs = tmp_path / "fs"
    mount_small_fs(fs, "4m")
    try:
        await _fill_a_bounded_store(fs)
    finally:
        unmount(fs)


async def _fill_a_bounded_store(fs: Path) -> None:
    db = fs / "outbox.sqlite3"
    ob = Outbox(db, hub="h", resident="r", reserve_bytes=128 << 10, max_bytes=1 << 30, max_events=1_000_000)
    await ob.open()
    assert ob.max_bytes <= (4 << 20) // 2, "the bound is lowered to half the filesystem"
    pad = "x" * 2000
    first_alarm = await ob.append(alarm(n=0))
    for n in range(0, 4_000, 20):  # about 8 MB of telemetry into a 4 MB filesystem
        results = await ob.append_many([telemetry(i=n + k, pad=pad) for k in range(20)])
        assert not [r for r in results if isinstance(r, Exception)], results
        if n % 100 == 0:
            await ob.checkpoint()  # as the hub's housekeeping does
    stats = await ob.stats()
    assert stats.bytes <= ob.max_bytes and stats.evicted > 3_000
    pending = await ob.pending(limit=10_000)
    assert pending[0].id == first_alarm.id, "the alarm is never evicted"
    kept = [e.data["i"] for e in pending[1:]]
    assert kept == sorted(kept) and kept[-1] == 3_999 and kept[0] > 3_000, "the oldest telemetry went first"
    await ob.close()
