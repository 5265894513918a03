"""The forwarder: moves events from the durable outbox to the broker.

While the link is online it keeps up to ``max_inflight`` QoS 1 publishes in
flight. A fresh event goes out at once when nothing is waiting before it;
otherwise the pending events are read back from the outbox, critical first,
then by seq. An event is marked delivered only when the broker's PUBACK for
it arrives; one whose publish is lost with the connection stays pending and
goes out again, with the same id and seq, after the reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from hub.events import Event
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
        self._wake = asyncio.Event()
        self._backlog_clear = False

    def submit(self, event: Event) -> None:
        """A newly committed event: publish now if nothing waits before it, else wake the drain."""
        if self._backlog_clear and self.link.online.is_set() and len(self._inflight) < self.max_inflight:
            self._send(event)
        else:
            self._wake.set()

    def link_lost(self) -> None:
        """Called when the connection drops: the backlog must be read back from disk."""
        self._backlog_clear = False

    def _send(self, event: Event) -> None:
        if event.seq in self._inflight or event.seq in self._recent_set:
            return
        try:
            puback = self.link.publish_nowait(self.topic(event), event.to_json(), qos=1)
        except LinkError as exc:
            self._backlog_clear = False
            log.info("event_publish_interrupted", event_id=event.id, seq=event.seq, error=str(exc))
            return
        self._inflight[event.seq] = event
        if puback is not None:
            puback.add_done_callback(lambda fut, event=event: self._puback(event, fut))

    def _puback(self, event: Event, fut: asyncio.Future[Any]) -> None:
        """The broker answered (or the link dropped) for one in-flight event."""
        self._inflight.pop(event.seq, None)
        self._wake.set()
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
            self._backlog_clear = False
            log.info("event_publish_interrupted", event_id=event.id, seq=event.seq, error=str(exc))
            return
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(event.seq)
        self._recent_set.add(event.seq)
        self.delivered_total += 1
        self.outbox.mark_delivered(event.seq)
        log.info("event_delivered", event_id=event.id, seq=event.seq, type=event.type)
        for hook in self.on_delivered:
            try:
                hook(event)
            except Exception:
                log.exception("delivered_hook_failed", event_id=event.id)

    async def run(self) -> None:
        """The drain loop; runs for the daemon's lifetime."""
        while True:
            if not self.link.online.is_set():
                self._backlog_clear = False
                await self.link.online.wait()
            room = self.max_inflight - len(self._inflight)
            # refill in batches: one read of the outbox for several free slots, not one per PUBACK
            if room <= 0 or (self._inflight and room < max(1, self.max_inflight // 4)):
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            self._refused = {s: t for s, t in self._refused.items() if t > now}
            skip = set(self._inflight) | set(self._refused)
            try:
                batch = await self.outbox.pending(limit=room, exclude=skip)
            except Exception:
                log.exception("outbox_read_failed")
                await asyncio.sleep(1.0)
                continue
            for event in batch:
                if self.link.online.is_set():
                    self._send(event)
            if len(batch) < room:
                self._backlog_clear = True
                self._wake.clear()
                try:
                    async with asyncio.timeout(self.refused_retry_s if self._refused else None):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    def status(self) -> dict[str, Any]:
        return {"inflight": len(self._inflight), "delivered": self.delivered_total, "refused": len(self._refused)}
