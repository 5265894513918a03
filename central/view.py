"""What the central shows an operator: the read model the web console and the terminal use.

Data first: :class:`Snapshot` is everything on the operator's screen at one moment;
:class:`Change` is one thing that changed since (the live feed). :class:`CentralView` is the
one seam between the engine (:mod:`central.engine`) and the faces (:mod:`central.web`,
:mod:`central.console`): neither face knows how the engine stores or receives anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

import msgspec

#: An alarm's (a call's) state at the central; a missed check-in's call also closes as checked_in (the
#: resident checked in) or ended (the hub's ack reply said it had ended: late check-in, away, next window).
AlarmState = Literal["open", "acknowledged", "cancelled", "checked_in", "ended"]

#: A hub's state as the central supervises it:
#: online (birth seen, heartbeats on time), late (a heartbeat overdue, within the level),
#: silent (no heartbeat for its supervision level's interval, though no will came),
#: offline (last will or a clean stop), unknown (never heard).
HubState = Literal["online", "late", "silent", "offline", "unknown"]


class CauseLink(msgspec.Struct, frozen=True, kw_only=True):
    """One event in an alarm's cause chain, oldest first (e.g. bed.exit → rule.not_back)."""

    id: str
    type: str
    ts: str


class AlarmView(msgspec.Struct, frozen=True, kw_only=True):
    """One alarm episode (or another call an operator acks: a missed check-in) as an operator sees it."""

    event_id: str
    hub: str
    type: str
    #: what the faces call it: ``missed check-in``; an alarm: its type (:func:`central.policy.call_label`).
    label: str = ""
    priority: str
    #: nurse (helsetjenesteteam), care (omsorgsteam) or any.
    route: str
    device: str
    kind: str
    room: str | None
    #: the pseudonymous resident id the hub sends; never a name.
    resident: str
    #: when it happened at the hub (RFC 3339 UTC) and when the central got it.
    ts: str
    received: str
    state: AlarmState
    acked_by: str | None = None
    acked_at: str | None = None
    #: reminders (alarm.unacknowledged; a missed check-in's re-alerts) received for it.
    reminders: int = 0
    #: how many alarms the episode holds: the first press and the repeats that joined it.
    alarms: int = 1
    cause_chain: tuple[CauseLink, ...] = ()
    #: SCAIP device type and status code where the event carries them.
    scaip: dict[str, Any] | None = None


class HubView(msgspec.Struct, frozen=True, kw_only=True):
    """One hub (residence) as the central supervises it."""

    hub: str
    state: HubState
    #: why, in a few words: "last will: connection lost", "no heartbeat for 212 s (level 180 s)".
    reason: str | None = None
    last_status: str | None = None
    last_heartbeat: str | None = None
    #: supervision level in seconds (180, 18000 or 90000 by default).
    level_s: float
    seq_last: int | None = None
    #: seq ranges still missing, and events the hub said it no longer has (lost).
    gaps_open: int = 0
    lost: int = 0


class DeviceProblem(msgspec.Struct, frozen=True, kw_only=True):
    """A device that needs a visit: offline, battery low, flooding."""

    hub: str
    device: str
    kind: str
    room: str | None
    problem: str
    since: str
    detail: str | None = None
    #: nurse, care or any, as the event that raised it (the route filter keeps it for its team and for any).
    route: str | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything on the operator's screen: open alarms first by priority, then by age."""

    alarms: tuple[AlarmView, ...]
    hubs: tuple[HubView, ...]
    problems: tuple[DeviceProblem, ...]
    #: RFC 3339 UTC when the snapshot was taken.
    at: str


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One change the live feed pushes: an alarm opened or closed, a hub's state, a device problem."""

    #: lost: events a hub reported it no longer has (detail: hub, seqs); resync: this subscriber
    #: fell behind and missed changes, re-read the snapshot.
    kind: Literal["alarm", "hub", "problem", "problem_cleared", "lost", "resync"]
    alarm: AlarmView | None = None
    hub: HubView | None = None
    problem: DeviceProblem | None = None
    detail: dict[str, Any] | None = None


class AckOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What came of an operator's ack: the hub's reply (``result``: acknowledged,
    already_acknowledged, unknown_event ...), or why none came."""

    ok: bool
    event_id: str
    by: str
    result: str | None = None
    error: str | None = None
    closes: tuple[str, ...] = ()


class CentralView(Protocol):
    """The engine as the faces see it."""

    async def snapshot(self, *, route: str | None = None) -> Snapshot:
        """Open alarms, hubs and device problems now; ``route`` filters alarms and problems."""
        ...

    async def ack(self, event_id: str, by: str) -> AckOutcome:
        """Send ``cmd/ack`` for ``event_id`` as ``by`` and wait for the hub's reply."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """Every change from now on, for as long as the caller iterates (bounded per subscriber:
        a subscriber that falls behind gets a ``Change(kind="resync")`` and should re-read the snapshot)."""
        ...
