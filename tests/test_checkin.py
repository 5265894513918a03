"""The daily check-in rule as a pure unit: explicit ``now``, windows in Oslo time (both DST days of 2026),
acks, away, restarts and clock steps (hub/rules/checkin.py, hub/rules/checkin_config.py)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from hub import eventdata
from hub.events import EVENT_TYPES, Event, Priority, Route, Source, rfc3339, uuid7
from hub.rules import CheckIn, Inactivity, Rules, RulesConfig, build_rules, parse_window
from hub.rules.away import Absence, parse_local
from hub.rules.checkin_config import check_in_devices

TZ = ZoneInfo("Europe/Oslo")
MORNING = parse_window("08:00-10:30")
_seq = itertools.count(1)


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, fold: int = 0) -> float:
    """Unix seconds of an Oslo wall-clock time."""
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ, fold=fold).timestamp()


def wall(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).strftime("%Y-%m-%d %H:%M:%S %Z")


def event(type: str, t: float, device: str = "checkin-1", kind: str = "checkin_button", **data: Any) -> Event:
    return Event(v=1, id=uuid7(t), hub="hub-test", seq=next(_seq), ts=rfc3339(t), type=type,
                 priority=EVENT_TYPES[type][0], source=Source(device=device, kind=kind), resident="res-001",
                 route=Route.CARE, data=data)


class Run:
    """One rule engine on an explicit clock: events, ticks every ``step`` seconds, every output kept."""

    def __init__(self, rules: Rules, start: float, state: dict[str, Any] | None = None) -> None:
        self.rules, self.now, self.log = rules, start, []
        if state is not None:
            assert rules.restore(json.loads(json.dumps(state)), start) == []
        self._keep(rules.tick(start))

    @property
    def rule(self) -> CheckIn:
        return self.rules.get("check_in")  # type: ignore[return-value]

    def _keep(self, outs: list[Any]) -> None:
        self.log += [(self.now, o) for o in outs]

    def until(self, t: float, step: float = 10.0) -> None:
        while self.now + step <= t:
            self.now += step
            self._keep(self.rules.tick(self.now))
        if self.now < t:
            self.now = t
            self._keep(self.rules.tick(self.now))

    def send(self, type: str, **data: Any) -> Event:
        e = event(type, self.now, **data)
        self._keep(self.rules.on_event(e, self.now))
        return e

    def check_in(self) -> Event:
        """What the hub does on a check-in: the rule's view for the data, then the committed checkin.done."""
        data = {"input": "gpio", "gesture": "press", "window": self.rule.window_at(self.now),
                "missed": self.rule.missed_id}
        assert eventdata.problems("checkin.done", data) == []
        return self.send("checkin.done", **data)

    def missed(self) -> list[tuple[float, Any]]:
        return [(t, o) for t, o in self.log if o.type == "checkin.missed"]


def rule(**kw: Any) -> CheckIn:
    kw.setdefault("windows", [MORNING])
    return CheckIn(tz=TZ, buttons=["checkin-1"], devices=["ble-button"], gestures=["double_press"], **kw)


def run(start: float, **kw: Any) -> Run:
    return Run(Rules([rule(**kw)]), start)


# --------------------------------------------------------------------------- in time, missed, re-alerts, acks


def test_check_in_inside_the_window_raises_nothing() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 9, 12))
    assert r.rule.window_at(r.now) == "08:00-10:30"
    done = r.check_in()
    assert done.data == {"input": "gpio", "gesture": "press", "window": "08:00-10:30", "missed": None}
    r.until(at(2026, 12, 8, 7, 0), step=60)
    assert r.missed() == []
    assert r.rule.state()["judged"] == {"08:00-10:30@2026-12-07": "done"}


def test_a_check_in_before_the_window_opens_does_not_count() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 7, 55))
    assert r.rule.window_at(r.now) is None
    r.check_in()
    r.until(at(2026, 12, 7, 10, 31))
    assert len(r.missed()) == 1


def test_no_check_in_is_missed_at_the_window_end_then_realerted_until_an_ack() -> None:
    r = run(at(2026, 12, 7, 7, 0), realert_s=900)
    r.until(at(2026, 12, 7, 10, 29, 50))
    assert r.missed() == []
    r.until(at(2026, 12, 7, 10, 30), step=1)
    ((t, first),) = r.missed()
    assert wall(t) == "2026-12-07 10:30:00 CET"
    assert (first.priority, first.route, first.cause, first.device) == (Priority.HIGH, Route.CARE, None, None)
    assert first.data == {"window": "08:00-10:30", "opened_at": rfc3339(at(2026, 12, 7, 8)),
                          "due_at": rfc3339(at(2026, 12, 7, 10, 30)), "last_checkin_at": None, "realert": 0}
    assert eventdata.problems("checkin.missed", first.data) == []
    assert first.to_draft().id == first.id, "the id is known before it is sent: an ack may come at once"
    r.until(at(2026, 12, 7, 11, 15), step=1)
    assert [wall(t)[11:] for t, _ in r.missed()] == ["10:30:00 CET", "10:45:00 CET", "11:00:00 CET", "11:15:00 CET"]
    assert all(o.cause == first.id for _, o in r.missed()[1:])
    assert [o.data["realert"] for _, o in r.missed()] == [0, 1, 2, 3]
    second = r.missed()[1][1]
    reply = r.rule.acknowledge(second.id, "op-17", r.now)  # an ack of a re-alert names the episode's first
    assert reply == {"ok": True, "result": "acknowledged", "alarm_id": first.id,
                     "closes": [o.id for _, o in r.missed()]}
    r.until(at(2026, 12, 7, 13, 0))
    assert len(r.missed()) == 4, "the ack stops the re-alerts"
    assert r.rule.acknowledge(first.id, "op-22", r.now)["result"] == "already_acknowledged"  # type: ignore[index]
    assert r.rule.acknowledge(uuid7(), "op-22", r.now) is None, "not the rule's: the alarm tracker says unknown"


def test_a_late_check_in_ends_the_realerts_and_says_which_call_it_ends() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 10, 50))
    first = r.missed()[0][1]
    done = r.check_in()
    assert done.data["window"] is None and done.data["missed"] == first.id
    r.until(at(2026, 12, 7, 14, 0))
    assert len(r.missed()) == 2
    assert r.rule.acknowledge(first.id, "op-17", r.now)["result"] == "ended"  # type: ignore[index]
    assert r.rule.state()["missed"] is None


def test_realerts_stop_when_the_next_days_window_opens_which_is_judged_afresh() -> None:
    r = run(at(2026, 12, 7, 7, 0), realert_s=3600)
    r.until(at(2026, 12, 8, 8, 0), step=60)
    assert len(r.missed()) == 22  # 10:30 .. 07:30 the next morning, hourly
    assert r.rule.missed_id is None, "ended by the next window"
    r.check_in()
    r.until(at(2026, 12, 8, 12, 0), step=60)
    assert len(r.missed()) == 22


def test_two_windows_a_day_each_judged_once() -> None:
    r = run(at(2026, 12, 7, 7, 0), windows=[MORNING, parse_window("18:00-20:00")], realert_s=0)
    r.until(at(2026, 12, 7, 9, 0))
    r.check_in()
    r.until(at(2026, 12, 8, 7, 0), step=30)
    assert [wall(t)[11:16] for t, _ in r.missed()] == ["20:00"]
    assert [o.data["window"] for _, o in r.missed()] == ["18:00-20:00"]


def test_a_whole_day_window_is_judged_at_midnight_and_realerted_into_the_next_day() -> None:
    r = run(at(2026, 12, 7, 12, 0), windows=[parse_window("00:00-24:00")], realert_s=3600)
    r.until(at(2026, 12, 8, 2, 30), step=30)
    assert [wall(t)[:16] for t, _ in r.missed()] == ["2026-12-08 00:00", "2026-12-08 01:00", "2026-12-08 02:00"]
    assert r.rule.window_at(r.now) == "00:00-24:00"
    done = r.check_in()  # today's check-in ends yesterday's call and counts for today
    assert done.data["missed"] == r.missed()[0][1].id
    r.until(at(2026, 12, 9, 0, 30), step=60)
    assert len(r.missed()) == 3


def test_overlapping_windows_are_each_judged() -> None:
    r = run(at(2026, 12, 7, 7, 0), windows=[parse_window("08:00-12:00"), parse_window("10:00-11:00")], realert_s=0)
    r.until(at(2026, 12, 7, 13, 0), step=30)
    assert [(wall(t)[11:16], o.data["window"]) for t, o in r.missed()] == [
        ("11:00", "10:00-11:00"), ("12:00", "08:00-12:00")]


# --------------------------------------------------------------------------- what counts


def test_which_gestures_count() -> None:
    c = rule()
    assert c.counts("checkin-1", "press") and c.counts("checkin-1", "long_press")
    assert c.counts("ble-button", "double_press")
    assert not c.counts("ble-button", "press"), "an alarm button's press is always an alarm"
    assert not c.counts("ble-button", "long_press") and not c.counts("button-1", "double_press")


def test_a_check_in_counts_as_activity_for_the_inactivity_rule() -> None:
    day = parse_window("07:00-22:00")
    r = Run(Rules([rule(), Inactivity(window=day, tz=TZ, after_s=3600)]), at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 7, 50))
    r.check_in()
    r.until(at(2026, 12, 7, 8, 45))
    assert [o for _, o in r.log if o.type == "rule.inactivity"] == []
    r.until(at(2026, 12, 7, 8, 51))
    (alert,) = [o for _, o in r.log if o.type == "rule.inactivity"]
    assert alert.data["last_activity"] == "checkin.done"


# --------------------------------------------------------------------------- away


def test_cmd_away_suppresses_then_ends() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    reply = r.rule.set_away(at(2026, 12, 7, 6), at(2026, 12, 9, 12), reason="hospital", by="op-17", now=r.now)
    assert reply["away"] == {"from": rfc3339(at(2026, 12, 7, 6)), "until": rfc3339(at(2026, 12, 9, 12)),
                             "reason": "hospital", "by": "op-17"}
    assert reply["away_now"] is True and reply["absence"] == "command" and reply["previous"] is None
    r.until(at(2026, 12, 9, 13, 0), step=60)
    assert r.missed() == [], "the 7th, 8th and 9th (the stay overlaps the 9th's window) raise no call"
    assert r.rule.state()["judged"] == {f"08:00-10:30@2026-12-{d}": "away" for d in ("07", "08", "09")}
    r.until(at(2026, 12, 10, 10, 31), step=60)
    assert len(r.missed()) == 1, "home again: the 10th's window is judged"


def test_cmd_away_arriving_during_realerts_stops_them_and_cancel_ends_away() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 10, 40))
    assert len(r.missed()) == 1
    r.rule.set_away(r.now, at(2026, 12, 7, 18), reason=None, by="op-17", now=r.now)
    r.until(at(2026, 12, 7, 12, 0))
    assert len(r.missed()) == 1
    end = r.rule.end_away(by="op-22", now=r.now)
    assert end["away"] is None and end["previous"]["by"] == "op-17" and end["away_now"] is False
    r.until(at(2026, 12, 8, 10, 31), step=60)
    assert len(r.missed()) == 2


def test_a_configured_absence_suppresses_and_the_day_after_is_judged() -> None:
    holiday = Absence(start=parse_local("2026-12-20", TZ, end=False), end=parse_local("2026-12-22", TZ, end=True),
                      reason="holiday")
    assert wall(holiday.start) == "2026-12-20 00:00:00 CET" and wall(holiday.end) == "2026-12-23 00:00:00 CET"
    r = run(at(2026, 12, 19, 20, 0), absences=[holiday])
    r.until(at(2026, 12, 23, 10, 31), step=60)
    assert [wall(t)[:10] for t, _ in r.missed()] == ["2026-12-23"]


# --------------------------------------------------------------------------- DST days (Europe/Oslo 2026)


def test_spring_forward_day_window_is_local_time() -> None:
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; the window closes at 10:30 CEST, 08:30 UTC
    r = run(at(2026, 3, 28, 7, 0), realert_s=0)
    r.until(at(2026, 3, 29, 11, 0), step=30)
    assert [wall(t) for t, _ in r.missed()] == ["2026-03-28 10:30:00 CET", "2026-03-29 10:30:00 CEST"]
    assert r.missed()[1][0] == datetime(2026, 3, 29, 8, 30, tzinfo=ZoneInfo("UTC")).timestamp()


def test_spring_forward_window_in_the_skipped_hour_closes_at_the_jump() -> None:
    r = run(at(2026, 3, 29, 0, 0), windows=[parse_window("01:00-02:30")], realert_s=0)
    r.until(at(2026, 3, 29, 4, 0), step=5)
    assert [wall(t) for t, _ in r.missed()] == ["2026-03-29 03:00:00 CEST"]


def test_fall_back_day_window_is_local_time_and_judged_once() -> None:
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:00-02:30 happens twice
    r = run(at(2026, 10, 24, 12, 0), windows=[parse_window("02:00-02:30"), MORNING], realert_s=0)
    r.until(at(2026, 10, 25, 11, 0), step=30)
    assert [wall(t) for t, _ in r.missed()] == ["2026-10-25 02:30:00 CEST", "2026-10-25 10:30:00 CET"]
    assert r.missed()[1][0] == datetime(2026, 10, 25, 9, 30, tzinfo=ZoneInfo("UTC")).timestamp()


def test_a_check_in_on_the_second_pass_of_the_repeated_hour_is_after_the_window() -> None:
    r = run(at(2026, 10, 25, 1, 0), windows=[parse_window("02:00-02:30")], realert_s=0)
    r.until(at(2026, 10, 25, 2, 10, fold=1), step=30)  # 02:10 CET, the second pass: the window closed at 02:30 CEST
    assert r.rule.window_at(r.now) is None
    assert len(r.missed()) == 1


# --------------------------------------------------------------------------- restarts and clock steps


def test_restart_mid_window_missed_comes_once() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 9, 0))
    saved = r.rules.state()
    # the hub is down from 09:00 to 09:40; a new engine from the same config carries on
    r2 = Run(Rules([rule()]), at(2026, 12, 7, 9, 40), state=saved)
    r2.until(at(2026, 12, 7, 10, 35), step=1)
    assert [wall(t)[11:] for t, _ in r2.missed()] == ["10:30:00 CET"]
    # it dies at 10:35 (state saved with the alert) and comes back at 10:40: no second missed, pace kept
    r3 = Run(Rules([rule()]), at(2026, 12, 7, 10, 40), state=r2.rules.state())
    r3.until(at(2026, 12, 7, 10, 44, 59), step=1)
    assert r3.missed() == []
    r3.until(at(2026, 12, 7, 10, 45), step=1)
    ((_, realert),) = r3.missed()
    assert realert.cause == r2.missed()[0][1].id and realert.data["realert"] == 1


def test_crash_before_the_state_was_saved_catches_up_once_and_the_ack_still_works() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 10, 0))
    saved = r.rules.state()
    r.until(at(2026, 12, 7, 10, 30), step=1)
    ((_, sent),) = r.missed()
    committed = Event.from_draft(sent.to_draft(), hub="hub-test", resident="res-001", seq=99)
    # restart at 10:31 from the 10:00 state; the outbox has the committed checkin.missed: caught up silently
    rules = Rules([rule()])
    assert rules.restore(json.loads(json.dumps(saved)), at(2026, 12, 7, 10, 31)) == []
    rules.on_event(committed, at(2026, 12, 7, 10, 30))
    r2 = Run(rules, at(2026, 12, 7, 10, 31))
    r2.until(at(2026, 12, 7, 10, 44), step=1)
    assert r2.missed() == [], "not twice"
    assert r2.rule.acknowledge(sent.id, "op-17", r2.now)["result"] == "acknowledged"  # type: ignore[index]


def test_hub_down_over_the_window_end_is_judged_when_it_returns_unless_a_later_window_opened() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 10, 0))
    down = r.rules.state()
    back = Run(Rules([rule()]), at(2026, 12, 7, 11, 20), state=down)
    assert [wall(t)[11:] for t, _ in back.missed()] == ["11:20:00 CET"], "a gap errs towards a call"
    late = Run(Rules([rule()]), at(2026, 12, 8, 9, 0), state=down)
    late.until(at(2026, 12, 8, 10, 0))
    assert late.missed() == [], "yesterday's window is stale once today's opened"


def test_a_rule_that_first_runs_after_the_window_does_not_judge_it() -> None:
    r = run(at(2026, 12, 7, 12, 0))
    r.until(at(2026, 12, 7, 23, 0), step=60)
    assert r.missed() == []


def test_clock_steps_keep_the_realert_pace_and_never_judge_twice() -> None:
    rules = Rules([rule()])
    r = Run(rules, at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 10, 31))
    assert len(r.missed()) == 1
    # NTP sets the clock back an hour (to 09:31): the window is "open" again on the wall clock
    rules.clock_stepped(-3600)
    r.now -= 3600
    r.until(at(2026, 12, 7, 10, 40), step=1)
    assert [o.data["realert"] for _, o in r.missed()] == [0, 1, 2, 3, 4], "re-alerts only, never a second first"
    assert [wall(t)[11:16] for t, _ in r.missed()[1:]] == ["09:45", "10:00", "10:15", "10:30"], (
        "every 15 real minutes: the first was 15 minutes before 09:45 on the corrected clock")


def test_state_round_trips_and_bad_state_starts_afresh() -> None:
    r = run(at(2026, 12, 7, 7, 0))
    r.until(at(2026, 12, 7, 9, 0))
    r.check_in()
    r.rule.set_away(at(2026, 12, 24, 0), at(2026, 12, 27, 0), reason="holiday", by="op-1", now=r.now)
    r.until(at(2026, 12, 8, 10, 40))
    state = r.rules.state()
    assert json.loads(json.dumps(state)) == state
    fresh = Rules([rule()])
    assert fresh.restore(json.loads(json.dumps(state)), r.now) == []
    assert fresh.state() == state
    broken = json.loads(json.dumps(state))
    broken["rules"]["check_in"]["missed"] = {"key": "x"}
    assert fresh.restore(broken, r.now) == ["check_in"]


# --------------------------------------------------------------------------- config


def _cfg(**check_in: Any) -> RulesConfig:
    return msgspec.convert({"check_in": check_in}, RulesConfig)


def test_config_builds_the_rule_with_buttons_and_absences() -> None:
    cfg = _cfg(enabled=True, windows=["08:00-10:30", "18:00-20:00"], devices=["ble-button"],
               gestures=["double_press", "long_press"], realert_s=600,
               absence=[{"from": "2026-12-20", "until": "2027-01-03T12:00", "reason": "holiday"}])
    assert cfg.check() == []
    rules = build_rules(cfg, tz=TZ, devices={"checkin-1": ("checkin_button", None), "ble-button": ("alarm_button", None)})
    c = rules.get("check_in")
    assert isinstance(c, CheckIn)
    assert c.buttons == {"checkin-1"} and c.gestures == {"double_press", "long_press"} and c.realert_s == 600
    (a,) = c.absences
    assert wall(a.start) == "2026-12-20 00:00:00 CET" and wall(a.end) == "2027-01-03 12:00:00 CET"
    assert build_rules(_cfg(), tz=TZ).get("check_in") is None, "opt-in"


@pytest.mark.parametrize(
    ("table", "path", "says"),
    [
        ({"enabled": True}, ("check_in", "windows"), "at least one window"),
        ({"windows": ["08:00-08:00"]}, ("check_in", "windows", 0), "empty window"),
        ({"absence": [{"from": "2026-12-20", "until": "2026-12-19"}]}, ("check_in", "absence", 0, "until"), "after from"),
        ({"absence": [{"from": "2026-02-30", "until": "2026-03-02"}]}, ("check_in", "absence", 0, "from"), "not a date"),
    ],
)
def test_config_problems_name_their_key(table: dict[str, Any], path: tuple[Any, ...], says: str) -> None:
    problems = _cfg(**table).check()
    assert [p for p, _ in problems] == [path] and says in problems[0][1]


def test_config_refuses_a_gesture_that_is_a_press() -> None:
    with pytest.raises(msgspec.ValidationError):
        _cfg(gestures=["press"])


def test_check_in_devices_must_be_ble_buttons_of_the_residence() -> None:
    cfg = _cfg(devices=["ble-button", "button-1", "door-1", "nope"]).check_in
    devices = {"ble-button": ("alarm_button", True), "button-1": ("alarm_button", False), "door-1": ("door", True)}
    problems = dict(check_in_devices(cfg, devices))
    assert sorted(problems) == [("devices", 1), ("devices", 2), ("devices", 3)]
    assert "checkin_button" in problems[("devices", 1)] and "kind 'door'" in problems[("devices", 2)]


def test_a_reload_that_reorders_the_windows_keeps_the_days_check_in() -> None:
    """The state names an occurrence by its window as written: a reload that puts the evening window first
    does not take the morning's check-in for the evening's, nor call for a morning that was checked in."""
    evening = parse_window("18:00-20:00")
    first = run(at(2026, 12, 7, 7, 0), windows=[evening, MORNING])
    first.until(at(2026, 12, 7, 9, 0))
    first.check_in()
    state = first.rules.state()
    second = Run(Rules([rule(windows=[MORNING, evening])]), at(2026, 12, 7, 9, 5), state)
    second.until(at(2026, 12, 7, 12, 0), step=60)
    assert second.missed() == [], "the morning was checked in before the reload"
    assert second.rule.state()["judged"] == {"08:00-10:30@2026-12-07": "done"}
    second.until(at(2026, 12, 7, 20, 1), step=60)
    assert [o.data["window"] for _, o in second.missed()] == ["18:00-20:00"], "the evening was not"
