"""The durable outbox, checked the way a user of the hub would check it.

Every test uses a real SQLite file in ``tmp_path``. What is checked:

* ``seq`` starts at 1, has no gaps, and keeps counting across close/reopen,
  across pruning everything, and across a process that is killed (``os._exit``
  and SIGKILL) right after ``append`` returned;
* concurrent appends (group commit) each get their own event and consecutive seqs;
* ``pending`` order (critical first, then by seq), ``limit``, ``exclude``, delivery;
* the bound: delivered dropped first, then the oldest lowest-priority telemetry,
  never an alarm, and a full store of alarms still takes a new alarm;
* ``range`` and ``prune``;
* the stored JSON is byte-identical when re-read after a restart;
* a draft the contract rejects fails only its own ``append``;
* a Hypothesis run over random append / deliver / reopen sequences.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hub.events import Draft, Event, Priority, Source
from hub.outbox import Outbox

HUB = "hub-test-1"
RESIDENT = "res-7f3a"
SRC = Source(device="sensor1", kind="thermometer", room="living")
BUTTON = Source(device="btn1", kind="alarm_button", room="bedroom")
REPO = Path(__file__).resolve().parents[1]

#: Telemetry types (never alarms unless critical) and alarm types, with a typical priority.
TELEMETRY = {
    Priority.LOW: "sensor.temperature",
    Priority.NORMAL: "device.battery_low",
    Priority.HIGH: "device.offline",
}


def is_alarm(event_type: str, priority: Priority) -> bool:
    """The rule as documented (spelled out here, not imported): alarm.* or critical is an alarm."""
    return event_type.startswith("alarm.") or priority is Priority.CRITICAL


def draft(type: str = "sensor.temperature", priority: Priority = Priority.NORMAL, **kw: Any) -> Draft:
    source = kw.pop("source", BUTTON if type.startswith("alarm.") else SRC)
    return Draft(type=type, priority=priority, source=source, **kw)


def telemetry(priority: Priority = Priority.NORMAL, **kw: Any) -> Draft:
    return draft(TELEMETRY[priority], priority, **kw)


def alarm(**kw: Any) -> Draft:
    return draft("alarm.button", Priority.CRITICAL, **kw)


async def open_outbox(path: Path, **kw: Any) -> Outbox:
    ob = Outbox(path, hub=HUB, resident=RESIDENT, **kw)
    await ob.open()
    return ob


async def all_pending(ob: Outbox) -> list[Event]:
    return await ob.pending(limit=1_000_000)


async def stored_seqs(ob: Outbox) -> list[int]:
    return [e.seq for e in await ob.range(1, 1 << 62, limit=1_000_000)]


async def wait_delivered(ob: Outbox, seqs: set[int], timeout: float = 5.0) -> None:
    """mark_delivered is batched and asynchronous: write the marks, then check none of ``seqs`` is pending."""
    await ob.flush_delivered()
    deadline = time.monotonic() + timeout
    while True:
        left = {e.seq for e in await all_pending(ob)} & seqs
        if not left:
            return
        assert time.monotonic() < deadline, f"still pending after mark_delivered: {sorted(left)}"
        await asyncio.sleep(0.005)


async def deliver(ob: Outbox, *seqs: int) -> None:
    for s in seqs:
        ob.mark_delivered(s)
    await wait_delivered(ob, set(seqs))


def raw_rows(path: Path) -> dict[int, bytes]:
    """What is on disk, read with plain sqlite3 (the outbox must be closed or in WAL)."""
    db = sqlite3.connect(path)
    try:
        return {seq: bytes(body) for seq, body in db.execute("SELECT seq, body FROM events")}
    finally:
        db.close()


OpenFn = Callable[..., Awaitable[Outbox]]


@pytest.fixture
async def make_outbox(tmp_path: Path) -> AsyncIterator[OpenFn]:
    """Open outboxes on ``tmp_path/outbox.db`` (or a given path); any left open are closed after the test."""
    opened: list[Outbox] = []

    async def make(path: Path | None = None, **kw: Any) -> Outbox:
        ob = await open_outbox(path or tmp_path / "outbox.db", **kw)
        opened.append(ob)
        return ob

    yield make
    for ob in opened:
        if ob._db is not None:
            await ob.close()


async def reopen(ob: Outbox, make: OpenFn, **kw: Any) -> Outbox:
    """Close and open again with the same settings (a clean hub restart)."""
    await ob.close()
    kw.setdefault("max_events", ob.max_events)
    kw.setdefault("keep_delivered_s", ob.keep_delivered_s)
    return await make(ob.path, **kw)


# --- seq ---------------------------------------------------------------------------------


async def test_seq_starts_at_one_and_has_no_gaps(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    assert (await ob.stats()).last_seq == 0
    events = [await ob.append(telemetry()) for _ in range(20)]
    assert [e.seq for e in events] == list(range(1, 21))
    assert all(e.hub == HUB and e.resident == RESIDENT and e.v == 1 for e in events)
    stats = await ob.stats()
    assert (stats.last_seq, stats.stored, stats.pending, stats.evicted) == (20, 20, 20, 0)


async def test_seq_continues_after_close_and_reopen(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    first = [await ob.append(telemetry()) for _ in range(5)]
    for _ in range(3):
        ob = await reopen(ob, make_outbox)
        assert (await ob.stats()).last_seq == first[-1].seq
        more = [await ob.append(telemetry()) for _ in range(5)]
        assert [e.seq for e in more] == list(range(first[-1].seq + 1, first[-1].seq + 6))
        first = more
    assert await stored_seqs(ob) == list(range(1, 21))


async def test_seq_never_reused_after_everything_is_pruned(make_outbox: OpenFn) -> None:
    """The seq lives in the meta table, not in max(seq): an empty store still continues."""
    ob = await make_outbox(keep_delivered_s=0)
    events = [await ob.append(telemetry()) for _ in range(4)]
    await deliver(ob, *(e.seq for e in events))
    await asyncio.sleep(0.01)
    assert await ob.prune() == 4
    assert (await ob.stats()).stored == 0
    ob = await reopen(ob, make_outbox)
    assert (await ob.append(telemetry())).seq == 5


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from hub.events import Draft, Priority, Source
    from hub.outbox import Outbox

    path, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    src = Source(device="btn1", kind="alarm_button")

    async def main() -> None:
        ob = Outbox(path, hub="hub-test-1", resident="res-7f3a")
        await ob.open()

        async def one(i: int) -> None:
            pr = Priority.CRITICAL if i % 7 == 0 else Priority.NORMAL
            t = "alarm.button" if pr is Priority.CRITICAL else "device.battery_low"
            ev = await ob.append(Draft(type=t, priority=pr, source=src, data={"i": i}))
            # printed only after append returned, i.e. after the commit
            sys.stdout.write(f"OK {ev.id} {ev.seq}\\n")
            sys.stdout.flush()

        i = 0
        while n < 0 or i < n:
            # bursts of concurrent appends, so group commits are killed too
            k = 1 + i % 5
            await asyncio.gather(*(one(i + j) for j in range(k)))
            i += k
        if mode == "exit":
            os._exit(0)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)

LINE = re.compile(r"^OK (\S+) (\d+)$")


def _run_child(tmp_path: Path, db: Path, n: int, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, str(script), str(db), str(n), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _acked(stdout: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in stdout.split("\n")[:-1]:  # the last piece may be a line cut off by the kill
        m = LINE.match(line)
        if m:
            out[int(m.group(2))] = m.group(1)
    return out


async def _check_survived(make_outbox: OpenFn, db: Path, acked: dict[int, str]) -> None:
    assert acked, "the child appended nothing"
    ob = await make_outbox(db)
    stored = {e.seq: e for e in await ob.range(1, 1 << 62, limit=1_000_000)}
    for seq, event_id in acked.items():
        assert seq in stored, f"seq {seq} was acknowledged to the caller but is gone after the crash"
        assert stored[seq].id == event_id
    seqs = sorted(stored)
    # every acknowledged append is there; nothing else but possibly commits whose print was cut off
    assert seqs == list(range(1, len(seqs) + 1))
    assert set(acked) <= set(seqs)
    last = (await ob.stats()).last_seq
    assert last == seqs[-1]
    assert (await ob.append(telemetry())).seq == last + 1


@pytest.mark.parametrize("mode", ["exit", "kill"])
async def test_every_returned_append_survives_process_death(tmp_path: Path, make_outbox: OpenFn, mode: str) -> None:
    """The child appends 60 events and dies without close (os._exit / SIGKILL of itself)."""
    db = tmp_path / "outbox.db"
    proc = _run_child(tmp_path, db, 60, mode)
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    expected_rc = 0 if mode == "exit" else -signal.SIGKILL
    assert proc.returncode == expected_rc, stderr
    acked = _acked(stdout)
    assert sorted(acked) == list(range(1, 61))
    await _check_survived(make_outbox, db, acked)


async def test_every_returned_append_survives_sigkill_mid_stream(tmp_path: Path, make_outbox: OpenFn) -> None:
    """SIGKILL from outside while the child is still appending as fast as it can."""
    db = tmp_path / "outbox.db"
    proc = _run_child(tmp_path, db, -1, "forever")
    assert proc.stdout is not None

    def read_until_then_kill() -> str:
        assert proc.stdout is not None
        lines = []
        while sum(line.startswith("OK ") for line in lines) < 150:  # log lines may come in between
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        return "".join(lines) + rest

    stdout = await asyncio.to_thread(read_until_then_kill)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    acked = _acked(stdout)
    assert len(acked) >= 150
    await _check_survived(make_outbox, db, acked)


# --- concurrency ------------------------------------------------------------------------


async def test_concurrent_appends_get_distinct_consecutive_seqs(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    prios = list(Priority)
    drafts = [
        alarm(data={"n": i}) if i % 10 == 0 else telemetry(prios[1 + i % 3], data={"n": i}) for i in range(200)
    ]
    events = await asyncio.gather(*(ob.append(d) for d in drafts))
    for d, e in zip(drafts, events):
        assert e.id == d.id and e.data == d.data and e.type == d.type and e.priority is d.priority
    assert sorted(e.seq for e in events) == list(range(1, 201))
    # alarms go ahead of the telemetry queued with them; otherwise callers that queued earlier were numbered earlier
    tele = [e.seq for e in events if e.priority is not Priority.CRITICAL]
    alarms = [e.seq for e in events if e.priority is Priority.CRITICAL]
    assert tele == sorted(tele) and alarms == sorted(alarms)
    # the first alarm found the store idle (inline commit); every other was queued with the telemetry
    # and committed ahead of all of it
    assert alarms[0] == 1 and max(alarms[1:]) < min(tele), "an alarm waited behind telemetry"
    assert await stored_seqs(ob) == list(range(1, 201))
    by_seq = {e.seq: e for e in await ob.range(1, 200)}
    assert all(by_seq[e.seq].id == e.id for e in events)


async def test_concurrent_appends_interleaved_with_reads_and_acks(make_outbox: OpenFn) -> None:
    ob = await make_outbox()

    async def producer(k: int) -> list[Event]:
        out = []
        for i in range(20):
            out.append(await ob.append(telemetry(data={"p": k, "i": i})))
            if i % 3 == 0:
                ob.mark_delivered(out[-1].seq)
            await asyncio.sleep(0)
        return out

    async def reader() -> None:
        for _ in range(20):
            pend = await ob.pending(limit=50)
            seqs = [e.seq for e in pend]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            await asyncio.sleep(0)

    results = await asyncio.gather(*(producer(k) for k in range(10)), reader())
    events = [e for r in results[:10] for e in r]
    assert sorted(e.seq for e in events) == list(range(1, 201))
    for r in results[:10]:  # each producer's own appends are in order
        assert [e.seq for e in r] == sorted(e.seq for e in r)
    delivered = {r[i].seq for r in results[:10] for i in range(0, 20, 3)}
    await wait_delivered(ob, delivered)
    assert {e.seq for e in await all_pending(ob)} == set(range(1, 201)) - delivered


# --- pending / delivery ---------------------------------------------------------------------


async def test_pending_is_critical_first_then_by_seq(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    order = [
        Priority.LOW, Priority.NORMAL, Priority.CRITICAL, Priority.HIGH, Priority.LOW,
        Priority.CRITICAL, Priority.NORMAL, Priority.HIGH, Priority.NORMAL, Priority.CRITICAL,
    ]  # fmt: skip
    events = []
    for p in order:
        events.append(await ob.append(alarm() if p is Priority.CRITICAL else telemetry(p)))
    got = await all_pending(ob)
    assert [e.seq for e in got] == [e.seq for e in sorted(events, key=lambda e: (e.priority.rank, e.seq))]
    assert [e.priority for e in got[:3]] == [Priority.CRITICAL] * 3
    assert [e.seq for e in got[:3]] == [3, 6, 10]
    # limit takes from the front of that order
    assert [e.seq for e in await ob.pending(limit=4)] == [3, 6, 10, 4]


async def test_take_body_gives_the_committed_bytes_once(make_outbox: OpenFn) -> None:
    """The forwarder publishes a fresh event's stored bytes (no second encoding): exactly what is on disk,
    handed out once; an event nobody took is let go once more than BODIES_MAX wait."""
    from hub.outbox.core import BODIES_MAX

    ob = await make_outbox()
    events = await ob.append_many([telemetry(data={"n": i}) for i in range(3)])
    alarm_event = await ob.append(alarm())
    on_disk = raw_rows(ob.path)
    for e in [*events, alarm_event]:
        assert isinstance(e, Event)
        assert ob.take_body(e.seq) == on_disk[e.seq] == e.to_json()
        assert ob.take_body(e.seq) is None
    await ob.append_many([telemetry(data={"n": i}) for i in range(BODIES_MAX)])
    waiting = len(ob._bodies)
    await ob.append_many([telemetry(data={"n": i}) for i in range(10)])
    assert waiting == BODIES_MAX and len(ob._bodies) == 10


async def test_pending_exclude_still_fills_the_limit(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    for i in range(10):
        await ob.append(alarm() if i in (4, 8) else telemetry())
    full = [e.seq for e in await all_pending(ob)]
    assert full[:2] == [5, 9]
    got = await ob.pending(limit=3, exclude={5, 1, 2, 999})
    assert [e.seq for e in got] == [9, 3, 4]
    assert [e.seq for e in await ob.pending(limit=100, exclude=range(1, 11))] == []


async def test_delivered_events_are_no_longer_pending(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    events = [await ob.append(alarm() if i % 4 == 0 else telemetry()) for i in range(12)]
    await deliver(ob, 1, 2, 5, 12)
    ob.mark_delivered(5)  # a duplicate PUBACK is harmless
    ob.mark_delivered(999)  # so is an unknown seq
    left = {e.seq for e in await all_pending(ob)}
    assert left == set(range(1, 13)) - {1, 2, 5, 12}
    stats = await ob.stats()
    assert stats.pending == 8 and stats.stored == 12
    assert stats.pending_alarms == sum(1 for e in events if is_alarm(e.type, e.priority) and e.seq in left)
    assert stats.oldest_pending_ts == events[2].ts


async def test_mark_delivered_is_flushed_by_close(make_outbox: OpenFn) -> None:
    """Acks not yet written when the hub stops cleanly are written by close()."""
    ob = await make_outbox()
    for _ in range(6):
        await ob.append(telemetry())
    for s in (2, 3, 6):
        ob.mark_delivered(s)
    ob = await reopen(ob, make_outbox)
    assert [e.seq for e in await all_pending(ob)] == [1, 4, 5]


async def test_close_waits_for_appends_in_flight(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    tasks = [asyncio.create_task(ob.append(alarm() if i % 9 == 0 else telemetry())) for i in range(50)]
    await asyncio.sleep(0)  # every task has queued its draft; only alarms (committed on the loop) can be done
    assert not any(t.done() for i, t in enumerate(tasks) if i % 9), "the telemetry is still in flight"
    await ob.close()
    events = [t.result() for t in tasks]
    assert sorted(e.seq for e in events) == list(range(1, 51))
    assert sorted(raw_rows(ob.path)) == list(range(1, 51))


# --- the bound ----------------------------------------------------------------------------


async def test_bound_evicts_delivered_first(make_outbox: OpenFn) -> None:
    ob = await make_outbox(max_events=10)
    for _ in range(10):
        await ob.append(telemetry(Priority.LOW))
    await deliver(ob, 2, 5, 7)
    for _ in range(3):
        await ob.append(telemetry(Priority.LOW))
    assert await stored_seqs(ob) == [1, 3, 4, 6, 8, 9, 10, 11, 12, 13]
    stats = await ob.stats()
    assert stats.stored == 10 and stats.pending == 10
    assert stats.evicted == 0, "dropping delivered events is not an eviction of unsent data"


async def test_bound_evicts_oldest_low_then_normal_then_high_never_alarms(make_outbox: OpenFn) -> None:
    ob = await make_outbox(max_events=10)
    L, N, H = Priority.LOW, Priority.NORMAL, Priority.HIGH
    # alarms include a NORMAL alarm.acknowledged and a HIGH alarm.test: alarm.* is never evicted
    plan: list[Draft] = [
        telemetry(N), telemetry(L), alarm(), telemetry(L), telemetry(H),
        draft("alarm.acknowledged", N), telemetry(N), telemetry(L), draft("alarm.test", H), telemetry(N),
    ]  # fmt: skip
    for d in plan:
        await ob.append(d)
    alarms = {3, 6, 9}
    assert await stored_seqs(ob) == list(range(1, 11))

    # three NORMAL appends: the three LOWs go, oldest first (2, 4, 8)
    for _ in range(3):
        await ob.append(telemetry(N))
    assert set(await stored_seqs(ob)) == set(range(1, 14)) - {2, 4, 8}
    # next: the oldest NORMALs (1, 7, 10, ...) before the HIGH (5)
    for _ in range(3):
        await ob.append(telemetry(N))
    assert set(await stored_seqs(ob)) == set(range(1, 17)) - {2, 4, 8, 1, 7, 10}
    # a new LOW is itself the lowest: it is the one that goes
    low = await ob.append(telemetry(L))
    assert low.seq not in await stored_seqs(ob)
    # HIGH telemetry goes only after every NORMAL/LOW
    for _ in range(7):
        await ob.append(telemetry(H))
    stored = set(await stored_seqs(ob))
    assert alarms <= stored
    assert len(stored) == 10
    assert 5 not in stored  # the oldest HIGH telemetry went after all the normals
    kinds = {e.seq: e.priority for e in await ob.range(1, 100)}
    assert all(kinds[s] is H for s in stored - alarms)
    stats = await ob.stats()
    assert stats.evicted == 24 - 10
    assert stats.stored == 10
    ob = await reopen(ob, make_outbox)
    assert (await ob.stats()).evicted == 24 - 10, "what was lost is still counted after a restart"


async def test_bound_with_realistic_load(make_outbox: OpenFn) -> None:
    """max_events=100 (the config minimum): 300 telemetry + 30 alarms, appended in concurrent bursts."""
    ob = await make_outbox(max_events=100)
    import random

    rnd = random.Random(1234)
    drafts = [alarm() if i % 11 == 5 else telemetry(rnd.choice([Priority.LOW, Priority.NORMAL])) for i in range(330)]
    appended: list[Event] = []
    for start in range(0, 330, 10):
        appended += await asyncio.gather(*(ob.append(d) for d in drafts[start : start + 10]))
        stats = await ob.stats()
        assert stats.stored <= 100
        assert stats.stored == len(await stored_seqs(ob))
    alarm_seqs = {e.seq for e in appended if is_alarm(e.type, e.priority)}
    assert len(alarm_seqs) == 30
    pending = await all_pending(ob)
    assert alarm_seqs <= {e.seq for e in pending}
    assert [e.seq for e in pending[:30]] == sorted(alarm_seqs)

    # what survives is what the policy keeps: every alarm, then NORMAL over LOW, newer over older
    telem = [e for e in appended if e.seq not in alarm_seqs]
    keep = sorted(telem, key=lambda e: (e.priority.rank, -e.seq))[: 100 - 30]
    assert set(await stored_seqs(ob)) == alarm_seqs | {e.seq for e in keep}
    stats = await ob.stats()
    assert stats.evicted == 330 - 100
    assert stats.stored == 100 and stats.pending == 100 and stats.pending_alarms == 30


async def test_full_of_alarms_still_accepts_alarms(make_outbox: OpenFn) -> None:
    ob = await make_outbox(max_events=5)
    for i in range(5):
        # critical is an alarm whatever its type
        await ob.append(alarm() if i % 2 else draft("hub.fault", Priority.CRITICAL))
    extra = [await ob.append(alarm()) for _ in range(3)]
    assert await stored_seqs(ob) == list(range(1, 9)), "an alarm was dropped"
    assert [e.seq for e in extra] == [6, 7, 8]
    # telemetry into a store over capacity with alarms: the telemetry itself is what goes
    t = await ob.append(telemetry(Priority.HIGH))
    assert t.seq == 9
    assert await stored_seqs(ob) == list(range(1, 9))
    stats = await ob.stats()
    assert (stats.stored, stats.pending_alarms, stats.evicted) == (8, 8, 1)
    # once alarms are delivered, the store shrinks back to the bound as new events arrive
    await deliver(ob, 1, 2, 3, 4)
    await ob.append(telemetry())
    stats = await ob.stats()
    assert stats.stored == 5 and stats.pending_alarms == 4 and stats.pending == 5
    assert await stored_seqs(ob) == [5, 6, 7, 8, 10]


async def test_critical_events_are_alarms_whatever_their_type(make_outbox: OpenFn) -> None:
    ob = await make_outbox(max_events=4)
    fault = await ob.append(draft("device.fault", Priority.CRITICAL))
    for _ in range(10):
        await ob.append(telemetry(Priority.HIGH))
    assert fault.seq in await stored_seqs(ob)
    assert (await ob.stats()).pending_alarms == 1


async def test_bound_holds_after_reopen(make_outbox: OpenFn) -> None:
    ob = await make_outbox(max_events=10)
    for _ in range(10):
        await ob.append(telemetry())
    ob = await reopen(ob, make_outbox)
    await ob.append(telemetry())
    assert await stored_seqs(ob) == list(range(2, 12))
    assert (await ob.stats()).stored == 10


# --- range / prune ------------------------------------------------------------------------


async def test_range_returns_delivered_and_pending(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    events = [await ob.append(alarm() if i == 3 else telemetry()) for i in range(10)]
    await deliver(ob, 2, 3, 4, 9)
    got = await ob.range(3, 7)
    assert [e.seq for e in got] == [3, 4, 5, 6, 7]  # by seq, not by priority
    assert [e.to_json() for e in got] == [e.to_json() for e in events[2:7]]
    assert [e.seq for e in await ob.range(8, 100)] == [8, 9, 10]
    assert await ob.range(11, 20) == []
    assert await ob.range(7, 3) == []
    assert [e.seq for e in await ob.range(1, 10, limit=3)] == [1, 2, 3]
    assert (await ob.get(events[8].id)) == events[8]
    assert await ob.get("0190a0a0-0000-7000-8000-000000000000") is None


async def test_prune_drops_old_delivered_never_pending(make_outbox: OpenFn) -> None:
    ob = await make_outbox(keep_delivered_s=0)
    for i in range(8):
        await ob.append(alarm() if i == 0 else telemetry())
    await deliver(ob, 2, 4, 6)
    await asyncio.sleep(0.02)
    assert await ob.prune() == 3
    assert await stored_seqs(ob) == [1, 3, 5, 7, 8]
    assert [e.seq for e in await all_pending(ob)] == [1, 3, 5, 7, 8]
    assert (await ob.stats()).stored == 5
    assert await ob.prune() == 0
    assert [e.seq for e in await ob.range(1, 8)] == [1, 3, 5, 7, 8]


async def test_prune_keeps_delivered_inside_the_replay_window(make_outbox: OpenFn) -> None:
    ob = await make_outbox(keep_delivered_s=3600)
    for _ in range(4):
        await ob.append(telemetry())
    await deliver(ob, 1, 2)
    assert await ob.prune() == 0
    assert [e.seq for e in await ob.range(1, 4)] == [1, 2, 3, 4]


# --- bytes ----------------------------------------------------------------------------------


async def test_stored_json_is_byte_identical_after_restart(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    data = {
        "celsius": 21.5,
        "tiny": 1e-300,
        "neg_zero": -0.0,
        "big": 2**63 - 1,
        "note": "Blåbærsyltetøy, 温度 \u2603 \U0001f6a8 \"quoted\" \\ back\nslash",
        "nested": {"list": [1, 2.25, None, True, False, "x"], "empty": {}},
    }
    sent = [
        await ob.append(telemetry(data=data)),
        await ob.append(alarm(data={"press": 1}, cause=None)),
        await ob.append(draft("alarm.cancelled", Priority.CRITICAL, data={}, cause="0190a0a0-0000-7abc-8000-000000000001")),
    ]
    ob = await reopen(ob, make_outbox)
    pending = await all_pending(ob)
    by_id = {e.id: e for e in pending}
    for e in sent:
        assert by_id[e.id].to_json() == e.to_json()
        assert by_id[e.id] == Event.from_json(e.to_json())
        assert (await ob.get(e.id)).to_json() == e.to_json()  # type: ignore[union-attr]
    assert [e.to_json() for e in await ob.range(1, 3)] == [e.to_json() for e in sent]
    await ob.close()
    on_disk = raw_rows(ob.path)
    for e in sent:
        assert on_disk[e.seq] == e.to_json()
        json.loads(on_disk[e.seq])  # plain JSON any consumer can read


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.text(max_size=10), json_value, max_size=5))
def test_any_json_payload_is_byte_identical_after_restart(data: dict[str, Any]) -> None:
    async def run(path: Path) -> None:
        ob = await open_outbox(path)
        sent = await ob.append(telemetry(data=data))
        await ob.close()
        ob = await open_outbox(path)
        try:
            (got,) = await all_pending(ob)
            assert got.to_json() == sent.to_json()
        finally:
            await ob.close()
        assert raw_rows(path)[sent.seq] == sent.to_json()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d) / "outbox.db"))


# --- drafts the contract rejects -------------------------------------------------------------


async def test_invalid_draft_fails_alone_and_does_not_poison_the_store(make_outbox: OpenFn) -> None:
    """A draft whose event would not validate (bad type) or not encode is refused at append.

    It must not take a seq, must not fail the alarm committed in the same group,
    and must not end up on disk where every later pending() would choke on it.
    """
    ob = await make_outbox()
    await ob.append(telemetry())
    results = await asyncio.gather(
        ob.append(alarm()),
        ob.append(draft("Sensor Temperature", Priority.LOW)),
        ob.append(telemetry(data={"bad": object()})),
        ob.append(telemetry(ts="yesterday")),
        ob.append(telemetry()),
        return_exceptions=True,
    )
    ok, bad_type, unencodable, bad_ts, ok2 = results
    assert isinstance(ok, Event) and isinstance(ok2, Event)
    assert isinstance(bad_type, ValueError)
    assert isinstance(unencodable, TypeError)
    assert isinstance(bad_ts, ValueError)
    assert (ok.seq, ok2.seq) == (2, 3), "a refused draft must not leave a gap in seq"
    assert [e.seq for e in await all_pending(ob)] == [2, 1, 3]
    assert (await ob.append(telemetry())).seq == 4
    assert (await ob.stats()).stored == 4


async def test_a_draft_like_those_stored_before_is_still_refused_where_it_differs(make_outbox: OpenFn) -> None:
    """The full read-back runs once per shape of event; one of a shape stored already is still refused
    for a bad id, cause, data, ts or source, and the store stays readable."""
    ob = await make_outbox()
    first = await ob.append(telemetry(data={"n": 1}))
    bad = [
        telemetry(id="not-a-uuid"),
        telemetry(cause="yesterday's alarm"),
        telemetry(data=["a", "list"]),  # type: ignore[arg-type]
        telemetry(data={"n": {"nested": object()}}),
        telemetry(ts="2026-12-06T00:00:00Z"),  # no milliseconds
        telemetry(source=Source(device="hall", kind=3)),  # type: ignore[arg-type]
    ]
    results = await ob.append_many([*bad, telemetry(data={"n": 2, "nested": {"ok": [1, 2.5, None]}})])
    invalid = msgspec.ValidationError
    assert [type(r) for r in results[:-1]] == [invalid, invalid, invalid, TypeError, invalid, invalid]
    assert isinstance(results[-1], Event) and results[-1].seq == first.seq + 1
    assert [e.data for e in await all_pending(ob)] == [{"n": 1}, {"n": 2, "nested": {"ok": [1, 2.5, None]}}]


async def test_append_many_commits_a_burst_in_order_beside_single_appends(make_outbox: OpenFn) -> None:
    """A serial read's burst is one call; a bad draft in it comes back in its place, the rest are stored."""
    ob = await make_outbox()
    burst_a = [telemetry(data={"i": i}) for i in range(5)]
    burst_b = [telemetry(data={"j": 0}), draft("Not A Type", Priority.LOW), telemetry(data={"j": 1})]
    single, a, b = await asyncio.gather(ob.append(telemetry()), ob.append_many(burst_a), ob.append_many(burst_b))
    assert all(isinstance(e, Event) for e in a)
    assert [e.data for e in a] == [{"i": i} for i in range(5)]
    assert [e.seq for e in a] == list(range(a[0].seq, a[0].seq + 5)), "a burst keeps its order, without gaps"
    assert isinstance(b[1], ValueError) and isinstance(b[0], Event) and isinstance(b[2], Event)
    seqs = sorted([single.seq] + [e.seq for e in a] + [b[0].seq, b[2].seq])
    assert seqs == list(range(1, 9)), "8 stored, the refused draft took no seq"
    assert [e.id for e in await ob.range(1, 8)] == [e.id for e in sorted([single, *a, b[0], b[2]], key=lambda e: e.seq)]
    assert await ob.append_many([]) == []


async def test_a_checkpointed_wal_is_rewritten_in_place_not_grown(make_outbox: OpenFn) -> None:
    """The daemon checkpoints after CHECKPOINT_AFTER_WRITES writes: the WAL then stays the size it
    reached, so an alarm's fsync never has to grow the file as well."""
    ob = await make_outbox()
    wal = ob.path.with_name(ob.path.name + "-wal")
    for _ in range(100):
        await ob.append(telemetry())
    assert ob.writes_since_checkpoint == 100
    size = wal.stat().st_size
    assert await ob.checkpoint() > 0
    assert ob.writes_since_checkpoint == 0
    for _ in range(100):
        await ob.append(telemetry())
    assert wal.stat().st_size == size, "the same writes again fit in the WAL already on disk"
    assert len(await all_pending(ob)) == 200


# --- hypothesis: random operation sequences -----------------------------------------------------------

KINDS: list[tuple[str, Priority]] = [
    ("sensor.temperature", Priority.LOW),
    ("sensor.motion", Priority.NORMAL),
    ("device.offline", Priority.HIGH),
    ("alarm.button", Priority.CRITICAL),
    ("alarm.acknowledged", Priority.NORMAL),  # alarm by type
    ("hub.fault", Priority.CRITICAL),  # alarm by priority
]

op = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(range(len(KINDS)))),
    st.tuples(st.just("append"), st.sampled_from(range(len(KINDS)))),
    st.tuples(st.just("append"), st.sampled_from([0, 1, 2])),  # telemetry is the bulk of real traffic
    st.tuples(st.just("deliver"), st.integers(min_value=0, max_value=1000)),
    st.tuples(st.just("reopen"), st.just(0)),
)


@settings(max_examples=30, deadline=None)
@given(max_events=st.integers(min_value=2, max_value=6), ops=st.lists(op, min_size=8, max_size=40))
def test_random_operations_keep_the_invariants(max_events: int, ops: list[tuple[str, int]]) -> None:
    async def run(path: Path) -> None:
        ob = await open_outbox(path, max_events=max_events)
        last_seq = 0
        sent: dict[int, bytes] = {}  # seq -> bytes as appended
        alarm_seqs: set[int] = set()
        delivered: set[int] = set()
        try:
            for kind, arg in ops:
                before = {e.seq: e for e in await all_pending(ob)}
                if kind == "append":
                    t, p = KINDS[arg]
                    d = draft(t, p, data={"k": arg})
                    e = await ob.append(d)
                    assert e.id == d.id
                    assert e.seq == last_seq + 1, "seq must be strictly increasing without gaps"
                    last_seq = e.seq
                    sent[e.seq] = e.to_json()
                    if is_alarm(t, p):
                        alarm_seqs.add(e.seq)
                elif kind == "deliver":
                    if before:
                        seq = sorted(before)[arg % len(before)]
                        ob.mark_delivered(seq)
                        await wait_delivered(ob, {seq}, timeout=2.0)
                        delivered.add(seq)
                else:
                    await ob.close()
                    ob = await open_outbox(path, max_events=max_events)

                pending = await all_pending(ob)
                pseqs = [e.seq for e in pending]
                stored = await stored_seqs(ob)
                stats = await ob.stats()

                assert stats.last_seq == last_seq
                assert stored == sorted(set(stored)) and set(stored) <= set(sent)
                assert len(pseqs) == len(set(pseqs))
                assert pseqs == [e.seq for e in sorted(pending, key=lambda e: (e.priority.rank, e.seq))]
                assert not set(pseqs) & delivered, "a delivered event is pending again"
                assert alarm_seqs - delivered <= set(pseqs), "an undelivered alarm was lost"
                assert set(pseqs) == set(stored) - delivered
                assert all(e.to_json() == sent[e.seq] for e in pending)
                assert stats.stored == len(stored)
                assert stats.pending == len(pseqs)
                assert stats.pending_alarms == len(alarm_seqs & set(pseqs))
                if kind == "append":
                    # never over the bound, unless undelivered alarms alone exceed it
                    assert len(stored) <= max(max_events, stats.pending_alarms)
                    if len(stored) > max_events:
                        event("over capacity with alarms")
                    # eviction order: delivered first, then the most evictable telemetry, never an alarm
                    gone = set(before) - set(pseqs)
                    assert not gone & alarm_seqs, "an alarm was evicted"
                    victims = [before[s] for s in gone]
                    if last_seq not in pseqs:  # the new event itself was the most evictable
                        victims.append(Event.from_json(sent[last_seq]))
                    if victims:
                        event("evicted pending telemetry")
                        assert not set(stored) & delivered, "pending evicted while delivered were kept"
                        kept = [e for e in pending if e.seq not in alarm_seqs]
                        for v in victims:
                            for k in kept:
                                assert (k.priority.rank, -k.seq) < (v.priority.rank, -v.seq), (
                                    f"evicted seq {v.seq} ({v.priority.value}) but kept {k.seq} ({k.priority.value})"
                                )
        finally:
            await ob.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d) / "outbox.db"))


async def test_same_draft_twice_fails_alone(tmp_path):
    from hub.events import Draft, Priority, Source
    from hub.outbox import Outbox

    ob = Outbox(tmp_path / "o.sqlite3", hub="h", resident="R-1")
    await ob.open()
    src = Source(device="b", kind="alarm_button")
    twice = Draft(type="device.online", priority=Priority.NORMAL, source=src)
    alarm = Draft(type="alarm.button", priority=Priority.CRITICAL, source=src)
    results = await asyncio.gather(ob.append(twice), ob.append(twice), ob.append(alarm), return_exceptions=True)
    assert isinstance(results[1], ValueError) and "already stored" in str(results[1])
    # the alarm in the same group commit is stored, and first: alarms go ahead of telemetry
    assert results[2].seq == 1 and results[0].seq == 2
    later = await asyncio.gather(ob.append(twice), return_exceptions=True)
    assert isinstance(later[0], ValueError)
    assert [e.id for e in await ob.pending()] == [alarm.id, twice.id]
    await ob.close()


async def test_alarm_on_idle_store_commits_without_waiting_for_the_worker(make_outbox: OpenFn) -> None:
    ob = await make_outbox()
    task = asyncio.create_task(ob.append(alarm()))
    await asyncio.sleep(0)
    assert task.done(), "a critical event on an idle store is committed on the loop, in one step"
    ev = task.result()
    assert [e.id for e in await ob.pending()] == [ev.id]


async def test_alarm_during_a_telemetry_commit_goes_right_after_it_not_behind_the_queue(make_outbox: OpenFn) -> None:
    """Under a storm the store's thread is often in a telemetry transaction when the button is pressed.

    The alarm waits for that one transaction on the loop and commits at once
    (in one step of its task), ahead of the telemetry queued meanwhile; an
    alarm already waiting in the queue keeps its place before a newer one.
    """
    ob = await make_outbox()
    in_txn = threading.Event()
    store = ob._append_sync

    def slow_telemetry(drafts: list[Draft]) -> list[Any]:
        if not any(d.priority is Priority.CRITICAL for d in drafts):
            in_txn.set()
            time.sleep(0.02)  # a telemetry transaction the thread is in when the button is pressed
        return store(drafts)

    ob._append_sync = slow_telemetry  # type: ignore[method-assign]
    first = [asyncio.create_task(ob.append(telemetry())) for _ in range(20)]
    while not in_txn.is_set():
        await asyncio.sleep(0.001)
    queued = [asyncio.create_task(ob.append(telemetry())) for _ in range(5)]
    await asyncio.sleep(0)
    press = asyncio.create_task(ob.append(alarm()))
    await asyncio.sleep(0)
    assert press.done(), "the alarm waited for the transaction in flight, then was committed on the loop"
    assert press.result().seq == 21, "right after the 20 in flight, ahead of the 5 queued"
    assert sorted(e.seq for e in await asyncio.gather(*first, *queued)) == [*range(1, 21), *range(22, 27)]

    # an alarm already queued (behind a transaction) goes before a newer one
    in_txn.clear()
    more = [asyncio.create_task(ob.append(telemetry())) for _ in range(5)]
    while not in_txn.is_set():
        await asyncio.sleep(0.001)
    waiting = asyncio.create_task(ob.append_many([alarm()]))
    await asyncio.sleep(0)
    newer = asyncio.create_task(ob.append(alarm()))
    await asyncio.sleep(0)
    assert not newer.done()
    (a,), b = await asyncio.gather(waiting, newer)
    await asyncio.gather(*more)
    assert a.seq < b.seq


async def test_a_duplicate_in_a_burst_is_refused_alone_and_the_seqs_close_up(make_outbox: OpenFn) -> None:
    """A burst is inserted in one statement; a draft whose id is stored already is refused alone, the
    drafts around it (a bad one too) keep their answers, and the seqs stay without a gap."""
    ob = await make_outbox()
    stored = telemetry(data={"n": 0})
    await ob.append(stored)
    burst = [telemetry(data={"n": 1}), stored, draft("Not A Type"), telemetry(data={"n": 2})]
    results = await ob.append_many(burst)
    assert isinstance(results[1], ValueError) and "already stored" in str(results[1])
    assert isinstance(results[2], msgspec.ValidationError)
    assert [(r.seq, r.data) for r in results if isinstance(r, Event)] == [(2, {"n": 1}), (3, {"n": 2})]
    assert (await ob.append(telemetry())).seq == 4
    assert [e.data.get("n") for e in await ob.range(1, 10)] == [0, 1, 2, None]
