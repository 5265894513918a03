"""The hub's side of the seam: the :class:`~drivers.base.HubPort` every driver is handed.

It is all a driver sees of the hub: device events go through the emitter
(commit, then publish; the device's telemetry limit; a reset closing its
alarm), reports to the rules runner (supervision, battery), buttons to the
hub's gestures (and the resident's check-ins), LEDs and buzzers to the alarm tracker, simulated operations
to the sim socket (created on first use, started with the hub), text paths
(a modem), the messages they receive and their paths' states to the SMS
fallback and the path board (:mod:`hub.fallback`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from drivers.base import ButtonInput, Emit, Indicator, PathState, SimOps, TextPath
from drivers.simctl import SimControl
from hub.alarms import AlarmTracker
from hub.checkins import CheckIns
from hub.emitter import Emitter
from hub.fallback import Fallback, PathBoard
from hub.gestures import ButtonGestures
from hub.rules_runner import RulesRunner

log = structlog.get_logger("hub.port")


class DriverPort:
    """What the hub gives its drivers (see :class:`drivers.base.HubPort`)."""

    def __init__(
        self,
        *,
        emitter: Emitter,
        rules: RulesRunner,
        alarms: AlarmTracker,
        devices: dict[str, Any],
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        resolve: Callable[[str], Path],
        sim_socket: Path,
        fallback: Fallback,
        paths: PathBoard,
    ) -> None:
        self.emitter = emitter
        self.rules = rules
        self.alarms = alarms
        self.devices = devices
        self._spawn = spawn
        self._resolve = resolve
        self._sim_socket = sim_socket
        self.fallback = fallback
        self.paths = paths
        self.sim_control: SimControl | None = None
        #: told of every report (device id, battery) after the rules: last seen for ``status``
        self.on_report: list[Callable[[str, float | None], None]] = []
        #: the resident's check-ins at a button (the check-in rule looked up at each one)
        self.checkins = CheckIns(
            rule=lambda: self.rules.rules.get("check_in"), feedback=alarms, emit=emitter.emit_logged, spawn=spawn
        )

    def _device(self, device: str | None) -> Any | None:
        return None if device is None else self.devices[device]

    async def emit(self, device: str | None, e: Emit) -> bool:
        from hub.outbox import StoreError

        try:
            await self.emitter.emit_for(self._device(device), e)
        except StoreError:
            return False
        return True

    def post(self, device: str, e: Emit) -> None:
        dev = self.devices[device]
        if e.closes is None and not self.emitter.admit(dev, e):
            return  # over the device's limit: dropped here, before any task
        if e.closes is not None:
            self._spawn(self.emitter.emit_for(dev, e), e.type)
        else:
            self._spawn(self.emitter.emit_logged(self.emitter.draft_for(dev, e)), e.type)

    async def emit_many(self, device: str, emits: Sequence[Emit]) -> list[Emit]:
        return await self.emitter.emit_many_for(self.devices[device], list(emits))

    def report(self, device: str, *, battery: float | None = None) -> None:
        self.rules.report(device, battery=battery)
        for hook in self.on_report:
            try:
                hook(device, battery)
            except Exception:  # a view must never cost a driver its reading
                log.exception("report_hook_failed", device=device)

    def now(self) -> float:
        return self.rules.now()

    def path(self, name: str) -> str:
        return str(self._resolve(name))

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        return self._spawn(coro, name)

    def button(self, device: str, *, input_name: str) -> ButtonInput:
        dev = self.devices[device]
        return ButtonGestures(
            dev,
            alarms=self.alarms,
            emit_now=self.emitter.emit_now,
            spawn=self._spawn,
            source=self.emitter.source(dev),
            input_name=input_name,
            checkins=self.checkins,
        )

    def feedback(self, device: str, indicator: Indicator) -> None:
        self.alarms.indicators[device] = indicator

    @property
    def sim(self) -> SimOps:
        if self.sim_control is None:
            self.sim_control = SimControl(self._sim_socket)
        return self.sim_control

    def text_path(self, device: str, path: TextPath) -> None:
        self.fallback.register(device, path)

    def text_received(self, device: str, number: str, text: str) -> None:
        try:
            self.fallback.received(device, number, text)
        except Exception:  # a message the hub cannot take must never cost the driver its inbox
            log.exception("text_received_failed", device=device)

    def path_state(self, device: str, state: PathState) -> None:
        self.paths.modem(device, state)

    def forget(self, device: str) -> None:
        """``device``'s driver is detached (a reload): its text path and its path state go with it."""
        self.fallback.forget(device)
        self.paths.forget(device)
