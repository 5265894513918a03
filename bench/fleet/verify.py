"""Did the central get everything? Read straight from its SQLite file (read-only, beside the running central).

Zero loss means: every seq from 1 to each hub's last is stored (``events``), nothing recorded as lost
(``lost``), and every alarm the hubs pressed is stored and ``acknowledged`` (``alarms``). The central
may still be storing or filling a gap by replay when the hubs have drained, so :func:`check` looks
again until it all holds or ``timeout`` passes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import msgspec


class CentralCheck(msgspec.Struct, kw_only=True):
    """What the central holds of what the hubs sent."""

    complete: bool
    #: seqs the hubs made, seqs stored, seqs missing (and a few of them, "hub:seq")
    expected: int
    stored: int
    missing: int
    missing_sample: list[str]
    #: rows in the central's ``lost`` table (seqs a hub said it no longer had)
    lost: int
    #: the hubs' alarms: stored at the central, and acknowledged there
    alarms: int
    alarms_stored: int
    alarms_acked: int
    #: of them, auto-acks that got no reply (sent while the hub was away): the central leaves them to an operator
    auto_ack_failed: int
    #: events the central got more than once (replays, alarms on both subscriptions), gaps it saw
    duplicates: int
    gaps: int
    waited_s: float


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def _look(db: sqlite3.Connection, expected: Mapping[str, int],
          alarm_ids: Collection[str]) -> tuple[int, dict[str, int], int, int, int]:
    have = {hub: (n, top) for hub, n, top in db.execute(
        "SELECT hub, COUNT(DISTINCT seq), MAX(seq) FROM events WHERE seq > 0 GROUP BY hub")}
    short = {hub: last for hub, last in expected.items() if have.get(hub, (0, 0)) != (last, last) and last > 0}
    stored = sum(min(have.get(hub, (0, 0))[0], last) for hub, last in expected.items())
    states = dict(db.execute("SELECT event_id, state FROM alarms").fetchall())
    ours = [states.get(a) for a in alarm_ids]
    acked = sum(s == "acknowledged" for s in ours)
    lost = db.execute("SELECT COUNT(*) FROM lost").fetchone()[0]
    return stored, short, sum(s is not None for s in ours), acked, int(lost)


def _missing(db: sqlite3.Connection, short: Mapping[str, int], limit: int = 10) -> list[str]:
    out: list[str] = []
    for hub, last in short.items():
        got = {s for (s,) in db.execute("SELECT DISTINCT seq FROM events WHERE hub = ? AND seq > 0", (hub,))}
        out += [f"{hub}:{s}" for s in range(1, last + 1) if s not in got][: limit - len(out)]
        if len(out) >= limit:
            break
    return out


def check(path: Path, expected: Mapping[str, int], alarm_ids: Collection[str], *, timeout: float) -> CentralCheck:
    """Look until the central holds every seq and every alarm acked, or ``timeout`` seconds passed."""
    t0 = time.monotonic()
    db = _connect(path)
    try:
        while True:
            stored, short, alarms_stored, acked, lost = _look(db, expected, alarm_ids)
            done = not short and acked == len(alarm_ids)
            if done or time.monotonic() - t0 >= timeout:
                break
            time.sleep(0.25)
        dup = sum(n for hub, n in db.execute("SELECT hub, duplicates FROM hubs") if hub in expected)
        gaps = sum(1 for (hub,) in db.execute("SELECT hub FROM gaps") if hub in expected)
        ours = set(alarm_ids)
        failed = sum(1 for (a,) in db.execute("SELECT event_id FROM alarms WHERE auto_ack = 'failed'") if a in ours)
        total = sum(expected.values())
        return CentralCheck(complete=done and lost == 0, expected=total, stored=stored, missing=total - stored,
                            missing_sample=_missing(db, short), lost=lost, alarms=len(alarm_ids),
                            alarms_stored=alarms_stored, alarms_acked=acked, auto_ack_failed=failed, duplicates=int(dup), gaps=int(gaps),
                            waited_s=round(time.monotonic() - t0, 2))
    finally:
        db.close()
