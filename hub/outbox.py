"""The durable outbox: every event is on disk before anything publishes it.

SQLite in WAL mode, one file in the state directory. :meth:`Outbox.append`
numbers a :class:`~hub.events.Draft` (the per-hub ``seq`` is allocated in the
same transaction that stores the event) and returns only after the commit;
the commit is ``synchronous=FULL``, so an accepted event survives kill -9 and
a power cut. Events stay *pending* until :meth:`Outbox.mark_delivered`, which
the forwarder calls on the broker's PUBACK.

Appends made while a commit is running are committed together in the next
transaction (group commit), so a burst of telemetry costs one fsync, not one
per event, while a lone alarm still waits for exactly one.

The store is bounded by ``max_events``: when full it first drops delivered
events, then the oldest pending event of the lowest priority that is not an
alarm. Alarms are never evicted. Delivered events are kept for
``keep_delivered_s`` so the central can ask for a replay.

SQLite work runs on one dedicated thread, so the asyncio loop does not wait
on the disk, with one exception: a critical event that finds the store idle
is committed on the loop itself (one fsync, no thread hop), because an alarm
is the most urgent work the hub has. WAL checkpoints run from housekeeping on
a connection and thread of their own, never inside an alarm's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import structlog

from hub.events import Draft, Event, Priority

log = structlog.get_logger("hub.outbox")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    type      TEXT NOT NULL,
    rank      INTEGER NOT NULL,
    alarm     INTEGER NOT NULL,
    body      BLOB NOT NULL,
    created   REAL NOT NULL,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (rank, seq) WHERE delivered IS NULL;
CREATE INDEX IF NOT EXISTS events_delivered ON events (delivered) WHERE delivered IS NOT NULL;
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def is_alarm(event_type: str, priority: Priority) -> bool:
    """Alarms are never evicted: every ``alarm.*`` type and everything critical."""
    return event_type.startswith("alarm.") or priority is Priority.CRITICAL


@dataclass(frozen=True)
class OutboxStats:
    """What the heartbeat and ``status`` report about the store."""

    pending: int
    pending_alarms: int
    stored: int
    last_seq: int
    oldest_pending_ts: str | None
    evicted: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Outbox:
    """The durable, bounded, priority-ordered store of events to forward."""

    def __init__(
        self,
        path: Path,
        *,
        hub: str,
        resident: str,
        max_events: int = 200_000,
        keep_delivered_s: float = 7 * 24 * 3600.0,
        delivered_batch_s: float = 0.02,
    ) -> None:
        self.path = path
        self.hub = hub
        self.resident = resident
        self.max_events = max_events
        self.keep_delivered_s = keep_delivered_s
        self.delivered_batch_s = delivered_batch_s
        #: write transactions since the last checkpoint (each adds a few pages to the WAL)
        self.writes_since_checkpoint = 0
        self.evicted = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._appends: list[tuple[Draft, asyncio.Future[Event]]] = []
        self._append_task: asyncio.Task[None] | None = None
        self._delivered: list[int] = []
        self._unflushed: set[int] = set()  # acked by the broker, delivered mark not yet committed
        self._delivered_task: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the database and check its integrity."""
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        # checkpoints run from housekeeping on their own connection, never inside an alarm's commit
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(_SCHEMA)
        self._db = db
        self._count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        row = db.execute("SELECT value FROM meta WHERE key='evicted'").fetchone()
        self.evicted = int(row[0]) if row else 0

    async def close(self) -> None:
        """Finish pending writes and close the database."""
        if self._append_task is not None:
            await asyncio.shield(self._append_task)
        await self.flush_delivered()
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._locked, fn, *args)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._db_lock:
            return fn(*args)

    # --- append (group commit) ---------------------------------------------------------

    def append_now(self, draft: Draft) -> Event | None:
        """Commit a critical draft right here, on the caller's thread, if the store is idle.

        Returns the committed event, or None when the draft is not critical or
        the store is busy (then use :meth:`append`). One fsync, no thread hop
        and no loop turn: an alarm is the most urgent work the hub has, and a
        driver callback can commit and publish it before it returns. Raises
        if the draft itself is refused (a duplicate id, a type not in the contract).
        """
        if (
            draft.priority is not Priority.CRITICAL
            or self._append_task is not None
            or self._db is None
            or not self._db_lock.acquire(blocking=False)
        ):
            return None
        try:
            (result,) = self._append_sync([draft])
        finally:
            self._db_lock.release()
        if isinstance(result, Exception):
            raise result
        return result

    async def append(self, draft: Draft) -> Event:
        """Store a draft durably and return it as a numbered :class:`Event`.

        Returns only after the transaction holding it is committed to disk.
        A critical event that finds the store idle is committed at once
        (:meth:`append_now`); everything else goes through the group commit.
        """
        event = self.append_now(draft)
        if event is not None:
            return event
        (result,) = await self.append_many([draft])
        if isinstance(result, Exception):  # this draft alone was rejected
            raise result
        return result

    async def append_many(self, drafts: list[Draft]) -> list[Event | Exception]:
        """Store several drafts in one go (a burst from one driver), in their order.

        Like :meth:`append`, but one future for the lot, and a refused draft
        comes back as its exception in its place instead of being raised. A
        failure of the store itself (disk full, I/O error) is raised.
        """
        if not drafts:
            return []
        fut: asyncio.Future[list[Event | Exception]] = asyncio.get_running_loop().create_future()
        self._appends.append((drafts, fut))
        if self._append_task is None:
            self._append_task = asyncio.create_task(self._append_loop())
        return await fut

    async def _append_loop(self) -> None:
        try:
            while self._appends:
                batch, self._appends = self._appends, []
                drafts = [d for group, _ in batch for d in group]
                try:
                    results = await self._run(self._append_sync, drafts)
                except Exception as exc:  # disk full, I/O error: every caller hears it
                    log.error("outbox_append_failed", error=str(exc), events=len(drafts))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                i = 0
                for group, fut in batch:
                    if not fut.done():
                        fut.set_result(results[i : i + len(group)])
                    i += len(group)
        finally:
            self._append_task = None

    def _append_sync(self, drafts: list[Draft]) -> list[Event | Exception]:
        db = self._db
        assert db is not None
        now = time.time()
        events: list[Event | Exception] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            seq = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
            stored = 0
            for draft in drafts:
                event = Event.from_draft(draft, hub=self.hub, resident=self.resident, seq=seq + 1)
                try:
                    # Store only what pending() can read back: one bad draft (type not in the
                    # contract, unencodable data) must neither poison the store nor fail the
                    # other callers committed in the same group.
                    body = event.to_json()
                    Event.from_json(body)
                except Exception as exc:
                    events.append(exc)
                    continue
                try:  # the UNIQUE id refuses a duplicate; only this statement is undone
                    db.execute(
                        "INSERT INTO events (seq, id, type, rank, alarm, body, created) VALUES (?,?,?,?,?,?,?)",
                        (seq + 1, event.id, event.type, event.priority.rank,
                         int(is_alarm(event.type, event.priority)), body, now),
                    )
                except sqlite3.IntegrityError:
                    events.append(ValueError(f"event id {draft.id} is already stored"))
                    continue
                seq += 1
                stored += 1
                events.append(event)
            db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
            self._count += stored
            if self._count > self.max_events:
                self._evict_sync(db, self._count - self.max_events)
            db.execute("COMMIT")
            self.writes_since_checkpoint += 1
        except BaseException:
            db.execute("ROLLBACK")
            self._count = db.execute("SELECT count(*) FROM events").fetchone()[0]
            raise
        return events

    def _evict_sync(self, db: sqlite3.Connection, excess: int) -> None:
        """Make room: delivered events first, then the oldest lowest-priority telemetry."""
        cur = db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE delivered IS NOT NULL ORDER BY seq LIMIT ?)",
            (excess,),
        )
        excess -= cur.rowcount
        self._count -= cur.rowcount
        if excess <= 0:
            return
        cur = db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE delivered IS NULL AND alarm = 0 "
            "ORDER BY rank DESC, seq LIMIT ?)",
            (excess,),
        )
        self._count -= cur.rowcount
        self.evicted += cur.rowcount
        if cur.rowcount:  # the count survives restarts: the central may ask what was lost, ever
            db.execute("INSERT INTO meta (key, value) VALUES ('evicted', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (self.evicted,))
            log.warning("outbox_evicted", events=cur.rowcount, evicted_total=self.evicted)
        if cur.rowcount < excess:
            log.warning("outbox_over_capacity", stored=self._count, max_events=self.max_events, reason="alarms are never evicted")

    # --- reading ---------------------------------------------------------------------------

    async def pending(self, *, limit: int = 100, exclude: Iterable[int] = ()) -> list[Event]:
        """Pending events in sending order: highest priority first, then by seq.

        Events acked by the broker whose delivered mark is not on disk yet are
        left out too, so a drain never re-sends what the broker already has.
        """
        skip = set(exclude) | self._unflushed
        rows = await self._run(self._pending_sync, limit + len(skip))
        out: list[Event] = []
        for seq, body in rows:
            if seq in skip:
                continue
            out.append(Event.from_json(body))
            if len(out) == limit:
                break
        return out

    def _pending_sync(self, limit: int) -> list[tuple[int, bytes]]:
        assert self._db is not None
        return self._db.execute(
            "SELECT seq, body FROM events WHERE delivered IS NULL ORDER BY rank, seq LIMIT ?", (limit,)
        ).fetchall()

    async def range(self, from_seq: int, to_seq: int, *, limit: int = 10_000) -> list[Event]:
        """Stored events (pending or delivered) with ``from_seq <= seq <= to_seq``, by seq."""
        rows = await self._run(self._range_sync, from_seq, to_seq, limit)
        return [Event.from_json(body) for (body,) in rows]

    def _range_sync(self, a: int, b: int, limit: int) -> list[tuple[bytes]]:
        assert self._db is not None
        return self._db.execute(
            "SELECT body FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?", (a, b, limit)
        ).fetchall()

    async def get(self, event_id: str) -> Event | None:
        """One stored event by id."""
        row = await self._run(self._get_sync, event_id)
        return Event.from_json(row[0]) if row else None

    def _get_sync(self, event_id: str) -> tuple[bytes] | None:
        assert self._db is not None
        return self._db.execute("SELECT body FROM events WHERE id=?", (event_id,)).fetchone()

    async def recent(self, types: Iterable[str], *, since_s: float) -> list[tuple[Event, bool]]:
        """Stored events of these types from the last ``since_s`` seconds, by seq, each with whether it was delivered."""
        rows = await self._run(self._recent_sync, list(types), time.time() - since_s)
        return [(Event.from_json(body), delivered is not None) for body, delivered in rows]

    def _recent_sync(self, types: list[str], since: float) -> list[tuple[bytes, float | None]]:
        assert self._db is not None
        marks = ",".join("?" * len(types))
        return self._db.execute(
            f"SELECT body, delivered FROM events WHERE created >= ? AND type IN ({marks}) ORDER BY seq",
            (since, *types),
        ).fetchall()

    async def stats(self) -> OutboxStats:
        """Counts for the heartbeat."""
        return await self._run(self._stats_sync)

    def _stats_sync(self) -> OutboxStats:
        db = self._db
        assert db is not None
        pending, alarms = db.execute(
            "SELECT count(*), coalesce(sum(alarm), 0) FROM events WHERE delivered IS NULL"
        ).fetchone()
        last_seq = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        oldest = db.execute(
            "SELECT body FROM events WHERE delivered IS NULL ORDER BY seq LIMIT 1"
        ).fetchone()
        return OutboxStats(
            pending=pending,
            pending_alarms=alarms,
            stored=self._count,
            last_seq=last_seq,
            oldest_pending_ts=Event.from_json(oldest[0]).ts if oldest else None,
            evicted=self.evicted,
        )

    # --- delivery ----------------------------------------------------------------------

    def mark_delivered(self, seq: int) -> None:
        """Record the broker's PUBACK for ``seq``.

        Batched: the acks of the next ``delivered_batch_s`` go into one
        transaction. A mark lost in a crash only means that event is sent
        again, with the same id: a duplicate the central drops, never a loss.
        """
        self._delivered.append(seq)
        self._unflushed.add(seq)
        if self._delivered_task is None:
            self._delivered_task = asyncio.create_task(self._delivered_loop())

    async def flush_delivered(self) -> None:
        """Write the delivered marks recorded so far now, without waiting for the batch window."""
        task = self._delivered_task
        if task is not None:
            self._flush_now.set()  # the batch loop skips its window and clears this when it ends
            await asyncio.shield(task)
        if self._delivered:
            await self._flush_delivered()

    async def _delivered_loop(self) -> None:
        try:
            while self._delivered:
                with contextlib.suppress(TimeoutError):  # the batch window, unless a flush is asked for
                    await asyncio.wait_for(self._flush_now.wait(), self.delivered_batch_s)
                await self._flush_delivered()
            self._flush_now.clear()
        finally:
            self._delivered_task = None

    async def _flush_delivered(self) -> None:
        batch, self._delivered = self._delivered, []
        try:
            await self._run(self._delivered_sync, batch)
        except Exception as exc:  # the event stays pending and is re-sent: a duplicate, never a loss
            log.error("outbox_mark_delivered_failed", error=str(exc), events=len(batch))
        finally:
            self._unflushed.difference_update(batch)

    def _delivered_sync(self, seqs: list[int]) -> None:
        db = self._db
        assert db is not None
        now = time.time()
        # A lost delivered mark only means a re-send with the same id: no fsync needed for it.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE events SET delivered=? WHERE seq=? AND delivered IS NULL", [(now, s) for s in seqs])
            db.execute("COMMIT")
            self.writes_since_checkpoint += 1
        finally:
            db.execute("PRAGMA synchronous=FULL")

    async def checkpoint(self) -> int:
        """Copy the WAL into the database file, on a connection and thread of its own.

        Appends keep committing meanwhile (WAL mode), so an alarm never waits
        behind a checkpoint's fsyncs. Returns the WAL pages checkpointed.
        """
        self.writes_since_checkpoint = 0
        return await asyncio.to_thread(self._checkpoint_sync)

    def _checkpoint_sync(self) -> int:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            # PASSIVE never blocks a writer; once all is copied the next writer rewinds the WAL
            _busy, _log_pages, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return int(done)
        finally:
            db.close()

    async def save_state(self, key: str, value: bytes) -> None:
        """Keep a small blob (rule state) durably beside the events, in the same database."""
        await self._run(self._save_state_sync, key, value)

    def _save_state_sync(self, key: str, value: bytes) -> None:
        assert self._db is not None
        self._db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))
        self.writes_since_checkpoint += 1

    async def load_state(self, key: str) -> bytes | None:
        """A blob saved with :meth:`save_state`, or None."""
        row = await self._run(self._load_state_sync, key)
        return bytes(row[0]) if row else None

    def _load_state_sync(self, key: str) -> tuple[bytes] | None:
        assert self._db is not None
        return self._db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()

    async def prune(self) -> int:
        """Drop delivered events older than the replay window; returns how many."""
        return await self._run(self._prune_sync)

    def _prune_sync(self) -> int:
        assert self._db is not None
        cur = self._db.execute(
            "DELETE FROM events WHERE delivered IS NOT NULL AND delivered < ?",
            (time.time() - self.keep_delivered_s,),
        )
        self._count -= cur.rowcount
        return cur.rowcount
