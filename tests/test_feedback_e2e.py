"""What the resident sees and the central must do: LED feedback, ack, reminders, cancel."""

from __future__ import annotations

import time

from hil.harness.broker import request

from tests.support.central import BASE, events




def wait_feedback(hub, mode: str, device: str = "button-1", timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = hub.state(device)
        if st["feedback"] == mode:
            return st
        time.sleep(0.02)
    raise AssertionError(f"feedback never became {mode}: {hub.state(device)}")


def led_changes_over(hub, seconds: float, device: str = "button-1") -> int:
    before = hub.state(device)["led"]["changes"]
    time.sleep(seconds)
    return hub.state(device)["led"]["changes"] - before


def test_ack_turns_led_steady(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    alarm = events(sub, "alarm.button")[0]
    # the broker has it: slow blink, and it really blinks
    wait_feedback(hub, "slow_blink")
    assert led_changes_over(hub, 1.2) >= 2
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"], "by": "operator-7"})
    assert reply == {"ok": True, "result": "acknowledged", "alarm_id": alarm["id"], "closes": [alarm["id"]]}
    st = wait_feedback(hub, "steady")
    assert st["led"]["value"] == 1
    assert led_changes_over(hub, 1.0) == 0  # steady: no blinking
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    (acked,) = events(sub, "alarm.acknowledged")
    assert acked["cause"] == alarm["id"] and acked["data"]["by"] == "operator-7"
    # a second ack is harmless
    again = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"]})
    assert again["ok"] and again["result"] == "already_acknowledged"


def test_fast_blink_until_broker_has_the_alarm(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"], persistent=True, client_id="central-fb")
    hub = make_hub().start()
    hub.wait_log(lambda e: e.get("event") == "mqtt_connected")
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    hub.press()
    st = wait_feedback(hub, "fast_blink")
    assert led_changes_over(hub, 0.6) >= 3  # fast: 5 changes a second
    broker.start()
    wait_feedback(hub, "slow_blink", timeout=15)
    sub.wait_for(lambda _: events(sub, "alarm.button"), timeout=15)


def test_no_ack_gives_repeated_unacknowledged_until_acked(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(ack_timeout_s=1.0, unack_repeat_s=1.0).start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    alarm = events(sub, "alarm.button")[0]
    sub.wait_for(lambda _: len(events(sub, "alarm.unacknowledged")) >= 2, timeout=10)
    reminders = events(sub, "alarm.unacknowledged")
    assert all(r["cause"] == alarm["id"] and r["priority"] == "critical" for r in reminders)
    assert [r["data"]["reminder"] for r in reminders[:2]] == [1, 2]
    assert reminders[0]["seq"] < reminders[1]["seq"]
    # the central may ack the reminder it is looking at: that acks the alarm
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": reminders[-1]["id"]})
    assert reply["ok"] and reply["alarm_id"] == alarm["id"]
    wait_feedback(hub, "steady")
    n = len(events(sub, "alarm.unacknowledged"))
    time.sleep(2.5)
    assert len(events(sub, "alarm.unacknowledged")) == n, "reminders must stop after the ack"


def test_hold_cancels_the_open_alarm(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(hold_s=0.6).start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    alarm = events(sub, "alarm.button")[0]
    wait_feedback(hub, "slow_blink")
    hub.sim.call({"op": "hold", "device": "button-1", "seconds": 1.0})
    sub.wait_for(lambda _: events(sub, "alarm.cancelled"))
    (cancel,) = events(sub, "alarm.cancelled")
    assert cancel["cause"] == alarm["id"] and cancel["priority"] == "critical"
    st = wait_feedback(hub, "off")
    assert st["led"]["value"] == 0
    time.sleep(0.3)
    assert len(events(sub, "alarm.button")) == 1, "the cancelling hold must not raise a second alarm"


def test_accidental_press_held_is_raised_then_cancelled(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(hold_s=0.6).start()
    hub.sim.call({"op": "hold", "device": "button-1", "seconds": 1.0})
    sub.wait_for(lambda _: events(sub, "alarm.cancelled"))
    (alarm,) = events(sub, "alarm.button")
    (cancel,) = events(sub, "alarm.cancelled")
    assert cancel["cause"] == alarm["id"] and alarm["seq"] < cancel["seq"]


def test_press_while_waiting_is_a_repeat_and_after_ack_a_new_alarm(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    first = events(sub, "alarm.button")[0]
    hub.press()
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    repeat = events(sub, "alarm.button")[1]
    assert repeat["data"]["repeat"] is True and repeat["cause"] == first["id"]
    request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": repeat["id"]})
    wait_feedback(hub, "steady")
    hub.press()
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 3)
    fresh = events(sub, "alarm.button")[2]
    assert fresh["cause"] is None and "repeat" not in fresh["data"]
    wait_feedback(hub, "slow_blink")


def test_unacknowledged_alarm_survives_a_crash(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(ack_timeout_s=2.0, unack_repeat_s=30.0).start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    alarm = events(sub, "alarm.button")[0]
    hub.press("cord-1")
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    cord_alarm = events(sub, "alarm.button")[1]
    request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": cord_alarm["id"]})
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    hub.kill()  # power cut: the bedroom alarm is still waiting for its ack
    hub.start()
    restored = hub.wait_log(lambda e: e.get("event") == "alarms_restored")
    assert restored["ids"] == [alarm["id"]], "only the alarm nobody acknowledged is re-opened"
    wait_feedback(hub, "slow_blink")  # the resident still sees that the alarm is out
    assert hub.state("cord-1")["feedback"] == "off"
    sub.wait_for(lambda _: events(sub, "alarm.unacknowledged"), timeout=10)
    assert events(sub, "alarm.unacknowledged")[0]["cause"] == alarm["id"]
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"]})
    assert reply["ok"] and reply["result"] == "acknowledged"
    wait_feedback(hub, "steady")


def test_press_repeat_and_an_ack_of_the_first_ends_both(make_hub, subscribe, broker):
    # issue 10 item 5: the ack of the first alarm used to leave the repeat blinking and reminding
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(ack_timeout_s=1.0, unack_repeat_s=1.0).start()
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    first = events(sub, "alarm.button")[0]
    hub.press()
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    repeat = events(sub, "alarm.button")[1]
    assert repeat["cause"] == first["id"]
    sub.wait_for(lambda _: events(sub, "alarm.unacknowledged"), timeout=5)
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": first["id"], "by": "operator-7"})
    assert reply == {"ok": True, "result": "acknowledged", "alarm_id": first["id"], "closes": [first["id"], repeat["id"]]}
    st = wait_feedback(hub, "steady")
    assert st["led"]["value"] == 1
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    n = len(events(sub, "alarm.unacknowledged"))
    assert led_changes_over(hub, 2.5) == 0, "steady, not blinking for the repeat"
    assert len(events(sub, "alarm.unacknowledged")) == n, "no reminder for the repeat after the ack of the first"
    (acked,) = events(sub, "alarm.acknowledged")
    assert acked["cause"] == first["id"] and acked["data"]["closes"] == [first["id"], repeat["id"]]
    assert {r["cause"] for r in events(sub, "alarm.unacknowledged")} == {first["id"]}, "one reminder stream"
    again = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": repeat["id"]})
    assert again["result"] == "already_acknowledged"


def test_repeated_test_alarms_share_one_reminder_stream(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(ack_timeout_s=1.0, unack_repeat_s=30.0).start().wait_online()
    ids = [request("127.0.0.1", broker.port, f"{BASE}/cmd/test-alarm", {"note": str(i)})["event_id"] for i in range(20)]
    ids += [request("127.0.0.1", broker.port, f"{BASE}/cmd/test-alarm", {"device": "button-1"})["event_id"] for _ in range(5)]
    sub.wait_for(lambda _: len(events(sub, "alarm.unacknowledged")) >= 2, timeout=5)
    time.sleep(1.0)
    reminders = events(sub, "alarm.unacknowledged")
    assert sorted(r["cause"] for r in reminders) == sorted([ids[0], ids[20]]), "one stream for the hub, one for the button"
    st = request("127.0.0.1", broker.port, f"{BASE}/cmd/status", {})
    assert sorted(a["alarms"] for a in st["open_alarms"]) == [5, 20]
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": ids[7]})
    assert reply["ok"] and len(reply["closes"]) == 20
    assert [a["device"] for a in request("127.0.0.1", broker.port, f"{BASE}/cmd/status", {})["open_alarms"]] == ["button-1"]
    hub.press()  # a test open on the button is not the resident's alarm: the press is a fresh one
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    (press,) = events(sub, "alarm.button")
    assert press["cause"] is None and "repeat" not in press["data"]
