"""Gaps asked for and events lost: the store's side of gap filling (:mod:`central.gapfill`).

A gap is ``open`` from the moment a seq above it arrives. Once it has been open longer than
the reorder timeout (its events may only be late), one instance claims it (``requested``,
with ``claimed_by``): the claim is one conditional UPDATE, which both databases run
atomically, so two instances never ask for the same gap. A claim that brings nothing within
the replay timeout (the instance died, the hub went away) can be claimed again. What the hub
says it no longer has is recorded in ``lost`` as ranges, and counts on the gap.
"""

from __future__ import annotations

from central.store.db import JournalEntry, Tx
from central.store.ingest import close_full_gaps

#: Ranges as inclusive (lo, hi) pairs.
Ranges = list[tuple[int, int]]


def to_ranges(seqs: list[int]) -> Ranges:
    """Sorted, distinct seqs as inclusive ranges: ``[1, 2, 3, 7]`` → ``[(1, 3), (7, 7)]``."""
    out: Ranges = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def complement(lo: int, hi: int, have: Ranges) -> Ranges:
    """The parts of ``lo..hi`` not in the sorted ranges ``have``."""
    out: Ranges = []
    at = lo
    for a, b in sorted(have):
        if b < at:
            continue
        if a > hi:
            break
        if a > at:
            out.append((at, a - 1))
        at = max(at, b + 1)
    if at <= hi:
        out.append((at, hi))
    return out


async def due(tx: Tx, *, now: float, reorder_s: float, replay_timeout_s: float) -> list[tuple[str, int, int]]:
    """Gaps to ask for now: open past the reorder timeout, or requested with no end past the replay timeout."""
    rows = await tx.fetchall(
        "SELECT hub, lo, hi FROM gaps WHERE (state = 'open' AND opened <= ?) OR (state = 'requested' AND claimed_at <= ?) "
        "ORDER BY opened LIMIT 100", (now - reorder_s, now - replay_timeout_s))
    return [(str(h), int(lo), int(hi)) for h, lo, hi in rows]


async def claim(tx: Tx, hub: str, lo: int, *, instance: str, now: float, reorder_s: float,
                replay_timeout_s: float) -> bool:
    """Claim one gap for this instance; False when another has it (or it closed meanwhile)."""
    return bool(await tx.execute(
        "UPDATE gaps SET state = 'requested', claimed_by = ?, claimed_at = ?, requests = requests + 1 "
        "WHERE hub = ? AND lo = ? AND ((state = 'open' AND opened <= ?) OR (state = 'requested' AND claimed_at <= ?))",
        (instance, now, hub, lo, now - reorder_s, now - replay_timeout_s)))


async def release(tx: Tx, hub: str, lo: int, *, now: float, note: str) -> None:
    """Give a claimed gap back (no reply, refused): open again, asked for after another reorder timeout."""
    await tx.execute("UPDATE gaps SET state = 'open', opened = ?, claimed_by = NULL, note = ? "
                     "WHERE hub = ? AND lo = ? AND state = 'requested'", (now, note[:300], hub, lo))


async def missing(tx: Tx, hub: str, lo: int, hi: int) -> Ranges:
    """The seqs of ``lo..hi`` neither received nor recorded lost, as ranges."""
    seqs = [int(r[0]) for r in await tx.fetchall(
        "SELECT seq FROM events WHERE hub = ? AND seq >= ? AND seq <= ? ORDER BY seq", (hub, lo, hi))]
    have = to_ranges(seqs)
    have += [(int(a), int(b)) for a, b in await tx.fetchall(
        "SELECT lo, hi FROM lost WHERE hub = ? AND hi >= ? AND lo <= ?", (hub, lo, hi))]
    return complement(lo, hi, have)


async def record_lost(tx: Tx, hub: str, ranges: Ranges, *, instance: str, now: float, reason: str) -> Ranges:
    """Record ``ranges`` of ``hub`` as lost; the ranges recorded now (not already known), counted on their gaps."""
    new: Ranges = []
    for a, b in ranges:
        if await tx.execute("INSERT INTO lost (hub, lo, hi, recorded, instance, reason) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT (hub, lo) DO NOTHING", (hub, a, b, now, instance, reason[:300])):
            new.append((a, b))
    for a, b in new:
        for glo, ghi in await tx.fetchall("SELECT lo, hi FROM gaps WHERE hub = ? AND lo <= ? AND hi >= ? "
                                          "AND state IN ('open', 'requested')", (hub, b, a)):
            count = min(b, int(ghi)) - max(a, int(glo)) + 1
            await tx.execute("UPDATE gaps SET lost = lost + ? WHERE hub = ? AND lo = ?", (count, hub, glo))
        await close_full_gaps(tx, hub, a, b, now)
    if new:
        seqs = [[a, b] for a, b in new]
        tx.journal(JournalEntry("lost", hub, None, {"hub": hub, "seqs": seqs,
                                                    "count": sum(b - a + 1 for a, b in new), "reason": reason}))
        tx.journal(JournalEntry("hub", hub))
    return new


async def settle(tx: Tx, for_update: str, hub: str, lo: int, now: float) -> list[tuple[int, int, str]]:
    """Count a gap's filled and lost seqs afresh (with the hub's row locked, as the ingest does) and
    close it when nothing is missing; the gaps closed."""
    await tx.fetchone("SELECT seq_max FROM hubs WHERE hub = ?" + for_update, (hub,))
    row = await tx.fetchone("SELECT hi FROM gaps WHERE hub = ? AND lo = ? AND state IN ('open', 'requested')",
                            (hub, lo))
    if row is None:
        return []
    hi = int(row[0])
    count = await tx.fetchone("SELECT COUNT(DISTINCT seq) FROM events WHERE hub = ? AND seq >= ? AND seq <= ?",
                              (hub, lo, hi))
    lost = sum(min(hi, int(b)) - max(lo, int(a)) + 1 for a, b in await tx.fetchall(
        "SELECT lo, hi FROM lost WHERE hub = ? AND hi >= ? AND lo <= ?", (hub, lo, hi)))
    await tx.execute("UPDATE gaps SET filled = ?, lost = ? WHERE hub = ? AND lo = ?",
                     (int(count[0]) if count else 0, lost, hub, lo))
    return await close_full_gaps(tx, hub, lo, hi, now)


async def tail(tx: Tx, for_update: str, hub: str, seq: int, now: float) -> tuple[int, int] | None:
    """The hub says (in a heartbeat, with nothing pending) that its last seq is ``seq``: the seqs above the
    highest received, if any, are a gap at the tail (an event whose successor has not come yet). Returns it."""
    row = await tx.fetchone("SELECT seq_max FROM hubs WHERE hub = ?" + for_update, (hub,))
    if row is None or row[0] is None or seq <= int(row[0]):
        return None
    lo = int(row[0]) + 1
    await tx.execute("INSERT INTO gaps (hub, lo, hi, state, opened) VALUES (?, ?, ?, 'open', ?) "
                     "ON CONFLICT (hub, lo) DO NOTHING", (hub, lo, seq, now))
    await tx.execute("UPDATE hubs SET seq_max = ? WHERE hub = ?", (seq, hub))
    tx.journal(JournalEntry("hub", hub))
    return lo, seq
