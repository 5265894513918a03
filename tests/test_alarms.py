"""The alarm tracker in process: episodes per device, one ack for all, reminders, FAULT, resets.

A fake emit numbers the drafts as the outbox would; an indicator records
every pattern the device was told to show. Times are short real sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import types
from typing import Any

import pytest
import structlog

from drivers.base import Emit as DriverEmit
from hub.alarms import EPISODE_IDS, KEEP_CLOSED, AckResult, AlarmState, AlarmTracker, FeedbackMode
from hub.events import Draft, Event, Priority, Route, Source

BUTTON = Source(device="button-1", kind="alarm_button", room="bedroom")
NURSE = Source(device="nursecall-1", kind="nurse_call")
HUB = Source(device="hub", kind="hub")


class Central:
    """What the hub emitted, numbered like the outbox does."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._seq = itertools.count(1)

    async def emit(self, draft: Draft) -> Event:
        event = make(draft.type, draft.source, data=draft.data, cause=draft.cause, seq=next(self._seq), route=draft.route)
        self.events.append(event)
        return event

    def of(self, type: str) -> list[Event]:
        return [e for e in self.events if e.type == type]


class Led:
    def __init__(self) -> None:
        self.shown: list[FeedbackMode] = []

    def show(self, mode: FeedbackMode) -> None:
        self.shown.append(mode)

    @property
    def mode(self) -> FeedbackMode:
        return self.shown[-1] if self.shown else FeedbackMode.OFF


_seq = itertools.count(10_000)


def make(type: str, source: Source = BUTTON, *, seq: int | None = None, cause: str | None = None, route: Route = Route.ANY, **kw: Any) -> Event:
    data = kw.pop("data", None)
    d = Draft(type=type, priority=Priority.CRITICAL, source=source, route=route, data=data if data is not None else kw, cause=cause)
    return Event(
        v=1, id=d.id, hub="hub-test", seq=seq if seq is not None else next(_seq), ts=d.ts, type=d.type,
        priority=d.priority, source=d.source, resident="R-1", route=d.route, data=d.data, cause=d.cause,
    )


def tracker(central: Central, **kw: Any) -> tuple[AlarmTracker, Led]:
    kw.setdefault("ack_timeout_s", 60.0)
    kw.setdefault("unack_repeat_s", 60.0)
    t = AlarmTracker(central.emit, **kw)
    led = Led()
    t.indicators["button-1"] = led
    return t, led


def press(t: AlarmTracker, *, repeat_of: Event | None = None, delivered: bool = True) -> Event:
    data = {"input": "gpio", "gesture": "press", **({"repeat": True} if repeat_of else {})}
    e = make("alarm.button", data=data, cause=repeat_of.id if repeat_of else None)
    t.opened(e)
    if delivered:
        t.delivered(e)
    return e


# =========================================================================== one ack ends the episode


async def test_ack_of_the_first_press_ends_the_repeat_too() -> None:
    central = Central()
    t, led = tracker(central, ack_timeout_s=0.05, unack_repeat_s=0.05)
    first = press(t)
    repeat = press(t, repeat_of=first)
    await asyncio.sleep(0.12)
    assert central.of("alarm.unacknowledged"), "reminders flow while nobody acks"
    result, alarm = await t.acknowledge(first.id, "operator-7")
    assert result is AckResult.ACKNOWLEDGED and alarm is not None
    assert led.mode is FeedbackMode.STEADY
    (acked,) = central.of("alarm.acknowledged")
    assert acked.cause == first.id and acked.data["by"] == "operator-7"
    assert acked.data["closes"] == [first.id, repeat.id] and acked.data["alarms"] == 2
    n = len(central.of("alarm.unacknowledged"))
    await asyncio.sleep(0.2)
    assert len(central.of("alarm.unacknowledged")) == n, "no reminder for the repeat after the ack of the first"
    assert led.mode is FeedbackMode.STEADY
    assert t.status() == []
    assert (await t.acknowledge(repeat.id, "operator-8"))[0] is AckResult.ALREADY
    assert len(central.of("alarm.acknowledged")) == 1
    t.close()


async def test_ack_of_the_repeat_or_of_a_reminder_ends_the_episode_and_names_the_alarm() -> None:
    for which in ("repeat", "reminder"):
        central = Central()
        t, led = tracker(central, ack_timeout_s=0.03, unack_repeat_s=0.03)
        first = press(t)
        repeat = press(t, repeat_of=first)
        await asyncio.sleep(0.05)
        reminder = central.of("alarm.unacknowledged")[-1]
        acked_id = repeat.id if which == "repeat" else reminder.id
        result, alarm = await t.acknowledge(acked_id, "op")
        assert result is AckResult.ACKNOWLEDGED and alarm is not None
        (acked,) = central.of("alarm.acknowledged")
        assert acked.cause == (repeat.id if which == "repeat" else first.id)
        assert alarm.alarm_id_for(acked_id) == acked.cause
        assert set(acked.data["closes"]) == {first.id, repeat.id}
        assert led.mode is FeedbackMode.STEADY
        n = len(central.of("alarm.unacknowledged"))
        await asyncio.sleep(0.1)
        assert len(central.of("alarm.unacknowledged")) == n
        t.close()


async def test_one_reminder_stream_per_episode_however_many_presses() -> None:
    central = Central()
    t, _ = tracker(central, ack_timeout_s=0.1, unack_repeat_s=0.1)
    first = press(t)
    for _ in range(300):
        press(t, repeat_of=first)
    await asyncio.sleep(0.25)  # two reminders due for one stream
    reminders = central.of("alarm.unacknowledged")
    assert 1 <= len(reminders) <= 3
    assert {r.cause for r in reminders} == {first.id}
    assert [r.data["reminder"] for r in reminders] == list(range(1, len(reminders) + 1))
    assert reminders[0].data["alarms"] == 301
    (open_,) = t.status()
    assert open_["alarms"] == 301 and open_["event_id"] == first.id
    t.close()


async def test_repeated_test_alarms_share_one_stream_and_never_join_a_real_alarm() -> None:
    central = Central()
    t, led = tracker(central, ack_timeout_s=0.1, unack_repeat_s=10.0)
    hub_tests = [make("alarm.test", HUB, note=str(i)) for i in range(150)]
    dev_tests = [make("alarm.test", BUTTON, note=str(i)) for i in range(150)]
    for e in hub_tests + dev_tests:
        t.opened(e)
    assert t.active("button-1") is None, "a test is not the device's own alarm: a press is a fresh alarm"
    real = press(t)
    await asyncio.sleep(0.2)
    reminders = central.of("alarm.unacknowledged")
    assert sorted(r.cause for r in reminders) == sorted([hub_tests[0].id, dev_tests[0].id, real.id])
    assert len(t.status()) == 3
    # acking a test never silences the real alarm
    await t.acknowledge(dev_tests[-1].id, "installer")
    (acked,) = central.of("alarm.acknowledged")
    assert acked.cause == dev_tests[-1].id and acked.data["alarms"] == 150
    assert [a["event_id"] for a in t.status()] == [hub_tests[0].id, real.id]
    assert led.mode is FeedbackMode.SLOW, "the real alarm still waits for its ack"
    assert (await t.acknowledge(hub_tests[3].id, "installer"))[0] is AckResult.UNKNOWN  # forgotten middle one
    assert (await t.acknowledge(hub_tests[-5].id, "installer"))[0] is AckResult.ACKNOWLEDGED
    await t.acknowledge(real.id, "operator")
    assert t.status() == [] and led.mode is FeedbackMode.STEADY
    t.close()


async def test_memory_stays_bounded_after_a_flood() -> None:
    central = Central()
    t, _ = tracker(central)
    first = press(t)
    for _ in range(5000):
        press(t, repeat_of=first)
    for i in range(5000):
        t.opened(make("alarm.test", HUB, note=str(i)))
    (button, hub) = sorted(t._episodes.values(), key=lambda a: a.device)
    assert len(button.alarms) == EPISODE_IDS and len(hub.alarms) == EPISODE_IDS
    assert len(t._index) <= 2 * (EPISODE_IDS + 1)
    assert len([x for x in asyncio.all_tasks() if "_ack_clock" in repr(x.get_coro())]) == 2
    # the first and the newest still answer; the forgotten middle ones are unknown
    result, _ = await t.acknowledge(button.ids[-1], "op")
    assert result is AckResult.ACKNOWLEDGED
    assert central.of("alarm.acknowledged")[0].data["alarms"] == 5001
    # press / ack cycles do not pile up closed episodes
    for _ in range(KEEP_CLOSED * 3):
        e = press(t)
        await t.acknowledge(e.id, "op")
    assert len(t._closed) <= KEEP_CLOSED
    assert len(t._index) <= (KEEP_CLOSED + 2) * (EPISODE_IDS + 1)
    t.close()


async def test_a_press_after_the_ack_opens_a_new_episode() -> None:
    central = Central()
    t, led = tracker(central)
    first = press(t)
    await t.acknowledge(first.id, "op")
    assert t.active("button-1").state is AlarmState.ACKNOWLEDGED
    fresh = press(t, delivered=False)
    assert led.mode is FeedbackMode.FAST
    alarm = t.active("button-1")
    assert alarm is not None and alarm.event.id == fresh.id and alarm.state is AlarmState.SENT
    t.delivered(fresh)
    assert led.mode is FeedbackMode.SLOW
    assert (await t.acknowledge(first.id, "op"))[0] is AckResult.ALREADY
    t.close()


async def test_hold_cancels_the_whole_episode() -> None:
    central = Central()
    t, led = tracker(central, ack_timeout_s=0.05, unack_repeat_s=0.05)
    first = press(t)
    repeat = press(t, repeat_of=first)
    cancel = await t.cancel("button-1", how="hold")
    assert cancel is not None and cancel.cause == first.id
    assert cancel.data == {"how": "hold", "closes": [first.id, repeat.id]}
    assert led.mode is FeedbackMode.OFF
    await asyncio.sleep(0.1)
    assert central.of("alarm.unacknowledged") == []
    assert (await t.acknowledge(repeat.id, "op"))[0] is AckResult.CANCELLED
    t.close()


# =========================================================================== restore


async def test_restore_keeps_episodes() -> None:
    central = Central()
    first = make("alarm.button", seq=1)
    repeat = make("alarm.button", seq=2, cause=first.id, repeat=True)
    reminder = make("alarm.unacknowledged", seq=3, cause=first.id)
    other = make("alarm.button", Source(device="cord-1", kind="pull_cord"), seq=4)
    old_ack = make("alarm.acknowledged", Source(device="cord-1", kind="pull_cord"), seq=5, cause=other.id)
    t, led = tracker(central, ack_timeout_s=0.05, unack_repeat_s=10)
    assert t.restore([(first, True), (repeat, False), (reminder, True), (other, True), (old_ack, True)]) == 2
    assert led.mode is FeedbackMode.FAST  # the repeat never reached the broker
    (open_,) = t.status()
    assert open_["event_id"] == first.id and open_["alarms"] == 2 and open_["reminders"] == 1
    await asyncio.sleep(0.08)
    (again,) = central.of("alarm.unacknowledged")
    assert again.cause == first.id and again.data["reminder"] == 2, "reminders are numbered on, one stream"
    result, _ = await t.acknowledge(reminder.id, "op")  # a reminder from before the restart
    assert result is AckResult.ACKNOWLEDGED
    assert central.of("alarm.acknowledged")[0].data["closes"] == [first.id, repeat.id]
    t.close()


async def test_restore_an_ack_of_the_first_closes_the_episode_also_without_closes() -> None:
    first = make("alarm.button", seq=1)
    repeat = make("alarm.button", seq=2, cause=first.id, repeat=True)
    # written before episodes: the ack named only the first alarm
    ack = make("alarm.acknowledged", seq=3, cause=first.id, by="op")
    later = make("alarm.button", seq=4)
    t, _ = tracker(Central())
    assert t.restore([(first, True), (repeat, True), (ack, True)]) == 0
    t2, _ = tracker(Central())
    assert t2.restore([(first, True), (repeat, True), (ack, True), (later, True)]) == 1
    assert [a["event_id"] for a in t2.status()] == [later.id]
    # a cancel whose alarm is older than the history names the episode's others in data.closes
    new_style = make("alarm.cancelled", seq=5, cause="0190-gone", closes=[repeat.id], how="hold")
    t3, _ = tracker(Central())
    assert t3.restore([(repeat, True), (new_style, True)]) == 0
    for x in (t, t2, t3):
        x.close()


# =========================================================================== FAULT: held alarms


async def test_a_held_alarm_shows_fault_until_stored() -> None:
    central = Central()
    t, led = tracker(central)
    e = make("alarm.button", gesture="press")
    t.opened(e, held=True)
    assert led.mode is FeedbackMode.FAULT
    t.delivered(e)  # sent from memory, the broker has it: still not on disk
    assert led.mode is FeedbackMode.FAULT
    assert t.status()[0]["held"] == 1
    t.stored(e.id)
    assert led.mode is FeedbackMode.SLOW
    t.stored(e.id)  # twice, or unknown ids: harmless
    t.stored("nope")
    assert led.shown == [FeedbackMode.FAULT, FeedbackMode.SLOW]
    t.close()


async def test_a_held_alarm_acknowledged_shows_steady_and_a_held_repeat_shows_fault() -> None:
    central = Central()
    t, led = tracker(central)
    first = press(t)
    assert led.mode is FeedbackMode.SLOW
    repeat = make("alarm.button", cause=first.id, repeat=True)
    t.opened(repeat, held=True)
    assert led.mode is FeedbackMode.FAULT
    t.opened(repeat)  # the retry stored it: opening it again counts as stored, not as a third alarm
    assert led.mode is FeedbackMode.FAST and t.status()[0]["alarms"] == 2
    t.delivered(repeat)
    t.opened(again := make("alarm.button", cause=first.id, repeat=True), held=True)
    assert led.mode is FeedbackMode.FAULT
    await t.acknowledge(first.id, "op")
    assert led.mode is FeedbackMode.STEADY, "the ack wins over the fault"
    t.stored(again.id)
    assert led.mode is FeedbackMode.STEADY
    t.close()


# =========================================================================== resets from the device


def call(address: str, **kw: Any) -> Event:
    return make("alarm.nursecall", NURSE, call_address=address, text=f"Rom {address}", call_type="0", **kw)


async def test_cancel_matching_closes_the_named_call_only() -> None:
    central = Central()
    t, _ = tracker(central, ack_timeout_s=0.05, unack_repeat_s=0.05)
    c101, c102 = call("101"), call("102")
    c101b = call("101")
    for e in (c101, c102, c101b):
        t.opened(e)
    assert len(t.status()) == 2, "one episode per call address"
    cancelled = await t.cancel_matching("nursecall-1", {"call_address": "101"}, how="reset", data={"call_type": "1"})
    assert cancelled is not None
    assert cancelled.type == "alarm.cancelled" and cancelled.priority is Priority.CRITICAL
    assert cancelled.cause == c101b.id, "newest first"
    assert cancelled.source == NURSE
    assert cancelled.data == {"call_type": "1", "how": "reset", "closes": [c101.id, c101b.id]}
    await asyncio.sleep(0.12)
    assert {r.cause for r in central.of("alarm.unacknowledged")} == {c102.id}, "101's reminders stopped, 102's go on"
    assert [a["event_id"] for a in t.status()] == [c102.id]
    assert (await t.acknowledge(c101.id, "nurse"))[0] is AckResult.CANCELLED
    t.close()


async def test_cancel_matching_without_a_match_logs_and_counts() -> None:
    central = Central()
    t, _ = tracker(central)
    t.opened(call("101"))
    with structlog.testing.capture_logs() as logs:
        assert await t.cancel_matching("nursecall-1", {"call_address": "999"}, how="reset", data={}) is None
        assert await t.cancel_matching("other", {"call_address": "101"}, how="reset", data={}) is None
    assert [(x["event"], x["device"], x["match"]) for x in logs] == [
        ("alarm_cancel_unmatched", "nursecall-1", {"call_address": "999"}),
        ("alarm_cancel_unmatched", "other", {"call_address": "101"}),
    ]
    assert t.counters["cancel_unmatched"] == 2
    assert central.events == [] and len(t.status()) == 1
    t.close()


async def test_cancel_matching_turns_the_led_off() -> None:
    central = Central()
    t, led = tracker(central)
    e = press(t)
    assert led.mode is FeedbackMode.SLOW
    out = await t.cancel_matching("button-1", {"gesture": "press"}, how="remote", data={})
    assert out is not None and out.cause == e.id and led.mode is FeedbackMode.OFF
    t.close()


class _Recorder:
    """The hub's emit side for :meth:`Hub.emit_many_for`: what was emitted and what was cancelled, in order."""

    def __init__(self, alarms: AlarmTracker) -> None:
        self.alarms = alarms
        self.calls: list[Any] = []

    async def emit_many(self, drafts: list[Draft]) -> list[Event]:
        out = []
        for d in drafts:
            e = make(d.type, d.source, data=d.data)
            self.alarms.opened(e)
            out.append(e)
        self.calls.append(("emit", [d.type for d in drafts]))
        return out


async def test_the_daemon_routes_an_emit_with_closes_to_cancel_matching_in_burst_order() -> None:
    from hub.emitter import Emitter

    central = Central()
    t, _ = tracker(central)
    hub = Emitter.__new__(Emitter)  # just the emit plumbing
    hub.alarms = t
    rec = _Recorder(t)
    hub.emit_many = rec.emit_many  # type: ignore[method-assign]
    dev = types.SimpleNamespace(id="nursecall-1", kind="nurse_call", room=None, routing=Route.NURSE)
    burst = [
        DriverEmit("alarm.nursecall", Priority.CRITICAL, {"call_address": "101", "call_type": "0"}),
        DriverEmit("alarm.cancelled", Priority.CRITICAL, {"how": "reset", "call_type": "1"}, closes={"call_address": "101"}),
        DriverEmit("alarm.nursecall", Priority.CRITICAL, {"call_address": "102", "call_type": "0"}),
    ]
    await hub.emit_many_for(dev, burst)  # type: ignore[arg-type]
    assert rec.calls == [("emit", ["alarm.nursecall"]), ("emit", ["alarm.nursecall"])]
    (cancelled,) = central.of("alarm.cancelled")
    assert cancelled.data["how"] == "reset" and cancelled.data["call_type"] == "1"
    assert [a["type"] for a in t.status()] == ["alarm.nursecall"] and t.status()[0]["alarms"] == 1
    # emit_for: a lone reset with no open call is logged and counted, not emitted
    assert await hub.emit_for(dev, burst[1]) is None  # type: ignore[arg-type]
    assert t.counters["cancel_unmatched"] == 1
    assert len(central.of("alarm.cancelled")) == 1
    t.close()


def test_emit_has_closes_defaulting_to_none() -> None:
    assert DriverEmit("x", Priority.LOW).closes is None
    with pytest.raises(AttributeError):
        DriverEmit("x", Priority.LOW).closes = {}  # type: ignore[misc]
