"""The central's store: one async interface over SQLite or PostgreSQL (see :mod:`central.store`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from central.store import gaps as gapsql
from central.store import reads
from central.store.apply import close_alarms
from central.store.db import Db, Row, TransientStoreError, Tx
from central.store.ingest import Outcome, ingest_one
from central.store.migrations import migrate
from central.view import AlarmView, DeviceProblem
from central.wire import Received

log = structlog.get_logger("central.store")

T = TypeVar("T")

#: Tries of a transaction that failed transiently (busy, deadlock, connection lost), and the first pause.
TRIES = 4
PAUSE_S = 0.05


class Store:
    """Everything the engine keeps, in one database (``db``), for instance ``instance``."""

    def __init__(self, db: Db, *, instance: str) -> None:
        self.db = db
        self.instance = instance

    @property
    def where(self) -> str:
        """The database, for log lines (no password)."""
        return self.db.where

    async def migrate(self) -> list[int]:
        """Bring the schema up to date (idempotent; safe when instances start together)."""
        return await self._retry(lambda: migrate(self.db))

    async def close(self) -> None:
        """Close the database."""
        await self.db.close()

    async def _retry(self, once: Callable[[], Awaitable[T]]) -> T:
        pause = PAUSE_S
        for attempt in range(1, TRIES + 1):
            try:
                return await once()
            except TransientStoreError as exc:
                if attempt == TRIES:
                    raise
                log.warning("store_retry", attempt=attempt, error=str(exc))
                await asyncio.sleep(pause)
                pause *= 4
        raise AssertionError("unreachable")

    async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        async def once() -> T:
            async with self.db.transaction(write=write) as tx:
                return await fn(tx)
        return await self._retry(once)

    async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        return await self._write(fn, write=False)

    # --- events -------------------------------------------------------------------------------

    async def ingest(self, batch: list[Received], *, now: float, auto_ack: bool) -> list[Outcome]:
        """Store and apply a batch of checked events in one transaction; an outcome for each, in order.
        Hubs are taken in name order (their rows are locked in that order: no deadlock between instances)."""
        order = sorted(range(len(batch)), key=lambda i: batch[i].event.hub)

        async def run(tx: Tx) -> list[Outcome]:
            out: dict[int, Outcome] = {}
            for i in order:
                out[i] = await ingest_one(tx, self.db, batch[i], now=now, instance=self.instance, auto_ack=auto_ack)
            return [out[i] for i in range(len(batch))]

        return await self._write(run)

    # --- hubs ---------------------------------------------------------------------------------

    async def record_status(self, hub: str, *, state: str | None, reason: str | None, doc: str, at: float,
                            level: str, level_s: float) -> None:
        """The hub's retained status (birth, last will, clean stop) as it came."""
        async def run(tx: Tx) -> None:
            await tx.execute("INSERT INTO hubs (hub, first_seen) VALUES (?, ?) ON CONFLICT (hub) DO NOTHING", (hub, at))
            await tx.execute("UPDATE hubs SET status = ?, status_reason = ?, status_doc = ?, status_at = ?, level = ?, "
                             "level_s = ? WHERE hub = ?", (state, reason, doc[:20000], at, level, level_s, hub))
        await self._write(run)

    async def record_heartbeat(self, hub: str, *, doc: str, at: float) -> None:
        """The hub's latest heartbeat."""
        async def run(tx: Tx) -> None:
            await tx.execute("INSERT INTO hubs (hub, first_seen) VALUES (?, ?) ON CONFLICT (hub) DO NOTHING", (hub, at))
            await tx.execute("UPDATE hubs SET last_heartbeat = ?, heartbeat_doc = ? WHERE hub = ?",
                             (at, doc[:50000], hub))
        await self._write(run)

    async def hubs(self, hub: str | None = None) -> list[dict[str, Any]]:
        """Every hub's row (:func:`central.store.reads.hub_rows`), or one hub's."""
        return await self._read(lambda tx: reads.hub_rows(tx, hub))

    # --- what the operator sees -----------------------------------------------------------------

    async def picture(self, route: str | None = None) -> tuple[list[AlarmView], list[DeviceProblem],
                                                               list[dict[str, Any]]]:
        """Open alarms, device problems and hub rows, read in one transaction."""
        async def run(tx: Tx) -> tuple[list[AlarmView], list[DeviceProblem], list[dict[str, Any]]]:
            return await reads.open_alarms(tx, route), await reads.problems(tx, route), await reads.hub_rows(tx)
        return await self._read(run)

    async def alarm(self, episode: str) -> AlarmView | None:
        """One episode by its first alarm's id, whatever its state."""
        return await self._read(lambda tx: reads.alarm(tx, episode))

    async def problem(self, hub: str, device: str, name: str) -> DeviceProblem | None:
        """One active device problem."""
        return await self._read(lambda tx: reads.problem(tx, hub, device, name))

    # --- gaps ---------------------------------------------------------------------------------

    async def due_gaps(self, *, now: float, reorder_s: float, replay_timeout_s: float) -> list[tuple[str, int, int]]:
        """Gaps to ask for now (:func:`central.store.gaps.due`)."""
        return await self._read(lambda tx: gapsql.due(tx, now=now, reorder_s=reorder_s,
                                                      replay_timeout_s=replay_timeout_s))

    async def claim_gap(self, hub: str, lo: int, *, now: float, reorder_s: float, replay_timeout_s: float) -> bool:
        """Claim a gap for this instance (atomic); False when another instance has it."""
        return await self._write(lambda tx: gapsql.claim(tx, hub, lo, instance=self.instance, now=now,
                                                         reorder_s=reorder_s, replay_timeout_s=replay_timeout_s))

    async def release_gap(self, hub: str, lo: int, *, now: float, note: str) -> None:
        """Give a claimed gap back, to be asked for again later."""
        await self._write(lambda tx: gapsql.release(tx, hub, lo, now=now, note=note))

    async def missing(self, hub: str, lo: int, hi: int) -> gapsql.Ranges:
        """The seqs of ``lo..hi`` neither received nor lost."""
        return await self._read(lambda tx: gapsql.missing(tx, hub, lo, hi))

    async def record_lost(self, hub: str, ranges: gapsql.Ranges, *, now: float, reason: str) -> gapsql.Ranges:
        """Record seq ranges the hub no longer has; the ranges new to the store."""
        return await self._write(lambda tx: gapsql.record_lost(tx, hub, ranges, instance=self.instance, now=now,
                                                               reason=reason))

    async def settle_gap(self, hub: str, lo: int, now: float) -> list[tuple[int, int, str]]:
        """Count a gap afresh and close it when nothing is missing (after a replay's reply)."""
        return await self._write(lambda tx: gapsql.settle(tx, self.db.for_update, hub, lo, now))

    async def tail(self, hub: str, seq: int, now: float) -> tuple[int, int] | None:
        """The hub's last seq from a heartbeat: a gap at the tail when the central has less (it opened)."""
        return await self._write(lambda tx: gapsql.tail(tx, self.db.for_update, hub, seq, now))

    async def gaps(self, hub: str) -> list[tuple[int, int, str]]:
        """Every gap of ``hub`` ever found (lo, hi, state), for tests and tools."""
        rows = await self._read(lambda tx: tx.fetchall("SELECT lo, hi, state FROM gaps WHERE hub = ? ORDER BY lo",
                                                       (hub,)))
        return [(int(a), int(b), str(s)) for a, b, s in rows]

    async def lost(self, hub: str) -> gapsql.Ranges:
        """Every seq range of ``hub`` recorded lost."""
        rows = await self._read(lambda tx: tx.fetchall("SELECT lo, hi FROM lost WHERE hub = ? ORDER BY lo", (hub,)))
        return [(int(a), int(b)) for a, b in rows]

    # --- acks -----------------------------------------------------------------------------------

    async def event_hub(self, event_id: str) -> str | None:
        """The hub an event came from, or None when the central does not have it."""
        row = await self._read(lambda tx: tx.fetchone("SELECT hub FROM events WHERE id = ?", (event_id,)))
        return None if row is None else str(row[0])

    async def ack_sent(self, event_id: str, hub: str, who: str, *, auto: bool, at: float) -> int:
        """Record a cmd/ack as sent; its row id."""
        async def run(tx: Tx) -> int:
            row = await tx.fetchone("INSERT INTO acks (event_id, hub, who, auto, instance, sent) VALUES (?, ?, ?, ?, ?, ?) "
                                    "RETURNING id", (event_id, hub, who, int(auto), self.instance, at))
            assert row is not None
            return int(row[0])
        return await self._write(run)

    async def ack_done(self, ack_id: int, hub: str, *, reply: dict[str, Any] | None, error: str | None, at: float,
                       who: str, event_id: str) -> list[str]:
        """Record the reply to a cmd/ack (or why none came); an ok reply closes the alarms it names
        (as acknowledged; cancelled, or ended for a missed check-in that had ended, when the hub says so).
        Returns the episodes closed now."""
        async def run(tx: Tx) -> list[str]:
            ok = bool(reply and reply.get("ok"))
            await tx.execute("UPDATE acks SET replied = ?, ok = ?, result = ?, error = ?, reply = ? WHERE id = ?",
                             (at if reply is not None else None, int(ok), (reply or {}).get("result"),
                              error or (reply or {}).get("error"), None if reply is None else json.dumps(reply)[:5000],
                              ack_id))
            if not ok or reply is None:
                return []
            # the hub's row first, as the ingest takes it: one writer at a time per hub's alarms
            await tx.fetchone("SELECT hub FROM hubs WHERE hub = ?" + self.db.for_update, (hub,))
            ids = [str(reply.get("alarm_id") or event_id), event_id]
            closes = reply.get("closes")
            if isinstance(closes, list):
                ids += [str(c) for c in closes if isinstance(c, str)]
            state = {"cancelled": "cancelled", "ended": "ended"}.get(str(reply.get("result")), "acknowledged")
            return await close_alarms(tx, hub, ids, state=state, who=who, at=at, source=f"ack:{ack_id}")
        return await self._write(run)

    async def acks(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """Every ack sent (of one event), oldest first: who, auto, instance, ok, result."""
        where, params = ("", ()) if event_id is None else (" WHERE event_id = ?", (event_id,))
        rows = await self._read(lambda tx: tx.fetchall(
            f"SELECT id, event_id, hub, who, auto, instance, sent, replied, ok, result, error FROM acks{where} "
            "ORDER BY id", params))
        keys = ("id", "event_id", "hub", "who", "auto", "instance", "sent", "replied", "ok", "result", "error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def claim_auto_acks(self, *, now: float, ids: list[str], stale_s: float) -> list[tuple[str, str]]:
        """Claim alarms to auto-ack: ``ids`` (just opened here) and any left pending or sending by an instance
        that stopped (older than ``stale_s``). Each claim is atomic: one instance acks each. (id, hub) pairs."""
        async def run(tx: Tx) -> list[tuple[str, str]]:
            stale = await tx.fetchall(
                "SELECT event_id FROM alarms WHERE state = 'open' AND ((auto_ack = 'pending' AND received <= ?) "
                "OR (auto_ack = 'sending' AND auto_at <= ?)) LIMIT 100", (now - stale_s, now - stale_s))
            out = []
            for event_id in dict.fromkeys([*ids, *(r[0] for r in stale)]):
                row = await tx.fetchone(
                    "UPDATE alarms SET auto_ack = 'sending', auto_by = ?, auto_at = ? WHERE event_id = ? AND state = 'open' "
                    "AND (auto_ack = 'pending' OR (auto_ack = 'sending' AND auto_at <= ?)) RETURNING hub",
                    (self.instance, now, event_id, now - stale_s))
                if row is not None:
                    out.append((event_id, str(row[0])))
            return out
        return await self._write(run)

    async def auto_ack_done(self, event_id: str, *, ok: bool, retry: bool = False) -> None:
        """An auto-ack's end: done; failed (the hub refused it: left for the operator); or, with ``retry``,
        pending again (no reply came), for :meth:`claim_auto_acks` to take up once stale."""
        state = "done" if ok else "pending" if retry else "failed"
        await self._write(lambda tx: tx.execute("UPDATE alarms SET auto_ack = ? WHERE event_id = ?",
                                                (state, event_id)))

    # --- the journal ------------------------------------------------------------------------------

    async def journal_head(self) -> int:
        """The newest journal number (0: none yet)."""
        row = await self._read(lambda tx: tx.fetchone("SELECT COALESCE(MAX(n), 0) FROM journal"))
        return int(row[0]) if row else 0

    async def journal_since(self, n: int, limit: int = 500) -> list[Row]:
        """Journal rows after ``n``, in order: (n, instance, kind, hub, ref, detail)."""
        return await self._read(lambda tx: tx.fetchall(
            "SELECT n, instance, kind, hub, ref, detail FROM journal WHERE n > ? ORDER BY n LIMIT ?", (n, limit)))

    async def prune_journal(self, before: float) -> int:
        """Forget journal rows older than ``before`` (every feed has read them long ago)."""
        return await self._write(lambda tx: tx.execute("DELETE FROM journal WHERE at < ?", (before,)))
