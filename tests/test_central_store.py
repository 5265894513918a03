"""The central's store in SQLite and in PostgreSQL (where one answers): the same schema, the same rules.

No broker here: events go straight into :meth:`central.store.Store.ingest` as the engine would
hand them over, and two stores on one database stand for two central instances.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from central.feed import Feed
from central.store import Store, StoreError, open_store
from central.view import Change
from central.wire import Received, parse_event, parse_topic
from hub.events import uuid7
from tests.support.central_db import db_url  # noqa: F401  (the fixture)

HUB = "hub-1"


def ev(seq: int, type_: str = "device.online", *, device: str = "button-1", route: str = "any",
       ts: str = "2026-01-01T10:00:00.000Z", **over: Any) -> dict[str, Any]:
    """An event of the contract, as a hub sends it."""
    return {"v": 1, "id": uuid7(), "hub": HUB, "seq": seq, "ts": ts, "type": type_, "priority": "normal",
            "source": {"device": device, "kind": "alarm_button", "room": "bedroom"}, "resident": "R-1",
            "route": route, "data": {}, "cause": None, **over}


def alarm(seq: int, **over: Any) -> dict[str, Any]:
    return ev(seq, "alarm.button", priority="critical", **over)


def rec(event: dict[str, Any]) -> Received:
    topic = parse_topic(f"carehub/v1/{event['hub']}/event/{event['type']}", "carehub/v1")
    assert topic is not None
    return parse_event(topic, json.dumps(event).encode())


async def take(store: Store, *events: dict[str, Any], auto_ack: bool = False) -> list[Any]:
    return await store.ingest([rec(e) for e in events], now=time.time(), auto_ack=auto_ack)


async def test_migrations_run_once_when_two_instances_start_together_and_never_again(db_url: str) -> None:
    a, b = await asyncio.gather(open_store(db_url, instance="a"), open_store(db_url, instance="b"))
    try:
        rows = await a._read(lambda tx: tx.fetchall("SELECT version FROM schema_migrations"))
        assert [r[0] for r in rows] == [1]
        assert await a.migrate() == [] and await b.migrate() == []
        await a._write(lambda tx: tx.execute(
            "INSERT INTO schema_migrations (version, name, applied) VALUES (99, 'from the future', 0)"))
    finally:
        await a.close()
        await b.close()
    with pytest.raises(StoreError, match="newer than this central"):
        await open_store(db_url, instance="c")


async def test_an_id_seen_again_is_a_duplicate_a_held_alarms_stored_copy_or_a_conflict(db_url: str) -> None:
    store = await open_store(db_url, instance="a")
    try:
        first = ev(1)
        held = alarm(0)
        stored = {**held, "seq": 2}
        changed = {**first, "data": {"reason": "edited"}}
        out = await take(store, first, first, held, stored, changed, auto_ack=True)
        assert [o.kind for o in out] == ["new", "duplicate", "new", "held_stored", "conflict"]
        assert out[2].opened == held["id"] and out[3].opened is None  # one alarm, not two
        assert out[4].differs == ["data"]
        [row] = await store.hubs(HUB)
        assert (row["events"], row["duplicates"], row["held_stored"], row["conflicts"]) == (2, 1, 1, 1)
        assert (row["seq_first"], row["seq_max"], row["gaps_open"]) == (1, 2, 0)  # seq 0 left out of the gaps
        alarms, _, _ = await store.picture()
        assert [a.event_id for a in alarms] == [held["id"]]
        body = await store._read(lambda tx: tx.fetchone("SELECT body FROM events WHERE id = ?", (first["id"],)))
        assert json.loads(body[0])["data"] == {}  # the first body is kept
    finally:
        await store.close()


async def test_a_gap_closes_when_its_seqs_come_or_are_recorded_lost(db_url: str) -> None:
    store = await open_store(db_url, instance="a")
    try:
        out = await take(store, ev(1), ev(6))
        assert out[1].gap == (2, 5)
        await take(store, ev(3))
        assert await store.missing(HUB, 2, 5) == [(2, 2), (4, 5)]
        assert await store.record_lost(HUB, [(2, 2)], now=time.time(), reason="test") == [(2, 2)]
        assert await store.record_lost(HUB, [(2, 2)], now=time.time(), reason="again") == []  # known already
        await take(store, ev(5))
        assert await store.gaps(HUB) == [(2, 5, "open")]
        out = await take(store, ev(4))
        assert out[0].gaps_closed == [(2, 5, "lost")]
        assert await store.lost(HUB) == [(2, 2)]
        [row] = await store.hubs(HUB)
        assert (row["gaps_open"], row["lost"]) == (0, 1)
    finally:
        await store.close()


async def test_two_instances_claim_one_gap_and_one_auto_ack_between_them(db_url: str) -> None:
    a = await open_store(db_url, instance="a")
    b = await open_store(db_url, instance="b")
    try:
        first = alarm(3)
        await take(a, ev(1), first, auto_ack=True)
        now = time.time() + 10  # past the reorder timeout
        claims = await asyncio.gather(*(s.claim_gap(HUB, 2, now=now, reorder_s=1, replay_timeout_s=30)
                                        for s in (a, b, a, b)))
        assert sorted(claims) == [False, False, False, True]
        acks = await asyncio.gather(*(s.claim_auto_acks(now=time.time(), ids=[first["id"]], stale_s=30)
                                      for s in (a, b, a, b)))
        assert sum(len(c) for c in acks) == 1
        # a claim left by an instance that stopped is taken over once stale, by one instance
        later = time.time() + 60
        again = await asyncio.gather(*(s.claim_auto_acks(now=later, ids=[], stale_s=30) for s in (a, b)))
        assert sum(len(c) for c in again) == 1
    finally:
        await a.close()
        await b.close()


async def test_alarm_episodes_join_close_and_remind_as_the_hub_keeps_them(db_url: str) -> None:
    store = await open_store(db_url, instance="a")
    try:
        first = alarm(1, route="nurse")
        repeat = alarm(2, route="nurse", cause=first["id"], data={"repeat": True})
        test = ev(3, "alarm.test", priority="high", route="care")
        cord = alarm(4, device="cord-1", route="care", ts="2026-01-01T09:00:00.000Z")
        out = await take(store, first, repeat, test, cord, auto_ack=True)
        assert [(o.opened, o.joined) for o in out] == [
            (first["id"], None), (None, first["id"]), (test["id"], None), (cord["id"], None)]
        alarms, _, _ = await store.picture()
        # most urgent first, then oldest first: the cord (critical, 09:00), the button (critical), the test (high)
        assert [(a.event_id, a.alarms) for a in alarms] == [(cord["id"], 1), (first["id"], 2), (test["id"], 1)]
        assert [a.event_id for a in (await store.picture("nurse"))[0]] == [first["id"]]
        assert [a.event_id for a in (await store.picture("care"))[0]] == [cord["id"], test["id"]]
        await take(store, ev(5, "alarm.unacknowledged", cause=first["id"], priority="critical"))
        ack = ev(6, "alarm.acknowledged", cause=repeat["id"], data={"by": "op-1", "closes": [first["id"], repeat["id"]]})
        out = await take(store, ack)
        assert out[0].closed == [first["id"]]
        view = await store.alarm(first["id"])
        assert view is not None
        assert (view.state, view.acked_by, view.reminders, view.alarms) == ("acknowledged", "op-1", 1, 2)
        # an ack that came before its alarm (a replay, a backlog): the alarm opens closed, nobody acks it again
        late = alarm(8, device="cord-2")
        await take(store, ev(7, "alarm.cancelled", cause=late["id"], data={"how": "hold", "closes": [late["id"]]}))
        out = await take(store, late, auto_ack=True)
        assert out[0].opened is None
        assert (await store.alarm(late["id"])).state == "cancelled"  # type: ignore[union-attr]
    finally:
        await store.close()


def missed(seq: int, **over: Any) -> dict[str, Any]:
    """A ``checkin.missed`` as the check-in rule sends it (``cause``: the first one, for a re-alert)."""
    return ev(seq, "checkin.missed", device="rule:check_in", priority="high", route="care",
              source={"device": "rule:check_in", "kind": "rule", "room": None}, **over)


async def test_a_missed_check_in_is_a_care_call_its_re_alerts_join_and_an_ack_or_a_check_in_closes(
        db_url: str) -> None:
    store = await open_store(db_url, instance="a")
    try:
        first = missed(1, data={"window": "08:00-10:30", "realert": 0})
        out = await take(store, first, auto_ack=True)
        assert out[0].opened == first["id"]
        realert = missed(2, cause=first["id"], data={"window": "08:00-10:30", "realert": 1})
        out = await take(store, realert)
        assert out[0].joined == first["id"]
        alarms, _, _ = await store.picture()
        assert [(a.event_id, a.type, a.label, a.priority, a.route, a.reminders, a.state) for a in alarms] == [
            (first["id"], "checkin.missed", "missed check-in", "high", "care", 1, "open")]
        assert [a.event_id for a in (await store.picture("care"))[0]] == [first["id"]]
        assert (await store.picture("nurse"))[0] == []
        # never auto-acked, even with --auto-ack on: nothing to claim
        assert await store.claim_auto_acks(now=time.time() + 3600, ids=[first["id"]], stale_s=1) == []
        # an operator's ack of the re-alert: the hub's reply names the first and every re-alert
        ack_id = await store.ack_sent(realert["id"], HUB, "op-1", auto=False, at=time.time())
        closed = await store.ack_done(ack_id, HUB, at=time.time(), who="op-1", event_id=realert["id"], error=None,
                                      reply={"ok": True, "result": "acknowledged", "alarm_id": first["id"],
                                             "closes": [first["id"], realert["id"]]})
        assert closed == [first["id"]]
        view = await store.alarm(first["id"])
        assert view is not None and (view.state, view.acked_by) == ("acknowledged", "op-1")
        # a re-alert that crossed the ack joins the closed call: nothing opens again
        late = missed(3, cause=first["id"], data={"realert": 2})
        out = await take(store, late)
        assert (out[0].opened, out[0].joined) == (None, None)
        assert (await store.picture())[0] == []

        # the next day's missed check-in: the resident checks in late, which closes it (and its re-alert)
        second = missed(4, data={"realert": 0})
        again = missed(5, cause=second["id"], data={"realert": 1})
        await take(store, second, again)
        assert [a.event_id for a in (await store.picture())[0]] == [second["id"]]
        done = ev(6, "checkin.done", device="checkin-kitchen", priority="low", route="care",
                  data={"gesture": "press", "input": "gpio", "missed": second["id"], "window": None})
        out = await take(store, done)
        assert out[0].closed == [second["id"]]
        assert (await store.alarm(second["id"])).state == "checked_in"  # type: ignore[union-attr]
        assert (await store.picture())[0] == []
        # a check-in that ends a call whose first the central never got: the re-alert's own call closes too,
        # and the first, coming late, opens closed
        lost_first = missed(9, data={"realert": 0})
        orphan = missed(7, cause=lost_first["id"], data={"realert": 1})
        await take(store, orphan)
        assert [a.event_id for a in (await store.picture())[0]] == [orphan["id"]]
        await take(store, ev(8, "checkin.done", data={"missed": lost_first["id"]}))
        assert (await store.picture())[0] == []
        out = await take(store, lost_first)
        assert out[0].opened is None
        assert (await store.alarm(lost_first["id"])).state == "checked_in"  # type: ignore[union-attr]
        # a call the hub ended without an event (away, the next window): the ack's reply says ended
        third = missed(11, data={"realert": 0})
        await take(store, third)
        ack_id = await store.ack_sent(third["id"], HUB, "op-2", auto=False, at=time.time())
        await store.ack_done(ack_id, HUB, at=time.time(), who="op-2", event_id=third["id"], error=None,
                             reply={"ok": True, "result": "ended", "alarm_id": third["id"], "closes": [third["id"]]})
        assert (await store.alarm(third["id"])).state == "ended"  # type: ignore[union-attr]
        # a check-in naming no missed call closes nothing
        out = await take(store, ev(12, "checkin.done", data={"missed": None}))
        assert out[0].closed == []
    finally:
        await store.close()


async def test_device_problems_open_and_clear_in_event_time_order(db_url: str) -> None:
    store = await open_store(db_url, instance="a")
    try:
        head = await store.journal_head()
        await take(store, ev(1, "device.offline", device="bedmat", route="nurse", ts="2026-01-01T10:00:00.000Z",
                             data={"reason": "no reading for 300 s"}),
                   ev(2, "device.battery_low", device="door", route="care", data={"battery_pct": 12}))
        _, problems, _ = await store.picture()
        assert [(p.device, p.problem, p.detail, p.route) for p in problems] == [
            ("bedmat", "offline", "no reading for 300 s", "nurse"), ("door", "battery_low", "12 %", "care")]
        assert [p.device for p in (await store.picture("care"))[1]] == ["door"]
        await take(store, ev(3, "device.online", device="bedmat", ts="2026-01-01T09:59:00.000Z"))  # older: no
        assert len((await store.picture())[1]) == 2
        await take(store, ev(4, "device.online", device="bedmat", ts="2026-01-01T10:05:00.000Z"))
        assert [p.device for p in (await store.picture())[1]] == ["door"]
        kinds = [(r[2], r[4]) for r in await store.journal_since(head)]
        assert ("problem_cleared", json.dumps([HUB, "bedmat", "offline"])) in kinds
    finally:
        await store.close()


async def test_a_slow_feed_subscriber_gets_a_resync_and_never_holds_up_the_others() -> None:
    feed = Feed(queue_size=8)
    slow, fast = feed.changes(), feed.changes()
    got: list[Change] = []

    async def read_fast() -> None:
        async for change in fast:
            got.append(change)
            if len(got) == 20:
                return

    reader = asyncio.create_task(read_fast())
    for i in range(20):
        feed.publish(Change(kind="lost", detail={"n": i}))
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 2)
    assert [c.detail["n"] for c in got if c.detail] == list(range(20))
    first = await anext(slow)
    assert first.kind == "resync"  # it fell behind: re-read the snapshot
    feed.publish(Change(kind="lost", detail={"n": 99}))
    rest = [await anext(slow) for _ in range(slow.queue.qsize())]  # type: ignore[attr-defined]
    assert rest[-1].detail == {"n": 99}


async def test_a_transaction_cancelled_at_its_begin_leaves_the_sqlite_store_usable(tmp_path: Any) -> None:
    """A task cancelled while its BEGIN runs on the store's thread (waiting for the write lock another
    instance holds; then a shutdown or a timeout): that BEGIN still completes, and must be undone before
    the next transaction, or every later one fails ("cannot start a transaction within a transaction")."""
    import contextlib
    import sqlite3

    from central.store.sqlite import SqliteDb

    path = tmp_path / "central.db"
    db = SqliteDb(str(path), instance="a", clock=time.time)
    await db.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another instance writing: our BEGIN IMMEDIATE waits on the thread

        async def one_transaction() -> None:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")

        task = asyncio.create_task(one_transaction())
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.sleep(0.05)
        other.execute("COMMIT")  # now that BEGIN goes through, for a task that is gone
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _ in range(2):  # the next ones begin and commit as ever
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                await tx.execute("INSERT INTO t VALUES (1)")
        async with db.transaction(write=False) as tx:
            assert await tx.fetchone("SELECT count(*) FROM t") == (2,)
    finally:
        other.close()
        await db.close()
