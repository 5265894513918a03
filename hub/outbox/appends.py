"""Appending: group commit on the store's thread, with an alarm lane ahead of telemetry.

Appends made while a commit is running are committed together in the next
transaction, so a burst of telemetry costs one fsync. Alarm drafts
(:func:`~hub.outbox.schema.is_alarm`) waiting go in a transaction of their
own, ahead of any telemetry, and a telemetry transaction holds at most
:data:`MAX_BATCH` drafts. A critical draft is committed on the loop itself
when nothing is ahead of it (:meth:`AppendsMixin.append_now`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from hub.events import Draft, Event, Priority
from hub.outbox.core import OutboxCore
from hub.outbox.schema import is_alarm
from hub.outbox.values import StoreError

log = structlog.get_logger("hub.outbox")

#: How long an alarm waits on the loop for the store's thread to end its transaction before it queues instead.
ALARM_LOCK_WAIT_S = 0.05
#: At most this many drafts in one telemetry transaction: an alarm waits behind one such batch at most.
MAX_BATCH = 1000


@dataclass
class _Group:
    """One caller's drafts (one serial read, say), completed when every draft has its result."""

    drafts: list[Draft]
    fut: asyncio.Future[list[Event | Exception]]
    results: list[Event | Exception | None] = field(default_factory=list)
    left: int = 0


class AppendsMixin(OutboxCore):
    """``append``, ``append_many``, ``append_now`` and the loop that commits them."""

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

        Returns only after the transaction holding it is committed to disk. An
        alarm the disk cannot take (:func:`is_alarm`) is returned held (``seq``
        0; see the package docstring); any other draft then raises :class:`StoreError`.
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
