"""The alarm button end to end: press → hub subprocess → real Mosquitto → subscriber."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path

import jsonschema


SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "contract" / "event.schema.json").read_text())
from tests.support.central import BASE, events




def test_press_arrives_with_every_field_valid_against_schema(make_hub, subscribe):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start()
    t0 = time.time()
    hub.press("button-1")
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)
    (ev,) = events(sub, "alarm.button")
    jsonschema.validate(ev, SCHEMA)
    assert ev["v"] == 1
    assert uuid.UUID(ev["id"]).version == 7
    assert ev["hub"] == "test-hub"
    assert ev["type"] == "alarm.button" and ev["priority"] == "critical"
    assert ev["source"] == {"device": "button-1", "kind": "alarm_button", "room": "bedroom"}
    assert ev["resident"] == "R-test-0001" and ev["route"] == "any"
    assert ev["data"]["gesture"] == "press"
    assert ev["cause"] is None
    started = events(sub, "hub.started")
    assert started and ev["seq"] == started[0]["seq"] + 1
    ts = time.mktime(time.strptime(ev["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(ts - t0) < 5
    # the topic carries the type; every published event is valid against the schema
    for m in sub.messages:
        if "/event/" in m.topic:
            body = m.json()
            jsonschema.validate(body, SCHEMA)
            assert m.topic == f"{BASE}/event/{body['type']}"


def test_sim_press_reply_gives_the_edge_time_the_alarm_carries(make_hub, subscribe):
    # the rig and bench/alarm_latency time edge -> central from the reply's clocks
    sub = subscribe([f"{BASE}/event/alarm.button"])
    hub = make_hub().start()
    hub.wait_online()
    before = time.monotonic_ns()
    reply = hub.sim.call({"op": "press", "device": "button-1"})
    after, after_wall = time.monotonic_ns(), time.time()
    assert before <= reply["mono_ns"] <= after
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)
    (ev,) = events(sub, "alarm.button")
    stamped = datetime.fromisoformat(ev["ts"].replace("Z", "+00:00")).timestamp()
    # the alarm is stamped at the edge the reply reports (to the ms), and no later than the reply came back
    assert int(reply["t"] * 1000) <= round(stamped * 1000) <= int(after_wall * 1000)
    # requests can be sent ahead and their replies read later, in order
    hub.sim.send({"op": "release", "device": "button-1"})
    hub.sim.send({"op": "state", "device": "button-1"})
    released, state = hub.sim.reply(), hub.sim.reply()
    assert released["mono_ns"] > reply["mono_ns"]
    assert state["device"] == "button-1" and state["pressed"] is False


def test_pull_cord_routes_to_care(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start()
    hub.press("cord-1")
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)
    (ev,) = events(sub, "alarm.button")
    assert ev["source"]["kind"] == "pull_cord" and ev["route"] == "care"


def test_broker_down_50_presses_all_arrive_once_started(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"], persistent=True, client_id="central-1")
    hub = make_hub().start()
    hub.wait_log(lambda e: e.get("event") == "mqtt_connected")
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    for _ in range(50):
        hub.press("button-1", seconds=0.01)
    # every press is committed while the broker is down
    hub.wait_log(lambda e: len([c for c in hub.committed() if c["type"] == "alarm.button"]) >= 50)
    broker.start()
    sub.wait_for(lambda _: len({e["id"] for e in events(sub, "alarm.button")}) == 50, timeout=30)
    alarms = events(sub, "alarm.button")
    ids = {e["id"] for e in alarms}
    assert len(ids) == 50
    by_id: dict[str, dict] = {}
    for e in alarms:  # a duplicate may only ever be the very same event
        assert by_id.setdefault(e["id"], e) == e
    seqs = sorted(e["seq"] for e in by_id.values())
    assert seqs == list(range(seqs[0], seqs[0] + 50))


def test_birth_republished_after_broker_restart(make_hub, subscribe, broker):
    hub = make_hub().start()
    hub.wait_log(lambda e: e.get("event") == "birth_published")
    broker.restart()
    hub.wait_log(lambda e: e.get("event") == "mqtt_connected" and e.get("connects") == 2, timeout=20)
    # a central connecting now sees the retained birth, from the second connection
    sub = subscribe([f"{BASE}/status"])
    sub.wait_for(lambda msgs: any(m.retain for m in msgs))
    status = [m for m in sub.messages if m.retain][-1].json()
    assert status["state"] == "online" and status["hub"] == "test-hub"
    assert len(status["config_sha256"]) == 64
    assert [d["id"] for d in status["devices"]] == ["button-1", "cord-1"]
    # the hub logs birth_published on the broker's PUBACK, which may come just after the central saw it
    hub.wait_log(lambda e: len([x for x in hub.log_lines() if x.get("event") == "birth_published"]) >= 2)
    assert len([e for e in hub.log_lines() if e.get("event") == "birth_published"]) == 2


def test_clean_stop_publishes_offline_and_flushes(make_hub, subscribe):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start()
    hub.press("button-1")
    assert hub.stop() == 0
    sub.wait_for(lambda _: any(e["type"] == "hub.stopping" for e in events(sub)))
    sub.wait_for(lambda msgs: any(m.topic == f"{BASE}/status" and m.json()["state"] == "offline" for m in msgs))
    offline = [m.json() for m in sub.messages if m.topic == f"{BASE}/status"][-1]
    assert offline == {"state": "offline", "hub": "test-hub", "reason": "stopped"}
    assert hub.log_lines()[-1]["event"] == "hub_stopped" and hub.log_lines()[-1]["pending"] == 0
