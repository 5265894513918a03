"""The outbox's tables, and the small SQL helpers every write uses.

One SQLite file in WAL mode: ``events`` (one row per stored event, its JSON
body and whether the broker has it), ``meta`` (the last seq, the evicted
count) and ``state`` (small blobs beside the events, rule state).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from hub.events import Priority

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    type      TEXT NOT NULL,
    rank      INTEGER NOT NULL,
    alarm     INTEGER NOT NULL,
    body      BLOB NOT NULL,
    created   REAL NOT NULL,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (rank, seq) WHERE delivered IS NULL;
CREATE INDEX IF NOT EXISTS events_delivered ON events (delivered) WHERE delivered IS NOT NULL;
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def is_alarm(event_type: str, priority: Priority) -> bool:
    """Alarms are never evicted: every ``alarm.*`` type (:func:`is_alarm_type`) and everything critical."""
    return is_alarm_type(event_type) or priority is Priority.CRITICAL


def is_alarm_type(event_type: str) -> bool:
    """An ``alarm.*`` type: an alarm whatever its priority."""
    return event_type.startswith("alarm.")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT. On any error the transaction is rolled back if it is still
    open: a COMMIT that failed on a full disk has rolled back already, and a ROLLBACK then would
    hide SQLite's own error behind "cannot rollback - no transaction is active"."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def save_evicted(db: sqlite3.Connection, total: int) -> None:
    """The evicted count survives restarts: the central may ask what was lost, ever."""
    db.execute("INSERT INTO meta (key, value) VALUES ('evicted', ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (total,))
