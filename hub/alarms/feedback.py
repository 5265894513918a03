"""What a device shows while its alarms are open: the feedback mode, and the STEADY period after an ack."""

from __future__ import annotations

import asyncio

import structlog

from drivers.base import FeedbackMode, Indicator
from hub.alarms.book import EpisodeBook

log = structlog.get_logger("hub.alarms")

#: How long a device shows CHECKIN after a check-in (the pattern plays once within it), before it
#: goes back to what its alarms say.
CHECKIN_SHOW_S = 3.0


class DeviceFeedback(EpisodeBook):
    """Drives each device's :class:`~drivers.base.Indicator` from its open episodes."""

    def __init__(self, *, steady_s: float) -> None:
        super().__init__()
        self.steady_s = steady_s
        self.indicators: dict[str, Indicator] = {}
        self._steady: dict[str, asyncio.Task[None]] = {}  # device -> its STEADY period
        self._checkin: dict[str, asyncio.Task[None]] = {}  # device -> its CHECKIN confirmation
        self._shown: dict[str, FeedbackMode] = {}

    def feedback(self, device: str) -> FeedbackMode:
        """What the device shows: the least settled of its open episodes, else STEADY after an ack, else OFF.

        FAULT (an alarm not stored) before FAST (not at the broker) before
        SLOW (waiting for the ack); an ack ends its episode, so STEADY wins over its FAULT.
        A check-in shows CHECKIN for :data:`CHECKIN_SHOW_S` unless an alarm of the device is open.
        """
        open_ = self._open_of(device)
        if any(a.held for a in open_):
            return FeedbackMode.FAULT
        if any(a.undelivered for a in open_):
            return FeedbackMode.FAST
        if open_:
            return FeedbackMode.SLOW
        if device in self._checkin:
            return FeedbackMode.CHECKIN
        if device in self._steady:
            return FeedbackMode.STEADY
        return FeedbackMode.OFF

    def confirm_checkin(self, device: str) -> bool:
        """The resident checked in at ``device``: show CHECKIN once (unless one of its alarms is open, whose
        state wins), then what its state says. Returns whether the device has an indicator to show it on."""
        old = self._checkin.pop(device, None)
        if old is not None:
            old.cancel()
        self._checkin[device] = asyncio.create_task(self._checkin_then_back(device))
        self._shown.pop(device, None)  # a second check-in plays the pattern again
        self._refresh(device)
        return device in self.indicators

    async def _checkin_then_back(self, device: str) -> None:
        await asyncio.sleep(CHECKIN_SHOW_S)
        self._checkin.pop(device, None)
        self._refresh(device)

    def reshow(self, device: str) -> None:
        """The device's indicator was replaced (its driver attached again): show it what the device's state says."""
        self._shown.pop(device, None)
        self._refresh(device)

    def forget_indicator(self, device: str) -> None:
        """The device's indicator is gone (its driver detached); its alarms stay as they are."""
        self.indicators.pop(device, None)
        self._shown.pop(device, None)

    def _refresh(self, device: str) -> None:
        ind = self.indicators.get(device)
        if ind is None:
            return
        mode = self.feedback(device)
        if self._shown.get(device) is mode:
            return
        self._shown[device] = mode
        try:
            ind.show(mode)
        except Exception:  # a broken LED must not stop the alarm
            log.exception("feedback_failed", device=device, mode=mode.value)

    def _start_steady(self, device: str) -> None:
        self._stop_steady(device)
        self._steady[device] = asyncio.create_task(self._steady_then_off(device))

    def _stop_steady(self, device: str) -> None:
        timer = self._steady.pop(device, None)
        if timer is not None:
            timer.cancel()

    async def _steady_then_off(self, device: str) -> None:
        await asyncio.sleep(self.steady_s)
        self._steady.pop(device, None)
        self._refresh(device)
