"""The rules runner: every committed event and every second through the local rules, their state kept.

The rules themselves (:mod:`hub.rules`) are pure; this is what drives them
in the daemon: each committed event (:meth:`RulesRunner.on_event`), each
device report (:meth:`report`, for supervision), a tick a second
(:meth:`run`); what they decide is emitted; their state is saved in the
outbox and restored at start, with the events they had not seen caught up.
A wall-clock step (NTP after a boot without RTC) moves the rules' instants
before they see the time (:meth:`now`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog

from hub.clockstep import ClockWatch
from hub.events import Draft, Event, Source
from hub.outbox import Outbox, StoreError

log = structlog.get_logger("hub.rules_runner")

#: How often the rules look at the clock.
RULES_TICK_S = 1.0

EmitLogged = Callable[[Draft], Awaitable[Event | None]]
Spawn = Callable[[Awaitable[Any], str], asyncio.Task[Any]]


def epoch(ts: str) -> float:
    """An event's ``ts`` as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class RulesRunner:
    """Feeds the rules, emits their outputs, keeps their state across restarts."""

    def __init__(
        self,
        rules: Any,
        outbox: Outbox,
        emit: EmitLogged,
        spawn: Spawn,
        *,
        devices: dict[str, Any],
        source: Callable[[Any], Source],
    ) -> None:
        self.rules = rules
        self.outbox = outbox
        self.emit = emit
        self.spawn = spawn
        self.devices = devices
        self.source = source
        self.clock = ClockWatch()  # tells the rules of wall-clock steps (NTP after a boot without RTC)
        #: monotonic time of the last tick (the supervisor's sign of progress)
        self.ticked_at = time.monotonic()
        #: called every tick before the rules (the flood guard's episode ends)
        self.on_tick: Callable[[], None] | None = None
        self._seq = 0  # the last event the rules have seen
        self._saved: bytes | None = None
        self._dirty = False
        self._save_failures = 0

    def now(self) -> float:
        """The time for the rules: now, after moving their instants by any wall-clock step since the last look."""
        now, step = self.clock.read()
        if step:
            log.warning("clock_stepped", step_s=round(step, 3))
            self.rules.clock_stepped(step)
            self._dirty = True
        return now

    def replace(self, rules: Any) -> None:
        """Run ``rules`` from now on (a config reload; the caller carried their state over); saved on the next tick."""
        self.rules = rules
        self._dirty = True

    async def on_event(self, event: Event) -> None:
        """Feed one committed event to the rules; emit what they decide; save their state."""
        if event.type.startswith("rule."):
            return
        try:
            outputs = self.rules.on_event(event, self.now())
        except Exception:  # a rule bug must not lose the event (it is committed already)
            log.exception("rules_failed", event_id=event.id, type=event.type)
            return
        self._seq = max(self._seq, event.seq)
        if outputs:
            await self._emit(outputs)
        else:
            self._dirty = True  # saved by the ticker; a crash before that is caught up from the outbox

    async def on_events(self, events: list[Event]) -> None:
        """Feed the committed events of one burst (one serial read) to the rules at one time (the read's):
        what fell due first, then what each event causes, in order, then what that made due at once (as
        :meth:`on_event` for each, with one tick for the lot); emit it once the last was seen; save their state."""
        events = [e for e in events if not e.type.startswith("rule.")]
        if not events:
            return
        if len(events) == 1:
            return await self.on_event(events[0])
        now = self.now()
        outputs: list[Any] = []
        try:  # what fell due before the read: once for all of it (a tick at one time fires a deadline once)
            outputs += self.rules.tick(now)
        except Exception:
            log.exception("rules_tick_failed")
        for event in events:
            try:
                outputs += self.rules.handle(event, now)
            except Exception:  # a rule bug must not lose the event (it is committed already)
                log.exception("rules_failed", event_id=event.id, type=event.type)
                continue
            self._seq = max(self._seq, event.seq)
        try:  # what the read's events made due at once
            outputs += self.rules.tick(now)
        except Exception:
            log.exception("rules_tick_failed")
        if outputs:
            await self._emit(outputs)
        else:
            self._dirty = True

    def report(self, device: str, *, battery: float | None = None) -> None:
        """A device was heard from (any reading, not only events): for supervision."""
        try:
            outputs = self.rules.report(device, self.now(), battery=battery)
        except Exception:
            log.exception("rules_report_failed", device=device)
            return
        if outputs:
            self.spawn(self._emit(outputs), "rules")

    async def acknowledge(self, event_id: str, by: str) -> dict[str, Any] | None:
        """``cmd/ack`` of a rule's call (a ``checkin.missed``): the reply, or None when no rule knows the id."""
        rule = self.rules.get("check_in")
        if rule is None:
            return None
        reply = rule.acknowledge(event_id, by, self.now())
        if reply is not None:
            log.info("rule_call_acknowledged", rule=rule.name, event_id=event_id, by=by, result=reply["result"])
            await self._save()
        return reply

    async def away(self, start: float | None, until: float | None, *, reason: str | None, by: str) -> dict[str, Any]:
        """``cmd/away``: the resident is away from ``start`` (None: now) until ``until``; ``until`` None or not
        after now ends it. The reply; ``{"ok": false, ...}`` when no check-in rule is configured."""
        rule = self.rules.get("check_in")
        if rule is None:
            return {"ok": False, "error": "no check-in rule here: [rules.check_in] is not enabled on this hub"}
        now = self.now()
        if until is None or until <= now:
            reply = rule.end_away(by=by, now=now)
            log.info("away_ended", by=by, previous=reply["previous"])
        else:
            reply = rule.set_away(now if start is None else start, until, reason=reason, by=by, now=now)
            log.info("away_set", by=by, away=reply["away"], away_now=reply["away_now"])
        await self._save()
        return reply

    async def _emit(self, outputs: list[Any]) -> None:
        for out in outputs:
            dev = self.devices.get(out.device) if out.device else None
            await self.emit(out.to_draft(self.source(dev) if dev else None))
        await self._save()

    async def _save(self) -> None:
        """Save the rules' state if it changed; a store that refuses keeps it dirty for the next tick."""
        self._dirty = False
        blob = json.dumps({"seq": self._seq, "state": self.rules.state()}, sort_keys=True).encode()
        if blob == self._saved:
            return
        try:
            await self.outbox.save_state("rules", blob)
        except (StoreError, sqlite3.Error) as exc:  # a full disk: the outbox's health says so
            self._dirty = True
            if self._save_failures % 60 == 0:
                log.error("rules_state_not_saved", error=str(exc), failures=self._save_failures + 1)
            self._save_failures += 1
            return
        self._save_failures = 0
        self._saved = blob

    async def restore(self) -> None:
        """Rule state survives a restart: restore it, then replay the events it had not seen yet."""
        blob = await self.outbox.load_state("rules")
        now = time.time()
        if blob:
            saved = json.loads(blob)
            broken = self.rules.restore(saved.get("state", {}), now)
            if broken:
                log.warning("rules_state_dropped", rules=broken)
            self._seq = int(saved.get("seq", 0))
            self._saved = blob
        last = (await self.outbox.stats()).last_seq
        missed = await self.outbox.range(self._seq + 1, last) if last > self._seq else []
        for event in missed:
            if not event.type.startswith("rule."):
                # catch up silently, at the time each event happened: they were handled before the crash
                self.rules.on_event(event, epoch(event.ts))
            self._seq = event.seq
        self.clock = ClockWatch()  # steps count from here: the restored instants are in today's clock
        self._dirty = True  # saved on the first tick: a rule's start (when it began watching) survives a crash
        log.info("rules_restored", rules=[r.name for r in self.rules.rules], caught_up=len(missed))

    async def run(self) -> None:
        """The tick loop, for the daemon's lifetime (supervised)."""
        while True:
            await asyncio.sleep(RULES_TICK_S)
            self.ticked_at = time.monotonic()
            if self.on_tick is not None:
                self.on_tick()
            try:
                outputs = self.rules.tick(self.now())
            except Exception:
                log.exception("rules_tick_failed")
                continue
            if outputs:
                await self._emit(outputs)
            elif self._dirty:
                await self._save()
