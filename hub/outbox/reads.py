"""Reads: the forwarder's pages of pending events, replays, recent events and the heartbeat's counts.

Every read runs on the read-only connection and its own thread, so a read
never delays a commit. The forwarder pages the backlog with :meth:`ReadsMixin.page`:
raw rows in sending order after a ``(rank, seq)`` cursor, never decoded (it
publishes the stored bytes), so a backlog of any size costs one bounded page
of memory and one index seek per page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from hub.events import Event
from hub.outbox.core import OutboxCore
from hub.outbox.values import OutboxStats, Row

#: One rank's pending events after a seq, by seq: a seek on the pending index (rank = ? AND seq > ?).
_PAGE_SAME_RANK = (
    "SELECT rank, seq, type, body, NULL FROM events WHERE delivered IS NULL AND rank = ? AND seq > ? "
    "ORDER BY seq LIMIT ?"
)
#: Then the lower ranks' (the later ones in sending order).
_PAGE_LATER_RANKS = (
    "SELECT rank, seq, type, body, NULL FROM events WHERE delivered IS NULL AND rank > ? ORDER BY rank, seq LIMIT ?"
)


class ReadsMixin(OutboxCore):
    """``pending``, ``range``, ``get``, ``recent`` and ``stats``."""

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

    async def page(self, after: tuple[int, int] | None, limit: int) -> tuple[list[Row], int]:
        """Up to ``limit`` pending events after the ``(rank, seq)`` key ``after`` (None: from the first), in
        sending order, as raw :data:`~hub.outbox.values.Row` tuples; and the last seq committed, read in the
        same snapshot (every event with a higher seq was committed after this read could see it).

        Rows are not filtered: the caller leaves out what it has in flight and :attr:`acked_unflushed`.
        """
        return await self._read(self._page_sync, after, limit)

    def _page_sync(self, after: tuple[int, int] | None, limit: int) -> tuple[list[Row], int]:
        db = self._rdb
        if db is None:
            return [], 0
        rank, seq = after if after is not None else (-1, 0)
        db.execute("BEGIN")  # one snapshot for the last seq and the rows
        try:
            last = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
            rows: list[Row] = db.execute(_PAGE_SAME_RANK, (rank, seq, limit)).fetchall() if rank >= 0 else []
            if len(rows) < limit:
                rows += db.execute(_PAGE_LATER_RANKS, (rank, limit - len(rows))).fetchall()
        finally:
            db.execute("COMMIT")
        return rows, last

    @property
    def acked_unflushed(self) -> set[int]:
        """Seqs the broker has acked whose delivered mark is not on disk yet: still pending on disk, not to
        be sent again. Read it, never change it."""
        return self._unflushed

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
