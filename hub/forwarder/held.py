"""Alarms the disk refused (held, seq 0): published from memory after every reconnect until the broker has them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from hub.events import Event
from hub.link import LinkDown

if TYPE_CHECKING:
    from hub.forwarder.core import Forwarder

    _Base = Forwarder
else:
    _Base = object

log = structlog.get_logger("hub.forwarder")


class HeldMixin(_Base):
    """``forget_held`` and the publishing of held alarms; :meth:`Forwarder.submit` hands them over."""

    def forget_held(self, event_id: str) -> None:
        """A held alarm is stored now: it goes out with its seq through the usual way."""
        self._held.pop(event_id, None)

    def _send_held(self, event: Event) -> None:
        if event.id in self._held_inflight or not self.link.online.is_set():
            return
        try:
            puback = self.link.publish_nowait(self._topic(event.type), event.to_json(), qos=1)
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
