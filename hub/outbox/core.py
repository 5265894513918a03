"""The outbox's state, its two connections and threads, opening and closing.

:class:`OutboxCore` is the base of every part of :class:`~hub.outbox.Outbox`:
it holds all of the store's state (each attribute is owned by one sibling
module, named beside it), opens the database (the writer, on the store's
thread, and a read-only connection on a thread of its own) and runs work on
them. The parts that build on it are mixins in the sibling modules; the
methods they call on one another are declared at the end of the class.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from hub.diskspace import DEFAULT_RESERVE_BYTES, Ballast, free_bytes
from hub.events import Draft, Event
from hub.outbox.schema import SCHEMA
from hub.outbox.values import StoreError
from hub.statedir import private_sqlite

if TYPE_CHECKING:
    from hub.outbox.appends import _Group

log = structlog.get_logger("hub.outbox")
T = TypeVar("T")

#: A store failure of the same kind is logged at most this often (a full disk fails every commit).
FAILURE_LOG_S = 5.0
#: SQLite's page cache per connection, KiB (its default is 2,000). Appends touch the rightmost pages of
#: a few B-trees (32 pages of 4 KiB hold them) and the forwarder's pages read on from a cursor: a small
#: cache serves both, and the hub's memory after a burst stays near what it was before it (a cache, once
#: full, stays full).
CACHE_KIB = 128
#: The WAL file is cut back to this size when a checkpoint lets it start over. Day to day it stays far
#: below (a checkpoint every 200 writes); a long burst, which no checkpoint overtakes while it lasts,
#: would otherwise leave the file as large as the burst made it (about 1.6 kB an event: 160 MB after
#: 100,000) on the state partition for good.
WAL_KEEP_BYTES = 16 << 20


#: Bodies of fresh events kept for the forwarder (:meth:`OutboxCore.take_body`): it takes each within a loop
#: turn of its commit, so a few hundred at most wait (one read's burst); about 360 bytes each.
BODIES_MAX = 1024


def free_or_none(path: Path) -> int | None:
    """Free bytes for unprivileged users on ``path``'s filesystem, or None if it cannot be read."""
    try:
        return free_bytes(path)
    except OSError:
        return None


class OutboxCore:
    """The store's state and connections; see :class:`hub.outbox.Outbox` for what it does."""

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
        #: events stored since the store was opened (housekeeping tells a burst by it)
        self.appended = 0
        self.evicted = 0
        #: telemetry refused while space was short (since start)
        self.refused_full = 0
        #: True while the state directory is short of space: telemetry is refused, alarms use the reserve
        self.space_short = False
        #: the last store failure (SQLite's message), None once a commit succeeds again
        self.last_error: str | None = None
        #: called on the loop with each held alarm once it is stored (with its seq)
        self.on_stored: list[Callable[[Event], None]] = []
        #: the bytes stored for events committed lately, by seq, until the forwarder takes them (take_body)
        self._bodies: dict[int, bytes] = {}
        # connections and threads (here)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rdb: sqlite3.Connection | None = None
        self._count = 0
        self._bytes = 0
        self._page_size = 4096
        self._logged: dict[str, float] = {}
        self._busy_since: float | None = None
        # the append loop and its lanes (appends.py)
        self._appends: list[_Group] = []
        self._critical: list[tuple[_Group, int]] = []
        self._telemetry: list[tuple[_Group, int]] = []
        self._append_task: asyncio.Task[None] | None = None
        self._committing_alarms = False  # the append loop's transaction in flight holds alarms
        # the eviction log line (store.py)
        self._evicted_unlogged = 0
        # held alarms (held.py)
        self._held: dict[str, tuple[Draft, Event]] = {}
        self._held_retry: asyncio.TimerHandle | None = None
        self._held_due_now = False
        # space keeping (space.py)
        self._room_made = False  # this episode of short space has had its make_room
        # delivered marks (delivery.py)
        self._delivered: list[int] = []
        self._unflushed: set[int] = set()  # acked by the broker, delivered mark not yet committed
        self._delivered_task: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()
        self._mark_failures = 0

    # --- lifecycle -----------------------------------------------------------------

    def take_body(self, seq: int) -> bytes | None:
        """The bytes stored for event ``seq`` if it was committed lately and not taken yet (once; the
        forwarder publishes them as they are rather than encoding the event a second time)."""
        return self._bodies.pop(seq, None)

    def _keep_bodies(self, rows: list[tuple[Any, ...]]) -> None:
        """After a commit (store thread, or the loop in append_now): the rows' bodies for :meth:`take_body`;
        at most :data:`BODIES_MAX` (what nobody took, an event published from elsewhere, is let go)."""
        bodies = self._bodies
        if len(bodies) + len(rows) > BODIES_MAX:
            bodies.clear()
        for row in rows:
            bodies[row[0]] = row[5]

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
        new = not self.path.exists()
        private_sqlite(self.path)  # 0700 directory, 0600 files, whatever the umask
        with contextlib.suppress(OSError):
            if free_bytes(self.path.parent) < self.ballast.size:
                self.space_short = True
                self.ballast.release()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if new:  # freed pages go back to the filesystem on demand (make_room), not kept forever
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            # checkpoints run from housekeeping on their own connection, never inside an alarm's commit
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            db.executescript(SCHEMA)
            count = db.execute("SELECT count(*) FROM events").fetchone()[0]
            self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
            size = self._used_sync(db)
            row = db.execute("SELECT value FROM meta WHERE key='evicted'").fetchone()
            rdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            rdb.execute("PRAGMA busy_timeout=5000")
            rdb.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
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

    def set_limits(self, *, max_events: int, max_bytes: int, keep_delivered_s: float) -> None:
        """New bounds (a config reload): taken by the next commit and the next upkeep round."""
        self.max_events, self.max_bytes, self.keep_delivered_s = max_events, max_bytes, keep_delivered_s
        self._bound_to_filesystem()

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

    # --- running work on the connections ------------------------------------------------

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

    def _used_sync(self, db: sqlite3.Connection) -> int:
        """Bytes of disk the database's pages in use take (what max_bytes bounds): rows and their overhead."""
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    if TYPE_CHECKING:  # provided by the sibling mixins, which call one another through self
        def _kick(self) -> None: ...  # appends.py
        def _store_sync(self, drafts: list[Draft], critical: bool) -> list[Event | Exception]: ...  # store.py
        def _delete_sync(self, db: sqlite3.Connection, where: str, order: str,
                         max_bytes: int | None) -> int: ...  # store.py
        def _hold(self, drafts: list[Draft], exc: StoreError) -> list[Event | Exception]: ...  # held.py
        def _held_due(self) -> bool: ...  # held.py
        async def _store_held(self) -> None: ...  # held.py
        def retry_held(self) -> None: ...  # held.py
        async def flush_delivered(self) -> None: ...  # delivery.py
