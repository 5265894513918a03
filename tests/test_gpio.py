"""The GPIO driver in process: button gestures timed on the loop, LED and buzzer patterns.

gpiozero's MockFactory with the hub's SimPin, driven the way the sim socket
drives it (the end-to-end tests cover the same through a real daemon).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from drivers.gpio.button import AlarmButton, ButtonHandlers
from drivers.gpio.feedback import GpioIndicator
from drivers.gpio.sim import sim_factory
from drivers.base import FeedbackMode


@pytest.fixture
def factory() -> Iterator[object]:
    f = sim_factory()
    yield f
    f.close()


class Gestures:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def handlers(self) -> ButtonHandlers:
        return ButtonHandlers(
            press=lambda t: self.seen.append(("press", t)),
            hold=lambda t: self.seen.append(("hold", t)),
            release=lambda t, held: self.seen.append(("release", held)),
        )

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]


async def test_press_is_reported_on_the_edge_before_anything_else_runs(factory: object) -> None:
    g = Gestures()
    button = AlarmButton(17, factory=factory, handlers=g.handlers(), loop=asyncio.get_running_loop(), bounce_s=0, hold_s=5)
    button.pin.drive_low()  # pressed (pull-up wiring)
    assert g.names() == ["press"]  # synchronously: no loop turn between edge and alarm
    assert button.is_pressed
    button.pin.drive_high()
    assert g.names() == ["press", "release"]
    button.close()


async def test_hold_fires_once_after_hold_s_and_a_short_press_never_holds(factory: object) -> None:
    g = Gestures()
    button = AlarmButton(17, factory=factory, handlers=g.handlers(), loop=asyncio.get_running_loop(), bounce_s=0, hold_s=0.15)
    button.pin.drive_low()
    await asyncio.sleep(0.05)
    button.pin.drive_high()  # released before hold_s
    await asyncio.sleep(0.3)
    assert g.names() == ["press", "release"]

    button.pin.drive_low()
    await asyncio.sleep(0.5)  # held well past hold_s: one hold, not a repeat
    button.pin.drive_high()
    assert g.names() == ["press", "release", "press", "hold", "release"]
    held = g.seen[-1][1]
    assert held >= 0.45
    button.close()


async def test_edges_from_another_thread_reach_the_loop(factory: object) -> None:
    """On a Pi, gpiozero calls back from its own thread: the gesture must run on the loop thread."""
    loop = asyncio.get_running_loop()
    on_thread: list[int] = []
    done = asyncio.Event()

    def press(t: float) -> None:
        on_thread.append(threading.get_ident())
        done.set()

    button = AlarmButton(
        17,
        factory=factory,
        handlers=ButtonHandlers(press=press, hold=lambda t: None, release=lambda t, h: None),
        loop=loop,
        bounce_s=0,
        hold_s=5,
    )
    t = threading.Thread(target=button.pin.drive_low)
    t.start()
    t.join()
    await asyncio.wait_for(done.wait(), 2)
    assert on_thread == [threading.get_ident()]
    button.close()


async def test_fast_blink_then_steady_stays_steady(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.show(FeedbackMode.FAST)
    await asyncio.sleep(0.45)
    blinks = ind.led.pin.changes
    assert blinks >= 4  # 0.1 s on / 0.1 s off: on, off, on, off, on in 0.45 s
    ind.show(FeedbackMode.STEADY)
    assert ind.led.value == 1
    before = ind.led.pin.changes
    await asyncio.sleep(0.5)  # the cancelled blink must not touch the LED again
    assert ind.led.value == 1
    assert ind.led.pin.changes == before
    ind.close()


async def test_slow_blink_is_slower_and_off_turns_it_off(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, factory=factory)
    ind.show(FeedbackMode.SLOW)
    start = ind.led.pin.changes
    await asyncio.sleep(1.2)  # 0.5 s on / 0.5 s off: 2-3 changes
    assert 2 <= ind.led.pin.changes - start <= 4
    ind.show(FeedbackMode.OFF)
    assert ind.led.value == 0
    await asyncio.sleep(0.6)
    assert ind.led.value == 0
    ind.close()


async def test_buzzer_beeps_three_times_when_help_is_coming_and_ends_silent(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.show(FeedbackMode.FAST)
    assert ind.buzzer.pin.changes == 0  # no beep while the alarm is still on its way
    ind.show(FeedbackMode.STEADY)
    await asyncio.sleep(1.2)
    assert ind.buzzer.pin.changes == 6  # on, off x3
    assert ind.buzzer.value == 0
    ind.close()


def _runs(pin: object) -> list[tuple[int, float]]:
    """The pin's history as (state, how long it held), oldest first (the last, still running, left out)."""
    states = list(pin.states)  # type: ignore[attr-defined]
    return [(int(prev.state), nxt.timestamp) for prev, nxt in zip(states, states[1:])]


async def test_fault_is_three_short_pulses_then_a_pause_on_led_and_buzzer(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.show(FeedbackMode.SLOW)
    await asyncio.sleep(0.05)
    ind.led.pin.clear_states()
    ind.buzzer.pin.clear_states()
    ind.show(FeedbackMode.FAULT)
    assert ind.mode is FeedbackMode.FAULT
    await asyncio.sleep(3.8)  # two groups of 3 x 0.25 s and a 1 s pause, and the start of a third
    for pin in (ind.led.pin, ind.buzzer.pin):
        runs = _runs(pin)[1:]  # from the first pulse on
        ons = [d for v, d in runs if v == 1]
        offs = [d for v, d in runs if v == 0]
        assert len(ons) >= 6 and all(0.08 <= d <= 0.3 for d in ons), runs
        # between pulses short gaps; after every third a pause longer than any slow blink's
        assert [d > 0.9 for d in offs[:5]] == [False, False, True, False, False], runs
        assert all(d <= 1.6 for d in offs), runs
    ind.show(FeedbackMode.STEADY)  # acknowledged: steady wins, the fault rhythm stops at once
    before = ind.led.pin.changes
    await asyncio.sleep(0.4)
    assert ind.led.value == 1 and ind.led.pin.changes == before
    ind.close()


async def test_fault_buzzer_sounds_three_groups_then_stops(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.show(FeedbackMode.FAULT)
    await asyncio.sleep(3 * 1.75 + 0.6)
    assert ind.buzzer.pin.changes == 3 * 3 * 2 and ind.buzzer.value == 0
    assert ind.led.pin.changes > 3 * 3 * 2  # the LED goes on while the fault lasts
    ind.close()


async def test_no_thread_is_started_per_pattern(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    before = threading.active_count()
    for mode in [FeedbackMode.FAST, FeedbackMode.SLOW, FeedbackMode.FAULT, FeedbackMode.STEADY, FeedbackMode.OFF] * 5:
        ind.show(mode)
        await asyncio.sleep(0)
    assert threading.active_count() == before
    ind.close()


async def test_sim_state_reports_the_fault_pattern(factory: object, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from drivers.gpio.sim import SimButton, register
    from hub.alarms import AlarmTracker
    from hub.events import Draft, Event, Priority, Source
    from drivers.simctl import SimControl

    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    button = AlarmButton(17, factory=factory, handlers=Gestures().handlers(), loop=asyncio.get_running_loop(), bounce_s=0)
    ctl = SimControl(tmp_path / "sim.sock")
    register(ctl, {"button-1": SimButton("button-1", button, True, ind)})
    tracker = AlarmTracker(lambda d: None, ack_timeout_s=60)  # type: ignore[arg-type,return-value]
    tracker.indicators["button-1"] = ind
    d = Draft(type="alarm.button", priority=Priority.CRITICAL, source=Source(device="button-1", kind="alarm_button"))
    alarm = Event(v=1, id=d.id, hub="h", seq=1, ts=d.ts, type=d.type, priority=d.priority, source=d.source,
                  resident="r", route=d.route, data={}, cause=None)
    tracker.opened(alarm, held=True)  # the commit failed: sent from memory
    st = await ctl.handlers["state"]({"op": "state", "device": "button-1"})
    assert st["feedback"] == "fault"
    tracker.stored(alarm.id)
    st = await ctl.handlers["state"]({"op": "state", "device": "button-1"})
    assert st["feedback"] == "fast_blink"
    tracker.close()
    button.close()
    ind.close()
