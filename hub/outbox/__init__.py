"""The durable outbox: every event is on disk before anything publishes it.

SQLite in WAL mode, one file in the state directory. :meth:`Outbox.append`
numbers a :class:`~hub.events.Draft` (the per-hub ``seq`` is allocated in the
same transaction that stores it) and returns only after the commit; the
commit is ``synchronous=FULL``, so an accepted event survives kill -9 and a
power cut. Events stay *pending* until :meth:`Outbox.mark_delivered`, which
the forwarder calls on the broker's PUBACK.

Appends made while a commit is running are committed together in the next
transaction (group commit), so a burst of telemetry costs one fsync, not one
per event, while a lone alarm still waits for exactly one. Alarms first: the
alarm drafts waiting (every ``alarm.*`` type and everything critical, see
:func:`is_alarm`) are committed in a transaction of their own, ahead of any
telemetry, and a telemetry transaction holds at most :data:`MAX_BATCH`
drafts, so an alarm waits behind one bounded batch at most.

The store is bounded by ``max_events`` and ``max_bytes``: when full it first
drops delivered events, then the oldest pending event of the lowest priority
that is not an alarm. Alarms are never evicted. Delivered events are kept for
``keep_delivered_s`` so the central can ask for a replay.

A full disk (another file filled the state directory): telemetry is refused
(:class:`StoreFull`, counted) while space is short; an alarm (any alarm lane
event: an acknowledgement too) that cannot be committed first gets the
reserve (:class:`~hub.diskspace.Ballast`) and is tried again. If even that
fails it is *held*: returned at once as an event with ``seq`` 0, published
from memory by the hub, and stored (with the next seq, same id) as soon as
the disk takes it. See the contract for what the
central sees.

SQLite work runs on one dedicated thread, so the asyncio loop does not wait on
the disk, with one exception: a critical event is committed on the loop itself
(one fsync, no thread hop), because an alarm is the most urgent work the hub
has. If the store's thread is in a transaction then (telemetry, delivered
marks), the loop waits for it, at most :data:`ALARM_LOCK_WAIT_S`, rather than
queue the alarm behind a thread hop and several loop turns, which under a
storm (a loop busy parsing, the thread short of the GIL) cost tens of
milliseconds. Alarms already queued keep their place: then the new one
queues too. Reads (the forwarder's backlog, replays,
status) run on a second connection and thread, so they never delay a commit.
WAL checkpoints run from housekeeping on a connection and thread of their own.

The parts, one module each, composed into :class:`Outbox` as mixins on
:class:`~hub.outbox.core.OutboxCore` (state, connections, open and close):
:mod:`~hub.outbox.schema` (tables, :func:`is_alarm`), :mod:`~hub.outbox.store`
(the SQL of one write transaction), :mod:`~hub.outbox.appends` (group commit
and the alarm lane), :mod:`~hub.outbox.held` (held alarms),
:mod:`~hub.outbox.space` (a full disk), :mod:`~hub.outbox.reads`,
:mod:`~hub.outbox.delivery` (delivered marks) and :mod:`~hub.outbox.upkeep`
(checkpoints, pruning, rule state); :mod:`~hub.outbox.readback` checks that
each body stored can be read back.
"""

from __future__ import annotations

from hub.outbox.appends import ALARM_LOCK_WAIT_S, MAX_BATCH, AppendsMixin
from hub.outbox.core import FAILURE_LOG_S, OutboxCore
from hub.outbox.delivery import MARK_RETRY_S, DeliveryMixin
from hub.outbox.held import HOLD_RETRY_S, HeldMixin
from hub.outbox.reads import ReadsMixin
from hub.outbox.schema import SCHEMA as _SCHEMA
from hub.outbox.schema import is_alarm
from hub.outbox.space import SpaceMixin
from hub.outbox.store import StoreMixin
from hub.outbox.upkeep import UpkeepMixin
from hub.outbox.values import OutboxStats, Row, StoreError, StoreFull

__all__ = [
    "ALARM_LOCK_WAIT_S",
    "FAILURE_LOG_S",
    "HOLD_RETRY_S",
    "MARK_RETRY_S",
    "MAX_BATCH",
    "Outbox",
    "OutboxStats",
    "Row",
    "StoreError",
    "StoreFull",
    "_SCHEMA",
    "is_alarm",
]


class Outbox(AppendsMixin, HeldMixin, SpaceMixin, ReadsMixin, DeliveryMixin, UpkeepMixin, StoreMixin, OutboxCore):
    """The durable, bounded, priority-ordered store of events to forward."""
