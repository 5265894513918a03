"""What the outbox hands its callers besides events: its errors and its counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


#: A pending event as the forwarder pages it: ``(rank, seq, type, body, None)``; tuples sort in sending order.
#: The last slot is the :class:`~hub.events.Event` when the forwarder has it in hand (a fresh commit).
Row = tuple[int, int, str, bytes, Any]


class StoreError(Exception):
    """The store could not take the events: SQLite's own message (disk full, I/O error, not open)."""


class StoreFull(StoreError):
    """Telemetry refused because the state directory is short of space (alarms still go in)."""


@dataclass(frozen=True)
class OutboxStats:
    """What the heartbeat and ``status`` report about the store."""

    pending: int
    pending_alarms: int
    stored: int
    last_seq: int
    oldest_pending_ts: str | None
    evicted: int
    bytes: int = 0
    held: int = 0
    refused_full: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()
