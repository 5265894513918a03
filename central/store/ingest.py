"""Taking events in: de-duplication by id and per-hub seq tracking, in one transaction per batch.

For each event (:func:`ingest_one`), with its hub's row locked (PostgreSQL; SQLite writers
take turns anyway), so two instances never track one hub's seqs at the same moment:

* a new id is stored and applied (:func:`central.store.apply.apply_event`);
* an id held already is judged by :func:`central.ledger.again`, the rig's rule: a duplicate
  (counted), a held alarm's stored copy (seq 0 first, then its real seq: the row takes the
  seq, which counts for the gaps; not a second alarm), or a conflict (counted; the first body
  is kept);
* a seq above the highest seen opens a gap for the seqs between (state ``open``); a seq inside
  a gap fills it, and a gap whose every seq is filled or lost is closed. Seq 0 is never
  tracked, and nothing below the first seq a hub was seen with counts as missing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from central.ledger import again, differing
from central.store.apply import apply_event
from central.store.db import Db, JournalEntry, Tx
from central.wire import Received


class Outcome(msgspec.Struct, kw_only=True):
    """What one event was, and what it did (for the engine's log lines, acks and counters)."""

    id: str
    hub: str
    seq: int
    type: str
    kind: Literal["new", "duplicate", "held_stored", "conflict"]
    #: conflict: the fields that differ from the body held.
    differs: list[str] = []
    #: the seq was carried by another id already (that id).
    seq_taken_by: str | None = None
    #: an alarm that opened an episode, or the episode it joined; the episodes an ack or cancel closed.
    opened: str | None = None
    joined: str | None = None
    closed: list[str] = []
    reminder_of: str | None = None
    #: a gap this seq revealed (lo, hi), and the gaps it closed (lo, hi, state).
    gap: tuple[int, int] | None = None
    gaps_closed: list[tuple[int, int, str]] = []


async def ingest_one(tx: Tx, db: Db, r: Received, *, now: float, instance: str, auto_ack: bool) -> Outcome:
    """Store and apply one checked event (see the module docstring)."""
    e = r.event
    await tx.execute("INSERT INTO hubs (hub, first_seen) VALUES (?, ?) ON CONFLICT (hub) DO NOTHING", (e.hub, now))
    seq_first, seq_max = await tx.fetchone("SELECT seq_first, seq_max FROM hubs WHERE hub = ?" + db.for_update,
                                           (e.hub,)) or (None, None)
    inserted = await tx.execute(
        "INSERT INTO events (id, hub, seq, type, ts, cause, received, instance, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING", (e.id, e.hub, e.seq, e.type, e.ts, e.cause, now, instance, r.text))
    out = Outcome(id=e.id, hub=e.hub, seq=e.seq, type=e.type, kind="new")
    if not inserted:
        row = await tx.fetchone("SELECT body FROM events WHERE id = ?", (e.id,))
        held: dict[str, Any] = json.loads(row[0]) if row else {}
        kind = again(held, r.body)
        if kind == "conflict":
            out.kind, out.differs = "conflict", differing(held, r.body)
            await tx.execute("UPDATE hubs SET conflicts = conflicts + 1, last_event = ? WHERE hub = ?", (now, e.hub))
            return out
        if kind == "held_stored" and await tx.execute("UPDATE events SET seq = ?, body = ? WHERE id = ? AND seq = 0",
                                                      (e.seq, r.text, e.id)):
            out.kind = "held_stored"
            await tx.execute("UPDATE hubs SET held_stored = held_stored + 1, last_event = ? WHERE hub = ?",
                             (now, e.hub))
            await _track_seq(tx, out, seq_first, seq_max, now)
            return out
        out.kind = "duplicate"
        await tx.execute("UPDATE hubs SET duplicates = duplicates + 1, last_event = ? WHERE hub = ?", (now, e.hub))
        return out
    await tx.execute("UPDATE hubs SET events = events + 1, last_event = ? WHERE hub = ?", (now, e.hub))
    if e.seq > 0:
        await _track_seq(tx, out, seq_first, seq_max, now)
    did = await apply_event(tx, db, r, now=now, instance=instance, auto_ack=auto_ack)
    out.opened, out.joined = did.get("opened"), did.get("joined")
    out.closed, out.reminder_of = did.get("closed") or [], did.get("reminder_of")
    return out


async def _track_seq(tx: Tx, out: Outcome, seq_first: int | None, seq_max: int | None, now: float) -> None:
    hub, seq = out.hub, out.seq
    if seq_max is None:
        await tx.execute("UPDATE hubs SET seq_first = ?, seq_max = ? WHERE hub = ?", (seq, seq, hub))
        return
    if seq > seq_max:
        if seq > seq_max + 1:
            out.gap = (seq_max + 1, seq - 1)
            await tx.execute("INSERT INTO gaps (hub, lo, hi, state, opened) VALUES (?, ?, ?, 'open', ?) "
                             "ON CONFLICT (hub, lo) DO NOTHING", (hub, seq_max + 1, seq - 1, now))
            tx.journal(JournalEntry("hub", hub))
        await tx.execute("UPDATE hubs SET seq_max = ? WHERE hub = ?", (seq, hub))
        return
    other = await tx.fetchone("SELECT id FROM events WHERE hub = ? AND seq = ? AND id <> ? LIMIT 1", (hub, seq, out.id))
    if other is not None:
        out.seq_taken_by = other[0]
        return
    if seq_first is not None and seq < seq_first:
        await tx.execute("UPDATE hubs SET seq_first = ? WHERE hub = ?", (seq, hub))
        return
    if await tx.execute("UPDATE gaps SET filled = filled + 1 WHERE hub = ? AND lo <= ? AND hi >= ? "
                        "AND state IN ('open', 'requested')", (hub, seq, seq)):
        out.gaps_closed = await close_full_gaps(tx, hub, seq, seq, now)


async def close_full_gaps(tx: Tx, hub: str, lo: int, hi: int, now: float) -> list[tuple[int, int, str]]:
    """Close the gaps overlapping ``lo..hi`` whose every seq is filled or lost: ``filled``, or ``lost``
    when any was lost. Returns them (lo, hi, state)."""
    rows = await tx.fetchall(
        "UPDATE gaps SET state = CASE WHEN lost > 0 THEN 'lost' ELSE 'filled' END, closed = ? "
        "WHERE hub = ? AND lo <= ? AND hi >= ? AND state IN ('open', 'requested') AND filled + lost >= hi - lo + 1 "
        "RETURNING lo, hi, state", (now, hub, hi, lo))
    if rows:
        tx.journal(JournalEntry("hub", hub))
    return [(int(a), int(b), str(s)) for a, b, s in rows]
