"""Delivered marks: the broker's PUBACKs, written in batches and retried while the disk refuses them.

A mark lost in a crash only means that event is sent again with the same id
(a duplicate the central drops), so marks are committed without an fsync of
their own. Until a mark is on disk its seq is kept out of
:meth:`~hub.outbox.reads.ReadsMixin.pending` (and listed in
:attr:`~hub.outbox.reads.ReadsMixin.acked_unflushed` for the forwarder's
pages), so a drain never re-sends it. The PUBACKs of a burst come in seq
order, so a batch of marks is written as a few ranges of seqs, one UPDATE
each, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hub.outbox.core import OutboxCore
from hub.outbox.schema import transaction
from hub.outbox.values import StoreError

#: Failed delivered marks are written again after this long, doubling up to the cap.
MARK_RETRY_S = (0.2, 5.0)


def seq_runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Seqs as ranges of consecutive ones, ``(first, last)`` each: [1, 2, 3, 7, 5, 6] -> [(1, 3), (5, 7)]."""
    runs: list[tuple[int, int]] = []
    start = prev = None
    for s in sorted(set(seqs)):
        if prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            runs.append((start, prev))  # type: ignore[arg-type]
        start = prev = s
    if start is not None:
        runs.append((start, prev))  # type: ignore[arg-type]
    return runs


class DeliveryMixin(OutboxCore):
    """``mark_delivered``, ``flush_delivered`` and the batch loop behind them."""

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

    def mark_delivered_many(self, seqs: list[int]) -> None:
        """:meth:`mark_delivered` for the PUBACKs of one loop turn."""
        if not seqs:
            return
        self._delivered.extend(seqs)
        self._unflushed.update(seqs)
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
            with transaction(db):
                db.executemany("UPDATE events SET delivered=? WHERE seq BETWEEN ? AND ? AND delivered IS NULL",
                               [(now, a, b) for a, b in seq_runs(seqs)])
            self.writes_since_checkpoint += 1
        finally:
            db.execute("PRAGMA synchronous=FULL")
