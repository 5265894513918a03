"""Held alarms: alarms the disk refused even after the reserve, kept in memory until it takes them.

A held alarm is returned at once as an event with ``seq`` 0 (the hub
publishes it from memory) and tried again every :data:`HOLD_RETRY_S`, ahead
of any newer alarm; once stored it gets the next seq under the same id, and
the :attr:`~hub.outbox.core.OutboxCore.on_stored` hooks are told.
"""

from __future__ import annotations

import asyncio

import structlog

from hub.events import Draft, Event
from hub.outbox.core import OutboxCore
from hub.outbox.readback import checked_body
from hub.outbox.values import StoreError

log = structlog.get_logger("hub.outbox")

#: How often a held alarm (its commit failed) is tried again.
HOLD_RETRY_S = 1.0


class HeldMixin(OutboxCore):
    """Holding refused alarms, and storing them once the disk takes them."""

    def _hold(self, drafts: list[Draft], exc: StoreError) -> list[Event | Exception]:
        """Keep alarm drafts the disk refused in memory; return them as events with seq 0."""
        out: list[Event | Exception] = []
        for draft in drafts:
            held = self._held.get(draft.id)
            if held is None:
                event = Event.from_draft(draft, hub=self.hub, resident=self.resident, seq=0)
                try:
                    checked_body(event)
                except Exception as bad:  # a bad draft is refused, whatever the disk does
                    out.append(bad)
                    continue
                self._held[draft.id] = (draft, event)
                held = (draft, event)
                log.error("alarm_held_in_memory", event_id=draft.id, type=draft.type, error=str(exc),
                          held=len(self._held))
            out.append(held[1])
        self._schedule_held_retry()
        return out

    @property
    def held(self) -> list[Event]:
        """Alarms not stored yet (seq 0), oldest first."""
        return [event for _, event in self._held.values()]

    def _schedule_held_retry(self) -> None:
        if self._held and self._held_retry is None:
            loop = asyncio.get_running_loop()
            self._held_retry = loop.call_later(HOLD_RETRY_S, self._held_retry_due)

    def _held_retry_due(self) -> None:
        self._held_retry = None
        self._held_due_now = True
        self._kick()

    def _held_due(self) -> bool:
        return bool(self._held) and self._held_due_now

    def retry_held(self) -> None:
        """Try the held alarms again now (space came back)."""
        if self._held:
            self._held_due_now = True
            self._kick()

    async def _store_held(self) -> None:
        self._held_due_now = False
        drafts = [draft for draft, _ in self._held.values()]
        try:
            results = await self._run(self._store_sync, drafts, True)
        except StoreError as exc:
            self._log_failure("alarm_hold_retry_failed", exc, held=len(self._held))
            self._schedule_held_retry()
            return
        for draft, result in zip(drafts, results):
            self._held.pop(draft.id, None)
            if isinstance(result, Exception):  # already stored (a duplicate id): nothing to publish
                log.warning("alarm_held_dropped", event_id=draft.id, error=str(result))
                continue
            log.warning("alarm_held_stored", event_id=result.id, seq=result.seq, type=result.type)
            for hook in self.on_stored:
                try:
                    hook(result)
                except Exception:
                    log.exception("stored_hook_failed", event_id=result.id)
