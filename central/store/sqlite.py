"""SQLite, the embedded default: stdlib ``sqlite3`` on one worker thread, in WAL mode.

Blocking calls run on a thread of their own (one per store, so the connection is only ever
used from it); the loop awaits them. WAL lets several central processes on one machine share
one file: readers never wait, writers take turns (``BEGIN IMMEDIATE``, so a transaction that
will write takes the write lock first and two never deadlock; ``busy_timeout`` makes the
second wait for the first). ``synchronous=FULL``: a committed event survives a power cut, and
the central acknowledges an MQTT message only after the commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import structlog

from central.store.db import JOURNAL_INSERT, Dialect, JournalEntry, Row, StoreError, TransientStoreError

log = structlog.get_logger("central.store")

T = TypeVar("T")

#: Milliseconds a writer waits for another process's write lock before giving up (then retried).
BUSY_TIMEOUT_MS = 10_000


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Turning WAL on takes the file's exclusive lock, and SQLite answers "locked" at once, without its busy
    # handler, while another instance starting at the same moment holds it: wait for that one, as a write would.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.02)
    db.execute("PRAGMA synchronous = FULL")
    return db


def _error(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return TransientStoreError(f"sqlite: {text}")
    return StoreError(f"sqlite: {type(exc).__name__}: {text}")


class _SqliteTx:
    def __init__(self, owner: SqliteDb) -> None:
        self._owner = owner
        self.entries: list[JournalEntry] = []

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._owner.call(lambda db: db.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._owner.call(lambda db: db.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._owner.call(lambda db: db.execute(sql, params).fetchone())

    def journal(self, entry: JournalEntry) -> None:
        self.entries.append(entry)


class SqliteDb:
    """One SQLite file (created if missing), used from one worker thread."""

    dialect: Dialect = "sqlite"
    for_update = ""

    def __init__(self, path: str, *, instance: str, clock: Callable[[], float]) -> None:
        self.path = path
        self.where = f"sqlite:{path}"
        self.instance = instance
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-sqlite")
        self._lock = asyncio.Lock()
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (and create) the file; WAL on."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._pool, _connect, self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: cannot open {self.path}: {exc}") from exc

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread."""
        db = self._db
        if db is None:
            raise StoreError("sqlite: not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, db)
        except sqlite3.Error as exc:
            raise _error(exc) from exc

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[_SqliteTx]:
        async with self._lock:
            tx = _SqliteTx(self)
            try:
                # inside the try: a BEGIN cancelled while queued still runs on the thread, and the ROLLBACK
                # queued behind it undoes it; left open, every later BEGIN would fail ("cannot start a
                # transaction within a transaction") and the store would take nothing more
                await self.call(lambda db: db.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
                yield tx
                if tx.entries:
                    at, instance = self.clock(), self.instance
                    rows = [e.params(at, instance) for e in tx.entries]
                    await self.call(lambda db: db.executemany(JOURNAL_INSERT, rows))
                await self.call(lambda db: db.execute("COMMIT"))
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        """Undo the open transaction, queued on the worker thread at once (before the lock is let go).

        Queued now, not from a task of its own: a cancelled transaction (a timeout, a shutdown) lets its
        lock go at once, and the next one's BEGIN must not reach the thread ahead of this ROLLBACK
        ("cannot start a transaction within a transaction").
        """
        db = self._db
        if db is None:
            return

        def rollback() -> None:
            if db.in_transaction:
                db.execute("ROLLBACK")

        done = asyncio.wrap_future(self._pool.submit(rollback))
        try:
            await asyncio.shield(done)
        except sqlite3.Error as exc:
            log.warning("store_rollback_failed", error=str(exc))

    async def lock_migrations(self, tx: Any) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the write lock already."""

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, db.close)
        self._pool.shutdown(wait=False)
