"""Space keeping: noticing a filling disk before a commit fails, making room, and space coming back.

While the state directory is short of space (:attr:`space_short`) telemetry
is refused and alarms may use the reserve (:class:`~hub.diskspace.Ballast`).
Entering that state once per episode, delivered events are dropped and,
while the filesystem is still short, the oldest lowest-priority telemetry;
leaving it needs the reserve back in place and as much again free.
"""

from __future__ import annotations

import sqlite3

import structlog

from hub.diskspace import free_bytes
from hub.outbox.core import OutboxCore, free_or_none

log = structlog.get_logger("hub.outbox")


class SpaceMixin(OutboxCore):
    """``check_space`` (from housekeeping) and the room it makes."""

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
            log.error("store_space_short", free_bytes=free_or_none(self.path.parent), reserve=self.ballast.held)
        if was and not short:
            log.warning("store_space_recovered", free_bytes=free_or_none(self.path.parent))
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
            free = free_or_none(self.path.parent)
            if free is not None and free < want:
                evicted = self._delete_sync(db, "delivered IS NULL AND alarm = 0", "rank DESC, seq", want)
            db.execute("PRAGMA incremental_vacuum")  # pages of the deleted events back to the filesystem
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:  # the disk may refuse even this: what was deleted stays deleted
            self._log_failure("outbox_make_room_failed", exc)
        if dropped or evicted:
            log.warning("outbox_made_room", dropped_delivered=dropped, evicted_telemetry=evicted,
                        evicted_total=self.evicted, free_bytes=free_or_none(self.path.parent))
