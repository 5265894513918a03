"""The daily check-in through a real hub (a subprocess on sim GPIO and the sim BLE radio) and a real Mosquitto.

A check-in button's press and a BLE button's double press are check-ins (checkin.done, the check-in pattern
on the LED, never an alarm); the BLE button's press stays an alarm, at once. A window that closes with no
check-in is checkin.missed, re-alerted, acked with cmd/ack, and comes once across kill -9. cmd/away is kept
across a restart. Windows are local wall-clock time: the tests write them around the time they run.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.ble import bthome
from hil.harness.broker import request
from hil.harness.hubproc import gpio_devices
from tests.support.central import BASE, events

TZ = ZoneInfo("Europe/Oslo")  # the hubs' time zone (the [hub] default)
BUTTON = "A4:C1:38:00:00:01"
KEY = "231d39c1d7cc1ab1aee224cd096db932"
FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"

DEVICES = gpio_devices() + f"""
[[device]]
id = "checkin-1"
kind = "checkin_button"
room = "kitchen"
[device.gpio]
pin = 5
led_pin = 6
buzzer_pin = 13
bounce_s = 0

[ble]
backend = "sim"
silence_s = 600

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BUTTON}"
bindkey = "{KEY}"
"""


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def window_around_now() -> str:
    """A window open now and for two more hours (it may cross midnight)."""
    now = datetime.now(TZ)
    return f"{hhmm(now - timedelta(minutes=30))}-{hhmm(now + timedelta(hours=2))}"


def window_ending_soon(margin_s: float = 12.0) -> tuple[str, float]:
    """A window open now that closes at the next whole minute at least ``margin_s`` away; and that instant."""
    now = datetime.now(TZ)
    end = (now + timedelta(seconds=margin_s)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"{hhmm(now - timedelta(minutes=30))}-{hhmm(end)}", end.timestamp()


def rules(window: str, realert_s: float = 900) -> str:
    return f"""
[rules.check_in]
enabled = true
windows = ["{window}"]
devices = ["ble-button"]
gestures = ["double_press"]
realert_s = {realert_s}
"""


def advert(hub: Any, buttons: list[str], counter: int) -> None:
    data = bthome.encode(buttons=buttons, bindkey=KEY, mac=BUTTON, counter=counter)
    hub.sim.call({"op": "ble_advert", "address": BUTTON, "service_data_hex": {FCD2: data.hex()}})


def missed_calls(sub: Any) -> list[dict[str, Any]]:
    """The checkin.missed events received, once per id, in the order they first came."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events(sub, "checkin.missed"):
        seen.setdefault(e["id"], e)
    return list(seen.values())


def feedback_seen(hub: Any, device: str, mode: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """Sample the device's sim state until its feedback reads ``mode``; every sample taken."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(hub.state(device))
        if seen[-1]["feedback"] == mode:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{device} never showed {mode}: {[s['feedback'] for s in seen][-5:]}")


def test_check_ins_are_never_alarms_and_an_alarm_press_is_one_at_once(make_hub, subscribe, broker):
    window = window_around_now()
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES, extra=rules(window)).start().wait_online()

    hub.press("checkin-1")
    feedback_seen(hub, "checkin-1", "checkin")  # at once, before the event is even at the broker
    sub.wait_for(lambda _: events(sub, "checkin.done"))
    (done,) = events(sub, "checkin.done")
    assert done["source"] == {"device": "checkin-1", "kind": "checkin_button", "room": "kitchen"}
    assert (done["priority"], done["route"]) == ("low", "care")
    assert done["data"] == {"input": "gpio", "gesture": "press", "window": window, "missed": None}
    assert done["scaip"] == {"dty": None, "stc": "0121"}
    assert hub.state("checkin-1")["led"]["changes"] >= 1, "the LED lit on the mock pin"
    st = feedback_seen(hub, "checkin-1", "off", timeout=8.0)[-1]  # played once, then back to dark
    assert st["led"]["value"] == 0 and st["led"]["changes"] >= 4, st
    assert st["buzzer"]["changes"] == 4, "two chirps, never help-coming's three beeps"

    advert(hub, ["double_press"], counter=10)
    sub.wait_for(lambda _: len(events(sub, "checkin.done")) == 2)
    ble_done = events(sub, "checkin.done")[1]
    assert ble_done["source"]["device"] == "ble-button" and ble_done["data"]["gesture"] == "double_press"
    assert ble_done["data"]["input"] == "ble"

    t0 = time.monotonic()
    advert(hub, ["press"], counter=11)  # the same button's single press: an alarm, at once
    sub.wait_for(lambda _: events(sub, "alarm.button"), timeout=5)
    assert time.monotonic() - t0 < 5
    (alarm,) = events(sub, "alarm.button")
    assert alarm["source"]["device"] == "ble-button" and alarm["priority"] == "critical"
    assert [e["type"] for e in events(sub) if e["type"].startswith("alarm.")] == ["alarm.button"], (
        "the check-ins raised no alarm")
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"], "by": "op-1"})
    assert reply["ok"] and reply["result"] == "acknowledged"
    # a check-in button held long is still a check-in, never a cancel or an alarm
    hub.sim.call({"op": "hold", "device": "checkin-1", "seconds": 1.0})
    sub.wait_for(lambda _: len(events(sub, "checkin.done")) == 3)
    time.sleep(0.5)
    assert [e["type"] for e in events(sub) if e["type"].startswith("alarm.")] == ["alarm.button", "alarm.acknowledged"]
    assert events(sub, "checkin.missed") == []


@pytest.mark.slow
def test_missed_once_across_kill9_realerted_then_acked(make_hub, subscribe, broker):
    window, closes = window_ending_soon()
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES, extra=rules(window, realert_s=4)).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "rules_restored")
    time.sleep(1.0)
    hub.kill()  # mid-window: the rule's state is on disk
    wait = closes - time.time() + 1.0
    if wait > 0:
        time.sleep(wait)  # the window closes while the hub is down
    hub.start().wait_online()
    sub.wait_for(lambda _: events(sub, "checkin.missed"), timeout=15)
    (first,) = events(sub, "checkin.missed")
    assert (first["priority"], first["route"], first["cause"]) == ("high", "care", None)
    assert first["source"] == {"device": "rule:check_in", "kind": "rule", "room": None}
    assert first["data"]["window"] == window and first["data"]["realert"] == 0
    assert first["data"]["due_at"].startswith(datetime.fromtimestamp(closes, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M"))
    assert first["scaip"] == {"dty": None, "stc": "0104"}
    sub.wait_for(lambda _: len(events(sub, "checkin.missed")) >= 2, timeout=15)
    second = events(sub, "checkin.missed")[1]
    assert second["cause"] == first["id"] and second["data"]["realert"] == 1

    hub.kill()  # and again, with the call open: it is not raised a second time
    hub.start().wait_online()
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": second["id"], "by": "op-17"})
    assert reply["ok"] and reply["result"] == "acknowledged" and reply["alarm_id"] == first["id"]
    assert first["id"] in reply["closes"] and second["id"] in reply["closes"]
    calls = missed_calls(sub)  # by id, as a central de-duplicates (the kill may leave one to be sent again)
    assert [e["data"]["realert"] for e in calls] == list(range(len(calls))), "one first, then re-alerts only"
    time.sleep(10.0)
    assert len(missed_calls(sub)) == len(calls), "the ack stopped the re-alerts"
    again = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": first["id"], "by": "op-22"})
    assert again["ok"] and again["result"] == "already_acknowledged"
    assert events(sub, "alarm.acknowledged") == [], "a missed check-in is a call, not an alarm"


def test_cmd_away_is_kept_across_a_restart_and_refuses_bad_input(make_hub, broker):
    hub = make_hub(devices=DEVICES, extra=rules(window_around_now())).start().wait_online()
    topic = f"{BASE}/cmd/away"
    until = (datetime.now(TZ) + timedelta(days=7)).replace(microsecond=0).isoformat()
    reply = request("127.0.0.1", broker.port, topic, {"until": until, "reason": "hospital", "by": "op-17"})
    assert reply["ok"] and reply["away_now"] and reply["absence"] == "command" and reply["previous"] is None
    assert reply["away"]["reason"] == "hospital" and reply["away"]["by"] == "op-17"
    hub.kill()
    hub.start().wait_online()
    bad = [
        ({"reason": "holiday"}, "needs until"),
        ({"until": "2026-12-24T08:00:00"}, "$.until"),  # no offset: refused at the gate
        ({"from": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "not after from"),
        ({"until": "2099-01-01T00:00:00Z"}, "days ahead"),
    ]
    for payload, says in bad:
        r = request("127.0.0.1", broker.port, topic, payload)
        assert r["ok"] is False and says in r["error"], (payload, r)
    end = request("127.0.0.1", broker.port, topic, {"cancel": True, "by": "op-22"})
    assert end["ok"] and end["away"] is None and end["away_now"] is False
    assert end["previous"] == reply["away"], "the absence set before the kill -9 was kept"
    assert hub.returncode is None


def test_away_without_a_check_in_rule_says_so(make_hub, broker):
    make_hub().start().wait_online()
    until = (datetime.now(TZ) + timedelta(days=7)).replace(microsecond=0).isoformat()
    r = request("127.0.0.1", broker.port, f"{BASE}/cmd/away", {"until": until})
    assert r["ok"] is False and "[rules.check_in]" in r["error"]


@pytest.mark.slow
def test_cmd_away_suppresses_the_call_at_the_window_end(make_hub, subscribe, broker):
    import json

    from tests.support.control import carehub

    window, closes = window_ending_soon()
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=DEVICES, extra=rules(window, realert_s=4)).start().wait_online()
    until = (datetime.now(TZ) + timedelta(hours=1)).replace(microsecond=0).isoformat()
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/away", {"until": until, "reason": "hospital"})
    assert reply["ok"] and reply["away_now"]
    time.sleep(max(0.0, closes - time.time()) + 4.0)
    assert events(sub, "checkin.missed") == [], "away: the window that closed raises no call"
    status = carehub("status", "--json", "--config", str(hub.config))
    assert status.returncode == 0, status.stderr
    (rule,) = [r for r in json.loads(status.stdout)["rules"] if r["name"] == "check_in"]
    assert list(rule["state"]["judged"].values()) == ["away"], rule
    assert rule["state"]["away"]["reason"] == "hospital" and (rule["priority"], rule["route"]) == ("high", "care")
