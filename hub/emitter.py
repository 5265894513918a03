"""Where every event comes in: commit it, then publish it, open its alarm, and let the rules see it.

A producer (a driver through its port, the alarm tracker, the rules, the hub
itself) hands the :class:`Emitter` a :class:`~hub.events.Draft`. The emitter
commits it to the outbox (and only then) hands it to the forwarder, opens
the alarm if it is one, logs it, and feeds it to the rules. A device's
telemetry over its limit (:mod:`hub.flood`) is dropped before anything is
allocated for it; a device's reset (an :class:`~drivers.base.Emit` with
``closes``) closes the alarm it names instead of being emitted as is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from drivers.base import Emit
from hub.alarms import ALARM_TYPES, AlarmTracker
from hub.events import Draft, Event, Priority, Source, rfc3339
from hub.flood import FloodGuard
from hub.forwarder import Forwarder
from hub.outbox import Outbox, StoreError

log = structlog.get_logger("hub.emitter")

#: The hub itself as an event's source.
HUB_SOURCE = Source(device="hub", kind="hub")
#: A full disk refuses every telemetry commit: one log line per this many seconds, with a count.
REFUSED_LOG_S = 5.0

Spawn = Callable[[Awaitable[Any], str], asyncio.Task[Any]]
OnCommitted = Callable[[Event], Awaitable[None]]
OnCommittedMany = Callable[[list[Event]], Awaitable[None]]
#: Told of every committed (or held) event, on the loop, after it was handed to the forwarder; must not block.
Tap = Callable[[Event], None]


class Emitter:
    """Commit, then publish: the one way an event enters the hub."""

    def __init__(
        self, outbox: Outbox, forwarder: Forwarder, devices: dict[str, Any], spawn: Spawn, *, flood: FloodGuard
    ) -> None:
        self.outbox = outbox
        self.forwarder = forwarder
        self.devices = devices
        self.spawn = spawn
        self.flood = flood
        #: set by the wiring: the alarms opened by committed alarm events
        self.alarms: AlarmTracker | None = None
        #: set by the wiring: what the rules do with each committed event
        self.on_committed: OnCommitted | None = None
        #: set by the wiring: the same for the events of one burst, in order, in one call (else each alone)
        self.on_committed_many: OnCommittedMany | None = None
        #: told of every committed event after the forwarder, the alarms and the log (the control socket's tail)
        self.taps: list[Tap] = []
        self._refused_logged_at = float("-inf")
        self._refused_unlogged = 0
        outbox.on_stored.append(self._held_stored)

    # --- drafts ------------------------------------------------------------------------

    async def emit(self, draft: Draft) -> Event:
        """Commit an event durably, then hand it on. Returns the numbered (or held, seq 0) event."""
        event = await self.outbox.append(draft)
        self._committed(event)
        await self._seen(event)
        return event

    async def emit_logged(self, draft: Draft) -> Event | None:
        """:meth:`emit`, with a failure logged instead of raised (the hub's own events)."""
        try:
            return await self.emit(draft)
        except Exception as exc:
            log.error("event_not_stored", type=draft.type, error=str(exc))
            return None

    async def emit_many(self, drafts: list[Draft]) -> list[Event | Exception]:
        """Emit a burst (one read of a serial port) with one future, not one task per event.

        Each result is the committed event, or the exception that refused its
        draft (logged here); the others are committed all the same.
        """
        if len(drafts) == 1 and drafts[0].priority is Priority.CRITICAL:
            return [await self.emit(drafts[0])]  # a lone alarm (a nurse call) takes the inline commit
        results = await self.outbox.append_many(drafts)
        # published together first (a batch, when they wait), then each one's feedback and log line; the
        # forwarder never raises (a failure of its own is logged there, and the event read from the disk)
        self.forwarder.submit_many([r for r in results if not isinstance(r, Exception)])
        debug = log.is_enabled_for(logging.DEBUG)  # once a burst, not once an event
        for draft, result in zip(drafts, results):
            if isinstance(result, StoreError):  # a full disk refuses every commit: one line per 5 s, counted
                self._refused_unlogged += 1
                now = time.monotonic()
                if now - self._refused_logged_at >= REFUSED_LOG_S:
                    log.error("event_refused", type=draft.type, device=draft.source.device, error=str(result),
                              refused=self._refused_unlogged)
                    self._refused_logged_at, self._refused_unlogged = now, 0
            elif isinstance(result, Exception):
                log.error("event_refused", type=draft.type, device=draft.source.device, error=str(result))
            else:
                self._committed(result, submitted=True, debug=debug)
        await self._seen_many([r for r in results if not isinstance(r, Exception)])
        return results

    def emit_now(self, draft: Draft) -> asyncio.Task[Event]:
        """Emit from a driver callback on the loop, as fast as the disk allows.

        An alarm is committed, published and shown on the LED before this
        returns (after the store's current transaction, if one is running):
        no task, no loop turn in between. Anything else (or an alarm behind
        other alarms) is emitted by a task. Either way the returned task ends
        with the committed event, after the rules saw it.
        """
        try:
            event = self.outbox.append_now(draft)
        except Exception:  # refused draft: let emit() raise it in a task, where it is logged
            event = None
        if event is None:
            return self.spawn(self.emit(draft), draft.type)
        self._committed(event)
        return self.spawn(self._seen_then(event), draft.type)

    async def _seen_then(self, event: Event) -> Event:
        await self._seen(event)
        return event

    async def _seen(self, event: Event) -> None:
        if self.on_committed is not None:
            await self.on_committed(event)

    async def _seen_many(self, events: list[Event]) -> None:
        if self.on_committed_many is not None:
            await self.on_committed_many(events)
        else:
            for event in events:
                await self._seen(event)

    def _committed(self, event: Event, *, submitted: bool = False, debug: bool | None = None) -> None:
        """A committed (or held) event: publish it first (unless ``submitted`` already), then feedback and
        the log line.

        Nothing here may raise into the emit that called it: the event is
        accepted already, and the caller's other events must still be handed on.
        """
        if not submitted:
            self.forwarder.submit(event)  # never raises
        if event.type in ALARM_TYPES and self.alarms is not None:
            try:
                self.alarms.opened(event, held=event.seq == 0)
            except Exception:
                log.exception("alarm_open_failed", event_id=event.id)
        audited = event.priority.audited
        if audited or (log.is_enabled_for(logging.DEBUG) if debug is None else debug):  # telemetry: not even built
            (log.info if audited else log.debug)(
                "event_committed" if event.seq else "event_held",
                event_id=event.id,
                seq=event.seq,
                type=event.type,
                priority=event.priority.value,
                device=event.source.device,
            )
        for tap in self.taps:
            try:
                tap(event)
            except Exception:
                log.exception("event_tap_failed", event_id=event.id)

    def _held_stored(self, event: Event) -> None:
        """A held alarm is on disk now, with its seq: it goes out again that way (same id)."""
        self.forwarder.forget_held(event.id)
        self.forwarder.submit(event)  # never raises
        if event.type in ALARM_TYPES and self.alarms is not None:
            self.alarms.stored(event.id)
        log.info("event_committed", event_id=event.id, seq=event.seq, type=event.type,
                 priority=event.priority.value, device=event.source.device, was_held=True)

    # --- a device's Emits ----------------------------------------------------------------

    def source(self, dev: Any) -> Source:
        """The event source of a configured device."""
        return Source(device=dev.id, kind=dev.kind, room=dev.room)

    def draft_for(self, dev: Any | None, e: Emit, ts: str | None = None) -> Draft:
        """A driver's :class:`~drivers.base.Emit` as a draft of ``dev`` (None: of the hub); ``ts`` when known
        (one read's events share the read's), else now."""
        if dev is None:
            return Draft(type=e.type, priority=e.priority, source=HUB_SOURCE, data=e.data, ts=ts or rfc3339())
        return Draft(type=e.type, priority=e.priority, source=self.source(dev), route=dev.routing, data=e.data,
                     ts=ts or rfc3339())

    async def emit_for(self, dev: Any | None, e: Emit) -> Event | None:
        """Emit a driver's Emit as an event of ``dev`` (None: of the hub).

        Telemetry over the device's limit is dropped here (None). An Emit with
        ``closes`` (a device's reset) goes to :meth:`AlarmTracker.cancel_matching`
        instead: the ``alarm.cancelled`` of the matching alarm, or None (logged,
        counted) without one.
        """
        if e.closes is not None:
            return await self._cancel_for(dev, e)
        if dev is not None and not self.admit(dev, e):
            return None
        return await self.emit(self.draft_for(dev, e))

    async def emit_many_for(self, dev: Any, emits: list[Emit]) -> list[Emit]:
        """Emit a driver's burst as events of ``dev``, in order; returns the Emits the store refused.

        Refused (a full disk: telemetry) means the driver tries again before it
        acknowledges anything; taken means committed, held as an alarm, or
        dropped by the device's flood limit (sending it again would not help).
        A reset (``closes``) in the burst waits for what came before it, so a
        call and its reset read at once close each other.
        """
        refused: list[Emit] = []
        batch: list[tuple[Emit, Draft]] = []
        now, ts = time.monotonic(), rfc3339()  # one read: one time for its flood limit and its events

        async def flush() -> None:
            nonlocal batch
            if batch:
                results = await self.emit_many([d for _, d in batch])
                refused.extend(e for (e, _), r in zip(batch, results) if isinstance(r, StoreError))
                batch = []

        for e in emits:
            if e.closes is not None:
                await flush()
                try:
                    await self._cancel_for(dev, e)
                except StoreError:
                    refused.append(e)
            elif self.admit(dev, e, now):
                batch.append((e, self.draft_for(dev, e, ts)))
        await flush()
        return refused

    async def _cancel_for(self, dev: Any | None, e: Emit) -> Event | None:
        assert self.alarms is not None and e.closes is not None
        data = dict(e.data)
        how = str(data.pop("how", "device"))
        return await self.alarms.cancel_matching(dev.id if dev else HUB_SOURCE.device, dict(e.closes), how=how, data=data)

    def admit(self, dev: Any, e: Emit, now: float | None = None) -> bool:
        """Whether ``dev``'s telemetry limit lets ``e`` in (alarms always); ``now``: monotonic, when known."""
        if e.priority is Priority.CRITICAL:
            return True
        ok, flooding = self.flood.admit(dev.id, now)
        if flooding is not None:
            self.flooding(dev, flooding)
        return ok

    def flooding(self, dev: Any, data: dict[str, Any]) -> None:
        """Say that ``dev`` started (or stopped) flooding: ``device.flooding``."""
        (log.warning if data["state"] == "started" else log.info)("device_flooding", device=dev.id, **data)
        draft = Draft(type="device.flooding", priority=Priority.HIGH, source=self.source(dev),
                      route=dev.routing, data=data)
        self.spawn(self.emit_logged(draft), "device.flooding")

    def flood_tick(self) -> None:
        """Flooding episodes that ended while their device stayed quiet (once a second)."""
        for device, data in self.flood.tick():
            if device in self.devices:
                self.flooding(self.devices[device], data)
