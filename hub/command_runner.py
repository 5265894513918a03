"""What each command from the central does, once the gate (:mod:`hub.commandgate`) let it through.

``ack`` ends an alarm episode (or a rule's call: a ``checkin.missed``), ``away`` tells the
check-in rule the resident is away (or home again), ``test-alarm`` raises ``alarm.test`` end to
end, ``status`` answers with the status document, ``replay`` publishes stored
events again (same ids and seqs) and says what is missing; ``config`` and
``config-status`` go to :mod:`hub.configpush`. A command a driver
owns (``ble-forget``) goes to the drivers; the first that claims it answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from hub import commands
from hub.alarms import AckResult, AlarmTracker
from hub.emitter import HUB_SOURCE, Emitter
from hub.events import Draft, Priority, Route
from hub.link import LinkError, MqttLink
from hub.outbox import Outbox, StoreError
from hub.rules.away import parse_instant
from hub.rules_runner import RulesRunner

log = structlog.get_logger("hub.command_runner")

#: The longest absence ``cmd/away`` takes (a longer one is a mistake, or a move: change the config).
MAX_AWAY_S = 366 * 86400.0

#: Commands a driver owns: the command struct to the name and fields the driver is asked with.
DRIVER_COMMANDS: dict[type, str] = {commands.BleForget: "ble-forget"}


class CommandRunner:
    """Carries out a parsed command; returns the reply body."""

    def __init__(
        self,
        *,
        base: str,
        alarms: AlarmTracker,
        emitter: Emitter,
        outbox: Outbox,
        link: MqttLink,
        devices: dict[str, Any],
        status: Callable[[], Awaitable[dict[str, Any]]],
        drivers: Sequence[Any],
        rules: RulesRunner | None = None,
    ) -> None:
        self.base = base
        self.alarms = alarms
        self.emitter = emitter
        self.outbox = outbox
        self.link = link
        self.devices = devices
        self.status = status
        self.drivers = drivers
        self.rules = rules
        #: :class:`hub.configpush.ConfigPush`, set by the daemon once built (``config``, ``config-status``)
        self.configpush: Any = None

    async def run(self, cmd: Any) -> dict[str, Any]:
        if isinstance(cmd, commands.Ack):
            return await self._ack(cmd)
        if isinstance(cmd, commands.TestAlarm):
            return await self._test_alarm(cmd)
        if isinstance(cmd, commands.Status):
            return {"ok": True, **await self.status()}
        if isinstance(cmd, commands.Replay):
            return await self._replay(cmd)
        if isinstance(cmd, commands.Away):
            return await self._away(cmd)
        if isinstance(cmd, commands.PushConfig) and self.configpush is not None:
            return await self.configpush.push(cmd)
        if isinstance(cmd, commands.ConfigStatus) and self.configpush is not None:
            return self.configpush.status()
        name = DRIVER_COMMANDS.get(type(cmd))
        if name is not None:
            return self._driver_command(name, cmd)
        raise commands.CommandError("unsupported command")

    async def _ack(self, cmd: commands.Ack) -> dict[str, Any]:
        result, alarm = await self.alarms.acknowledge(cmd.event_id, cmd.by)
        if result is AckResult.UNKNOWN:
            called = await self.rules.acknowledge(cmd.event_id, cmd.by) if self.rules is not None else None
            if called is not None:  # a rule's call (checkin.missed): its re-alerts stop
                return called
            return {"ok": False, "error": f"no open alarm with id {cmd.event_id}", "result": result.value}
        # alarm_id: the alarm the ack names (a reminder names its episode's first); closes: the episode's alarms
        return {
            "ok": True,
            "result": result.value,
            "alarm_id": alarm.alarm_id_for(cmd.event_id) if alarm else None,
            "closes": alarm.ids if alarm else [],
        }

    async def _away(self, cmd: commands.Away) -> dict[str, Any]:
        if self.rules is None:
            return {"ok": False, "error": "this hub runs no rules"}
        try:
            start = parse_instant(cmd.from_) if cmd.from_ is not None else None
            until = parse_instant(cmd.until) if cmd.until is not None else None
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        if not cmd.cancel:
            if until is None:
                return {"ok": False, "error": "away needs until (or cancel: true to end an absence)"}
            if start is not None and until <= start:
                return {"ok": False, "error": f"until ({cmd.until}) is not after from ({cmd.from_})"}
            if until - time.time() > MAX_AWAY_S:
                return {"ok": False, "error": f"until is more than {MAX_AWAY_S // 86400:.0f} days ahead"}
        return await self.rules.away(start, None if cmd.cancel else until, reason=cmd.reason, by=cmd.by)

    async def _test_alarm(self, cmd: commands.TestAlarm) -> dict[str, Any]:
        if cmd.device is not None and cmd.device not in self.devices:
            return {"ok": False, "error": f"unknown device {cmd.device!r}"}
        dev = self.devices[cmd.device] if cmd.device else None
        source = self.emitter.source(dev) if dev else HUB_SOURCE
        route = dev.routing if dev else Route.ANY
        try:
            event = await self.emitter.emit(
                Draft(type="alarm.test", priority=Priority.HIGH, source=source, route=route, data={"note": cmd.note})
            )
        except StoreError as exc:
            return {"ok": False, "error": f"the hub cannot store the test alarm: {exc}"}
        return {"ok": True, "event_id": event.id, "seq": event.seq}

    def _driver_command(self, name: str, cmd: Any) -> dict[str, Any]:
        import msgspec

        args = msgspec.structs.asdict(cmd)
        for driver in self.drivers:
            reply = driver.command(name, args)
            if reply is not None:
                return reply
        return {"ok": False, "error": f"no driver here takes {name}: the hub has no such devices"}

    async def _replay(self, cmd: commands.Replay) -> dict[str, Any]:
        if cmd.to_seq < cmd.from_seq:
            return {"ok": False, "error": "to_seq is before from_seq"}
        if cmd.to_seq - cmd.from_seq + 1 > commands.MAX_REPLAY:
            return {"ok": False, "error": f"at most {commands.MAX_REPLAY} events per replay"}
        last = (await self.outbox.stats()).last_seq
        if cmd.from_seq > last:
            return {"ok": False, "error": f"from_seq {cmd.from_seq} is after the last seq {last}", "last_seq": last}
        events = await self.outbox.range(cmd.from_seq, cmd.to_seq)
        sent = 0
        for event in events:
            try:
                await self.link.publish(f"{self.base}/event/{event.type}", event.to_json(), qos=1, timeout=10)
                sent += 1
            except (LinkError, TimeoutError) as exc:
                return {"ok": False, "error": f"link lost during replay: {exc}", "sent": sent}
        have = {e.seq for e in events}
        missing = [s for s in range(cmd.from_seq, cmd.to_seq + 1) if s not in have]
        log.info("replay_done", from_seq=cmd.from_seq, to_seq=cmd.to_seq, sent=sent, missing=len(missing))
        return {"ok": True, "sent": sent, "missing": missing[:1000], "missing_count": len(missing)}
