"""The central's commands over MQTT 5 request/response, and the heartbeat."""

from __future__ import annotations

import paho.mqtt.client as mqtt

from hil.harness.broker import request
from tests.support.central import BASE, events




def test_status_reply(make_hub, broker):
    hub = make_hub().start()
    hub.press()
    hub.wait_log(lambda e: e.get("event") == "event_delivered" and e.get("type") == "alarm.button")
    st = request("127.0.0.1", broker.port, f"{BASE}/cmd/status", {})
    assert st["ok"] is True and st["hub"] == "test-hub"
    assert st["link"]["state"] == "online"
    assert st["seq"] >= 2 and st["outbox"]["last_seq"] == st["seq"]
    assert set(st["devices"]) == {"button-1", "cord-1"}
    assert [a["device"] for a in st["open_alarms"]] == ["button-1"]


def test_replay_republishes_same_ids_and_seqs(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start()
    for dev in ("button-1", "cord-1"):
        hub.press(dev)
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    first = {e["seq"]: e for e in events(sub)}
    lo, hi = min(first), max(first)
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/replay", {"from_seq": lo, "to_seq": hi + 5})
    assert reply["ok"] and reply["sent"] == hi - lo + 1
    assert reply["missing"] == list(range(hi + 1, hi + 6))  # not allocated yet: reported, not invented
    sub.wait_for(lambda _: len(events(sub)) >= 2 * len(first))
    for e in events(sub):
        assert first[e["seq"]] == e, "a replayed event is the same event, byte for byte in content"


def test_bad_commands_get_errors_and_never_disturb_the_link(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start().wait_online()
    bad = {
        "ack": b"{not json",
        "replay": b'{"from_seq": "one", "to_seq": 2}',
        "test-alarm": b'{"device": "no-such-device"}',
        "reboot": b"{}",
    }
    for name, payload in bad.items():
        reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/{name}", payload)
        assert reply["ok"] is False and reply["error"], (name, reply)
    unknown = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": "0190a1b2-0000-7000-8000-000000000000"})
    assert unknown["ok"] is False and "no open alarm" in unknown["error"]
    malformed = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": "0190-nope"})
    assert malformed["ok"] is False and "event_id" in malformed["error"]
    extra = request(
        "127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": "0190a1b2-0000-7000-8000-000000000000", "bogus": 1}
    )
    assert extra["ok"] is False and "bogus" in extra["error"]
    # a flood of garbage, without response topics, binary and huge
    flood = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    flood.connect("127.0.0.1", broker.port)
    flood.loop_start()
    for i in range(200):
        flood.publish(f"{BASE}/cmd/ack", bytes([i % 256]) * (i * 50), qos=1).wait_for_publish(5)
    flood.loop_stop()
    flood.disconnect()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    assert hub.returncode is None
    connects = [e for e in hub.log_lines() if e.get("event") == "mqtt_connected"]
    assert len(connects) == 1, "bad commands must not cause reconnects"
    assert any(e.get("event") == "command_refused" for e in hub.log_lines())


def test_test_alarm_end_to_end(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start().wait_online()
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/test-alarm", {"device": "cord-1", "note": "installer"})
    assert reply["ok"] is True
    sub.wait_for(lambda _: events(sub, "alarm.test"))
    (ev,) = events(sub, "alarm.test")
    assert ev["id"] == reply["event_id"] and ev["seq"] == reply["seq"]
    assert ev["source"]["device"] == "cord-1" and ev["route"] == "care" and ev["data"]["note"] == "installer"
    ack = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": ev["id"]})
    assert ack["ok"] and ack["result"] == "acknowledged"


def test_heartbeat(make_hub, subscribe):
    sub = subscribe([f"{BASE}/heartbeat"])
    make_hub(heartbeat_s=1).start()
    sub.wait_for(lambda msgs: len(msgs) >= 3, timeout=10)
    beats = [m.json() for m in sub.messages]
    assert beats[-1]["uptime_s"] > beats[0]["uptime_s"]
    hb = beats[-1]
    assert hb["link"]["state"] == "online"
    assert hb["outbox"]["pending"] == 0 and hb["seq"] >= 1
    assert hb["devices"]["button-1"]["state"] == "ok"
