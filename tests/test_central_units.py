"""The central's pure parts: hub supervision on a clock the test turns, the wire checks, device problems, the config."""

from __future__ import annotations

import json

import pytest

from central.config import ConfigError, parse
from central.problems import problem_steps
from central.supervision import Supervisor
from central.wire import Malformed, parse_event, parse_topic


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def supervisor(text: str = "") -> tuple[Supervisor, Clock]:
    clock = Clock()
    return Supervisor(parse(text), mono=clock, wall=lambda: clock.t + 1_700_000_000), clock


def test_a_hub_is_late_then_silent_by_its_own_level_and_offline_by_its_last_will() -> None:
    sup, clock = supervisor('[supervision.levels]\nward = 20\n[hubs.h2]\nlevel = "ward"\n')
    assert sup.view("h1").state == "unknown" and sup.view("h1").level_s == 180
    sup.status("h2", {"state": "online"})
    for _ in range(3):
        clock.t += 5
        sup.heartbeat("h2")
    clock.t += 9
    assert sup.tick() == []  # within twice the interval seen (5 s)
    clock.t += 2
    [late] = sup.tick()
    assert (late.state, late.level_s) == ("late", 20)
    clock.t += 10
    [silent] = sup.tick()
    assert silent.state == "silent" and silent.reason == "no heartbeat for 21 s (level ward: 20 s)"
    clock.t += 1
    sup.heartbeat("h2")
    assert sup.view("h2").state == "online"
    view = sup.status("h2", {"state": "offline", "reason": "connection lost"})
    assert view is not None and (view.state, view.reason) == ("offline", "last will: connection lost")
    view = sup.status("h2", {"state": "offline", "reason": "stopped"})
    assert view is not None and view.reason == "stopped cleanly"


def test_a_retained_birth_after_a_restart_is_no_sign_of_life() -> None:
    sup, clock = supervisor()
    sup.load([{"hub": "h1", "status": "online", "status_reason": None, "status_at": clock.t + 1_700_000_000 - 500,
               "last_heartbeat": clock.t + 1_700_000_000 - 400, "last_event": None}])
    assert sup.view("h1").state == "silent"  # nothing for 400 s, level 180 s
    assert sup.status("h1", {"state": "online"}, retained=True) is None  # the broker's old copy: still silent
    view = sup.status("h1", {"state": "online"})  # a live birth: it is back
    assert view is not None and view.state == "online"


def test_what_comes_off_the_broker_is_checked_against_its_topic() -> None:
    assert parse_topic("carehub/v1/hub-1/event/alarm.button", "carehub/v1").rest == "alarm.button"  # type: ignore[union-attr]
    assert parse_topic("carehub/v1/hub-1/status", "carehub/v1").kind == "status"  # type: ignore[union-attr]
    assert parse_topic("other/hub-1/status", "carehub/v1") is None
    topic = parse_topic("carehub/v1/hub-1/event/alarm.button", "carehub/v1")
    assert topic is not None
    event = {"v": 1, "id": "e1", "hub": "hub-1", "seq": 3, "ts": "2026-01-01T00:00:00.000Z", "type": "alarm.button",
             "priority": "critical", "route": "any", "resident": "R-1", "future_field": True,
             "source": {"device": "b", "kind": "alarm_button"}}
    assert parse_event(topic, json.dumps(event).encode()).event.seq == 3  # a newer hub's extra field is let through
    for bad, why in (({**event, "hub": "hub-2"}, "hub 'hub-2' in the body"), ({**event, "seq": "3"}, "seq"),
                     ({**event, "type": "alarm.test"}, "type 'alarm.test'"), ([event], "not a JSON object")):
        with pytest.raises(Malformed, match=why):
            parse_event(topic, json.dumps(bad).encode())


@pytest.mark.parametrize(("type_", "data", "expect"), [
    ("device.offline", {"reason": "silent 300 s"}, [("open", "bedmat", "offline", "silent 300 s")]),
    ("device.battery_low", {"battery_pct": 9}, [("open", "bedmat", "battery_low", "9 %")]),
    ("device.flooding", {"state": "ended"}, [("clear", "bedmat", "flooding", None)]),
    ("hub.degraded", {"component": "store", "reason": "disk full"}, [("open", "hub", "degraded:store", "disk full")]),
    ("hub.recovered", {"component": "store"}, [("clear", "hub", "degraded:store", None)]),
    ("bed.exit", {}, []),
])
def test_which_events_open_and_clear_device_problems(type_: str, data: dict, expect: list) -> None:
    steps = problem_steps({"type": type_, "data": data, "source": {"device": "bedmat"}})
    assert [(s.action, s.device, s.problem, s.detail) for s in steps] == expect


def test_a_wrong_config_is_refused_with_every_mistake_at_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse('[central]\nreorder_s = 3\n\n[supervision]\ndefault = "hourly"\n', "central.toml")
    assert [str(i) for i in err.value.issues] == [
        "central.toml:2:1: central.reorder_s: unknown key (did you mean 'reorder_timeout_s'?); expected one of: "
        "reorder_timeout_s, replay_timeout_s, "
        "ack_timeout_s, poll_s, feed_queue, batch",
        "central.toml:5:1: supervision.default: expected one of the levels (high, low, medium), found 'hourly'",
    ]
