"""What a new event does to the alarms and the device problems, inside the ingest's transaction.

* an alarm (:data:`~central.policy.ALARM_TYPES`) opens an episode, or joins its device's open
  one of the same group (a repeat press, a second test alarm, the same nurse-call address), as
  the hub groups them; an alarm whose id an ack or a cancel closed already (it came late, a
  replay) is stored closed;
* ``alarm.acknowledged`` / ``alarm.cancelled`` close the episodes of ``cause`` and every id in
  ``data.closes`` (:func:`close_alarms`, which an ack's reply uses too);
* ``alarm.unacknowledged`` counts a reminder on the episode of its ``cause``;
* a missed check-in (``checkin.missed``, :data:`~central.policy.CHECKIN_MISSED`) is a call like an
  alarm (a row in ``alarms``, group ``checkin``, never auto-acked): the first opens it; a re-alert
  (``cause``: the first) joins the first's call and counts as a reminder on it, and one that comes
  after the call closed is stored closed. A re-alert whose first the central lacks opens a call of
  its own (an ack of either closes both through the hub's reply; the check-in closes both);
* ``checkin.done`` naming a missed check-in (``data.missed``: the first missed id) closes its call
  as ``checked_in`` (the re-alerts' calls too). A call the hub ended without an event (the resident
  away, the next window) stays open for an operator: the hub answers the ack ``ended``, which closes
  it as ``ended`` (:meth:`central.store.Store.ack_done`);
* device problems open and clear as :func:`central.problems.problem_steps` says, unless the
  event is older than the problem's last change.

Each change queues a journal entry (the feeds' ``alarm``, ``problem``, ``problem_cleared``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from central.policy import ALARM_TYPES, CHECKIN_DONE, CHECKIN_MISSED, CLOSING_TYPES, REMINDER_TYPE, episode_group
from central.problems import problem_steps
from central.store.db import Db, JournalEntry, Tx
from central.wire import Received

#: At most this many alarm ids of one ack or cancel are looked at (the hub sends the first and 64 newest).
MAX_CLOSES = 256


def epoch(ts: str, default: float) -> float:
    """An event's RFC 3339 ``ts`` as Unix seconds (``default`` when it is not one)."""
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def scaip_of(body: dict[str, Any]) -> str | None:
    """The SCAIP codes an event carries (``scaip`` in the event or in its data), as JSON, or None."""
    data = body.get("data")
    found = body.get("scaip") or (data.get("scaip") if isinstance(data, dict) else None)
    return json.dumps(found, separators=(",", ":")) if isinstance(found, dict) else None


async def apply_event(tx: Tx, db: Db, r: Received, *, now: float, instance: str, auto_ack: bool) -> dict[str, Any]:
    """Apply a new event; what happened, for the engine's log lines and acks (``opened``, ``joined``, ``closed``)."""
    e = r.event
    out: dict[str, Any] = {}
    if e.type in ALARM_TYPES:
        out.update(await _alarm(tx, db, r, now=now, instance=instance, auto_ack=auto_ack))
    elif e.type == CHECKIN_MISSED:
        out.update(await _missed(tx, r, now=now, instance=instance))
    elif e.type == CHECKIN_DONE and isinstance(missed := e.data.get("missed"), str) and missed:
        realerts = await tx.fetchall("SELECT event_id FROM alarms WHERE hub = ? AND cause = ? AND type = ?",
                                     (e.hub, missed, CHECKIN_MISSED))
        out["closed"] = await close_alarms(tx, e.hub, [missed, *(row[0] for row in realerts[:MAX_CLOSES])],
                                           state="checked_in", who=None, at=epoch(e.ts, now), source=e.id)
    elif e.type in CLOSING_TYPES:
        ids = [e.cause] if e.cause else []
        closes = e.data.get("closes")
        if isinstance(closes, list):
            ids += [c for c in closes[:MAX_CLOSES] if isinstance(c, str)]
        state = CLOSING_TYPES[e.type]
        who = e.data.get("by") if state == "acknowledged" else None
        out["closed"] = await close_alarms(tx, e.hub, ids, state=state, who=str(who) if who else None,
                                           at=epoch(e.ts, now), source=e.id)
    elif e.type == REMINDER_TYPE and e.cause:
        row = await tx.fetchone("SELECT episode FROM alarms WHERE event_id = ? AND hub = ?", (e.cause, e.hub))
        if row is not None:
            await tx.execute("UPDATE alarms SET reminders = reminders + 1 WHERE event_id = ?", (row[0],))
            tx.journal(JournalEntry("alarm", e.hub, row[0]))
            out["reminder_of"] = row[0]
    await _problems(tx, r)
    return out


async def _alarm(tx: Tx, db: Db, r: Received, *, now: float, instance: str, auto_ack: bool) -> dict[str, Any]:
    e = r.event
    grp = episode_group(r.body)
    head_row = await tx.fetchone(
        "SELECT event_id FROM alarms WHERE hub = ? AND device = ? AND grp = ? AND state = 'open' "
        "AND event_id = episode ORDER BY received DESC LIMIT 1", (e.hub, e.source.device, grp))
    head = head_row[0] if head_row else None
    closure = await tx.fetchone("SELECT state, who, at, source FROM closures WHERE alarm_id = ?", (e.id,))
    state, who, at, closed_by = ("open", None, None, None) if closure is None else closure
    episode = head or e.id
    auto = "pending" if auto_ack and head is None and state == "open" else None
    await tx.execute(
        _INSERT_ALARM,
        (e.id, e.hub, episode, grp, e.type, e.priority, e.route, e.source.device, e.source.kind, e.source.room,
         e.resident, e.ts, now, e.cause, state, who if state == "acknowledged" else None,
         at if state == "acknowledged" else None, closed_by, instance, auto, scaip_of(r.body)))
    if head is not None:
        await tx.execute("UPDATE alarms SET members = members + 1 WHERE event_id = ?", (head,))
    tx.journal(JournalEntry("alarm", e.hub, episode))
    return {"joined": head} if head is not None else {"opened": e.id if state == "open" else None}


_INSERT_ALARM = (
    "INSERT INTO alarms (event_id, hub, episode, grp, type, priority, route, device, kind, room, resident, ts, "
    "received, cause, state, acked_by, acked_at, closed_by, handled_by, auto_ack, scaip) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING")


async def _missed(tx: Tx, r: Received, *, now: float, instance: str) -> dict[str, Any]:
    """A missed check-in: the first opens a call, a re-alert joins its first's (see the module docstring)."""
    e = r.event
    head = None
    if e.cause:
        head = await tx.fetchone(
            "SELECT h.event_id, h.state, h.acked_by, h.acked_at, h.closed_by FROM alarms a "
            "JOIN alarms h ON h.event_id = a.episode WHERE a.event_id = ? AND a.hub = ?", (e.cause, e.hub))
    if head is not None:
        episode, state, who, at, closed_by = head
    else:
        episode, state, who, at, closed_by = e.id, "open", None, None, None
        closure = await tx.fetchone(
            "SELECT state, who, at, source FROM closures WHERE alarm_id IN (?, ?) ORDER BY at LIMIT 1",
            (e.id, e.cause or e.id))
        if closure is not None:
            state, who, at, closed_by = closure
    acked = state == "acknowledged"
    n = await tx.execute(_INSERT_ALARM, (
        e.id, e.hub, episode, "checkin", e.type, e.priority, e.route, e.source.device, e.source.kind, e.source.room,
        e.resident, e.ts, now, e.cause, state, who if acked else None, at if acked else None, closed_by, instance,
        None, scaip_of(r.body)))
    if head is not None:
        if n:
            await tx.execute("UPDATE alarms SET reminders = reminders + 1 WHERE event_id = ?", (episode,))
            tx.journal(JournalEntry("alarm", e.hub, episode))
        return {"joined": episode} if state == "open" else {}
    tx.journal(JournalEntry("alarm", e.hub, episode))
    return {"opened": e.id if state == "open" else None}


async def close_alarms(tx: Tx, hub: str, ids: Sequence[str], *, state: str, who: str | None, at: float,
                       source: str) -> list[str]:
    """Close the episodes of ``ids`` (acknowledged, cancelled; a missed check-in also ``checked_in`` or
    ``ended``: the hub's ack reply said it had ended); the episodes closed now.

    Every id is remembered as closed (:data:`closures`), so an alarm arriving after its ack opens closed.
    """
    ids = sorted(set(ids))  # one order for every writer: no deadlock on the closures' keys
    if not ids:
        return []
    for alarm_id in ids:
        await tx.execute("INSERT INTO closures (alarm_id, state, who, at, source) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (alarm_id) DO NOTHING", (alarm_id, state, who, at, source))
    marks = ", ".join("?" * len(ids))
    episodes = [r[0] for r in await tx.fetchall(
        f"SELECT DISTINCT episode FROM alarms WHERE hub = ? AND event_id IN ({marks})", (hub, *ids))]
    closed = []
    for episode in sorted(episodes):
        n = await tx.execute(
            "UPDATE alarms SET state = ?, acked_by = ?, acked_at = ?, closed_by = ? WHERE episode = ? AND state = 'open'",
            (state, who if state == "acknowledged" else None, at if state == "acknowledged" else None, source, episode))
        if n:
            tx.journal(JournalEntry("alarm", hub, episode))
            closed.append(episode)
    return closed


async def _problems(tx: Tx, r: Received) -> None:
    e = r.event
    for step in problem_steps(r.body):
        key = json.dumps([e.hub, step.device, step.problem])
        if step.action == "open":
            n = await tx.execute(
                "INSERT INTO problems (hub, device, problem, active, kind, room, route, ts, detail, event_id) "
                "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (hub, device, problem) DO UPDATE SET active = 1, "
                "kind = excluded.kind, room = excluded.room, route = excluded.route, ts = excluded.ts, "
                "detail = excluded.detail, event_id = excluded.event_id WHERE problems.ts <= excluded.ts",
                (e.hub, step.device, step.problem, e.source.kind, e.source.room, e.route, e.ts, step.detail, e.id))
            if n:
                tx.journal(JournalEntry("problem", e.hub, key))
            continue
        row = await tx.fetchone(
            "SELECT kind, room, route, ts, detail FROM problems WHERE hub = ? AND device = ? AND problem = ? "
            "AND active = 1 AND ts <= ?", (e.hub, step.device, step.problem, e.ts))
        if row is None:
            continue
        await tx.execute("UPDATE problems SET active = 0, ts = ?, event_id = ? WHERE hub = ? AND device = ? "
                         "AND problem = ?", (e.ts, e.id, e.hub, step.device, step.problem))
        kind, room, route, since, detail = row
        tx.journal(JournalEntry("problem_cleared", e.hub, key, {
            "hub": e.hub, "device": step.device, "kind": kind, "room": room, "route": route,
            "problem": step.problem, "since": since, "detail": detail}))
