"""The central's schema, as numbered migrations, and the runner that applies them at start.

Each migration is a list of statements in the SQL both databases speak (``{real}`` and
``{serial}`` stand for the column types that differ, see :func:`~central.store.db.dialect_sql`).
``schema_migrations`` says which are applied. :func:`migrate` applies what is missing in one
transaction, under a lock (SQLite's write lock, PostgreSQL's advisory lock), so two instances
starting together do it once: the second waits and finds nothing left to do. A database
migrated by a newer central (a version this one does not know) is refused, not touched.

Never edit a migration once released: add the next number.
"""

from __future__ import annotations

import time

import structlog

from central.store.db import Db, StoreError, dialect_sql

log = structlog.get_logger("central.store")

_INITIAL = [
    # every event once (de-duplication by id); body is the JSON as it came
    """CREATE TABLE events (
        id TEXT PRIMARY KEY, hub TEXT NOT NULL, seq BIGINT NOT NULL, type TEXT NOT NULL, ts TEXT NOT NULL,
        cause TEXT, received {real} NOT NULL, instance TEXT NOT NULL, body TEXT NOT NULL)""",
    "CREATE INDEX events_hub_seq ON events (hub, seq)",
    # per hub: seq tracking, counters, what its status and heartbeat said last
    """CREATE TABLE hubs (
        hub TEXT PRIMARY KEY, first_seen {real} NOT NULL, seq_first BIGINT, seq_max BIGINT,
        events BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0,
        held_stored BIGINT NOT NULL DEFAULT 0, conflicts BIGINT NOT NULL DEFAULT 0,
        status TEXT, status_reason TEXT, status_doc TEXT, status_at {real},
        last_heartbeat {real}, heartbeat_doc TEXT, last_event {real}, level TEXT, level_s {real})""",
    # seq ranges missing: open, requested (claimed by one instance), filled or lost
    """CREATE TABLE gaps (
        hub TEXT NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL, state TEXT NOT NULL, opened {real} NOT NULL,
        filled BIGINT NOT NULL DEFAULT 0, lost BIGINT NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT, claimed_at {real}, closed {real}, note TEXT, PRIMARY KEY (hub, lo))""",
    "CREATE INDEX gaps_state ON gaps (state, hub)",
    # seq ranges the hub said it no longer has
    """CREATE TABLE lost (
        hub TEXT NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL, recorded {real} NOT NULL,
        instance TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (hub, lo))""",
    # one row per alarm event; episode = the id of the episode's first alarm (its row is the one shown)
    """CREATE TABLE alarms (
        event_id TEXT PRIMARY KEY, hub TEXT NOT NULL, episode TEXT NOT NULL, grp TEXT NOT NULL,
        type TEXT NOT NULL, priority TEXT NOT NULL, route TEXT NOT NULL, device TEXT NOT NULL,
        kind TEXT NOT NULL, room TEXT, resident TEXT NOT NULL, ts TEXT NOT NULL, received {real} NOT NULL,
        cause TEXT, state TEXT NOT NULL, acked_by TEXT, acked_at {real}, closed_by TEXT,
        reminders INTEGER NOT NULL DEFAULT 0, members INTEGER NOT NULL DEFAULT 1, handled_by TEXT NOT NULL,
        auto_ack TEXT, auto_by TEXT, auto_at {real}, scaip TEXT)""",
    "CREATE INDEX alarms_open ON alarms (state, hub, device, grp)",
    "CREATE INDEX alarms_episode ON alarms (episode)",
    # every alarm id an ack, a cancel or an ack's reply closed: an alarm arriving after it opens closed
    """CREATE TABLE closures (
        alarm_id TEXT PRIMARY KEY, state TEXT NOT NULL, who TEXT, at {real} NOT NULL, source TEXT)""",
    # every cmd/ack sent, and the reply
    """CREATE TABLE acks (
        id {serial}, event_id TEXT NOT NULL, hub TEXT NOT NULL, who TEXT NOT NULL, auto INTEGER NOT NULL,
        instance TEXT NOT NULL, sent {real} NOT NULL, replied {real}, ok INTEGER, result TEXT, error TEXT,
        reply TEXT)""",
    "CREATE INDEX acks_event ON acks (event_id)",
    # device problems (offline, battery low, ...); ts: the event time of the last change
    """CREATE TABLE problems (
        hub TEXT NOT NULL, device TEXT NOT NULL, problem TEXT NOT NULL, active INTEGER NOT NULL,
        kind TEXT NOT NULL, room TEXT, route TEXT NOT NULL, ts TEXT NOT NULL, detail TEXT,
        event_id TEXT NOT NULL, PRIMARY KEY (hub, device, problem))""",
    # what changed, in commit order: every instance's live feed reads it
    """CREATE TABLE journal (
        n {serial}, at {real} NOT NULL, instance TEXT NOT NULL, kind TEXT NOT NULL, hub TEXT NOT NULL,
        ref TEXT, detail TEXT)""",
]

#: (version, name, statements), in order.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "initial", _INITIAL),
]


async def migrate(db: Db) -> list[int]:
    """Apply the migrations ``db`` lacks; the versions applied now (none: it was up to date)."""
    applied: list[int] = []
    async with db.transaction() as tx:
        await db.lock_migrations(tx)
        await tx.execute(dialect_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied {real} NOT NULL)", db.dialect))
        done = {int(r[0]) for r in await tx.fetchall("SELECT version FROM schema_migrations")}
        known = {v for v, _, _ in MIGRATIONS}
        if done - known:
            raise StoreError(f"{db.where} has schema version {max(done)}, newer than this central knows "
                             f"({max(known)}): upgrade the central, or use another database")
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for sql in statements:
                await tx.execute(dialect_sql(sql, db.dialect))
            await tx.execute("INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                             (version, name, time.time()))
            applied.append(version)
    if applied:
        log.info("store_migrated", where=db.where, versions=applied)
    return applied
