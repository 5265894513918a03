"""Reading the operator's picture out of the store: alarms, device problems, the hubs' counters.

Open alarms are the episodes still open (one row each: the episode's first alarm, with how
many alarms joined it), most urgent first, then oldest first. A route filter keeps what is
routed to that team and what is routed to ``any`` (anyone may respond).
"""

from __future__ import annotations

import json
from typing import Any

from central.policy import PRIORITY_RANK, call_label
from central.store.db import Row, Tx
from central.view import AlarmView, CauseLink, DeviceProblem
from hub.events import rfc3339

#: How far back a cause chain is followed.
MAX_CAUSES = 8

_ALARM_COLUMNS = ("event_id, hub, type, priority, route, device, kind, room, resident, ts, received, state, "
                  "acked_by, acked_at, reminders, members, cause, scaip")


def _when(t: float | None) -> str | None:
    return None if t is None else rfc3339(float(t))


def _route_clause(route: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("", ()) if route is None else (" AND route IN (?, 'any')", (route,))


async def cause_chain(tx: Tx, cause: str | None) -> tuple[CauseLink, ...]:
    """The events that led to an alarm, oldest first (as far as the central has them)."""
    chain: list[CauseLink] = []
    seen: set[str] = set()
    while cause and cause not in seen and len(chain) < MAX_CAUSES:
        seen.add(cause)
        row = await tx.fetchone("SELECT id, type, ts, cause FROM events WHERE id = ?", (cause,))
        if row is None:
            break
        chain.append(CauseLink(id=row[0], type=row[1], ts=row[2]))
        cause = row[3]
    return tuple(reversed(chain))


async def _alarm(tx: Tx, row: Row) -> AlarmView:
    (event_id, hub, type_, priority, route, device, kind, room, resident, ts, received, state, acked_by, acked_at,
     reminders, members, cause, scaip) = row
    return AlarmView(
        event_id=event_id, hub=hub, type=type_, label=call_label(type_), priority=priority, route=route,
        device=device, kind=kind, room=room,
        resident=resident, ts=ts, received=rfc3339(float(received)), state=state, acked_by=acked_by,
        acked_at=_when(acked_at), reminders=int(reminders), alarms=int(members),
        cause_chain=await cause_chain(tx, cause), scaip=json.loads(scaip) if scaip else None)


async def alarm(tx: Tx, episode: str) -> AlarmView | None:
    """One episode as shown (whatever its state), by its first alarm's id."""
    row = await tx.fetchone(f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE event_id = ?", (episode,))
    return None if row is None else await _alarm(tx, row)


async def open_alarms(tx: Tx, route: str | None = None) -> list[AlarmView]:
    """The open episodes, most urgent first, then oldest first."""
    where, params = _route_clause(route)
    rows = await tx.fetchall(
        f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE state = 'open' AND event_id = episode{where}", params)
    views = [await _alarm(tx, r) for r in rows]
    return sorted(views, key=lambda a: (PRIORITY_RANK.get(a.priority, 9), a.ts, a.event_id))


def problem_view(hub: str, device: str, problem: str, kind: str, room: str | None, route: str, since: str,
                 detail: str | None) -> DeviceProblem:
    """A problem row as the operator sees it."""
    return DeviceProblem(hub=hub, device=device, kind=kind, room=room, problem=problem, since=since, detail=detail,
                         route=route)


async def problems(tx: Tx, route: str | None = None) -> list[DeviceProblem]:
    """The device problems now, by hub, device and problem."""
    where, params = _route_clause(route)
    rows = await tx.fetchall("SELECT hub, device, problem, kind, room, route, ts, detail FROM problems "
                             f"WHERE active = 1{where} ORDER BY hub, device, problem", params)
    return [problem_view(*r) for r in rows]


async def problem(tx: Tx, hub: str, device: str, name: str) -> DeviceProblem | None:
    """One active problem, or None."""
    row = await tx.fetchone("SELECT hub, device, problem, kind, room, route, ts, detail FROM problems "
                            "WHERE hub = ? AND device = ? AND problem = ? AND active = 1", (hub, device, name))
    return None if row is None else problem_view(*row)


async def hub_rows(tx: Tx, hub: str | None = None) -> list[dict[str, Any]]:
    """Per hub: seq and counters, what its status and heartbeat said last, open gaps and lost events."""
    where, params = ("", ()) if hub is None else (" WHERE h.hub = ?", (hub,))
    rows = await tx.fetchall(
        "SELECT h.hub, h.seq_first, h.seq_max, h.events, h.duplicates, h.held_stored, h.conflicts, h.status, "
        "h.status_reason, h.status_at, h.last_heartbeat, h.last_event, "
        "(SELECT COUNT(*) FROM gaps g WHERE g.hub = h.hub AND g.state IN ('open', 'requested')), "
        "(SELECT CAST(COALESCE(SUM(l.hi - l.lo + 1), 0) AS BIGINT) FROM lost l WHERE l.hub = h.hub) "
        f"FROM hubs h{where} ORDER BY h.hub", params)
    keys = ("hub", "seq_first", "seq_max", "events", "duplicates", "held_stored", "conflicts", "status",
            "status_reason", "status_at", "last_heartbeat", "last_event", "gaps_open", "lost")
    return [dict(zip(keys, r, strict=True)) for r in rows]
