"""The forwarder: moves events from the durable outbox to the broker.

While the link is online it keeps up to ``max_inflight`` QoS 1 publishes in
flight, critical first, then by seq. An event is marked delivered only when
the broker's PUBACK for it arrives; one whose publish is lost with the
connection stays pending and goes out again, with the same id and seq, after
the reconnect.

Two ways to the wire:

* *Caught up* (the usual case): everything pending on disk is in flight or
  in a bounded in-memory queue of committed events (``max_queued``, 10,000
  by default: about 6 MB of events at most). A fresh event goes out
  at once when the window has room, else it joins the queue, and every
  PUBACK sends the next one from the queue, with no read of the disk.
* *Backlog* (after a reconnect or a restart, when the queue overflowed, or
  when a refused event is due again): the queue is dropped and pending
  events are read back from the outbox in batches until a read comes back
  short, which means the forwarder is caught up again.

Alarms first, whatever the mode: a critical event goes on the wire the
moment it is committed while the link is up, even when the window is full or
a backlog read is running; it never waits for the disk. An alarm the disk
refused (held, ``seq`` 0) is published from memory, again after every
reconnect until the broker has it, and is never marked delivered: once the
outbox stores it, it comes back with its seq and goes out again, same id.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from hub.events import Event, Priority
from hub.link import LinkDown, LinkError, MqttLink, PublishRefused
from hub.outbox import Outbox

log = structlog.get_logger("hub.forwarder")

DeliveredHook = Callable[[Event], None]


class Forwarder:
    """Drains the outbox into the link, honouring priority and PUBACKs."""

    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        *,
        topic: Callable[[Event], str],
        max_inflight: int = 50,
        refused_retry_s: float = 30.0,
        max_queued: int = 10_000,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.topic = topic
        self.max_inflight = max_inflight
        self.refused_retry_s = refused_retry_s
        self.delivered_total = 0
        self.on_delivered: list[DeliveredHook] = []
        self._inflight: dict[int, Event] = {}
        self._refused: dict[int, float] = {}
        # acked lately: a drain read that started before the PUBACK must not send it again
        self._recent: deque[int] = deque(maxlen=1024)
        self._recent_set: set[int] = set()
        self.max_queued = max_queued
        self._wake = asyncio.Event()
        # True while every pending event is in flight, refused (waiting to retry) or in _queue
        self._backlog_clear = False
        self._queue: list[tuple[int, int, Event]] = []  # heap of (rank, seq, event)
        self._queue_lost = False  # the queue was dropped since the current disk read began
        self._reading = False  # a backlog read of the disk is running
        self._held: dict[str, Event] = {}  # alarms the disk refused (seq 0), published from memory
        self._held_inflight: set[str] = set()
        self.send_errors = 0
        self._last_ack = time.monotonic()

    def submit(self, event: Event) -> None:
        """A newly committed event: publish now when caught up and the window has room.

        Otherwise it waits in the in-memory queue. In backlog mode the queue
        only holds what was committed while a disk read was running, so that
        nothing committed meanwhile is missed when that read comes back short;
        the rest of the time (offline, say) the event is only on disk.
        A critical event is sent at once whatever the mode, if the link is up.
        """
        if event.seq == 0:
            self._held[event.id] = event
            self._send_held(event)
            return
        if event.priority is Priority.CRITICAL and self.link.online.is_set():
            self._send(event)  # never behind the window, the queue or a disk read
            if event.seq in self._inflight:
                return
        if not (self._backlog_clear or self._reading):
            self._wake.set()
            return
        heapq.heappush(self._queue, (event.priority.rank, event.seq, event))
        if len(self._queue) > self.max_queued:  # too far behind: the disk holds them all anyway
            self._to_backlog()
        elif self._backlog_clear:
            self._pump()
        else:
            self._wake.set()

    def _pump(self) -> None:
        """Fill the window from the in-memory queue, best rank then seq first."""
        while self._queue and len(self._inflight) < self.max_inflight and self._backlog_clear:
            if not self.link.online.is_set():
                self._to_backlog()
                return
            _, _, event = heapq.heappop(self._queue)
            self._send(event)

    def _to_backlog(self) -> None:
        """Forget the queue: what it held is pending on disk and is read back from there."""
        self._backlog_clear = False
        self._queue.clear()
        self._queue_lost = True
        self._wake.set()

    def forget_held(self, event_id: str) -> None:
        """A held alarm is stored now: it goes out with its seq through the usual way."""
        self._held.pop(event_id, None)

    def _send_held(self, event: Event) -> None:
        if event.id in self._held_inflight or not self.link.online.is_set():
            return
        try:
            puback = self.link.publish_nowait(self.topic(event), event.to_json(), qos=1)
        except Exception as exc:  # any failure of the send path is a link failure: never an emit's
            self.send_errors += 1
            log.warning("held_publish_interrupted", event_id=event.id, error=f"{type(exc).__name__}: {exc}")
            return
        self._held_inflight.add(event.id)
        if puback is not None:
            puback.add_done_callback(lambda fut, event=event: self._held_puback(event, fut))

    def _held_puback(self, event: Event, fut: asyncio.Future[Any]) -> None:
        self._held_inflight.discard(event.id)
        exc = fut.exception() if not fut.cancelled() else LinkDown("cancelled")
        if exc is None and not getattr(fut.result(), "is_failure", False):
            if self._held.pop(event.id, None) is not None:
                log.warning("held_alarm_delivered", event_id=event.id, type=event.type)
                self._run_hooks(event)
            return
        log.info("held_publish_interrupted", event_id=event.id, error=str(exc or fut.result()))
        self._wake.set()  # sent again after the reconnect

    def _send(self, event: Event) -> None:
        if event.seq in self._inflight or event.seq in self._recent_set:
            return
        try:
            puback = self.link.publish_nowait(self.topic(event), event.to_json(), qos=1)
        except Exception as exc:  # any failure of the send path is a link failure: never an emit's
            if not isinstance(exc, LinkError):
                self.send_errors += 1
                log.error("event_publish_failed", event_id=event.id, seq=event.seq, error=f"{type(exc).__name__}: {exc}")
            self._to_backlog()
            log.info("event_publish_interrupted", event_id=event.id, seq=event.seq, error=str(exc))
            return
        if not self._inflight:
            self._last_ack = time.monotonic()  # the stall clock starts with the first event in flight
        self._inflight[event.seq] = event
        if puback is not None:
            puback.add_done_callback(lambda fut, event=event: self._puback(event, fut))

    def _puback(self, event: Event, fut: asyncio.Future[Any]) -> None:
        """The broker answered (or the link dropped) for one in-flight event."""
        self._inflight.pop(event.seq, None)
        self._last_ack = time.monotonic()
        if not self._backlog_clear:
            self._wake.set()  # the drain refills the window from disk
        exc = fut.exception() if not fut.cancelled() else LinkDown("cancelled")
        if exc is None:
            rc = fut.result()
            if getattr(rc, "is_failure", False):
                exc = PublishRefused(rc)
        if isinstance(exc, PublishRefused):
            self._refused[event.seq] = time.monotonic() + self.refused_retry_s
            log.error("event_refused_by_broker", event_id=event.id, seq=event.seq, reason=str(exc.reason))
            return
        if exc is not None:
            self._to_backlog()
            log.info("event_publish_interrupted", event_id=event.id, seq=event.seq, error=str(exc))
            return
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(event.seq)
        self._recent_set.add(event.seq)
        self.delivered_total += 1
        self.outbox.mark_delivered(event.seq)
        (log.info if event.priority.audited else log.debug)(
            "event_delivered", event_id=event.id, seq=event.seq, type=event.type
        )
        self._run_hooks(event)
        self._pump()

    def _run_hooks(self, event: Event) -> None:
        for hook in self.on_delivered:
            try:
                hook(event)
            except Exception:
                log.exception("delivered_hook_failed", event_id=event.id)

    async def run(self) -> None:
        """The drain loop; runs for the daemon's lifetime."""
        while True:
            if not self.link.online.is_set():
                self._to_backlog()
                await self.link.online.wait()
            for event in list(self._held.values()):  # from memory, after every reconnect
                self._send_held(event)
            if self._backlog_clear:
                self._wake.clear()  # before the pump: a fall to backlog inside it must wake us again
                self._pump()
                if not self._backlog_clear:
                    continue
                try:
                    async with asyncio.timeout(self._refused_due()):
                        await self._wake.wait()
                except TimeoutError:  # a refused event is due again: it is only on disk
                    self._to_backlog()
                continue
            room = self.max_inflight - len(self._inflight)
            # refill in batches: one read of the outbox for several free slots, not one per PUBACK
            if room <= 0 or (self._inflight and room < max(1, self.max_inflight // 4)):
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            self._refused = {s: t for s, t in self._refused.items() if t > now}
            skip = set(self._inflight) | set(self._refused)
            # what is committed from here on may miss this read: the queue keeps it
            self._queue.clear()
            self._queue_lost = False
            self._reading = True
            try:
                batch = await self.outbox.pending(limit=room, exclude=skip)
            except Exception:
                log.exception("outbox_read_failed")
                await asyncio.sleep(1.0)
                continue
            finally:
                self._reading = False
            for event in batch:
                if self.link.online.is_set():
                    self._send(event)
            if len(batch) < room and self.link.online.is_set() and not self._queue_lost:
                # caught up: everything pending is in flight, or was committed during the read and
                # is in the queue (sending one of those twice is skipped: it is in flight or acked)
                self._backlog_clear = True
                self._pump()
            else:
                await asyncio.sleep(0)

    def progress(self) -> float:
        """Monotonic time of the last sign of progress, for the supervisor: now while there is nothing
        in flight or no link (waiting is not stalling), else the last PUBACK."""
        if not self._inflight or not self.link.online.is_set():
            return time.monotonic()
        return self._last_ack

    def _refused_due(self) -> float | None:
        """Seconds until the first refused event may be tried again (None: nothing refused)."""
        if not self._refused:
            return None
        return max(0.0, min(self._refused.values()) - time.monotonic())

    def status(self) -> dict[str, Any]:
        return {
            "inflight": len(self._inflight),
            "queued": len(self._queue),
            "delivered": self.delivered_total,
            "refused": len(self._refused),
            "held": len(self._held),
            "send_errors": self.send_errors,
        }
