"""``tail``: every committed event to the clients that follow them, never at the hub's expense.

The emitter tells :meth:`TailHub.tap` of each committed event, on the loop.
Each :class:`Subscription` has its own filters (type globs, device ids) and a
bounded queue (:data:`~hub.control.protocol.TAIL_QUEUE` events). A client
that falls that far behind is dropped (its reason counted and logged, its
connection closed): the hub never waits for a reader and never holds more
than the queues' bound, whatever the clients do.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

import structlog

from hub.control.protocol import TAIL_QUEUE
from hub.events import Event

log = structlog.get_logger("hub.control")


class Subscription:
    """One tail client: what it asked for, and the events it has not read yet."""

    def __init__(self, types: Sequence[str], devices: Sequence[str], *, size: int, peer: str,
                 on_drop: Callable[[Subscription, str], None]) -> None:
        self.types = tuple(types)
        self.devices = frozenset(devices)
        self.peer = peer
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.sent = 0
        #: why the hub gave up on this client (None: it keeps up)
        self.dropped: str | None = None
        self._on_drop = on_drop

    def matches(self, event: Event) -> bool:
        """Whether the client asked for this event."""
        if self.devices and event.source.device not in self.devices:
            return False
        return not self.types or any(fnmatchcase(event.type, t) for t in self.types)

    def offer(self, event: Event) -> None:
        """Queue the event if it matches; a full queue drops the client (never waits)."""
        if self.dropped is not None or not self.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = f"too slow: {self.queue.qsize()} events queued unread"
            self._on_drop(self, self.dropped)

    def describe(self) -> dict[str, Any]:
        return {"types": list(self.types), "devices": sorted(self.devices)}


class TailHub:
    """The tail clients, fed by the emitter's tap."""

    def __init__(self, *, size: int = TAIL_QUEUE) -> None:
        self.size = size
        self.subs: set[Subscription] = set()
        #: clients dropped, by reason ("slow", ...)
        self.dropped: Counter[str] = Counter()
        #: called with each dropped subscription (the server closes its connection)
        self.on_drop: Callable[[Subscription], None] | None = None

    def subscribe(self, types: Sequence[str], devices: Sequence[str], *, peer: str) -> Subscription:
        sub = Subscription(types, devices, size=self.size, peer=peer, on_drop=self._dropped)
        self.subs.add(sub)
        log.info("control_tail_started", peer=peer, **sub.describe())
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subs:
            self.subs.discard(sub)
            log.info("control_tail_ended", peer=sub.peer, sent=sub.sent, dropped=sub.dropped)

    def tap(self, event: Event) -> None:
        """The emitter's tap: offer one committed event to every client (sync, on the loop)."""
        for sub in tuple(self.subs):
            sub.offer(event)

    def _dropped(self, sub: Subscription, reason: str) -> None:
        self.dropped["slow"] += 1
        log.warning("control_tail_dropped", peer=sub.peer, reason=reason, sent=sub.sent,
                    dropped_total=sum(self.dropped.values()))
        self.subs.discard(sub)
        if self.on_drop is not None:
            self.on_drop(sub)

    def status(self) -> dict[str, Any]:
        return {"clients": len(self.subs), "dropped": dict(self.dropped), "queue": self.size}
