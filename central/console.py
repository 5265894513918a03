"""The central at a glance in a terminal (``carehub central --console``): rich tables, kept live.

Open alarms (and the other calls an operator acks: a missed check-in, labelled so) by priority
and age, hubs with their supervision state and last heartbeat, and device problems, re-read from
the :class:`~central.view.CentralView` on every change and every ``refresh_s`` (which also ticks
the ages).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from central.view import CentralView, Snapshot

log = structlog.get_logger("central.console")

ROUTES = {"nurse": "nurse (helsetjenesteteam)", "care": "care (omsorgsteam)", "any": "any (alle)"}
PRIORITY_STYLE = {"critical": "bold white on red", "high": "bold dark_orange", "normal": "blue", "low": "dim"}
HUB_STYLE = {"online": "green", "late": "yellow", "silent": "bold red", "offline": "bold red", "unknown": "dim"}
#: At most this many changes a second re-render the screen (a burst is drawn once).
MAX_RENDERS_S = 10


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(ts: str | None, now: datetime) -> str:
    """How long ago ``ts`` was, as an operator reads it: ``42 s``, ``3 min 05 s``, ``2 h 03 min``."""
    t = _parse(ts)
    if t is None:
        return "—"
    s = max(0, int((now - t).total_seconds()))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h < 24 else f"{h // 24} d {h % 24} h"


def _alarms(snap: Snapshot, now: datetime) -> Table:
    t = Table(title=f"Open alarms ({len(snap.alarms)})", title_justify="left", expand=True)
    for col in ("priority", "age", "residence", "room", "route", "device", "what", "cause"):
        t.add_column(col)
    for a in snap.alarms:
        cause = " → ".join([*(c.type for c in a.cause_chain), a.type]) if a.cause_chain else ""
        extra = [f"{a.alarms} presses"] if a.alarms > 1 else []
        extra += [f"{a.reminders} reminders"] if a.reminders else []
        what = (a.label or a.type) + (f" ({', '.join(extra)})" if extra else "")
        t.add_row(Text(a.priority, style=PRIORITY_STYLE.get(a.priority, "")), age(a.ts, now),
                  f"{a.hub} · {a.resident}", a.room or "—", ROUTES.get(a.route, a.route),
                  f"{a.device} ({a.kind})", what, cause)
    if not snap.alarms:
        t.add_row(Text("no open alarms", style="green"), *[""] * 7)
    return t


def _hubs(snap: Snapshot, now: datetime) -> Table:
    t = Table(title=f"Hubs ({len(snap.hubs)})", title_justify="left", expand=True)
    for col in ("hub", "state", "last heartbeat", "why", "seq", "gaps", "lost"):
        t.add_column(col)
    for h in snap.hubs:
        hb = f"{age(h.last_heartbeat, now)} ago" if h.last_heartbeat else "none yet"
        t.add_row(h.hub, Text(h.state, style=HUB_STYLE.get(h.state, "")), hb, h.reason or "",
                  "" if h.seq_last is None else str(h.seq_last), str(h.gaps_open or ""),
                  Text(str(h.lost), style="bold red") if h.lost else "")
    return t


def _problems(snap: Snapshot, now: datetime) -> Table:
    t = Table(title=f"Device problems ({len(snap.problems)})", title_justify="left", expand=True)
    for col in ("hub", "device", "room", "problem", "since", "detail"):
        t.add_column(col)
    for p in snap.problems:
        t.add_row(p.hub, f"{p.device} ({p.kind})", p.room or "—", Text(p.problem.replace("_", " "), style="yellow"),
                  f"{age(p.since, now)} ago", p.detail or "")
    if not snap.problems:
        t.add_row(Text("no device problems", style="green"), *[""] * 5)
    return t


def render(snap: Snapshot, *, now: datetime | None = None, live: bool = True) -> Group:
    """The whole screen for ``snap``; ``live`` False says the change feed is down."""
    now = now or datetime.now(UTC)
    head = Text(f"carehub alarm central · {now.astimezone():%Y-%m-%d %H:%M:%S}", style="bold")
    if not live:
        head.append("  live feed down: re-reading every refresh", style="bold red")
    return Group(head, _alarms(snap, now), _hubs(snap, now), _problems(snap, now))


async def _watch(view: CentralView, dirty: asyncio.Event, feed: dict[str, bool]) -> None:
    """Set ``dirty`` on every change; after a failure, try the feed again (the refresh goes on meanwhile)."""
    while True:
        try:
            async for _ in view.changes():
                feed["up"] = True
                dirty.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the engine's feed failed: say so, keep showing snapshots
            log.warning("console_feed_failed", error=repr(exc))
        feed["up"] = False
        dirty.set()
        await asyncio.sleep(2.0)


async def run_console(view: CentralView, *, refresh_s: float = 1.0, console: Console | None = None) -> None:
    """Show the central in the terminal until cancelled: re-rendered on each change and every ``refresh_s``."""
    dirty = asyncio.Event()
    feed = {"up": True}
    watcher = asyncio.ensure_future(_watch(view, dirty, feed))
    console = console or Console()
    try:
        with Live(console=console, auto_refresh=False, screen=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            while True:
                try:
                    snap = await view.snapshot()
                except Exception as exc:  # keep the last screen, say why it is old
                    log.warning("console_snapshot_failed", error=repr(exc))
                else:
                    live.update(render(snap, live=feed["up"]), refresh=True)
                dirty.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dirty.wait(), timeout=refresh_s)
                await asyncio.sleep(1 / MAX_RENDERS_S)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
