"""The SQL of one write transaction, run on the store's thread.

Appending a batch of drafts (seq allocated in the same transaction), the
eviction that keeps the store inside ``max_events`` and ``max_bytes``
(delivered events first, then the oldest lowest-priority telemetry; alarms
never), and deleting in small chunks when the disk is full. The full-disk
rules for one commit live here too: telemetry is refused while space is short,
and an alarm that meets a full disk gets the reserve and one more try.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import structlog

from hub.diskspace import is_disk_full
from hub.events import Draft, Event
from hub.outbox.core import FAILURE_LOG_S, OutboxCore, free_or_none
from hub.outbox.readback import checked_body
from hub.outbox.schema import is_alarm, save_evicted, transaction
from hub.outbox.values import StoreError, StoreFull

log = structlog.get_logger("hub.outbox")

_INSERT = "INSERT INTO events (seq, id, type, rank, alarm, body, created) VALUES (?,?,?,?,?,?,?)"


class StoreMixin(OutboxCore):
    """Synchronous writes: callers hold the store's lock (its thread, or the loop in append_now)."""

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
                    log.error("store_space_short", error=str(exc), free_bytes=free_or_none(self.path.parent))
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
        with transaction(db):
            last = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
            events, rows = self._rows(drafts, last, now)
            db.execute("SAVEPOINT append")
            try:  # one statement for the batch; the UNIQUE id refuses a duplicate
                db.executemany(_INSERT, rows)
            except sqlite3.IntegrityError:  # a duplicate id: undo the batch, then row by row, refusing it alone
                db.execute("ROLLBACK TO append")
                events, rows = self._insert_one_by_one(db, drafts, last, now)
            db.execute("RELEASE append")
            stored = len(rows)
            seq = last + stored
            db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
            count = self._count + stored
            size = self._used_sync(db)
            evicted = 0
            if count > self.max_events or size > self.max_bytes:
                count, size, evicted = self._evict_sync(db, count, size)
        self._count, self._bytes = count, size
        self._keep_bodies(rows)
        self.appended += stored
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

    def _rows(
        self, drafts: list[Draft], last: int, now: float
    ) -> tuple[list[Event | Exception], list[tuple[Any, ...]]]:
        """The events of ``drafts`` numbered from ``last + 1``, and their rows; a draft that is refused
        (its event could not be read back) takes no seq."""
        events: list[Event | Exception] = []
        rows: list[tuple[Any, ...]] = []
        hub, resident = self.hub, self.resident
        seq = last
        for draft in drafts:
            event = Event.from_draft(draft, hub=hub, resident=resident, seq=seq + 1)
            try:
                # Store only what pending() can read back: one bad draft (type not in the
                # contract, unencodable data) must neither poison the store nor fail the
                # other callers committed in the same group.
                body = checked_body(event)
            except Exception as exc:
                events.append(exc)
                continue
            seq += 1
            rows.append((seq, event.id, event.type, event.priority.rank, int(is_alarm(event.type, event.priority)),
                         body, now))
            events.append(event)
        return events, rows

    def _insert_one_by_one(
        self, db: sqlite3.Connection, drafts: list[Draft], last: int, now: float
    ) -> tuple[list[Event | Exception], list[tuple[Any, ...]]]:
        """:meth:`_rows` inserted one at a time: a duplicate id is refused alone, and the seqs after it
        close up. Returns the events (or refusals) and the rows stored."""
        events: list[Event | Exception] = []
        rows: list[tuple[Any, ...]] = []
        for draft in drafts:
            (event,), row = self._rows([draft], last + len(rows), now)
            if isinstance(event, Exception):
                events.append(event)
                continue
            try:  # only this statement is undone
                db.execute(_INSERT, row[0])
            except sqlite3.IntegrityError:
                events.append(ValueError(f"event id {draft.id} is already stored"))
                continue
            rows += row
            events.append(event)
        return events, rows

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
            save_evicted(db, self.evicted + evicted)
        if count > self.max_events or size > self.max_bytes:
            log.warning("outbox_over_capacity", stored=count, bytes=size, max_events=self.max_events,
                        max_bytes=self.max_bytes, reason="alarms are never evicted")
        return count, size, evicted

    def _delete_sync(self, db: sqlite3.Connection, where: str, order: str, max_bytes: int | None) -> int:
        """Delete events matching ``where`` in ``order``, up to ``max_bytes`` of bodies (None: all),
        64 at a time with a checkpoint after each; returns how many."""
        pending = "delivered IS NULL" in where  # pending telemetry dropped is lost: counted as evicted
        done = total = 0
        while max_bytes is None or total < max_bytes:
            with transaction(db):
                rows = db.execute(
                    f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where} ORDER BY {order} LIMIT 64) "
                    "RETURNING length(body)"
                ).fetchall()
                if pending and rows:
                    save_evicted(db, self.evicted + len(rows))
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
