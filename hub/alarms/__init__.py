"""Alarm tracking: every alarm needs the central's application-level ack.

Like the SCAIP and SOS Access alarm protocols, the hub does not consider an
alarm handled when the broker has it, but when the alarm central says a
person took it (``cmd/ack``). Until then the device's feedback tells the
resident where the alarm stands:

* ``FAST`` blink: pressed, not yet at the broker;
* ``SLOW`` blink: the broker has it (PUBACK), waiting for the central;
* ``STEADY``: acknowledged, help is on its way (for ``steady_s``);
* ``FAULT``: the hub could not store the alarm and sends it from memory
  (:meth:`AlarmTracker.opened` with ``held=True``) until it is on disk or acknowledged;
* ``OFF``: cancelled at the device, or idle.

**Episodes.** Alarms are tracked per device *episode*, not one by one: the
first alarm of a device opens an episode, and every further alarm of the
same device while it is open (a repeat press, a nurse call repeated by the
nurse-call system, another ``cmd/test-alarm``) joins it. One ack of *any*
of its alarms, or of any of its reminders, ends the whole episode: the LED
turns steady, the reminders stop, and one ``alarm.acknowledged`` says which
alarms it closed (``data.closes``). An episode is keyed by device and
*group*: a device's own alarms (``alarm.button``), its test alarms
(``alarm.test``: an ack of a test must never silence a real alarm, and a
test must not be taken for a repeat of one) and, on a nurse-call line, each
call address (one line carries the calls of many rooms).

With no ack within ``ack_timeout_s`` of the episode's first alarm the
tracker emits ``alarm.unacknowledged`` (critical, cause = that first alarm)
and repeats it every ``unack_repeat_s`` until the ack comes or the episode is
cancelled: one reminder stream per episode, however many alarms join it.

Memory stays flat under a flood: an episode remembers its first alarm and
its newest :data:`EPISODE_IDS` alarms and reminders (an ack of a forgotten
middle one is refused as unknown; the newest and the first always work), and
at most :data:`KEEP_CLOSED` closed episodes are kept for "already acknowledged" answers.

The parts: :mod:`~hub.alarms.episode` (one episode, its states),
:mod:`~hub.alarms.book` (episodes by device and by id, bounded),
:mod:`~hub.alarms.restore` (what a restart re-opens),
:mod:`~hub.alarms.feedback` (the device's LED) and
:mod:`~hub.alarms.tracker` (:class:`AlarmTracker`: alarms in, acks and
cancels, reminders).
"""

from __future__ import annotations

from drivers.base import FeedbackMode, Indicator
from hub.alarms.episode import ALARM_TYPES, EPISODE_IDS, KEEP_CLOSED, AckResult, Alarm, AlarmState, episode_group
from hub.alarms.tracker import AlarmTracker, Emit

__all__ = [
    "ALARM_TYPES",
    "EPISODE_IDS",
    "KEEP_CLOSED",
    "AckResult",
    "Alarm",
    "AlarmState",
    "AlarmTracker",
    "Emit",
    "FeedbackMode",
    "Indicator",
    "episode_group",
]
