"""``carehub status`` for a person: the hub's status document as tables (rich), what is wrong in red."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hub.opscli.common import ago, duration, short

#: Device states shown in red, and in yellow.
BAD_STATES = frozenset({"offline", "degraded", "failed", "closed"})
WARN_STATES = frozenset({"never heard", "unknown", "waiting", "connecting", "stopped"})


def render(doc: dict[str, Any], console: Console) -> None:
    """Print the status document ``carehub status`` got from the hub."""
    health = "degraded" if doc.get("degraded") else doc.get("health", {}).get("state", "?")
    head = Text.assemble(
        ("hub ", "bold"), (str(doc.get("hub")), "bold"),
        f"  version {doc.get('version')}  up {duration(doc.get('uptime_s'))}  health ",
        (health, "green" if health == "ok" else "bold red"),
    )
    console.print(head)
    console.print(_link(doc.get("link", {})))
    console.print(_outbox(doc.get("outbox", {})))
    if doc.get("paths"):
        console.print(_paths(doc["paths"], doc.get("fallback") or {}))
    console.print(_devices(doc.get("device_list", [])))
    alarms = doc.get("open_alarms", [])
    if alarms:
        console.print(_alarms(alarms))
    else:
        console.print(Text("open alarms: none", style="green"))
    console.print(_rules(doc.get("rules", [])))
    degraded = doc.get("degraded", [])
    if degraded:
        console.print(Text("degraded:", style="bold red"))
        for d in degraded:
            console.print(Text(f"  {d['part']}: {d['reason']}", style="red"))
    else:
        console.print(Text("degraded: nothing", style="green"))


def _link(link: dict[str, Any]) -> Text:
    if link.get("online"):
        return Text.assemble("link    ", ("connected", "green"),
                             f" to {link.get('broker')} ({link.get('connects')} connects)")
    why = link.get("last_error") or "no broker reached yet"
    return Text.assemble("link    ", (f"not connected ({link.get('state')})", "bold red"), f": {short(why, 100)}",
                         " (alarms are stored and sent once the broker is back)")


def _paths(paths: dict[str, Any], fallback: dict[str, Any]) -> Text:
    parts: list[Any] = ["paths  "]
    for name, p in paths.items():
        state = p.get("state")
        style = "green" if state == "up" else "bold red" if state == "down" else "yellow"
        why = f" ({p['reason']})" if state == "down" and p.get("reason") else ""
        parts += [f" {name} ", (f"{state}{why}", style)]
    if fallback.get("armed"):
        counters = fallback.get("counters", {})
        parts.append(f"  SMS fallback armed: {counters.get('sent', 0)} sent, {counters.get('failed', 0)} failed")
    return Text.assemble(*parts)


def _outbox(o: dict[str, Any]) -> Text:
    pending = o.get("pending", 0)
    text = Text(f"outbox  {pending} pending")
    if o.get("pending_alarms"):
        n = o["pending_alarms"]
        text.append(f" ({n} alarm{'s' if n != 1 else ''})", style="bold red")
    if pending:
        text.append(f", oldest {ago(o.get('oldest_pending_age_s'))}", style="yellow")
    if o.get("held"):
        text.append(f", {o['held']} alarms held in memory (store refused them)", style="bold red")
    text.append(f"; last seq {o.get('last_seq')}, {o.get('stored')} stored")
    return text


def _devices(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="devices", title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("device", no_wrap=True)
    t.add_column("kind", overflow="fold")
    t.add_column("room", overflow="fold")
    t.add_column("state", no_wrap=True)
    t.add_column("last seen", no_wrap=True)
    t.add_column("battery", no_wrap=True, justify="right")
    t.add_column("signal / port", overflow="fold")
    for r in rows:
        state = r.get("state", "?")
        style = "bold red" if state in BAD_STATES else "yellow" if state in WARN_STATES else "green"
        battery = r.get("battery")
        if r.get("driver") == "serial":
            where = f"{r.get('port')} ({r.get('port_state')})"
        elif r.get("rssi") is not None:
            where = f"{r['rssi']} dBm"
        else:
            where = r.get("driver") or "-"
        t.add_row(
            r["id"], r.get("kind", ""), r.get("room") or "-", Text(state, style=style),
            ago(r.get("last_seen_s_ago")) if r.get("last_seen") else "never",
            "-" if battery is None else f"{battery:.0f} %", where,
        )
    return t


def _alarms(alarms: list[dict[str, Any]]) -> Table:
    t = Table(title="open alarms", title_justify="left", box=box.SIMPLE_HEAD, title_style="bold red")
    t.add_column("event id", no_wrap=True)
    for col in ("device", "type", "state", "alarms", "reminders"):
        t.add_column(col, overflow="fold")
    for a in alarms:
        t.add_row(a["event_id"], a.get("device", ""), a.get("type", ""), a.get("state", ""), str(a.get("alarms")),
                  str(a.get("reminders")))
    return t


def _rules(rules: list[dict[str, Any]]) -> Table:
    t = Table(title="rules", title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("rule", no_wrap=True)
    for col in ("priority", "route", "state"):
        t.add_column(col, overflow="fold")
    for r in rules:
        state = r.get("state") or {}
        busy = {k: v for k, v in state.items() if v not in (None, {}, [], 0)}
        t.add_row(r["name"], r.get("priority", ""), r.get("route", ""),
                  short(json.dumps(busy, separators=(",", ":")), 70) if busy else "idle")
    return t
