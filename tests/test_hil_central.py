"""The central recorder (hil.central) against a real Mosquitto, and against a real hub where it matters."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hil.central import CentralRecorder
from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.hubproc import HubProcess
from hub.events import uuid7

BASE = "carehub/v1/test-hub"


@pytest.fixture
def central(broker: Mosquitto) -> Iterator[Callable[..., CentralRecorder]]:
    """Make central recorders on the test broker; closed after the test."""
    made: list[CentralRecorder] = []

    def make(**kw: Any) -> CentralRecorder:
        kw.setdefault("port", broker.port)
        c = CentralRecorder(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Publish events as a hub would (QoS 1, on event/<type>), from a plain test client."""
    pub = Subscriber(port=broker.port, topics=[])

    def send(event: dict[str, Any], topic: str | None = None) -> None:
        pub.publish(topic or f"{BASE}/event/{event['type']}", event)

    yield send
    pub.close()


def event(seq: int, type_: str = "device.online", priority: str = "normal", **over: Any) -> dict[str, Any]:
    """A valid event of the contract."""
    return {
        "v": 1, "id": uuid7(), "hub": "test-hub", "seq": seq, "ts": "2026-01-01T00:00:00.000Z",
        "type": type_, "priority": priority, "source": {"device": "button-1", "kind": "alarm_button", "room": None},
        "resident": "R-test-0001", "route": "any", "data": {}, "cause": None, **over,
    }


def arrived(c: CentralRecorder, n: int, timeout: float = 5.0) -> None:
    assert c.wait_for(lambda a: len(a) >= n, timeout), (n, c.summary())


def until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def of_type(type_: str, n: int = 1) -> Callable[[list[Any]], bool]:
    return lambda arrivals: sum(a.event["type"] == type_ and not a.duplicate for a in arrivals) >= n


# --- against a test publisher -----------------------------------------------------------------


def test_a_skipped_seq_is_a_gap_until_it_comes(central, publisher):
    c = central(first_seq=1)
    for seq in (2, 3, 5):
        publisher(event(seq))
    arrived(c, 3)
    assert c.summary()["gaps"] == [[1, 1], [4, 4]]
    assert c.problems() == ["seq gap: 1 missing", "seq gap: 4 missing"]
    for seq in (4, 1):  # late, out of order (as a backlog drains alarms first): the gaps close
        publisher(event(seq))
    arrived(c, 5)
    assert c.problems() == [] and c.summary()["gaps"] == []
    for seq in (9, 10, 12):
        publisher(event(seq))
    arrived(c, 8)
    assert c.problems() == ["seq gap: 6..8 missing", "seq gap: 11 missing"]


def test_without_first_seq_gaps_count_from_the_lowest_seen(central, publisher):
    c = central()
    for seq in (40, 41, 43):
        publisher(event(seq))
    arrived(c, 3)
    assert c.summary()["gaps"] == [[42, 42]]
    assert (c.summary()["seq_first"], c.summary()["seq_last"]) == (40, 43)


def test_same_id_same_body_is_a_duplicate_a_different_body_a_problem(central, publisher):
    c = central(first_seq=1)
    first = event(1)
    publisher(first)
    publisher(first)
    arrived(c, 2)
    assert [a.duplicate for a in c.arrivals()] == [False, True]
    s = c.summary()
    assert (s["received"], s["unique"], s["duplicates"], s["conflicts"]) == (2, 1, 1, 0)
    assert c.problems() == []
    publisher({**first, "data": {"changed": True}})
    arrived(c, 3)
    assert c.summary()["conflicts"] == 1
    [problem] = c.problems()
    assert first["id"] in problem and "different body" in problem and "data" in problem
    assert len(c.events()) == 1 and len(c.events(duplicates=True)) == 3


def test_a_held_alarm_seq_0_then_stored_is_neither_gap_nor_conflict(central, publisher):
    c = central(first_seq=1)
    publisher(event(1))
    held = event(0, "alarm.button", "critical")
    publisher(held)  # the disk refused it: sent from memory
    publisher({**held, "seq": 2})  # stored once space is back: same id, its seq
    publisher(event(3))
    arrived(c, 4)
    assert c.problems() == []
    s = c.summary()
    assert (s["unique"], s["held_stored"], s["duplicates"], s["gaps"]) == (3, 1, 0, [])
    assert [a.duplicate for a in c.arrivals()] == [False, False, True, False]
    publisher({**held, "seq": 4})  # the same id with yet another seq: that is a conflict
    arrived(c, 5)
    assert any("different body" in p and "seq" in p for p in c.problems())


def test_priorities_schema_and_topic_are_checked(central, publisher):
    c = central(priorities={"alarm.nursecall": ["critical", "high"]})
    assert c.summary()["schema_check"].startswith("on")
    good = [event(1, "alarm.button", "critical"), event(2, "alarm.test", "high"), event(3, "rule.door_night", "low"),
            event(4, "alarm.nursecall", "high"), event(5, "vendor.thing")]
    for e in good:
        publisher(e)
    arrived(c, 5)
    assert c.problems() == [], "configurable priorities and types of later versions are no problem"
    assert c.summary()["unknown_types"] == {"vendor.thing": 1}
    low_alarm = event(6, "alarm.button", "low")
    no_route = {k: v for k, v in event(7).items() if k != "route"}
    bad_nursecall = event(8, "alarm.nursecall", "normal")
    elsewhere = event(9)
    for e in (low_alarm, no_route, bad_nursecall):
        publisher(e)
    publisher(elsewhere, topic=f"{BASE}/event/alarm.button")
    arrived(c, 9)
    problems = c.problems()
    assert len(problems) == 4, problems
    assert f"alarm.button {low_alarm['id']}: priority 'low' does not fit alarm.button" in problems[0]
    assert no_route["id"] in problems[1] and "schema" in problems[1] and "route" in problems[1]
    assert bad_nursecall["id"] in problems[2] and "priority 'normal'" in problems[2]
    assert elsewhere["id"] in problems[3] and f"came on {BASE}/event/alarm.button" in problems[3]


def test_without_jsonschema_the_schema_check_is_skipped_and_said(central, publisher, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema now raises ImportError
    c = central()
    assert c.summary()["schema_check"].startswith("skipped: jsonschema not importable")
    publisher({k: v for k, v in event(1).items() if k != "route"})
    arrived(c, 1)
    assert c.problems() == []


def test_an_ack_without_a_hub_returns_an_error_instead_of_raising(central):
    c = central()
    t0 = time.monotonic()
    reply = c.ack(uuid7(), "operator-1", timeout_s=0.5)
    assert 0.5 <= time.monotonic() - t0 < 2
    assert reply["ok"] is False and reply["error"].startswith("central: no reply")
    assert c.summary()["acks_sent"] == 1 and c.summary()["acks_ok"] == 0


# --- against a real hub -------------------------------------------------------------------------


def test_a_press_arrives_with_the_seq_the_hub_committed(central, make_hub):
    c = central(first_seq=1)
    hub: HubProcess = make_hub().start().wait_online()
    t_press = time.monotonic()
    hub.press()
    assert c.wait_for(of_type("alarm.button"), 5), c.summary()
    [arrival] = [a for a in c.arrivals() if a.event["type"] == "alarm.button"]
    # the hub publishes, then logs event_committed: the line can come a moment after the arrival
    hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("event_id") == arrival.event["id"])
    committed = {e["event_id"]: e["seq"] for e in hub.committed()}
    assert arrival.event["seq"] == committed[arrival.event["id"]] > 0
    assert t_press < arrival.t < time.monotonic()
    assert arrival.event["priority"] == "critical" and arrival.event["source"]["device"] == "button-1"
    assert c.status() == "online" and c.status_doc()["hub"] == "test-hub"
    assert c.problems() == []
    assert c.summary()["by_type"]["alarm.button"] == 1


def test_ack_of_a_real_alarm_gets_ok_and_the_hub_publishes_alarm_acknowledged(central, make_hub):
    c = central(first_seq=1)
    hub = make_hub().start().wait_online()
    hub.press()
    assert c.wait_for(of_type("alarm.button"), 5)
    alarm = c.events("alarm.button")[0]
    reply = c.ack(alarm["id"], "operator-7")
    assert reply["ok"] is True and reply["alarm_id"] == alarm["id"] and alarm["id"] in reply["closes"]
    assert c.wait_for(of_type("alarm.acknowledged"), 5), c.summary()
    [acked] = c.events("alarm.acknowledged")
    assert acked["cause"] == alarm["id"] and acked["data"]["by"] == "operator-7"
    unknown = c.ack(uuid7(), "operator-7")  # the hub's error reply comes back, not an exception
    assert unknown["ok"] is False and "no open alarm" in unknown["error"]
    [first, second] = c.acks()
    assert first.t_sent < first.t_reply and first.reply == reply and not first.auto
    assert (c.summary()["acks_sent"], c.summary()["acks_ok"]) == (2, 1)
    assert c.problems() == []


def test_auto_ack_acknowledges_each_episode_once(central, make_hub):
    c = central(first_seq=1, auto_ack=True, ack_by="central-auto")
    hub = make_hub().start().wait_online()
    hub.press("button-1")
    hub.press("cord-1")
    assert c.wait_for(of_type("alarm.acknowledged", 2), 5), c.summary()
    assert {e["cause"] for e in c.events("alarm.acknowledged")} == {e["id"] for e in c.events("alarm.button")}
    assert {e["data"]["by"] for e in c.events("alarm.acknowledged")} == {"central-auto"}
    assert until(lambda: c.summary()["acks_auto"] == 2), c.acks()  # the reply may come after the event
    assert all(a.auto and a.reply["ok"] for a in c.acks())
    assert c.problems() == []


@pytest.mark.slow
def test_a_hub_killed_and_restarted_leaves_no_gap(central, make_hub):
    c = central(first_seq=1)
    hub = make_hub().start().wait_online()
    for dev in ("button-1", "cord-1", "button-1"):
        hub.press(dev)
    assert c.wait_for(of_type("alarm.button", 3), 5), c.summary()
    hub.kill()
    assert c.wait_status("offline", 5) and c.status_doc()["reason"] == "connection lost"
    hub.start().wait_online()
    assert c.wait_status("online", 5)
    hub.press("cord-1")
    hub.press("button-1")
    assert c.wait_for(of_type("alarm.button", 5), 10), c.summary()
    assert c.wait_for(of_type("hub.started", 2), 5), c.summary()
    hub.wait_log(lambda _: len(hub.committed(all_runs=True)) >= 5)  # logged just after publishing
    committed = {e["event_id"]: e["seq"] for e in hub.committed(all_runs=True)}
    seen = {e["id"]: e["seq"] for e in c.events()}
    # the hub logs event_committed for its audited priorities (alarms); every one reached the central
    assert len(committed) >= 5 and {i: seen.get(i) for i in committed} == committed
    assert sorted(seen.values()) == list(range(1, len(seen) + 1))
    assert c.problems() == [] and c.summary()["gaps"] == []


@pytest.mark.slow
def test_the_central_keeps_its_session_across_a_broker_restart(central, make_hub, broker):
    c = central(first_seq=1)
    hub = make_hub().start().wait_online()
    hub.press("button-1")
    assert c.wait_for(of_type("alarm.button"), 5), c.summary()
    broker.stop()
    for dev in ("cord-1", "button-1"):  # pressed while the broker is down: the hub keeps them
        hub.press(dev)
    broker.start()
    assert c.wait_for(of_type("alarm.button", 3), 15), c.summary()
    assert until(lambda: c.connected, 5)
    assert c.problems() == [] and c.summary()["gaps"] == []
    alarm = c.events("alarm.button")[-1]
    assert c.ack(alarm["id"], "operator-2")["ok"] is True, "acks work on the new connection"
