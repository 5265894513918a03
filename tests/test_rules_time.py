"""The rules' time: the fake clock, "HH:MM-HH:MM" windows, midnight, and both DST nights of 2026 in Oslo.

Europe/Oslo 2026: on Sunday 29 March 02:00 CET jumps to 03:00 CEST (02:00-03:00
does not exist); on Sunday 25 October 03:00 CEST falls back to 02:00 CET
(02:00-03:00 happens twice).
"""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.clockstep import ClockWatch
from hub.rules.clock import Clock, FakeClock, SystemClock, Window, local_instant, parse_window

TZ = ZoneInfo("Europe/Oslo")
H = 3600.0


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, fold: int = 0) -> float:
    """Unix seconds of an Oslo wall-clock time (fold=1: the second pass of the October hour)."""
    t = datetime(y, mo, d, h, mi, s, tzinfo=TZ, fold=fold).timestamp()
    assert datetime.fromtimestamp(t, TZ).replace(tzinfo=None) == datetime(y, mo, d, h, mi, s), "not a real local time"
    return t


def wall(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).strftime("%Y-%m-%d %H:%M:%S %Z")


NIGHT = parse_window("22:00-07:00")
DAY = parse_window("07:00-22:00")


# --------------------------------------------------------------------------- clocks


def test_fake_clock_moves_only_when_told() -> None:
    c = FakeClock(1000.0)
    assert isinstance(c, Clock)
    assert c.now() == 1000.0 == c.now()
    assert c.advance(90) == 1090.0 == c.now()
    assert c.set(50.0) == 50.0  # a step back, as NTP may make
    with pytest.raises(ValueError, match="forward only"):
        c.advance(-1)
    c.set(datetime(2026, 3, 29, 1, 50, tzinfo=TZ))
    assert wall(c.now()) == "2026-03-29 01:50:00 CET"
    with pytest.raises(ValueError, match="naive"):
        FakeClock(datetime(2026, 1, 1))


def test_system_clock_is_unix_time() -> None:
    c = SystemClock()
    assert isinstance(c, Clock)
    assert abs(c.now() - time.time()) < 5


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("22:00-07:00", dtime(22), dtime(7)),
        ("07:00-22:00", dtime(7), dtime(22)),
        ("00:00-24:00", dtime(0), dtime(0)),
        ("22:30-24:00", dtime(22, 30), dtime(0)),
        (" 7:05 - 9:10 ", dtime(7, 5), dtime(9, 10)),
    ],
)
def test_parse_window(text: str, start: dtime, end: dtime) -> None:
    assert parse_window(text) == Window(start, end)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("22-07", "expected a time window 'HH:MM-HH:MM' such as '22:00-07:00', found '22-07'"),
        ("22:00", "expected a time window"),
        ("", "expected a time window"),
        (2200, "expected a time window"),
        ("25:00-07:00", "start 25:00 is not a time of day"),
        ("22:00-07:60", "end 07:60 is not a time of day"),
        ("24:00-07:00", "start 24:00 is not a time of day"),
        ("07:00-07:00", "start and end are both 07:00, an empty window; write '00:00-24:00' for the whole day"),
    ],
)
def test_parse_window_refuses_with_a_clear_message(text: object, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_window(text)  # type: ignore[arg-type]
    assert message in str(exc.value)


def test_window_str_round_trips() -> None:
    for text in ("22:00-07:00", "07:00-22:00", "00:00-24:00", "22:30-00:00"):
        assert str(parse_window(text)) == text


# --------------------------------------------------------------------------- ordinary days


def test_night_window_crosses_midnight() -> None:
    inside = [at(2026, 1, 14, 22), at(2026, 1, 14, 23, 59, 59), at(2026, 1, 15, 0), at(2026, 1, 15, 3), at(2026, 1, 15, 6, 59, 59)]
    outside = [at(2026, 1, 14, 21, 59, 59), at(2026, 1, 15, 7), at(2026, 1, 15, 12), at(2026, 1, 15, 21, 59)]
    assert NIGHT.crosses_midnight and not DAY.crosses_midnight
    assert all(NIGHT.contains(t, TZ) for t in inside)
    assert not any(NIGHT.contains(t, TZ) for t in outside)
    # after midnight the occurrence is the one that opened the evening before
    assert NIGHT.opened_at(at(2026, 1, 15, 3), TZ) == at(2026, 1, 14, 22)
    assert NIGHT.closes_at(at(2026, 1, 15, 3), TZ) == at(2026, 1, 15, 7)
    assert NIGHT.opened_at(at(2026, 1, 14, 23), TZ) == at(2026, 1, 14, 22)
    assert NIGHT.opened_at(at(2026, 1, 15, 12), TZ) is None


def test_day_window_and_whole_day() -> None:
    assert DAY.contains(at(2026, 6, 1, 7), TZ) and DAY.contains(at(2026, 6, 1, 21, 59, 59), TZ)
    assert not DAY.contains(at(2026, 6, 1, 22), TZ) and not DAY.contains(at(2026, 6, 1, 6, 59), TZ)
    assert DAY.opened_at(at(2026, 6, 1, 15), TZ) == at(2026, 6, 1, 7)
    whole = parse_window("00:00-24:00")
    assert whole.whole_day
    assert all(whole.contains(at(2026, 6, 1, h), TZ) for h in range(24))
    assert whole.opened_at(at(2026, 6, 1, 5), TZ) == float("-inf")
    until_midnight = parse_window("22:30-24:00")
    assert until_midnight.contains(at(2026, 6, 1, 23, 59, 59), TZ)
    assert not until_midnight.contains(at(2026, 6, 2, 0), TZ)


# --------------------------------------------------------------------------- DST


def test_march_night_is_eight_real_hours_and_has_no_2am() -> None:
    t = at(2026, 3, 29, 3)
    opens, closes = NIGHT.opened_at(t, TZ), NIGHT.closes_at(t, TZ)
    assert wall(opens) == "2026-03-28 22:00:00 CET"  # type: ignore[arg-type]
    assert wall(closes) == "2026-03-29 07:00:00 CEST"  # type: ignore[arg-type]
    assert closes - opens == 8 * H  # type: ignore[operator]
    before_jump = at(2026, 3, 29, 1, 59, 59)
    assert wall(before_jump + 1) == "2026-03-29 03:00:00 CEST"
    assert NIGHT.contains(before_jump, TZ) and NIGHT.contains(before_jump + 1, TZ)
    assert NIGHT.contains(at(2026, 3, 29, 6, 59, 59), TZ) and not NIGHT.contains(at(2026, 3, 29, 7), TZ)


def test_october_night_is_ten_real_hours_and_has_two_2ams() -> None:
    t = at(2026, 10, 25, 2, 30, fold=1)
    opens, closes = NIGHT.opened_at(t, TZ), NIGHT.closes_at(t, TZ)
    assert wall(opens) == "2026-10-24 22:00:00 CEST"  # type: ignore[arg-type]
    assert wall(closes) == "2026-10-25 07:00:00 CET"  # type: ignore[arg-type]
    assert closes - opens == 10 * H  # type: ignore[operator]
    for fold in (0, 1):
        for minute in (0, 30, 59):
            assert NIGHT.contains(at(2026, 10, 25, 2, minute, fold=fold), TZ)
    assert not NIGHT.contains(at(2026, 10, 25, 7), TZ)


def test_local_instant_in_the_skipped_and_the_repeated_hour() -> None:
    # a time that does not exist: the instant of the jump, when the clock first reads later
    assert wall(local_instant(datetime(2026, 3, 29, 2, 30), TZ)) == "2026-03-29 03:00:00 CEST"
    assert local_instant(datetime(2026, 3, 29, 2, 0), TZ) == at(2026, 3, 29, 3)
    # a time that happens twice: the first time
    assert local_instant(datetime(2026, 10, 25, 2, 30), TZ) == at(2026, 10, 25, 2, 30, fold=0)
    assert wall(local_instant(datetime(2026, 10, 25, 2, 30), TZ)) == "2026-10-25 02:30:00 CEST"
    # an ordinary one
    assert local_instant(datetime(2026, 10, 25, 3, 30), TZ) == at(2026, 10, 25, 3, 30)


def test_window_boundaries_inside_the_odd_hours() -> None:
    w = parse_window("02:30-04:00")
    # March: opens when 02:30 would have been reached, which is the jump to 03:00
    assert wall(w.opened_at(at(2026, 3, 29, 3, 10), TZ)) == "2026-03-29 03:00:00 CEST"  # type: ignore[arg-type]
    assert not w.contains(at(2026, 3, 29, 1, 59, 59), TZ)
    assert w.contains(at(2026, 3, 29, 3), TZ)
    # October: opens at the first 02:30 and stays open through the repeated hour: one interval
    assert w.opened_at(at(2026, 10, 25, 2, 10, fold=1), TZ) == at(2026, 10, 25, 2, 30, fold=0)
    assert w.contains(at(2026, 10, 25, 2, 0, fold=1), TZ)
    assert not w.contains(at(2026, 10, 25, 2, 29, fold=0), TZ)
    # a window that ends at 02:30 closes at the first 02:30 and does not open again on the second pass
    e = parse_window("22:00-02:30")
    assert e.contains(at(2026, 10, 25, 2, 29, fold=0), TZ)
    assert not e.contains(at(2026, 10, 25, 2, 30, fold=0), TZ)
    assert not e.contains(at(2026, 10, 25, 2, 10, fold=1), TZ)
    # ... and in March the window that would end in the gap ends at the jump
    assert wall(e.closes_at(at(2026, 3, 29, 1), TZ)) == "2026-03-29 03:00:00 CEST"  # type: ignore[arg-type]


@pytest.mark.parametrize("day", [(2026, 3, 28), (2026, 3, 29), (2026, 10, 24), (2026, 10, 25), (2026, 6, 21)])
def test_contains_agrees_with_the_wall_clock_minute_by_minute(day: tuple[int, int, int]) -> None:
    """Away from the odd hour, inside the night exactly when the local clock reads >= 22:00 or < 07:00."""
    start = at(*day, 12)
    for minute in range(0, 24 * 60, 7):
        t = start + minute * 60.0
        local = datetime.fromtimestamp(t, TZ)
        if local.hour == 2:
            continue
        expected = local.hour >= 22 or local.hour < 7
        assert NIGHT.contains(t, TZ) is expected, wall(t)


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Oslo", "America/Santiago", "Australia/Lord_Howe", "America/Havana", "UTC"]),
    text=st.sampled_from(["22:00-07:00", "07:00-22:00", "00:00-02:30", "23:30-00:30", "02:00-03:00", "00:00-24:00"]),
    start=st.floats(min_value=1.7e9, max_value=1.86e9),
    # minutes: mostly on (through every boundary of a few days), now and then back a day or more
    steps=st.lists(st.one_of(st.integers(1, 90), st.integers(1, 90), st.integers(-3000, 3000)), max_size=150),
)
def test_a_window_asked_again_and_again_answers_as_a_fresh_one(
    zone: str, text: str, start: float, steps: list[int]
) -> None:
    """A window remembers the last span it found inside or outside; its answers stay those of a window
    asked once, for instants in any order, across DST changes (a half hour, at midnight) and wall-clock steps."""
    tz, used = ZoneInfo(zone), parse_window(text)
    t = start
    for step in steps:
        t += step * 60.0
        fresh = parse_window(text)
        assert used.opened_at(t, tz) == fresh.opened_at(t, tz), wall(t)
        assert used.closes_at(t, tz) == parse_window(text).closes_at(t, tz), wall(t)


# --------------------------------------------------------------------------- wall-clock steps


def test_clock_watch_tells_a_step_from_time_passing() -> None:
    wall, mono = [1_700_000_000.0], [50.0]

    def move(w: float, m: float) -> None:
        wall[0] += w
        mono[0] += m

    watch = ClockWatch(wall=lambda: wall[0], mono=lambda: mono[0])
    move(10, 10)
    assert watch.read()[1] == 0.0  # time passing
    move(10.5, 10)
    assert watch.read()[1] == 0.0  # drift and NTP slewing stay under the threshold
    move(7200 + 10, 10)
    assert watch.read()[1] == 7200.0  # NTP set the clock two hours forward
    move(5, 5)
    assert watch.read()[1] == 0.0  # once: the watch looks from the new time on
    move(-3600 + 1, 1)
    assert watch.read()[1] == -3600.0  # set back
    assert ClockWatch().read()[1] == 0.0  # the real clocks, a moment apart


def test_the_hub_moves_the_rules_instants_by_a_step_before_they_see_the_time() -> None:
    from hub.rules import RulesConfig, build_rules
    from hub.rules_runner import RulesRunner

    wall, mono = [time.time()], [100.0]
    rules = build_rules(RulesConfig(), tz=ZoneInfo("Europe/Oslo"), devices={"mat": ("bed_mat", 60.0)})
    hub = RulesRunner(rules, None, None, None, devices={}, source=None)  # type: ignore[arg-type]  # the clock only
    hub.clock = ClockWatch(wall=lambda: wall[0], mono=lambda: mono[0])
    supervision = hub.rules.get("supervision")
    assert supervision is not None
    hub.rules.report("mat", wall[0])
    seen = supervision.status("mat")["last_seen"]
    wall[0] += 7200.0  # NTP: two hours forward, no time passed
    now = hub.now()
    assert now == wall[0]
    assert supervision.status("mat")["last_seen"] != seen  # moved with the clock
    assert hub.rules.tick(now) == []  # so the mat is not "silent for two hours"
    assert hub._dirty  # and the moved state is saved
