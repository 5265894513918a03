"""The durable outbox: every event is on disk before anything publishes it.

SQLite in WAL mode, one file in the state directory. :meth:`Outbox.append`
numbers a :class:`~hub.events.Draft` (the per-hub ``seq`` is allocated in the
same transaction that stores it) and returns only after the commit; the
commit is ``synchronous=FULL``, so an accepted event survives kill -9 and a
power cut. Events stay *pending* until :meth:`Outbox.mark_delivered`, which
the forwarder calls on the broker's PUBACK.

Appends made while a commit is running are committed together in the next
transaction (group commit), so a burst of telemetry costs one fsync, not one
per event, while a lone alarm still waits for exactly one. Alarms first: the
alarm drafts waiting (every ``alarm.*`` type and everything critical, see
:func:`is_alarm`) are committed in a transaction of their own, ahead of any
telemetry, and a telemetry transaction holds at most :data:`MAX_BATCH`
drafts, so an alarm waits behind one bounded batch at most.

The store is bounded by ``max_events`` and ``max_bytes``: when full it first
drops delivered events, then the oldest pending event of the lowest priority
that is not an alarm. Alarms are never evicted. Delivered events are kept for
``keep_delivered_s`` so the central can ask for a replay.

A full disk (another file filled the state directory): telemetry is refused
(:class:`StoreFull`, counted) while space is short; an alarm (any alarm lane
event: an acknowledgement too) that cannot be committed first gets the reserve (:class:`~hub.diskspace.Ballast`) and is
tried again. If even that fails it is *held*: returned at once as an event
with ``seq`` 0, published from memory by the hub, and stored (with the next
seq, same id) as soon as the disk takes it. See the contract for what the
central sees.

SQLite work runs on one dedicated thread, so the asyncio loop does not wait on
the disk, with one exception: a critical event is committed on the loop itself
(one fsync, no thread hop), because an alarm is the most urgent work the hub
has. If the store's thread is in a transaction then (telemetry, delivered
marks), the loop waits for it, at most :data:`ALARM_LOCK_WAIT_S`, rather than
queue the alarm behind a thread hop and several loop turns, which under a
storm (a loop busy parsing, the thread short of the GIL) cost tens of
milliseconds. Alarms already queued keep their place: then the new one
queues too. Reads (the forwarder's backlog, replays,
status) run on a second connection and thread, so they never delay a commit.
WAL checkpoints run from housekeeping on a connection and thread of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from hub.diskspace import DEFAULT_RESERVE_BYTES, Ballast, free_bytes, is_disk_full
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

#: How long an alarm waits on the loop for the store's thread to end its transaction before it queues instead.
ALARM_LOCK_WAIT_S = 0.05
#: At most this many drafts in one telemetry transaction: an alarm waits behind one such batch at most.
MAX_BATCH = 1000
#: How often a held alarm (its commit failed) is tried again.
HOLD_RETRY_S = 1.0
#: Failed delivered marks are written again after this long, doubling up to the cap.
MARK_RETRY_S = (0.2, 5.0)
#: A store failure of the same kind is logged at most this often (a full disk fails every commit).
FAILURE_LOG_S = 5.0


def is_alarm(event_type: str, priority: Priority) -> bool:
    """Alarms are never evicted: every ``alarm.*`` type and everything critical."""
    return event_type.startswith("alarm.") or priority is Priority.CRITICAL


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT. On any error the transaction is rolled back if it is still
    open: a COMMIT that failed on a full disk has rolled back already, and a ROLLBACK then would
    hide SQLite's own error behind "cannot rollback - no transaction is active"."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _save_evicted(db: sqlite3.Connection, total: int) -> None:
    """The evicted count survives restarts: the central may ask what was lost, ever."""
    db.execute("INSERT INTO meta (key, value) VALUES ('evicted', ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (total,))


class StoreError(Exception):
    """The store could not take the events: SQLite's own message (disk full, I/O error, not open)."""


class StoreFull(StoreError):
    """Telemetry refused because the state directory is short of space (alarms still go in)."""


@dataclass(frozen=True)
class OutboxStats:
    """What the heartbeat and ``status`` report about the store."""

    pending: int
    pending_alarms: int
    stored: int
    last_seq: int
    oldest_pending_ts: str | None
    evicted: int
    bytes: int = 0
    held: int = 0
    refused_full: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class _Group:
    """One caller's drafts (one serial read, say), completed when every draft has its result."""

    drafts: list[Draft]
    fut: asyncio.Future[list[Event | Exception]]
    results: list[Event | Exception | None] = field(default_factory=list)
    left: int = 0


class Outbox:
    """The durable, bounded, priority-ordered store of events to forward."""

    def __init__(
        self,
        path: Path,
        *,
        hub: str,
        resident: str,
        max_events: int = 200_000,
        max_bytes: int = 256 << 20,
        keep_delivered_s: float = 7 * 24 * 3600.0,
        delivered_batch_s: float = 0.02,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        self.path = path
        self.hub = hub
        self.resident = resident
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.keep_delivered_s = keep_delivered_s
        self.delivered_batch_s = delivered_batch_s
        self.ballast = Ballast(path.parent / "reserve", reserve_bytes)
        #: write transactions since the last checkpoint (each adds a few pages to the WAL)
        self.writes_since_checkpoint = 0
        self.evicted = 0
        #: telemetry refused while space was short (since start)
        self.refused_full = 0
        #: True while the state directory is short of space: telemetry is refused, alarms use the reserve
        self.space_short = False
        #: the last store failure (SQLite's message), None once a commit succeeds again
        self.last_error: str | None = None
        #: called on the loop with each held alarm once it is stored (with its seq)
        self.on_stored: list[Callable[[Event], None]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rdb: sqlite3.Connection | None = None
        self._count = 0
        self._bytes = 0
        self._page_size = 4096
        self._appends: list[_Group] = []
        self._critical: list[tuple[_Group, int]] = []
        self._telemetry: list[tuple[_Group, int]] = []
        self._append_task: asyncio.Task[None] | None = None
        self._committing_alarms = False  # the append loop's transaction in flight holds alarms
        self._held: dict[str, tuple[Draft, Event]] = {}
        self._held_retry: asyncio.TimerHandle | None = None
        self._held_due_now = False
        self._room_made = False  # this episode of short space has had its make_room
        self._delivered: list[int] = []
        self._unflushed: set[int] = set()  # acked by the broker, delivered mark not yet committed
        self._delivered_task: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()
        self._mark_failures = 0
        self._logged: dict[str, float] = {}
        self._busy_since: float | None = None
        self._evicted_unlogged = 0

    # --- lifecycle -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True once the database is open (a full disk at start can keep it shut for a while)."""
        return self._db is not None

    async def open(self) -> None:
        """Open (creating if needed) the database; raises :class:`StoreError` if it cannot.

        On a full disk the reserve is given up first, so a hub can start (and
        take alarms) where another file took every block.
        """
        try:
            await self._run(self._open_sync)
        except (sqlite3.Error, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise StoreError(self.last_error) from exc
        self.last_error = None

    def _open_sync(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if free_bytes(self.path.parent) < self.ballast.size:
                self.space_short = True
                self.ballast.release()
        new = not self.path.exists()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if new:  # freed pages go back to the filesystem on demand (make_room), not kept forever
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            # checkpoints run from housekeeping on their own connection, never inside an alarm's commit
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.executescript(_SCHEMA)
            count = db.execute("SELECT count(*) FROM events").fetchone()[0]
            self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
            size = self._used_sync(db)
            row = db.execute("SELECT value FROM meta WHERE key='evicted'").fetchone()
            rdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            rdb.execute("PRAGMA busy_timeout=5000")
            rdb.execute("PRAGMA query_only=1")
        except BaseException:
            db.close()
            raise
        self._count, self._bytes = count, size
        self.evicted = int(row[0]) if row else 0
        self._bound_to_filesystem()
        self._rdb = rdb
        self._db = db
        if not self.space_short:
            self.ballast.ensure()

    def _bound_to_filesystem(self) -> None:
        """The store may take at most half of its filesystem, whatever max_bytes says: it must never be
        what fills the disk (a small state partition, a long outage)."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        half = st.f_blocks * st.f_frsize // 2
        if self.max_bytes > half:
            log.info("store_bound_to_filesystem", max_bytes=half, configured=self.max_bytes)
            self.max_bytes = half

    async def close(self) -> None:
        """Finish pending writes and close the database."""
        if self._held_retry is not None:
            self._held_retry.cancel()
        if self._append_task is not None:
            await asyncio.shield(self._append_task)
        with contextlib.suppress(Exception):
            await self.flush_delivered()
        if self._held:
            log.error("outbox_closed_with_held_alarms", held=len(self._held), ids=list(self._held))
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        self._read_executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._rdb is not None:
            self._rdb.close()
            self._rdb = None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._locked, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_executor, fn, *args)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._db_lock:
            self._busy_since = time.monotonic()
            try:
                return fn(*args)
            finally:
                self._busy_since = None

    def busy_for(self) -> float | None:
        """Seconds the store's thread has been in its current transaction (None: idle)."""
        since = self._busy_since
        return None if since is None else time.monotonic() - since

    def _log_failure(self, what: str, exc: BaseException, **kw: Any) -> None:
        """One error line per kind of failure every FAILURE_LOG_S (a full disk fails every commit)."""
        now = time.monotonic()
        if now - self._logged.get(what, float("-inf")) >= FAILURE_LOG_S:
            self._logged[what] = now
            log.error(what, error=str(exc), **kw)

    # --- append (group commit, alarms first) -------------------------------------------

    def append_now(self, draft: Draft) -> Event | None:
        """Commit a critical draft right here, on the caller's thread, unless alarms are waiting already.

        If the store's thread is in a transaction, wait for it to end (at most
        :data:`ALARM_LOCK_WAIT_S`). Returns the committed event (or, if the disk
        refused it even after the reserve was given up, the held event with
        ``seq`` 0), or None when the draft is not critical, alarms are queued or
        being committed (they go first), held alarms wait for the disk, or the
        store stayed busy (then use :meth:`append`).
        One fsync, no thread hop and no loop turn: an alarm is the most urgent
        work the hub has, and a driver callback can commit and publish it
        before it returns. Raises if the draft itself is refused (a duplicate
        id, a type not in the contract).
        """
        if (
            draft.priority is not Priority.CRITICAL
            or self._held
            or self._committing_alarms
            or self._alarms_queued()
            or not self._db_lock.acquire(timeout=ALARM_LOCK_WAIT_S)
        ):
            return None
        try:
            try:
                (result,) = self._store_sync([draft], True)
            except StoreError as exc:
                (result,) = self._hold([draft], exc)
        finally:
            self._db_lock.release()
        if isinstance(result, Exception):
            raise result
        return result

    def _alarms_queued(self) -> bool:
        """Alarm lane drafts waiting for the append loop (they go before a new alarm)."""
        return bool(self._critical) or any(is_alarm(d.type, d.priority) for g in self._appends for d in g.drafts)

    async def append(self, draft: Draft) -> Event:
        """Store a draft durably and return it as a numbered :class:`Event`.

        Returns only after the transaction holding it is committed to disk. A
        alarm the disk cannot take (:func:`is_alarm`) is returned held (``seq``
        0; see the module docstring); any other draft then raises :class:`StoreError`.
        """
        event = self.append_now(draft)
        if event is not None:
            return event
        (result,) = await self.append_many([draft])
        if isinstance(result, Exception):  # this draft alone was rejected, or the store failed
            raise result
        return result

    async def append_many(self, drafts: list[Draft]) -> list[Event | Exception]:
        """Store several drafts in one go (a burst from one driver), in their order.

        Like :meth:`append`, but one future for the lot, and never raises: each
        result is the committed (or held) event, or the exception that refused
        that draft: a :class:`StoreError` when the store failed, another error
        when the draft itself is bad. Critical drafts are committed ahead of
        the others, in a transaction of their own.
        """
        if not drafts:
            return []
        fut: asyncio.Future[list[Event | Exception]] = asyncio.get_running_loop().create_future()
        self._appends.append(_Group(drafts, fut, [None] * len(drafts), len(drafts)))
        self._kick()
        return await fut

    @property
    def queued(self) -> int:
        """Drafts waiting for a commit (the forwarder and the readers' back-pressure look at this)."""
        return sum(g.left for g in self._appends) + len(self._critical) + len(self._telemetry)

    def _kick(self) -> None:
        if self._append_task is None:
            self._append_task = asyncio.create_task(self._append_loop())

    async def _append_loop(self) -> None:
        try:
            while self._appends or self._critical or self._telemetry or self._held_due():
                for group in self._appends:
                    for i, d in enumerate(group.drafts):
                        lane = self._critical if is_alarm(d.type, d.priority) else self._telemetry
                        lane.append((group, i))
                self._appends = []
                if self._held_due() and not self._critical:
                    await self._store_held()
                    continue
                if self._critical and self._held:  # held alarms are older: they go in first, together
                    await self._store_held()
                if self._critical:
                    work, self._critical, critical = self._critical, [], True
                else:
                    work, self._telemetry = self._telemetry[:MAX_BATCH], self._telemetry[MAX_BATCH:]
                    critical = False
                drafts = [g.drafts[i] for g, i in work]
                self._committing_alarms = critical
                try:
                    results = await self._run(self._store_sync, drafts, critical)
                except StoreError as exc:
                    results = self._hold(drafts, exc) if critical else [exc] * len(drafts)
                except Exception as exc:  # a bug here must still answer every caller
                    log.exception("outbox_append_failed", events=len(drafts))
                    results = [StoreError(f"{type(exc).__name__}: {exc}")] * len(drafts)
                finally:
                    self._committing_alarms = False
                for (group, i), result in zip(work, results):
                    group.results[i] = result
                    group.left -= 1
                    if group.left == 0 and not group.fut.done():
                        group.fut.set_result(group.results)  # type: ignore[arg-type]
        finally:
            self._append_task = None

    def _store_sync(self, drafts: list[Draft], critical: bool) -> list[Event | Exception]:
        """One transaction, on the store's thread. Telemetry is refused while space is short;
        an alarm that meets a full disk gets the reserve and one more try."""
        if self._db is None:
            raise StoreError("the store is not open: " + (self.last_error or "not opened yet"))
        if not critical and self.space_short:
            self.refused_full += len(drafts)
            raise StoreFull("state directory short of space: telemetry refused, alarms only")
        try:
            try:
                results = self._append_sync(drafts)
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                if not self.space_short:
                    log.error("store_space_short", error=str(exc), free_bytes=_free(self.path.parent))
                self.space_short = True
                if not (critical and self.ballast.release()):
                    raise
                results = self._append_sync(drafts)  # the reserve's blocks are the alarm's now
        except sqlite3.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            if not critical and is_disk_full(exc):
                self.refused_full += len(drafts)
                raise StoreFull(self.last_error) from exc
            raise StoreError(self.last_error) from exc
        self.last_error = None
        return results

    def _append_sync(self, drafts: list[Draft]) -> list[Event | Exception]:
        db = self._db
        assert db is not None
        now = time.time()
        events: list[Event | Exception] = []
        with _transaction(db):
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
            count = self._count + stored
            size = self._used_sync(db)
            evicted = 0
            if count > self.max_events or size > self.max_bytes:
                count, size, evicted = self._evict_sync(db, count, size)
        self._count, self._bytes = count, size
        if evicted:
            self.evicted += evicted
            self._evicted_unlogged += evicted
            now = time.monotonic()
            if now - self._logged.get("outbox_evicted", float("-inf")) >= FAILURE_LOG_S:  # one line per 5 s
                self._logged["outbox_evicted"] = now
                log.warning("outbox_evicted", events=self._evicted_unlogged, evicted_total=self.evicted,
                            stored=count, disk_bytes=size)
                self._evicted_unlogged = 0
        self.writes_since_checkpoint += 1
        return events

    def _evict_sync(self, db: sqlite3.Connection, count: int, size: int) -> tuple[int, int, int]:
        """Make room (rows, and bytes of disk the database uses): delivered events first, then the
        oldest lowest-priority telemetry.

        Returns the new count and size, and how many pending events were evicted.
        """
        evicted = 0
        for where, order, lost in (
            ("delivered IS NOT NULL", "seq", False),
            ("delivered IS NULL AND alarm = 0", "rank DESC, seq", True),
        ):
            while count > self.max_events or size > self.max_bytes:
                # rows over the count, or enough rows to cover the bytes over at the average row's size
                per_row = max(1, size // max(count, 1))
                want = max(count - self.max_events, -(-(size - self.max_bytes) // per_row), 1)
                rows = db.execute(
                    f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where} ORDER BY {order} LIMIT ?) "
                    "RETURNING seq",
                    (min(want, 10_000),),
                ).fetchall()
                if not rows:
                    break
                count -= len(rows)
                size = self._used_sync(db)
                if lost:
                    evicted += len(rows)
        if evicted:
            _save_evicted(db, self.evicted + evicted)
        if count > self.max_events or size > self.max_bytes:
            log.warning("outbox_over_capacity", stored=count, bytes=size, max_events=self.max_events,
                        max_bytes=self.max_bytes, reason="alarms are never evicted")
        return count, size, evicted

    def _used_sync(self, db: sqlite3.Connection) -> int:
        """Bytes of disk the database's pages in use take (what max_bytes bounds): rows and their overhead."""
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    # --- held alarms (their commit failed) --------------------------------------------------

    def _hold(self, drafts: list[Draft], exc: StoreError) -> list[Event | Exception]:
        """Keep alarm drafts the disk refused in memory; return them as events with seq 0."""
        out: list[Event | Exception] = []
        for draft in drafts:
            held = self._held.get(draft.id)
            if held is None:
                event = Event.from_draft(draft, hub=self.hub, resident=self.resident, seq=0)
                try:
                    Event.from_json(event.to_json())
                except Exception as bad:  # a bad draft is refused, whatever the disk does
                    out.append(bad)
                    continue
                self._held[draft.id] = (draft, event)
                held = (draft, event)
                log.error("alarm_held_in_memory", event_id=draft.id, type=draft.type, error=str(exc),
                          held=len(self._held))
            out.append(held[1])
        self._schedule_held_retry()
        return out

    @property
    def held(self) -> list[Event]:
        """Alarms not stored yet (seq 0), oldest first."""
        return [event for _, event in self._held.values()]

    def _schedule_held_retry(self) -> None:
        if self._held and self._held_retry is None:
            loop = asyncio.get_running_loop()
            self._held_retry = loop.call_later(HOLD_RETRY_S, self._held_retry_due)

    def _held_retry_due(self) -> None:
        self._held_retry = None
        self._held_due_now = True
        self._kick()

    def _held_due(self) -> bool:
        return bool(self._held) and self._held_due_now

    def retry_held(self) -> None:
        """Try the held alarms again now (space came back)."""
        if self._held:
            self._held_due_now = True
            self._kick()

    async def _store_held(self) -> None:
        self._held_due_now = False
        drafts = [draft for draft, _ in self._held.values()]
        try:
            results = await self._run(self._store_sync, drafts, True)
        except StoreError as exc:
            self._log_failure("alarm_hold_retry_failed", exc, held=len(self._held))
            self._schedule_held_retry()
            return
        for draft, result in zip(drafts, results):
            self._held.pop(draft.id, None)
            if isinstance(result, Exception):  # already stored (a duplicate id): nothing to publish
                log.warning("alarm_held_dropped", event_id=draft.id, error=str(result))
                continue
            log.warning("alarm_held_stored", event_id=result.id, seq=result.seq, type=result.type)
            for hook in self.on_stored:
                try:
                    hook(result)
                except Exception:
                    log.exception("stored_hook_failed", event_id=result.id)

    # --- space ------------------------------------------------------------------------------

    async def check_space(self) -> bool:
        """Housekeeping: notice a filling disk before a commit fails, and space coming back.

        Returns :attr:`space_short`. Entering it, delivered events are dropped
        and their pages given back to the filesystem (the central has them);
        leaving it needs the reserve back in place and as much again free.
        Held alarms are tried again once space is back.
        """
        was = self.space_short
        short = await self._run(self._check_space_sync)
        if short and not was:
            log.error("store_space_short", free_bytes=_free(self.path.parent), reserve=self.ballast.held)
        if was and not short:
            log.warning("store_space_recovered", free_bytes=_free(self.path.parent))
            self.retry_held()
        return short

    def _check_space_sync(self) -> bool:
        try:
            free = free_bytes(self.path.parent)
        except OSError:
            return self.space_short
        if not self.space_short and (free < self.ballast.size // 2 or not (self.ballast.held or self.ballast.ensure())):
            self.space_short = True
        if self.space_short and not self._room_made:
            self._room_made = True  # once per episode: what it frees may be taken by whoever fills the disk
            self._make_room_sync()
        if self.space_short and self.ballast.ensure() and free_bytes(self.path.parent) >= self.ballast.size:
            self.space_short = False
            self._room_made = False
        return self.space_short

    def _make_room_sync(self) -> None:
        """Short of space: drop delivered events (the central has them), then, while the filesystem
        is still short, the oldest lowest-priority pending telemetry, and give their pages back.

        When the hub's own store is what filled the disk (a long outage), this is what gets it
        going again; alarms are never dropped. On a full disk even a delete needs room in the
        WAL: it goes in small transactions, each followed by a checkpoint that rewinds the WAL,
        so the WAL's own blocks are reused throughout."""
        db = self._db
        if db is None:
            return
        dropped = evicted = 0
        try:
            db.execute("PRAGMA wal_checkpoint(RESTART)")
            dropped = self._delete_sync(db, "delivered IS NOT NULL", "seq", None)
            want = 4 * max(self.ballast.size, 256 << 10)
            free = _free(self.path.parent)
            if free is not None and free < want:
                evicted = self._delete_sync(db, "delivered IS NULL AND alarm = 0", "rank DESC, seq", want)
            db.execute("PRAGMA incremental_vacuum")  # pages of the deleted events back to the filesystem
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:  # the disk may refuse even this: what was deleted stays deleted
            self._log_failure("outbox_make_room_failed", exc)
        if dropped or evicted:
            log.warning("outbox_made_room", dropped_delivered=dropped, evicted_telemetry=evicted,
                        evicted_total=self.evicted, free_bytes=_free(self.path.parent))

    def _delete_sync(self, db: sqlite3.Connection, where: str, order: str, max_bytes: int | None) -> int:
        """Delete events matching ``where`` in ``order``, up to ``max_bytes`` of bodies (None: all),
        64 at a time with a checkpoint after each; returns how many."""
        pending = "delivered IS NULL" in where  # pending telemetry dropped is lost: counted as evicted
        done = total = 0
        while max_bytes is None or total < max_bytes:
            with _transaction(db):
                rows = db.execute(
                    f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where} ORDER BY {order} LIMIT 64) "
                    "RETURNING length(body)"
                ).fetchall()
                if pending and rows:
                    _save_evicted(db, self.evicted + len(rows))
            if not rows:
                break
            size = sum(r[0] for r in rows)
            self._count -= len(rows)
            self._bytes = self._used_sync(db)
            if pending:
                self.evicted += len(rows)
            done += len(rows)
            total += size
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        return done

    # --- reading ---------------------------------------------------------------------------

    async def pending(self, *, limit: int = 100, exclude: Iterable[int] = ()) -> list[Event]:
        """Pending events in sending order: highest priority first, then by seq.

        Events acked by the broker whose delivered mark is not on disk yet are
        left out too, so a drain never re-sends what the broker already has.
        """
        skip = set(exclude) | self._unflushed
        rows = await self._read(self._pending_sync, limit + len(skip))
        out: list[Event] = []
        for seq, body in rows:
            if seq in skip:
                continue
            out.append(Event.from_json(body))
            if len(out) == limit:
                break
        return out

    def _pending_sync(self, limit: int) -> list[tuple[int, bytes]]:
        if self._rdb is None:
            return []
        return self._rdb.execute(
            "SELECT seq, body FROM events WHERE delivered IS NULL ORDER BY rank, seq LIMIT ?", (limit,)
        ).fetchall()

    async def range(self, from_seq: int, to_seq: int, *, limit: int = 10_000) -> list[Event]:
        """Stored events (pending or delivered) with ``from_seq <= seq <= to_seq``, by seq."""
        rows = await self._read(self._range_sync, from_seq, to_seq, limit)
        return [Event.from_json(body) for (body,) in rows]

    def _range_sync(self, a: int, b: int, limit: int) -> list[tuple[bytes]]:
        if self._rdb is None:
            return []
        return self._rdb.execute(
            "SELECT body FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?", (a, b, limit)
        ).fetchall()

    async def get(self, event_id: str) -> Event | None:
        """One stored event by id."""
        row = await self._read(self._get_sync, event_id)
        return Event.from_json(row[0]) if row else None

    def _get_sync(self, event_id: str) -> tuple[bytes] | None:
        if self._rdb is None:
            return None
        return self._rdb.execute("SELECT body FROM events WHERE id=?", (event_id,)).fetchone()

    async def recent(self, types: Iterable[str], *, since_s: float) -> list[tuple[Event, bool]]:
        """Stored events of these types from the last ``since_s`` seconds, by seq, each with whether it was delivered."""
        rows = await self._read(self._recent_sync, list(types), time.time() - since_s)
        return [(Event.from_json(body), delivered is not None) for body, delivered in rows]

    def _recent_sync(self, types: list[str], since: float) -> list[tuple[bytes, float | None]]:
        if self._rdb is None:
            return []
        marks = ",".join("?" * len(types))
        return self._rdb.execute(
            f"SELECT body, delivered FROM events WHERE created >= ? AND type IN ({marks}) ORDER BY seq",
            (since, *types),
        ).fetchall()

    async def stats(self) -> OutboxStats:
        """Counts for the heartbeat."""
        return await self._read(self._stats_sync)

    def _stats_sync(self) -> OutboxStats:
        db = self._rdb
        if db is None:  # not open (a full disk at start): what memory knows
            return OutboxStats(pending=len(self._held), pending_alarms=len(self._held), stored=0, last_seq=0,
                               oldest_pending_ts=None, evicted=self.evicted, held=len(self._held),
                               refused_full=self.refused_full)
        pending, alarms = db.execute(
            "SELECT count(*), coalesce(sum(alarm), 0) FROM events WHERE delivered IS NULL"
        ).fetchone()
        last_seq = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        oldest = db.execute(
            "SELECT body FROM events WHERE delivered IS NULL ORDER BY seq LIMIT 1"
        ).fetchone()
        held = len(self._held)
        return OutboxStats(
            pending=pending + held,
            pending_alarms=alarms + held,
            stored=self._count,
            last_seq=last_seq,
            oldest_pending_ts=Event.from_json(oldest[0]).ts if oldest else None,
            evicted=self.evicted,
            bytes=self._bytes,
            held=held,
            refused_full=self.refused_full,
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
                if not await self._flush_delivered():
                    # kept, and kept out of pending(): no re-send while the disk refuses the marks
                    first, cap = MARK_RETRY_S
                    await asyncio.sleep(min(cap, first * 2 ** min(self._mark_failures, 10)))
            self._flush_now.clear()
        finally:
            self._delivered_task = None

    async def _flush_delivered(self) -> bool:
        """Write the marks recorded so far; False (and the marks kept for the next try) if the disk refused."""
        batch, self._delivered = self._delivered, []
        try:
            await self._run(self._delivered_sync, batch)
        except Exception as exc:
            self._delivered = batch + self._delivered
            self._mark_failures += 1
            self._log_failure("outbox_mark_delivered_failed", exc, events=len(self._delivered),
                              failures=self._mark_failures)
            return False
        self._mark_failures = 0
        self._unflushed.difference_update(batch)
        return True

    def _delivered_sync(self, seqs: list[int]) -> None:
        db = self._db
        if db is None:
            raise StoreError("the store is not open")
        now = time.time()
        # A lost delivered mark only means a re-send with the same id: no fsync needed for it.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            with _transaction(db):
                db.executemany("UPDATE events SET delivered=? WHERE seq=? AND delivered IS NULL",
                               [(now, s) for s in seqs])
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
        if self._db is None:
            return 0
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
        if self._db is None:
            raise StoreError("the store is not open")
        try:
            self._db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                             (key, value))
        except sqlite3.Error as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc
        self.writes_since_checkpoint += 1

    async def load_state(self, key: str) -> bytes | None:
        """A blob saved with :meth:`save_state`, or None."""
        row = await self._read(self._load_state_sync, key)
        return bytes(row[0]) if row else None

    def _load_state_sync(self, key: str) -> tuple[bytes] | None:
        if self._rdb is None:
            return None
        return self._rdb.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()

    async def prune(self) -> int:
        """Drop delivered events older than the replay window; returns how many."""
        return await self._run(self._prune_sync)

    def _prune_sync(self) -> int:
        if self._db is None:
            return 0
        rows = self._db.execute(
            "DELETE FROM events WHERE delivered IS NOT NULL AND delivered < ? RETURNING length(body)",
            (time.time() - self.keep_delivered_s,),
        ).fetchall()
        self._count -= len(rows)
        self._bytes = self._used_sync(self._db)
        return len(rows)


def _free(path: Path) -> int | None:
    try:
        return free_bytes(path)
    except OSError:
        return None
