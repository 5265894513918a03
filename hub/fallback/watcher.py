"""When to send the SMS, to whom, and what a reply means: the core's half of the text-message seam.

Every :data:`TICK_S` the watcher looks at the open alarm episodes
(:meth:`hub.alarms.AlarmTracker.open_episodes`) and the MQTT link. An episode
that has waited ``fallback_after_s`` for the central's ack, or that is open
while the link has been down for ``link_down_after_s``, starts its fallback:
one SMS to each on-call number of its route (``nurse``, ``care``; ``any``:
both lists), then a reminder every ``reminder_s`` (at most ``max_reminders``)
while it stays open. A failed SMS is tried again after ``retry_s``, doubling.
Every SMS sent is a ``fallback.sent`` event, every failure a
``fallback.failed`` (cause = the episode's first alarm), committed to the
outbox like any event: the central learns the fallback was used once the
link is back. Test alarms get none unless ``test_alarms``.

A reply ``OK`` (case and spaces aside) from an on-call number acknowledges,
through the very handler of ``cmd/ack`` with the number as ``by``, the open
episodes that number was sent an SMS for; the LED turns steady. An OK that
answers no open episode's SMS (a late reply to one the central acknowledged
since) is logged and ignored, never taken for a newer alarm; so is anything
else from an on-call number, and everything from an unknown one.

The watcher knows the modem only as a :class:`~drivers.base.TextPath` the
driver registered; the sends go through the one whose path is up first.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from drivers.base import TextPath, TextSendError
from hub.alarms import Alarm, AlarmTracker
from hub.events import Draft, Event, Priority, Route
from hub.fallback.paths import PathBoard
from hub.fallback.text import compose

log = structlog.get_logger("hub.fallback")

#: Seconds between looks at the open episodes and the link.
TICK_S = 0.5
#: Longest wait between tries of a failing SMS when reminders are off.
MAX_RETRY_S = 600.0


def masked(number: str) -> str:
    """A phone number for the journal: its last three digits only."""
    return "*" * max(0, len(number) - 3) + number[-3:]


@dataclass
class _Target:
    """One number of one episode: SMS sent, failures in a row, when the next may go."""

    sent: int = 0
    failures: int = 0
    next_at: float = 0.0
    busy: bool = False


@dataclass
class _Episode:
    """An episode whose fallback started: why, and each number's progress."""

    reason: str
    started: float
    targets: dict[str, _Target] = field(default_factory=dict)


class Fallback:
    """The SMS fallback of one hub (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Callable[[], Any],
        hub_id: Callable[[], str],
        tz: Callable[[], ZoneInfo],
        alarms: AlarmTracker,
        paths: PathBoard,
        emit: Callable[[Draft], Awaitable[Event | None]],
        ack: Callable[[str, str], Awaitable[dict[str, Any]]],
        spawn: Callable[..., Any],
    ) -> None:
        self.settings = settings
        self.hub_id = hub_id
        self.tz = tz
        self.alarms = alarms
        self.board = paths
        self.emit = emit
        self.ack = ack
        self.spawn = spawn
        self.texts: dict[str, TextPath] = {}
        self.counters: Counter[str] = Counter()
        self._episodes: dict[str, _Episode] = {}
        self._sent_before: dict[str, Counter[str]] = {}  # restored: first alarm id -> number -> SMS sent

    # --- the seam ---------------------------------------------------------------------------

    def register(self, device: str, path: TextPath) -> None:
        """A driver's text path (``port.text_path``)."""
        self.texts[device] = path

    def forget(self, device: str) -> None:
        """``device``'s driver is gone (detached on a reload): no more sends through it."""
        self.texts.pop(device, None)

    def restore(self, history: list[tuple[Event, bool]]) -> None:
        """After a restart: the SMS already sent for episodes still open (stored ``fallback.sent``), not sent again."""
        for event, _ in history:
            if event.type == "fallback.sent" and event.cause and isinstance(event.data.get("to"), str):
                self._sent_before.setdefault(event.cause, Counter())[event.data["to"]] += 1

    # --- the schedule ------------------------------------------------------------------------

    async def run(self) -> None:
        """The supervised task: :meth:`tick` every :data:`TICK_S`."""
        while True:
            self.tick(time.monotonic())
            await asyncio.sleep(TICK_S)

    def tick(self, now: float) -> None:
        """Start, remind and retry the fallback of every open episode that needs it."""
        down_for = self.board.link_down_for()
        cfg = self.settings()
        open_ = {a.event.id: a for a in self.alarms.open_episodes()}
        for gone in set(self._episodes) - set(open_):
            del self._episodes[gone]
            self._sent_before.pop(gone, None)
        if not self.texts or not (cfg.nurse or cfg.care):
            return
        for alarm_id, alarm in open_.items():
            if alarm.event.type == "alarm.test" and not cfg.test_alarms:
                continue
            ep = self._episodes.get(alarm_id)
            if ep is None:
                if now - alarm.opened_at >= cfg.fallback_after_s:
                    reason = "unacknowledged"
                elif down_for >= cfg.link_down_after_s:
                    reason = "link_down"
                else:
                    continue
                ep = self._episodes[alarm_id] = _Episode(reason=reason, started=now)
                before = self._sent_before.get(alarm_id, Counter())
                for number in self.recipients(alarm.event.route, cfg):
                    ep.targets[number] = _Target(sent=before[number],
                                                 next_at=now + cfg.reminder_s if before[number] else now)
                log.warning("fallback_started", event_id=alarm_id, device=alarm.device, reason=reason,
                            numbers=len(ep.targets), link_down_s=round(down_for, 1))
            for number, target in ep.targets.items():
                if target.busy or now < target.next_at:
                    continue
                if target.sent and (cfg.reminder_s <= 0 or target.sent > cfg.max_reminders):
                    continue
                target.busy = True
                self.spawn(self._send(alarm, ep, number, target), "fallback-sms")

    @staticmethod
    def recipients(route: Route, cfg: Any) -> list[str]:
        """The on-call numbers of a route: nurse, care, or (any) both, each once."""
        lists = {Route.NURSE: [cfg.nurse], Route.CARE: [cfg.care]}.get(route, [cfg.nurse, cfg.care])
        return list(dict.fromkeys(n for numbers in lists for n in numbers))

    # --- sending -------------------------------------------------------------------------------

    def _path(self) -> tuple[str, TextPath]:
        order = [d for d in self.board.modem_up() if d in self.texts] or list(self.texts)
        return order[0], self.texts[order[0]]

    async def _send(self, alarm: Alarm, ep: _Episode, number: str, target: _Target) -> None:
        try:
            await self._send_one(alarm, ep, number, target)
        finally:
            target.busy = False

    async def _send_one(self, alarm: Alarm, ep: _Episode, number: str, target: _Target) -> None:
        cfg = self.settings()
        reminder = target.sent
        waited = round(time.monotonic() - alarm.opened_at, 3)
        device, path = self._path()
        text = compose(alarm.event, residence=cfg.residence or self.hub_id(), tz=self.tz(), reason=ep.reason,
                       reminder=reminder)
        common = {"to": number, "reason": ep.reason, "reminder": reminder, "alarm_type": alarm.event.type,
                  "device": device, "waited_s": waited}
        try:
            ref = await path.send_text(number, text)
        except Exception as raised:  # a text path that fails in another way has failed all the same: retried
            exc = raised if isinstance(raised, TextSendError) else TextSendError(
                "error", f"{type(raised).__name__}: {raised}")
            target.failures += 1
            cap = cfg.reminder_s if cfg.reminder_s > 0 else MAX_RETRY_S
            retry = min(cfg.retry_s * 2 ** (target.failures - 1), cap)
            target.next_at = time.monotonic() + retry
            self.counters["failed"] += 1
            log.error("fallback_sms_failed", event_id=alarm.event.id, to=masked(number), error=exc.reason,
                      detail=exc.detail, attempt=target.failures, retry_in_s=retry)
            await self._event("fallback.failed", Priority.CRITICAL, alarm, {
                **common, "error": exc.reason, "detail": exc.detail[:200], "attempt": target.failures,
                "retry_in_s": retry})
            return
        target.sent += 1
        target.failures = 0
        target.next_at = time.monotonic() + cfg.reminder_s if cfg.reminder_s > 0 else float("inf")
        self.counters["sent"] += 1
        log.warning("fallback_sms_sent", event_id=alarm.event.id, to=masked(number), reference=ref,
                    reminder=reminder, reason=ep.reason)
        await self._event("fallback.sent", Priority.HIGH, alarm, {**common, "reference": ref, "chars": len(text)})

    async def _event(self, type_: str, priority: Priority, alarm: Alarm, data: dict[str, Any]) -> None:
        await self.emit(Draft(type=type_, priority=priority, source=alarm.event.source, route=alarm.event.route,
                              data=data, cause=alarm.event.id))

    # --- replies --------------------------------------------------------------------------------

    def received(self, device: str, number: str, text: str) -> None:
        """A message arrived on ``device`` (``port.text_received``): an OK from an on-call number acks."""
        cfg = self.settings()
        oncall = set(cfg.nurse) | set(cfg.care)
        if number not in oncall:
            self.counters["unknown_sender"] += 1
            log.warning("sms_from_unknown_number", device=device, sender=masked(number), chars=len(text))
            return
        if "".join(text.split()).upper() != "OK":
            self.counters["not_understood"] += 1
            log.warning("sms_reply_not_understood", device=device, sender=masked(number), chars=len(text))
            return
        notified = [i for i, ep in self._episodes.items() if ep.targets.get(number, _Target()).sent]
        if not notified:  # a late reply, or one to an SMS this hub never sent: never taken for a new alarm
            self.counters["ok_nothing_open"] += 1
            log.warning("sms_ok_nothing_open", device=device, sender=masked(number))
            return
        for alarm_id in notified:
            self.spawn(self._ack(alarm_id, number), "fallback-ack")

    async def _ack(self, alarm_id: str, number: str) -> None:
        reply = await self.ack(alarm_id, number)
        self.counters["acknowledged" if reply.get("ok") else "ack_refused"] += 1
        log.info("sms_ack", event_id=alarm_id, by=masked(number), result=reply.get("result"), ok=reply.get("ok"))

    # --- views ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``status``: whether it is armed, the counters, the episodes in fallback."""
        cfg = self.settings()
        return {
            "armed": bool(self.texts) and bool(cfg.nurse or cfg.care),
            "text_paths": sorted(self.texts),
            "counters": dict(self.counters),
            "episodes": [{"event_id": i, "reason": ep.reason, "sent": sum(t.sent for t in ep.targets.values()),
                          "numbers": len(ep.targets)} for i, ep in self._episodes.items()],
        }
