"""The check-in's feedback on a GPIO LED and buzzer (gpiozero's MockFactory with the hub's SimPin): a pattern of
its own, told from "help is coming" (steady, three beeps), shown once and then back to what the device showed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from drivers.base import FeedbackMode
from drivers.gpio.feedback import CHECKIN_GLOW, GpioIndicator
from drivers.gpio.sim import sim_factory
from hub.alarms.feedback import CHECKIN_SHOW_S, DeviceFeedback


@pytest.fixture
def factory() -> Iterator[object]:
    f = sim_factory()
    yield f
    f.close()


def _runs(pin: object) -> list[tuple[int, float]]:
    """The pin's history as (state, how long it held), oldest first (the last, still running, left out)."""
    states = list(pin.states)  # type: ignore[attr-defined]
    return [(int(prev.state), nxt.timestamp) for prev, nxt in zip(states, states[1:])]


async def test_checkin_is_two_long_glows_and_two_chirps_then_dark(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.led.pin.clear_states()
    ind.buzzer.pin.clear_states()
    ind.show(FeedbackMode.CHECKIN)
    await asyncio.sleep(sum(CHECKIN_GLOW[:2]) * CHECKIN_GLOW[2] + 0.6)
    led = _runs(ind.led.pin)[1:]
    ons = [d for v, d in led if v == 1]
    assert len(ons) == 2 and all(0.8 <= d <= 1.3 for d in ons), led  # longer than any blink's 0.5 s
    assert ind.led.value == 0 and ind.led.pin.changes == 4, "played once, ending dark"
    assert ind.buzzer.pin.changes == 4 and ind.buzzer.value == 0, "two chirps, not help-coming's three beeps"
    chirps = [d for v, d in _runs(ind.buzzer.pin)[1:] if v == 1]
    assert all(d < 0.15 for d in chirps), chirps
    ind.show(FeedbackMode.OFF)
    await asyncio.sleep(0.8)
    assert ind.buzzer.pin.changes == 4, "back to dark after a check-in is no 'cancelled' beep"
    ind.close()


async def test_help_coming_stays_distinct(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    ind.show(FeedbackMode.STEADY)
    await asyncio.sleep(3.0)
    assert ind.led.value == 1 and ind.led.pin.changes == 1, "steady: on and staying on"
    assert ind.buzzer.pin.changes == 6, "three beeps"
    ind.close()


async def test_a_check_in_shows_once_then_the_device_goes_back_to_what_it_showed(factory: object) -> None:
    ind = GpioIndicator(led_pin=27, buzzer_pin=22, factory=factory)
    fb = DeviceFeedback(steady_s=600)
    fb.indicators["checkin-1"] = ind
    assert fb.confirm_checkin("checkin-1") is True
    assert fb.feedback("checkin-1") is FeedbackMode.CHECKIN and ind.mode is FeedbackMode.CHECKIN
    await asyncio.sleep(CHECKIN_SHOW_S + 0.5)
    assert fb.feedback("checkin-1") is FeedbackMode.OFF and ind.mode is FeedbackMode.OFF
    assert ind.led.value == 0 and ind.buzzer.pin.changes == 4
    fb.confirm_checkin("checkin-1")  # a second check-in plays it again
    assert ind.mode is FeedbackMode.CHECKIN
    await asyncio.sleep(0.2)
    assert ind.led.value == 1
    assert fb.confirm_checkin("no-led") is False, "a device without an LED: nothing to show, nothing breaks"
    ind.close()


async def test_a_bench_reading_the_led_back_names_the_checkin_pattern(factory: object) -> None:
    """What a Pi bench's sense pin would sample (hil/rigs/ledpattern.py): named checkin while it plays, then off."""
    from hil.rigs.ledpattern import classify

    ind = GpioIndicator(led_pin=27, factory=factory)
    loop = asyncio.get_running_loop()
    samples: list[tuple[float, int]] = []
    ind.show(FeedbackMode.CHECKIN)
    t0 = loop.time()
    while loop.time() - t0 < 4.2:
        samples.append((loop.time(), int(ind.led.value)))
        await asyncio.sleep(0.005)
    assert classify([s for s in samples if s[0] - t0 <= 2.6]) == "checkin"
    assert classify([s for s in samples if s[0] - t0 >= 2.5]) == "off"
    ind.close()
