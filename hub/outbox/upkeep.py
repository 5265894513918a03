"""Housekeeping on the store: WAL checkpoints, pruning the replay window, small state blobs, memory.

Checkpoints run on a connection and thread of their own (PASSIVE: appends
keep committing meanwhile). Rule state is kept durably beside the events, in
the same database (table ``state``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

from hub.memory import trim_malloc
from hub.outbox.core import OutboxCore
from hub.outbox.values import StoreError


class UpkeepMixin(OutboxCore):
    """``checkpoint``, ``prune``, ``save_state`` and ``load_state``."""

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

    async def shrink_memory(self) -> bool:
        """Empty both connections' page caches (each on its own thread) and give malloc's free memory back
        to the system: after a burst, once the store is quiet. Returns whether malloc gave any back."""
        await self._run(self._shrink_sync, "writer")
        await self._read(self._shrink_sync, "reader")
        return await self._read(trim_malloc)

    def _shrink_sync(self, which: str) -> None:
        db = self._db if which == "writer" else self._rdb
        if db is not None:
            db.execute("PRAGMA shrink_memory")

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
