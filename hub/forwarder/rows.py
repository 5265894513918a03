"""What the forwarder tells apart in a row of the outbox: the alarm lane, audited events, telemetry."""

from __future__ import annotations

from hub.outbox import Row
from hub.outbox.schema import is_alarm_type

#: Critical events keep rank 0 (see :class:`~hub.events.Priority`); audited ones (critical, high) at most 1.
AUDITED_RANK = 1


def is_audited(row: Row) -> bool:
    """An alarm lane or high event: logged when delivered, never batched."""
    return row[0] <= AUDITED_RANK or is_alarm_type(row[2])  # is_alarm, rank for priority: critical is rank 0


def is_telemetry(row: Row) -> bool:
    """Normal or low priority, not the alarm lane: what may go in a batch."""
    return not is_audited(row)
