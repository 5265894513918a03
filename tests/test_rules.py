"""The local rules, one by one and through the engine, on a fake clock (no sleeping).

For each rule: the case that fires and the cases that must not; re-alert
spacing; the DST nights of 29 March and 25 October 2026 in Oslo; a restart
in the middle of a rule (state() / restore() into rules built afresh from
the config); the engine ignoring rule events (no feedback loops).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.events import EVENT_TYPES, Event, Priority, Route, Source, rfc3339, uuid7
from hub.rules_runner import RULES_TICK_S
from hub.rules import (
    RULE_EVENT_TYPES,
    BedExit,
    BedNotReturned,
    DoorNight,
    FakeClock,
    Inactivity,
    MedicationMissed,
    RuleOutput,
    Rules,
    RulesConfig,
    Supervision,
    build_rules,
    parse_window,
)

TZ = ZoneInfo("Europe/Oslo")
MIN = 60.0
H = 3600.0
NIGHT = parse_window("22:00-07:00")
DAY = parse_window("07:00-22:00")

KINDS = {
    "bedmat": "bed_mat",
    "bedmat-2": "bed_mat",
    "door-front": "door",
    "door-back": "door",
    "motion-hall": "motion",
    "motion-porch": "motion",
    "dispenser": "medication_dispenser",
    "dispenser-2": "medication_dispenser",
    "button": "alarm_button",
    "nurse": "nurse_call",
}


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, fold: int = 0) -> float:
    """Unix seconds of an Oslo wall-clock time (fold=1: the second pass of the October hour)."""
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ, fold=fold).timestamp()


def wall(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).strftime("%H:%M:%S %Z")


_seq = itertools.count(1)


def event(type: str, device: str, t: float, **data: Any) -> Event:
    return Event(
        v=1,
        id=uuid7(t),
        hub="hub-test",
        seq=next(_seq),
        ts=rfc3339(t),
        type=type,
        priority=EVENT_TYPES.get(type, (Priority.NORMAL, ""))[0],
        source=Source(device=device, kind=KINDS[device]),
        resident="res-001",
        route=Route.ANY,
        data=data,
    )


@dataclass
class Sim:
    """Rules on a fake clock: send events, tick, and keep every output with the time it came."""

    rules: Rules
    start: float
    clock: FakeClock = field(init=False)
    log: list[tuple[float, RuleOutput]] = field(default_factory=list)

    restore: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """The hub starting: restore the saved state (if any), then the first tick."""
        self.clock = FakeClock(self.start)
        if self.restore is not None:
            assert self.rules.restore(json.loads(json.dumps(self.restore)), self.now) == []
        self._keep(self.rules.tick(self.now))

    @property
    def now(self) -> float:
        return self.clock.now()

    def send(self, type: str, device: str, **data: Any) -> Event:
        e = event(type, device, self.now, **data)
        self._keep(self.rules.on_event(e, self.now))
        return e

    def report(self, device: str, battery: float | None = None) -> None:
        self._keep(self.rules.report(device, self.now, battery=battery))

    def run_until(self, t: float, step: float = 1.0) -> None:
        """Tick every ``step`` seconds up to and including ``t``."""
        while self.now + step <= t:
            self.clock.advance(step)
            self._keep(self.rules.tick(self.now))
        if self.now < t:
            self.clock.set(t)
            self._keep(self.rules.tick(self.now))

    def run_for(self, seconds: float, step: float = 1.0) -> None:
        self.run_until(self.now + seconds, step)

    def _keep(self, outs: list[RuleOutput]) -> None:
        self.log += [(self.now, o) for o in outs]

    def of(self, type: str) -> list[tuple[float, RuleOutput]]:
        return [(t, o) for t, o in self.log if o.type == type]

    def times(self, type: str) -> list[str]:
        return [wall(t) for t, _ in self.of(type)]


def sim(*rules: Any, start: float) -> Sim:
    return Sim(Rules(rules), start)


def bed_rule(**kw: Any) -> BedNotReturned:
    return BedNotReturned(window=NIGHT, tz=TZ, **kw)


def door_rule(**kw: Any) -> DoorNight:
    return DoorNight(window=NIGHT, tz=TZ, **kw)


# =========================================================================== bed_not_returned


def test_bed_not_returned_fires_after_20_minutes_with_the_exit_as_cause() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 2, 0))
    exit_ = s.send("bed.exit", "bedmat", since_s=10.0)
    s.run_until(at(2026, 1, 15, 2, 19, 59))
    assert s.log == []
    s.run_until(at(2026, 1, 15, 2, 20))
    [(t, out)] = s.log
    assert wall(t) == "02:20:00 CET"
    assert out.type == "rule.bed_not_returned"
    assert out.priority is Priority.HIGH and out.route is Route.CARE
    assert out.cause == exit_.id
    assert out.device == "bedmat" and out.rule == "bed_not_returned"
    assert out.data["away_s"] == 1200.0 and out.data["realert"] == 0
    assert out.data["exit_at"] == rfc3339(at(2026, 1, 15, 2, 0))


def test_bed_return_in_time_cancels() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("bed.exit", "bedmat")
    s.run_for(19 * MIN + 59)
    s.send("bed.return", "bedmat", away_s=1199.0)
    s.run_for(2 * H)
    assert s.log == []


def test_bed_exit_outside_the_night_is_not_watched() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 14, 0))
    s.send("bed.exit", "bedmat")
    s.run_for(2 * H, step=5)
    s.clock.set(at(2026, 1, 15, 21, 59, 59))  # one second before the night
    s.send("bed.exit", "bedmat-2")
    s.run_for(H, step=5)
    assert s.log == []


def test_return_arriving_after_the_deadline_does_not_hide_it() -> None:
    """No tick between the deadline and the return (a busy loop): the event fires what was due first."""
    r = bed_rule()
    t0 = at(2026, 1, 15, 2, 0)
    exit_ = event("bed.exit", "bedmat", t0)
    assert r.on_event(exit_, t0) == []
    outs = r.on_event(event("bed.return", "bedmat", t0 + 25 * MIN), t0 + 25 * MIN)
    assert [o.type for o in outs] == ["rule.bed_not_returned"] and outs[0].cause == exit_.id
    assert r.tick(t0 + 2 * H) == []  # and the return ended it


def test_a_late_tick_fires_once_not_a_burst() -> None:
    r = bed_rule()
    t0 = at(2026, 1, 15, 2, 0)
    r.on_event(event("bed.exit", "bedmat", t0), t0)
    outs = r.tick(t0 + 70 * MIN)  # 20 min + 3 re-alert intervals later, in one go
    assert len(outs) == 1 and outs[0].data["realert"] == 0
    assert r.tick(t0 + 70 * MIN + 899) == []
    assert [o.data["realert"] for o in r.tick(t0 + 85 * MIN)] == [1]


def test_realerts_every_15_minutes_exactly_four_in_an_hour_each_caused_by_the_exit() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 1, 0))
    exit_ = s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 1, 20))
    assert s.times("rule.bed_not_returned") == ["01:20:00 CET"]
    # tick every second for an hour, and the mat repeating bed.exit every minute: no faster for that
    for _ in range(60):
        for _ in range(60):
            s.clock.advance(1)
            s._keep(s.rules.tick(s.now))
            s._keep(s.rules.tick(s.now))  # ticked twice a second
        s.send("bed.exit", "bedmat")
    alerts = s.of("rule.bed_not_returned")
    assert [wall(t) for t, _ in alerts] == ["01:20:00 CET", "01:35:00 CET", "01:50:00 CET", "02:05:00 CET", "02:20:00 CET"]
    realerts = alerts[1:]
    assert len(realerts) == 4
    assert [o.data["realert"] for _, o in realerts] == [1, 2, 3, 4]
    assert all(o.cause == exit_.id for _, o in alerts)
    assert [b - a for (a, _), (b, _) in itertools.pairwise(alerts)] == [900.0] * 4


def test_realert_interval_is_configurable_and_zero_turns_it_off() -> None:
    s = sim(bed_rule(realert_s=600), start=at(2026, 1, 15, 1, 0))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 2, 0), step=10)
    assert s.times("rule.bed_not_returned") == ["01:20:00 CET", "01:30:00 CET", "01:40:00 CET", "01:50:00 CET", "02:00:00 CET"]
    s = sim(bed_rule(realert_s=0), start=at(2026, 1, 15, 1, 0))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 4, 0), step=10)
    assert s.times("rule.bed_not_returned") == ["01:20:00 CET"]


def test_exit_late_in_the_night_alerts_once_after_the_night_ends_and_stops() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 6, 50))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 12, 0), step=5)
    assert s.times("rule.bed_not_returned") == ["07:10:00 CET"]
    # the episode is closed: a return later says nothing, a new night starts clean
    assert s.rules.get("bed_not_returned").out_of_bed == {}  # type: ignore[union-attr]


def test_realerts_stop_when_the_night_ends() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 6, 0))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 9, 0), step=5)
    assert s.times("rule.bed_not_returned") == ["06:20:00 CET", "06:35:00 CET", "06:50:00 CET"]


def test_two_mats_are_separate_episodes() -> None:
    s = sim(bed_rule(), start=at(2026, 1, 15, 2, 0))
    a = s.send("bed.exit", "bedmat")
    s.run_for(5 * MIN)
    b = s.send("bed.exit", "bedmat-2")
    s.send("bed.return", "bedmat-2")  # only the second mat is back
    s.run_for(30 * MIN, step=5)
    assert {(o.device, o.cause) for _, o in s.log} == {("bedmat", a.id)}
    assert s.times("rule.bed_not_returned") == ["02:20:00 CET", "02:35:00 CET"]
    assert b.id not in [o.cause for _, o in s.log]


def test_march_dst_night_timer_counts_real_minutes() -> None:
    """Bed exit at 01:50 CET on 29 March: 20 real minutes later is 03:10 CEST (02:xx never happens)."""
    s = sim(bed_rule(), start=at(2026, 3, 29, 1, 50))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 3, 29, 3, 40))
    assert s.times("rule.bed_not_returned") == ["03:10:00 CEST", "03:25:00 CEST", "03:40:00 CEST"]
    assert s.of("rule.bed_not_returned")[0][0] - at(2026, 3, 29, 1, 50) == 20 * MIN


def test_october_dst_night_timer_counts_real_minutes_through_the_repeated_hour() -> None:
    """Exit at 02:50 CEST (first pass) on 25 October: 20 real minutes later is 02:10 CET (second pass)."""
    s = sim(bed_rule(), start=at(2026, 10, 25, 2, 50, fold=0))
    exit_ = s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 10, 25, 3, 10))
    assert s.times("rule.bed_not_returned") == [
        "02:10:00 CET",
        "02:25:00 CET",
        "02:40:00 CET",
        "02:55:00 CET",
        "03:10:00 CET",
    ]
    alerts = s.of("rule.bed_not_returned")
    assert alerts[0][0] - at(2026, 10, 25, 2, 50, fold=0) == 20 * MIN
    assert all(b - a == 15 * MIN for (a, _), (b, _) in itertools.pairwise(alerts))
    assert {o.cause for _, o in alerts} == {exit_.id}


def test_october_exit_in_the_second_2am_hour() -> None:
    s = sim(bed_rule(), start=at(2026, 10, 25, 2, 50, fold=1))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 10, 25, 3, 15))
    assert s.times("rule.bed_not_returned") == ["03:10:00 CET"]


# =========================================================================== restart


def _config() -> RulesConfig:
    return msgspec.convert({"bed_exit": {"enabled": True}}, RulesConfig)


DEVICES: dict[str, tuple[str, int | None]] = {d: (k, None) for d, k in KINDS.items()}


def test_restart_mid_rule_still_fires_at_0220() -> None:
    """Bed exit at 02:00, the hub restarts at 02:05: rule.bed_not_returned still comes at 02:20."""
    before = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 1, 59))
    before.run_until(at(2026, 1, 15, 2, 0))
    exit_ = before.send("bed.exit", "bedmat")
    assert before.times("rule.bed_exit") == ["02:00:00 CET"]  # the immediate one, opted in
    before.run_until(at(2026, 1, 15, 2, 5))
    saved = json.dumps(before.rules.state())  # to disk and back, as the daemon will

    after = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 2, 5), restore=json.loads(saved))
    after.run_until(at(2026, 1, 15, 2, 19, 59))
    assert after.of("rule.bed_not_returned") == []
    after.run_until(at(2026, 1, 15, 2, 36))
    assert after.times("rule.bed_not_returned") == ["02:20:00 CET", "02:35:00 CET"]
    assert {o.cause for _, o in after.of("rule.bed_not_returned")} == {exit_.id}
    assert after.of("rule.bed_exit") == []  # not sent again


def test_restart_after_the_alert_does_not_repeat_it_and_keeps_the_spacing() -> None:
    before = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 2, 0))
    before.send("bed.exit", "bedmat")
    before.run_until(at(2026, 1, 15, 2, 25))
    assert before.times("rule.bed_not_returned") == ["02:20:00 CET"]
    after = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 2, 26), restore=before.rules.state())
    after.run_until(at(2026, 1, 15, 2, 40))
    assert after.times("rule.bed_not_returned") == ["02:35:00 CET"]


def test_hub_down_past_the_deadline_fires_at_the_first_tick() -> None:
    before = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 2, 0))
    exit_ = before.send("bed.exit", "bedmat")
    before.run_until(at(2026, 1, 15, 2, 5))
    after = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 2, 31), restore=before.rules.state())
    assert [(wall(t), o.cause) for t, o in after.of("rule.bed_not_returned")] == [("02:31:00 CET", exit_.id)]


def test_state_round_trips_for_every_rule() -> None:
    s = Sim(build_rules(_config(), tz=TZ, devices=DEVICES), at(2026, 1, 15, 1, 0))
    s.send("bed.exit", "bedmat")
    s.send("door.open", "door-front")
    s.send("medication.due", "dispenser", dose_id=7)
    s.send("medication.missed", "dispenser", dose_id=8, reported_by="dispenser")
    s.report("door-back", battery=15)
    s.run_until(at(2026, 1, 15, 1, 30), step=10)
    state = s.rules.state()
    assert json.loads(json.dumps(state)) == state
    fresh = build_rules(_config(), tz=TZ, devices=DEVICES)
    assert fresh.restore(json.loads(json.dumps(state)), s.now) == []
    assert fresh.state() == state


def test_unusable_state_starts_that_rule_afresh_and_never_raises() -> None:
    rules = build_rules(_config(), tz=TZ, devices=DEVICES)
    good = rules.state()
    good["rules"]["bed_not_returned"] = {"out": {"bedmat": {"exit_at": "yesterday"}}}
    good["rules"]["door_night"] = ["not", "a", "dict"]
    good["rules"]["gone_rule"] = {"x": 1}  # a rule no longer configured: dropped
    assert sorted(rules.restore(good, 0.0)) == ["bed_not_returned", "door_night"]
    assert rules.get("bed_not_returned").out_of_bed == {}  # type: ignore[union-attr]
    assert rules.restore({"v": 999, "rules": {}}, 0.0) == [r.name for r in rules]
    assert rules.restore("garbage", 0.0) == [r.name for r in rules]  # type: ignore[arg-type]


# =========================================================================== bed_exit (immediate)


def test_bed_exit_is_immediate_at_night_only() -> None:
    r = BedExit(window=NIGHT, tz=TZ)
    night = at(2026, 1, 15, 3, 0)
    e = event("bed.exit", "bedmat", night)
    [out] = r.on_event(e, night)
    assert (out.type, out.cause, out.device, out.priority, out.route) == (
        "rule.bed_exit", e.id, "bedmat", Priority.HIGH, Route.CARE,
    )
    day = at(2026, 1, 15, 10, 0)
    assert r.on_event(event("bed.exit", "bedmat", day), day) == []
    assert r.on_event(event("bed.return", "bedmat", night), night) == []
    assert r.tick(night + H) == []


def test_bed_exit_is_opt_in() -> None:
    names = [r.name for r in build_rules(RulesConfig(), tz=TZ, devices=DEVICES)]
    assert "bed_exit" not in names and "bed_not_returned" in names


# =========================================================================== door_night


def test_door_at_night_with_no_one_inside_after_it_closes() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    opened = s.send("door.open", "door-front")
    s.run_for(MIN)
    s.send("door.close", "door-front")
    s.run_until(at(2026, 1, 15, 2, 3, 59))
    assert s.log == []
    s.run_until(at(2026, 1, 15, 3, 0))
    [(t, out)] = s.log  # one alert: closed, and no sign inside; no re-alerts for a closed door
    assert wall(t) == "02:04:00 CET"
    assert (out.type, out.cause, out.device) == ("rule.door_night", opened.id, "door-front")
    assert out.data["state"] == "closed" and out.data["open_s"] == 60.0
    assert out.priority is Priority.HIGH and out.route is Route.CARE


@pytest.mark.parametrize(("sign", "device"), [("motion.activity", "motion-hall"), ("bed.return", "bedmat")])
def test_door_at_night_with_a_sign_inside_is_quiet(sign: str, device: str) -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.run_for(30)
    s.send("door.close", "door-front")
    s.run_for(2 * MIN + 59)  # just inside the 180 s
    s.send(sign, device)
    s.run_for(H)
    assert s.log == []


def test_a_sign_inside_too_late_does_not_undo_the_alert() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.send("door.close", "door-front")
    s.run_for(3 * MIN)
    s.send("motion.activity", "motion-hall")
    s.run_for(H)
    assert s.times("rule.door_night") == ["02:03:00 CET"]


def test_motion_while_the_door_is_open_is_not_a_sign_inside() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.send("motion.activity", "motion-hall")  # the hallway sensor sees the resident walk out
    s.run_for(20)
    s.send("door.close", "door-front")
    s.run_for(H)
    assert s.times("rule.door_night") == ["02:03:20 CET"]


def test_out_and_back_in_is_one_episode_and_quiet() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.send("door.close", "door-front")
    s.run_for(2 * MIN)
    s.send("door.open", "door-front")  # back within the wait: the same episode
    s.run_for(20)
    s.send("door.close", "door-front")
    s.run_for(MIN)
    s.send("motion.activity", "motion-hall")
    s.run_for(H)
    assert s.log == []


def test_door_outside_the_night_is_not_watched() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 9, 0))
    s.send("door.open", "door-front")
    s.run_for(H, step=5)
    s.send("door.close", "door-front")
    s.run_for(H, step=5)
    assert s.log == []


def test_door_held_open_alerts_then_realerts_with_the_first_open_as_cause() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    opened = s.send("door.open", "door-front")
    for _ in range(50):  # a chatty sensor repeating door.open changes nothing
        s.run_for(MIN)
        s.send("door.open", "door-front")
    s.run_until(at(2026, 1, 15, 3, 3))
    assert s.times("rule.door_night") == ["02:03:00 CET", "02:18:00 CET", "02:33:00 CET", "02:48:00 CET", "03:03:00 CET"]
    assert {o.cause for _, o in s.log} == {opened.id}
    assert [o.data["state"] for _, o in s.log] == ["open"] * 5
    # it closes and the resident is inside: no more alerts, no "closed" alert on top
    s.send("door.close", "door-front")
    s.run_for(MIN)
    s.send("motion.activity", "motion-hall")
    s.run_for(H)
    assert len(s.log) == 5


def test_door_held_open_after_an_alert_then_closed_with_no_one_inside_is_not_told_twice() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.run_for(5 * MIN)
    s.send("door.close", "door-front")
    s.run_for(H)
    assert s.times("rule.door_night") == ["02:03:00 CET"]


def test_door_held_open_into_the_morning_stops_realerting() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 6, 30))
    s.send("door.open", "door-front")
    s.run_until(at(2026, 1, 15, 9, 0), step=5)
    assert s.times("rule.door_night") == ["06:33:00 CET", "06:48:00 CET"]


def test_inside_devices_leave_out_the_porch_sensor() -> None:
    s = sim(door_rule(inside_devices={"motion-hall", "bedmat"}), start=at(2026, 1, 15, 2, 0))
    s.send("door.open", "door-front")
    s.send("door.close", "door-front")
    s.run_for(MIN)
    s.send("motion.activity", "motion-porch")  # outside: not a sign that the resident is in
    s.send("door.open", "door-back")  # another door: not a sign either (and an episode of its own)
    s.send("door.close", "door-back")
    s.run_for(5 * MIN)
    assert [(o.device, o.data["state"]) for _, o in s.of("rule.door_night")] == [
        ("door-front", "closed"), ("door-back", "closed"),
    ]


def test_two_doors_are_separate_and_one_sign_clears_both_waits() -> None:
    s = sim(door_rule(), start=at(2026, 1, 15, 2, 0))
    for door in ("door-front", "door-back"):
        s.send("door.open", door)
        s.send("door.close", door)
    s.run_for(MIN)
    s.send("bed.return", "bedmat")
    s.run_for(H)
    assert s.log == []


# =========================================================================== medication_missed


def med() -> MedicationMissed:
    return MedicationMissed()


def test_missed_reported_by_the_dispenser_alerts_at_once_to_the_nurse() -> None:
    s = sim(med(), start=at(2026, 1, 15, 8, 0))
    s.send("medication.due", "dispenser", dose_id=1, scheduled=None, compartment=1)
    s.run_for(10 * MIN)
    missed = s.send("medication.missed", "dispenser", dose_id=1, reported_by="dispenser")
    [(t, out)] = s.log
    assert wall(t) == "08:10:00 CET"
    assert (out.type, out.cause, out.device) == ("rule.medication_missed", missed.id, "dispenser")
    assert out.route is Route.NURSE and out.priority is Priority.HIGH
    assert out.data["dose_id"] == 1 and out.data["reported_by"] == "dispenser"
    s.run_for(2 * H, step=10)  # the grace timer of that dose does not fire as well
    assert len(s.log) == 1


def test_due_and_not_taken_within_grace_alerts_once() -> None:
    s = sim(med(), start=at(2026, 1, 15, 8, 0))
    due = s.send("medication.due", "dispenser", dose_id=2)
    s.run_until(at(2026, 1, 15, 8, 29, 59))
    assert s.log == []
    s.run_until(at(2026, 1, 15, 8, 30))
    [(t, out)] = s.log
    assert out.cause == due.id and out.data["reported_by"] == "rule" and out.data["grace_s"] == 1800.0
    # the dispenser's own (or its driver's) missed report for the same dose: never both
    s.send("medication.missed", "dispenser", dose_id=2, reported_by="hub")
    s.send("medication.taken", "dispenser", dose_id=2, late=True)
    s.run_for(2 * H, step=10)
    assert len(s.log) == 1


def test_taken_within_grace_is_quiet() -> None:
    s = sim(med(), start=at(2026, 1, 15, 8, 0))
    s.send("medication.due", "dispenser", dose_id=3)
    s.run_for(29 * MIN)
    s.send("medication.taken", "dispenser", dose_id=3)
    s.run_for(3 * H, step=10)
    s.send("medication.missed", "dispenser", dose_id=3)  # nonsense after taken: still quiet
    assert s.log == []


def test_a_dose_id_due_again_is_a_new_dose_and_dispensers_are_separate() -> None:
    s = sim(med(), start=at(2026, 1, 15, 8, 0))
    s.send("medication.due", "dispenser", dose_id=4)
    s.send("medication.due", "dispenser-2", dose_id=4)
    s.send("medication.taken", "dispenser-2", dose_id=4)
    s.run_for(31 * MIN)
    assert [o.device for _, o in s.log] == ["dispenser"]
    s.run_until(at(2026, 1, 15, 20, 0), step=30)
    second = s.send("medication.due", "dispenser", dose_id=4)  # the id comes round again
    s.send("medication.due", "dispenser", dose_id=4)  # announced twice: one dose, one timer
    s.run_for(31 * MIN)
    assert [o.cause for _, o in s.log][1:] == [second.id]


def test_grace_is_configurable() -> None:
    s = sim(MedicationMissed(grace_s=600, route=Route.ANY), start=at(2026, 1, 15, 8, 0))
    s.send("medication.due", "dispenser", dose_id=5)
    s.run_for(11 * MIN)
    assert s.times("rule.medication_missed") == ["08:10:00 CET"]
    assert s.log[0][1].route is Route.ANY


# =========================================================================== inactivity


def inactivity(**kw: Any) -> Inactivity:
    return Inactivity(window=DAY, tz=TZ, **kw)


def test_inactivity_after_four_quiet_hours_in_the_day() -> None:
    s = sim(inactivity(), start=at(2026, 1, 15, 9, 0))
    last = s.send("motion.activity", "motion-hall")
    s.run_until(at(2026, 1, 15, 12, 59, 50), step=10)
    assert s.log == []
    s.run_until(at(2026, 1, 15, 14, 0), step=10)
    assert s.times("rule.inactivity") == ["13:00:00 CET", "13:15:00 CET", "13:30:00 CET", "13:45:00 CET", "14:00:00 CET"]
    out = s.log[0][1]
    assert out.cause == last.id and out.device is None and out.rule == "inactivity"
    assert out.priority is Priority.NORMAL and out.route is Route.CARE
    assert out.data["quiet_s"] == 4 * H and out.data["last_activity"] == "motion.activity"
    assert {o.cause for _, o in s.log} == {last.id}
    # activity ends the quiet period; a new one alerts again after four more hours
    again = s.send("door.open", "door-front")
    s.run_until(at(2026, 1, 15, 18, 5), step=10)
    assert s.times("rule.inactivity")[5:] == ["18:00:00 CET"]
    assert s.log[-1][1].cause == again.id


@pytest.mark.parametrize(
    ("type", "device"),
    [("motion.activity", "motion-hall"), ("bed.exit", "bedmat"), ("bed.return", "bedmat"), ("door.open", "door-front"),
     ("door.close", "door-front"), ("alarm.button", "button"), ("medication.taken", "dispenser")],
)
def test_each_kind_of_activity_resets_the_quiet_time(type: str, device: str) -> None:
    s = sim(inactivity(), start=at(2026, 1, 15, 8, 0))
    s.run_until(at(2026, 1, 15, 11, 0), step=10)
    s.send(type, device)
    s.run_until(at(2026, 1, 15, 14, 59, 50), step=10)
    assert s.log == []


def test_events_that_are_not_activity_do_not_reset_it() -> None:
    s = sim(inactivity(), start=at(2026, 1, 15, 8, 0))
    s.run_until(at(2026, 1, 15, 11, 0), step=10)
    s.send("medication.due", "dispenser", dose_id=1)
    s.send("device.battery_low", "door-front", battery_pct=10)
    s.run_until(at(2026, 1, 15, 12, 0), step=10)
    assert s.times("rule.inactivity") == ["12:00:00 CET"]
    assert s.log[0][1].cause is None  # nothing seen since the rule started


def test_the_quiet_night_does_not_count() -> None:
    """Last activity at 21:00; asleep until 10:00. The day's quiet time starts at 07:00: alert at 11:00, not at 07:00."""
    s = sim(inactivity(), start=at(2026, 1, 14, 21, 0))
    s.send("bed.return", "bedmat")
    s.run_until(at(2026, 1, 15, 10, 59, 50), step=10)
    assert s.log == []
    s.run_until(at(2026, 1, 15, 11, 0), step=10)
    assert s.times("rule.inactivity") == ["11:00:00 CET"]
    assert s.log[0][1].data["quiet_s"] == 4 * H


def test_no_inactivity_alert_outside_the_day_window_and_realerts_stop_at_its_end() -> None:
    s = sim(inactivity(), start=at(2026, 1, 15, 19, 0))
    s.send("motion.activity", "motion-hall")
    s.run_until(at(2026, 1, 16, 6, 59, 50), step=10)  # 4 h from 19:00 would be 23:00: night
    assert s.log == []
    s = sim(inactivity(), start=at(2026, 1, 15, 17, 0))
    s.send("motion.activity", "motion-hall")
    s.run_until(at(2026, 1, 15, 23, 0), step=10)
    assert s.times("rule.inactivity") == ["21:00:00 CET", "21:15:00 CET", "21:30:00 CET", "21:45:00 CET"]


def test_inactivity_survives_a_restart() -> None:
    before = sim(inactivity(), start=at(2026, 1, 15, 9, 0))
    last = before.send("motion.activity", "motion-hall")
    before.run_until(at(2026, 1, 15, 12, 0), step=10)
    after = Sim(Rules([inactivity()]), at(2026, 1, 15, 12, 2), restore=before.rules.state())
    after.run_until(at(2026, 1, 15, 13, 0), step=10)
    assert [(wall(t), o.cause) for t, o in after.log] == [("13:00:00 CET", last.id)]


# =========================================================================== supervision


def supervision(devices: dict[str, tuple[str, float | None]] | None = None, **kw: Any) -> Supervision:
    return Supervision(devices if devices is not None else {"bedmat": ("bed_mat", 3600.0)}, **kw)


def test_a_silent_device_goes_offline_once_and_online_when_it_reports() -> None:
    s = sim(supervision(), start=at(2026, 1, 15, 10, 0))
    s.run_for(1)
    s.report("bedmat")
    s.run_until(at(2026, 1, 15, 11, 0, 1))
    assert s.log == []  # exactly the interval: not yet beyond it
    s.run_until(at(2026, 1, 15, 11, 0, 2))
    s.run_until(at(2026, 1, 15, 20, 0), step=10)  # and not again while silent
    [(t, out)] = s.log
    assert wall(t) == "11:00:02 CET"
    assert (out.type, out.device, out.priority, out.route) == ("device.offline", "bedmat", Priority.NORMAL, Route.ANY)
    assert out.data["reason"] == "silent" and out.data["expected_interval_s"] == 3600.0 and out.data["rule"] == "supervision"
    s.report("bedmat")
    s.report("bedmat")
    assert [o.type for _, o in s.log] == ["device.offline", "device.online"]
    assert s.log[1][1].data["offline_s"] == pytest.approx(at(2026, 1, 15, 20, 0) - at(2026, 1, 15, 11, 0, 2))
    s.run_for(H + 1)
    assert [o.type for _, o in s.log] == ["device.offline", "device.online", "device.offline"]


def test_readings_keep_a_device_online_and_events_do_not() -> None:
    s = sim(supervision(), start=at(2026, 1, 15, 10, 0))
    for _ in range(5):
        s.run_for(50 * MIN, step=10)
        s.report("bedmat")  # the driver heard a reading (it may or may not have made an event)
    assert s.log == []
    # a device logic's timed event (bed.exit after exit_after_s) is the hub's, not a sign of life
    for _ in range(2):
        s.run_for(50 * MIN, step=10)
        s.send("bed.exit", "bedmat")
    assert [o.type for _, o in s.log] == ["device.offline"]


#: Events the hub makes with a device's source: none is the device speaking.
HUB_MADE_EVENTS = [
    ("alarm.unacknowledged", {"waited_s": 60.0, "reminder": 1, "alarm_type": "alarm.nursecall", "alarms": 1}),
    ("alarm.acknowledged", {"by": "op", "alarm_type": "alarm.nursecall", "closes": ["x"], "alarms": 1}),
    ("alarm.cancelled", {"how": "reset", "closes": ["x"]}),
    ("alarm.test", {"note": "monthly", "battery_pct": 5}),
    ("rule.bed_not_returned", {"realert": 0}),
    ("device.offline", {"reason": "silent", "rule": "supervision"}),
]


def test_a_reminder_for_a_device_whose_port_vanished_is_not_a_sign_of_life() -> None:
    # issue 10 item 6: the port closed (device.offline from the port), the hub keeps reminding the central
    # of the device's open alarm with the device's source: no device.online while the port is gone
    s = sim(supervision({"nurse": ("nurse_call", None), "bedmat": ("bed_mat", 600.0)}), start=at(2026, 1, 15, 10, 0))
    for device in ("nurse", "bedmat"):
        s.send("device.offline", device, reason="read failed", port="/dev/ttyUSB0")
    for _ in range(30):
        s.run_for(MIN, step=10)
        for device in ("nurse", "bedmat"):
            for type_, data in HUB_MADE_EVENTS:
                s.send(type_, device, **data)
    assert s.log == [], "no device.online, no battery warning from the hub's own events"
    s.send("device.online", "nurse", port="/dev/ttyUSB0")  # the port is back: it said so itself
    s.report("bedmat")  # the mat read again (its port's online event is not needed for this)
    assert [(o.type, o.device) for _, o in s.log] == [("device.online", "bedmat")]
    s.report("nurse")
    assert len(s.log) == 1, "the port announced it: not twice"


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("gap"), st.floats(min_value=1.0, max_value=1500.0)),
            st.tuples(st.just("report"), st.sampled_from(["bedmat", "door-front"])),
            st.tuples(st.just("battery"), st.integers(min_value=0, max_value=100)),
            st.tuples(st.just("hub"), st.sampled_from(range(len(HUB_MADE_EVENTS)))),
        ),
        max_size=80,
    )
)
def test_hub_made_events_change_no_supervision_output(steps: list[tuple[str, Any]]) -> None:
    """Differential: the same readings with the hub's own events sprinkled in, or without them, give
    the same offline/online/battery outputs at the same times."""

    def run(with_hub_events: bool) -> list[tuple[float, str, str | None, dict[str, Any]]]:
        s = sim(supervision({"bedmat": ("bed_mat", 600.0), "door-front": ("door", 900.0)}), start=at(2026, 1, 15, 10, 0))
        for what, arg in steps:
            if what == "gap":
                s.run_for(arg, step=30)
            elif what == "report":
                s.report(arg)
            elif what == "battery":
                s.report("door-front", battery=arg)
            elif with_hub_events:
                type_, data = HUB_MADE_EVENTS[arg]
                for device in ("bedmat", "door-front"):
                    s.send(type_, device, **data)
        return [(t, o.type, o.device, o.data) for t, o in s.log]

    assert run(True) == run(False)


def test_silence_counts_from_start_until_the_first_report_and_kinds_without_interval_are_not_supervised() -> None:
    devices = {"bedmat": ("bed_mat", 600.0), "button": ("alarm_button", None), "door-front": ("door", 0)}
    s = sim(supervision(devices), start=at(2026, 1, 15, 10, 0))
    s.run_until(at(2026, 1, 16, 12, 0), step=30)
    assert [(wall(t), o.device) for t, o in s.log] == [("10:10:30 CET", "bedmat")]


def test_offline_and_online_from_the_port_are_not_said_twice() -> None:
    s = sim(supervision(), start=at(2026, 1, 15, 10, 0))
    s.send("device.offline", "bedmat", reason="cannot open", port="/dev/ttyUSB0")
    s.run_for(3 * H, step=10)
    assert s.log == []  # the port said it already
    s.send("device.online", "bedmat", port="/dev/ttyUSB0")
    s.report("bedmat")
    assert s.log == []  # and said it is back
    s.run_for(H + 10, step=10)
    assert [o.type for _, o in s.log] == ["device.offline"]


def test_supervision_ignores_its_own_events_fed_back() -> None:
    s = sim(supervision(), start=at(2026, 1, 15, 10, 0))
    s.run_for(H + 1)
    [(_, out)] = s.log
    fed_back = event(out.type, "bedmat", s.now, **out.data)
    assert s.rules.on_event(fed_back, s.now) == []
    s.run_for(2 * H, step=10)
    assert len(s.log) == 1  # still offline: its own event was not taken as a report


def test_battery_low_once_with_hysteresis() -> None:
    s = sim(supervision({"door-front": ("door", 86400.0)}), start=at(2026, 1, 15, 10, 0))
    for pct in (60, 25, 20, 19, 18, 19, 21, 25, 29, 22, 19, 15):
        s.report("door-front", battery=pct)
        s.run_for(MIN)
    lows = s.of("device.battery_low")
    assert [o.data["battery_pct"] for _, o in lows] == [19]
    assert lows[0][1].data["threshold_pct"] == 20
    s.report("door-front", battery=30)  # re-armed at battery_ok_pct
    s.report("door-front", battery=25)
    s.report("door-front", battery=19.5)
    assert [o.data["battery_pct"] for _, o in s.of("device.battery_low")] == [19, 19.5]


def test_battery_from_event_data_and_a_drivers_own_warning() -> None:
    s = sim(supervision({"door-front": ("door", 86400.0), "bedmat": ("bed_mat", 3600.0)}), start=at(2026, 1, 15, 10, 0))
    s.send("door.open", "door-front", battery=12)
    assert [(o.type, o.device, o.data["battery_pct"]) for _, o in s.log] == [("device.battery_low", "door-front", 12)]
    # the bed mat driver warns itself (BatteryWatch): supervision does not warn a second time
    s.send("device.battery_low", "bedmat", battery_pct=15, threshold_pct=20)
    s.report("bedmat", battery=14)
    s.send("door.close", "door-front", battery=True)  # not a level
    assert len(s.log) == 1


def test_supervision_restart_does_not_count_the_downtime_as_silence() -> None:
    before = sim(supervision(), start=at(2026, 1, 15, 10, 0))
    before.report("bedmat")
    before.run_until(at(2026, 1, 15, 10, 40), step=10)  # 40 min of silence seen
    after = Sim(Rules([supervision()]), at(2026, 1, 15, 13, 0), restore=before.rules.state())  # down for 2 h 20 min
    after.run_until(at(2026, 1, 15, 13, 20), step=10)
    assert after.log == []
    after.run_until(at(2026, 1, 15, 13, 21), step=10)
    assert after.times("device.offline") == ["13:20:10 CET"]


def test_supervision_restart_keeps_offline_and_battery_state() -> None:
    before = sim(supervision({"door-front": ("door", 600.0)}), start=at(2026, 1, 15, 10, 0))
    before.report("door-front", battery=10)
    before.run_for(11 * MIN, step=10)
    assert [o.type for _, o in before.log] == ["device.battery_low", "device.offline"]
    after = Sim(Rules([supervision({"door-front": ("door", 600.0)})]), before.now + 60, restore=before.rules.state())
    after.run_for(H, step=10)
    after.report("door-front", battery=11)
    assert [o.type for _, o in after.log] == ["device.online"]


def test_supervision_refuses_ok_not_above_low() -> None:
    with pytest.raises(ValueError, match="battery_ok_pct"):
        supervision(battery_low_pct=30, battery_ok_pct=30)


# =========================================================================== engine


def test_rule_events_are_not_fed_back() -> None:
    rules = build_rules(_config(), tz=TZ, devices=DEVICES)
    s = Sim(rules, at(2026, 1, 15, 2, 0))
    s.send("bed.exit", "bedmat")
    s.run_until(at(2026, 1, 15, 2, 20))
    outputs = [o for _, o in s.log]
    assert {o.type for o in outputs} == {"rule.bed_exit", "rule.bed_not_returned"}
    before = len(s.log)
    for o in outputs:  # the hub publishes them and, naively, feeds them back in
        fed = Event(
            v=1, id=uuid7(s.now), hub="hub-test", seq=next(_seq), ts=rfc3339(s.now), type=o.type,
            priority=o.priority, source=o.to_draft().source if o.device is None else Source(device=o.device, kind=KINDS[o.device]),
            resident="res-001", route=o.route, data=o.data, cause=o.cause,
        )
        s._keep(s.rules.on_event(fed, s.now))
    assert len(s.log) == before


def test_rules_need_distinct_names() -> None:
    with pytest.raises(ValueError, match="own name"):
        Rules([bed_rule(), bed_rule()])


def test_output_to_draft() -> None:
    rule_out = RuleOutput(type="rule.inactivity", priority=Priority.NORMAL, route=Route.CARE, data={"quiet_s": 1.0},
                          cause=None, device=None, rule="inactivity")
    d = rule_out.to_draft()
    assert (d.type, d.priority, d.route, d.cause) == ("rule.inactivity", Priority.NORMAL, Route.CARE, None)
    assert (d.source.device, d.source.kind) == ("rule:inactivity", "rule")
    src = Source(device="bedmat", kind="bed_mat", room="bedroom")
    assert RuleOutput(type="rule.bed_exit", priority=Priority.HIGH, route=Route.CARE, cause="x", device="bedmat",
                      rule="bed_exit").to_draft(src).source == src


def test_rule_event_types_are_in_the_contract_style_and_cover_every_rule() -> None:
    pattern = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
    import re

    assert all(re.match(pattern, t) for t in RULE_EVENT_TYPES)
    assert set(RULE_EVENT_TYPES) <= set(EVENT_TYPES), "the rules' types are part of the contract"
    emitted = {r.event_type for r in build_rules(_config(), tz=TZ, devices=DEVICES) if hasattr(r, "event_type")}  # type: ignore[attr-defined]
    assert emitted == set(RULE_EVENT_TYPES)
    assert {"device.offline", "device.online", "device.battery_low"} <= set(EVENT_TYPES)  # what supervision emits
    assert RULE_EVENT_TYPES["rule.inactivity"][0] is Priority.NORMAL


# =========================================================================== any tick schedule


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.5, max_value=2000.0), min_size=1, max_size=200),
    repeats=st.lists(st.booleans(), min_size=1, max_size=200),
)
def test_alert_timing_does_not_depend_on_the_tick_schedule(gaps: list[float], repeats: list[bool]) -> None:
    """Whatever the gaps between ticks (and however often the mat repeats bed.exit): the first alert comes at
    the first tick at or after exit + after_s, re-alerts at least realert_s apart, none after the night."""
    r = bed_rule()
    t0 = at(2026, 1, 15, 1, 0)
    exit_ = event("bed.exit", "bedmat", t0)
    assert r.on_event(exit_, t0) == []
    now, fired = t0, []
    for gap, repeat in zip(gaps, itertools.cycle(repeats)):
        now += gap
        outs = r.on_event(event("bed.exit", "bedmat", now), now) if repeat else r.tick(now)
        fired += [(now, o) for o in outs]
    ticks = list(itertools.accumulate(gaps, initial=t0))[1:]
    due = [t for t in ticks if t >= t0 + 1200]
    if not due:
        assert fired == []
        return
    assert fired[0][0] == due[0]
    assert all(o.cause == exit_.id for _, o in fired)
    assert all(b - a >= 900 for (a, _), (b, _) in itertools.pairwise(fired))
    assert all(NIGHT.contains(t, TZ) for t, _ in fired[1:])
    assert [o.data["realert"] for _, o in fired] == list(range(len(fired)))


# =========================================================================== wall-clock steps


def _night_with_a_clock_step(step: float, *, step_at_min: float | None, compensate: bool = True) -> list[tuple[float, str, str | None, str | None]]:
    """A night of events on a real timeline; the wall clock is set by ``step`` at ``step_at_min``.

    Returns every output as (real seconds since the start, type, cause, device),
    so runs with and without a step can be compared.
    """
    rules = build_rules(_config(), tz=TZ, devices=DEVICES)
    start = at(2026, 1, 15, 22, 50)
    plan = {  # real minutes after the start -> what happens
        10: ("bed.exit", "bedmat", {}),
        15: ("door.open", "door-front", {}),
        16: ("door.close", "door-front", {}),
        17: ("medication.due", "dispenser", {"dose_id": 7}),
    }
    out: list[tuple[float, str, str | None, str | None]] = []
    offset = 0.0
    ids: dict[str, str] = {}
    for tick in range(0, 6 * 360):  # six hours, every 10 s
        real = tick * 10.0
        if step_at_min is not None and real == step_at_min * 60:
            offset = step
            if compensate:
                rules.clock_stepped(step)
        now = start + real + offset
        outs = rules.tick(now)
        if real % 300 == 0:  # every device reports every 5 minutes, except the bed mat after the exit
            for device in DEVICES:
                if device != "bedmat" or real < 600:
                    outs += rules.report(device, now)
        if real % 60 == 0 and real // 60 in plan:
            type_, device, data = plan[int(real // 60)]
            e = event(type_, device, now, **data)
            ids[e.id] = type_
            outs += rules.on_event(e, now)
        out += [(real, o.type, ids.get(o.cause or "", o.cause), o.device) for o in outs]
    return out


@pytest.mark.parametrize("step", [86_400.0, -86_400.0, 7 * 86_400.0])
@pytest.mark.parametrize("step_at_min", [5, 12, 18, 40])
def test_a_wall_clock_step_changes_no_rule_output(step: float, step_at_min: float) -> None:
    # A step of whole days keeps the local time of day, so the night window is the same either way:
    # every alert must come after the same real time as on a night without a step.
    plain = _night_with_a_clock_step(0.0, step_at_min=None)
    assert {t for _, t, _, _ in plain} >= {"rule.bed_not_returned", "rule.medication_missed", "device.offline"}
    assert _night_with_a_clock_step(step, step_at_min=step_at_min) == plain


def test_ntp_setting_the_clock_after_boot_is_not_silence() -> None:
    # a Pi without RTC boots with yesterday's shutdown time; NTP sets it two hours forward
    stepped = _night_with_a_clock_step(2 * H, step_at_min=3)
    early = [(t, type_, d) for t, type_, _, d in stepped if type_ == "device.offline" and t < 30 * MIN]
    assert early == []  # no device "silent for two hours" a few minutes after the hub started
    assert not [d for _, type_, _, d in stepped if type_ == "device.offline" and d == "bedmat-2"]  # it never was
    # without moving the rules' instants, the bed mats (expected every hour) would be called offline at the step
    naive = _night_with_a_clock_step(2 * H, step_at_min=3, compensate=False)
    assert {d for t, type_, _, d in naive if type_ == "device.offline" and t == 3 * MIN} == {"bedmat", "bedmat-2"}


@pytest.mark.parametrize("step", [86_400.0, -86_400.0])
@pytest.mark.parametrize("step_at", [(10, 0), (13, 10)])  # quiet and not yet alerting; between re-alerts
def test_inactivity_counts_real_quiet_time_across_a_clock_step(step: float, step_at: tuple[int, int]) -> None:
    s = sim(inactivity(), start=at(2026, 1, 15, 9, 0))
    last = s.send("motion.activity", "motion-hall")
    s.run_until(at(2026, 1, 15, *step_at), step=10)
    before = len(s.log)
    s.rules.clock_stepped(step)
    s.clock.set(s.now + step)
    s.run_until(at(2026, 1, 15, 14, 0) + step, step=10)
    # the same alerts, at the same real times, as on a day without a step
    real = [t if i < before else t - step for i, (t, _) in enumerate(s.log)]
    assert [o.type for _, o in s.log] == ["rule.inactivity"] * 5
    assert real == [at(2026, 1, 15, 13, m) for m in (0, 15, 30, 45)] + [at(2026, 1, 15, 14, 0)]
    assert {o.cause for _, o in s.log} == {last.id}
    assert s.log[0][1].data["quiet_s"] == 4 * H


_BURST_EVENTS = [
    ("bed.exit", "bedmat"), ("bed.return", "bedmat"), ("door.open", "door-front"), ("door.close", "door-front"),
    ("motion.detected", "motion-hall"), ("medication.due", "dispenser"), ("medication.taken", "dispenser"),
    ("device.battery_low", "bedmat"), ("device.offline", "door-back"), ("device.online", "door-back"),
]


@settings(max_examples=60, deadline=None)
@example(bursts=[(5400.0, [("bed.exit", "bedmat")]), (5400.0, [("bed.exit", "bedmat")])], start_h=4)  # 07:00
@given(
    bursts=st.lists(
        st.tuples(st.floats(0, 3 * H), st.lists(st.sampled_from(_BURST_EVENTS), min_size=1, max_size=6)),
        min_size=1, max_size=8,
    ),
    start_h=st.integers(0, 23),
)
def test_a_burst_seen_at_once_gives_what_each_event_alone_gives(
    bursts: list[tuple[float, list[tuple[str, str]]]], start_h: int
) -> None:
    """One serial read's events reach the rules in one call (RulesRunner.on_events: a tick, each event's
    handle, a tick, all at the read's time): the outputs and the state are those of feeding each event
    with on_event at that time, whatever the events, the gaps and the hour, once the next tick (a second
    later, RULES_TICK_S) has run on both. (A tick is not idempotent at one instant: one may alert and the
    next end the episode because its window closed, so the state is compared after the next tick.)"""
    one = build_rules(_config(), tz=TZ, devices=DEVICES)
    many = build_rules(_config(), tz=TZ, devices=DEVICES)
    t = at(2026, 1, 15, start_h)
    one.tick(t), many.tick(t)

    def key(o: RuleOutput) -> tuple[Any, ...]:
        return o.type, o.device, o.cause, json.dumps(o.data, sort_keys=True)

    for gap, burst in bursts:
        t += RULES_TICK_S + gap
        events = [event(type_, device, t) for type_, device in burst]
        alone: list[RuleOutput] = []
        for e in events:
            alone += one.on_event(e, t)
        together = many.tick(t)
        for e in events:
            together += many.handle(e, t)
        together += many.tick(t)
        alone += one.tick(t + RULES_TICK_S)
        together += many.tick(t + RULES_TICK_S)
        assert sorted(map(key, together)) == sorted(map(key, alone))
        assert json.dumps(many.state(), sort_keys=True) == json.dumps(one.state(), sort_keys=True)
