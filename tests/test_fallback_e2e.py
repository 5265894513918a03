"""The GSM fallback end to end: the modem emulator on a real pty, the hub as a subprocess, its own Mosquitto.

With the broker stopped for real and an alarm open, the emulated modem is
asked for exactly one AT+CMGS per episode and on-call number of the alarm's
route, then a reminder at the configured pace; the central gets the
fallback.sent events once the broker is back. A reply OK from an on-call
number acknowledges the alarm (the LED turns steady); from anyone else it is
ignored. Every modem fault is reported (path.lost, status) and recovered
(path.restored).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hil.harness.broker import request
from hil.harness.emulators import EmulatedModem, modem_device
from hil.harness.hubproc import gpio_devices
from hub.eventdata import problems
from tests.support.central import BASE, events
from tests.test_contract import asyncapi_validator, errors

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "contract" / "event.schema.json").read_text())
NURSE, CARE = "+4791234567", "+4798765432"


def fallback(**over: Any) -> str:
    """A [fallback] table: one nurse and one care number, quick timings unless said otherwise."""
    keys = {"nurse": [NURSE], "care": [CARE], "fallback_after_s": 60, "link_down_after_s": 1.0, "reminder_s": 0,
            "max_reminders": 1, "retry_s": 1.0, **over}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    return f"\n[fallback]\n{lines}\n"


def until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it is truthy; its value. Fails after ``timeout`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[EmulatedModem]:
    m = EmulatedModem(tmp_path).start()
    yield m
    m.stop()


def wait_feedback(hub, mode: str, device: str = "button-1", timeout: float = 10.0) -> dict[str, Any]:
    return until(lambda: (st := hub.state(device))["feedback"] == mode and st, timeout, f"{device} {mode}")


def gsm_up(hub) -> None:
    hub.wait_log(lambda e: e.get("event") in ("path_up", "path_restored") and e.get("path") == "gsm", timeout=20)


def status(broker) -> dict[str, Any]:
    return request("127.0.0.1", broker.port, f"{BASE}/cmd/status", {}, timeout=10)


def test_broker_down_one_sms_per_episode_and_number_then_a_reminder_and_the_central_learns(
        make_hub, subscribe, broker, modem):
    sub = subscribe([f"{BASE}/event/#"], persistent=True, client_id="central-1")
    hub = make_hub(devices=gpio_devices() + modem_device(modem),
                   extra=fallback(link_down_after_s=1.0, reminder_s=4.0, max_reminders=1)).start().wait_online()
    gsm_up(hub)
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    hub.press("button-1")  # route any: the nurse and the care number
    hub.press("cord-1")  # route care: the care number only
    hub.press("button-1")  # a repeat joins the button's episode: no second SMS for it
    first = until(lambda: (c := Counter(modem.cmgs()))[NURSE] >= 1 and c[CARE] >= 2 and c, what="the first SMS")
    assert first == Counter({NURSE: 1, CARE: 2}), "one AT+CMGS per episode and number of its route"
    until(lambda: len(modem.sent()) == 3, what="the texts, through to their Ctrl-Z")
    texts = {(s["to"], s["text"]) for s in modem.sent()}
    bathroom = [to for to, text in texts if "rom bathroom" in text]
    assert bathroom == [CARE], "the pull-cord (route care) goes to the care number only"
    for _, text in texts:
        assert "test-hub" in text and ("alarmknapp" in text or "snortrekk" in text) and " kl " in text
        assert "R-test-0001" not in text, "never the resident"
        assert len(text) <= 160 and text.isascii()
    # the reminders come at reminder_s (4 s), one per number and episode (max_reminders = 1), then no more
    until(lambda: Counter(modem.cmgs()) == Counter({NURSE: 2, CARE: 4}), what="the reminders")
    until(lambda: len(modem.sent()) == 6, what="the reminders' texts")
    assert sum("PAAMINNELSE 1" in s["text"] for s in modem.sent()) == 3
    time.sleep(5.0)  # past another reminder_s: none goes out
    assert Counter(modem.cmgs()) == Counter({NURSE: 2, CARE: 4})
    assert hub.returncode is None
    broker.start()
    sub.wait_for(lambda _: len({e["id"] for e in events(sub, "fallback.sent")}) == 6, timeout=30)
    alarms = {e["source"]["device"]: e for e in events(sub, "alarm.button") if not e["data"].get("repeat")}
    sent = list({e["id"]: e for e in events(sub, "fallback.sent")}.values())
    for e in sent:
        jsonschema.validate(e, SCHEMA)
        assert problems(e["type"], e["data"]) == []
        assert e["data"]["reason"] == "link_down" and e["priority"] == "high"
        assert e["cause"] == alarms[e["source"]["device"]]["id"]
    got = Counter((e["source"]["device"], e["data"]["to"], e["data"]["reminder"]) for e in sent)
    assert got == Counter({("button-1", NURSE, 0): 1, ("button-1", CARE, 0): 1, ("cord-1", CARE, 0): 1,
                           ("button-1", NURSE, 1): 1, ("button-1", CARE, 1): 1, ("cord-1", CARE, 1): 1})
    assert not events(sub, "fallback.failed")


def test_unacknowledged_alarm_sms_and_an_ok_reply_acknowledges_with_the_led_steady(
        make_hub, subscribe, broker, modem):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=gpio_devices(button_route="nurse") + modem_device(modem),
                   extra=fallback(fallback_after_s=1.5, link_down_after_s=600)).start().wait_online()
    gsm_up(hub)
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    (alarm,) = events(sub, "alarm.button")
    wait_feedback(hub, "slow_blink")  # at the broker, not acknowledged
    until(lambda: modem.cmgs() == [NURSE], what="the SMS to the nurse")  # route nurse: the nurse only
    sub.wait_for(lambda _: events(sub, "fallback.sent"))
    (sent,) = events(sub, "fallback.sent")
    assert sent["cause"] == alarm["id"] and sent["data"]["reason"] == "unacknowledged"
    assert sent["data"]["to"] == NURSE and sent["data"]["reference"] == str(modem.sent()[0]["ref"])
    # an OK from a number that is not on call: logged, nothing acknowledged
    modem.sms("+4740000000", "OK")
    hub.wait_log(lambda e: e.get("event") == "sms_from_unknown_number")
    # a reply that is not OK from the nurse: logged, ignored
    modem.sms(NURSE, "kommer snart")
    hub.wait_log(lambda e: e.get("event") == "sms_reply_not_understood")
    assert hub.state("button-1")["feedback"] == "slow_blink"
    assert not events(sub, "alarm.acknowledged")
    modem.sms(NURSE, " ok\n")
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    (acked,) = events(sub, "alarm.acknowledged")
    assert acked["cause"] == alarm["id"] and acked["data"]["by"] == NURSE
    st = wait_feedback(hub, "steady")
    assert st["led"]["value"] == 1
    doc = status(broker)
    assert doc["open_alarms"] == []
    assert doc["fallback"]["counters"] == {"sent": 1, "unknown_sender": 1, "not_understood": 1, "acknowledged": 1}
    assert modem.modem()["stored"] == [], "every message read is deleted from the modem"
    # the installer's view says the same
    shown = subprocess.run([sys.executable, "-m", "hub.cli", "status", "-c", str(hub.config)], capture_output=True,
                           text=True, timeout=30, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "gsm up" in shown.stdout and "SMS fallback armed: 1 sent, 0 failed" in shown.stdout
    # the central's own ack afterwards is answered as for any acknowledged alarm
    again = request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"], "by": "op-1"})
    assert again["result"] == "already_acknowledged"


def path_events(sub, type_: str) -> list[dict[str, Any]]:
    return [e for e in events(sub, type_) if e["data"]["path"] == "gsm"]


def fault_and_back(hub, sub, broker, modem, n: int, *, fault: str, reason: str, on: Callable[[], None],
                   off: Callable[[], None]) -> None:
    on()
    lost = sub.wait_for(lambda _: len(path_events(sub, "path.lost")) >= n, timeout=30)
    assert lost and path_events(sub, "path.lost")[n - 1]["data"]["reason"] == reason, fault
    doc = status(broker)
    assert doc["paths"]["gsm"]["state"] == "down" and doc["paths"]["gsm"]["reason"] == reason, fault
    assert doc["paths"]["mqtt"]["state"] == "up"
    assert doc["devices"]["modem"]["state"] == "offline" and doc["devices"]["modem"]["reason"] == reason, fault
    # meanwhile the hub answers at once: a test alarm end to end (test alarms get no SMS by default)
    reply = request("127.0.0.1", broker.port, f"{BASE}/cmd/test-alarm", {"note": fault}, timeout=10)
    assert reply["ok"], fault
    sub.wait_for(lambda _: any(e["id"] == reply["event_id"] for e in events(sub, "alarm.test")), timeout=10)
    off()
    sub.wait_for(lambda _: len(path_events(sub, "path.restored")) >= n, timeout=30)
    back = path_events(sub, "path.restored")[n - 1]
    assert back["data"]["was"] == reason and back["data"]["outage_s"] > 0, fault
    assert status(broker)["paths"]["gsm"]["state"] == "up", fault


def test_every_modem_fault_is_reported_and_recovered(make_hub, subscribe, broker, modem):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=gpio_devices() + modem_device(modem),
                   extra=fallback(fallback_after_s=1.0, link_down_after_s=600, retry_s=1.0)).start().wait_online()
    gsm_up(hub)
    cases = [("no_sim", "no_sim"), ("no_network", "not_registered"), ("weak_signal", "weak_signal"),
             ("silent", "not_answering")]
    for n, (fault, reason) in enumerate(cases, start=1):
        fault_and_back(hub, sub, broker, modem, n, fault=fault, reason=reason,
                       on=lambda f=fault: modem.fault(f), off=lambda f=fault: modem.fault(f, on=False))
    fault_and_back(hub, sub, broker, modem, len(cases) + 1, fault="unplug", reason="unplugged",
                   on=modem.unplug, off=modem.replug)
    # +CMS ERROR on send: fallback.failed, tried again, sent once the network takes it
    modem.fault("cms_error", code=500)
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "fallback.failed"), timeout=30)
    failed = events(sub, "fallback.failed")[0]
    assert failed["data"]["error"] == "cms_error" and failed["data"]["detail"] == "+CMS ERROR: 500"
    assert failed["priority"] == "critical"
    modem.fault("cms_error", on=False)
    sub.wait_for(lambda _: {e["data"]["to"] for e in events(sub, "fallback.sent")} == {NURSE, CARE}, timeout=30)
    assert Counter(s["to"] for s in modem.sent()) == Counter({NURSE: 1, CARE: 1}), "one SMS each, once it worked"
    assert hub.returncode is None
    for e in events(sub):
        if e["type"].startswith(("path.", "fallback.")):
            jsonschema.validate(e, SCHEMA)
            assert problems(e["type"], e["data"]) == [], e
    doc = status(broker)
    assert errors(asyncapi_validator("/components/schemas/StatusReply"), doc) == []
    assert doc["devices"]["modem"]["state"] == "ok" and doc["devices"]["modem"]["sent"] == 2
    assert doc["health"]["state"] == "ok", "a modem fault is the path's, not the hub's health"
    for line in ("modem_path_down", "path_lost", "path_restored", "fallback_sms_failed", "fallback_sms_sent"):
        assert any(e.get("event") == line for e in hub.log_lines()), line


def test_no_sms_while_the_central_acknowledges_in_time(make_hub, subscribe, broker, modem):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=gpio_devices() + modem_device(modem),
                   extra=fallback(fallback_after_s=3.0, link_down_after_s=600)).start().wait_online()
    gsm_up(hub)
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    alarm = events(sub, "alarm.button")[0]
    assert request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": alarm["id"], "by": "op-1"})["ok"]
    time.sleep(4.0)
    assert modem.cmgs() == [] and not events(sub, "fallback.sent")


def test_a_restart_does_not_send_the_episodes_sms_again(make_hub, broker, modem):
    hub = make_hub(devices=gpio_devices() + modem_device(modem),
                   extra=fallback(link_down_after_s=1.0)).start().wait_online()
    gsm_up(hub)
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    hub.press("button-1")
    until(lambda: Counter(modem.cmgs()) == Counter({NURSE: 1, CARE: 1}), what="the first SMS")
    hub.wait_log(lambda e: len([c for c in hub.committed() if c["type"] == "fallback.sent"]) == 2)
    hub.kill()  # kill -9: the alarm is re-opened from the outbox at the start, its SMS known as sent
    hub.start()
    hub.wait_log(lambda e: e.get("event") == "alarms_restored")
    gsm_up(hub)
    hub.wait_log(lambda e: e.get("event") == "fallback_started", timeout=20)
    time.sleep(3.0)
    assert Counter(modem.cmgs()) == Counter({NURSE: 1, CARE: 1}), "one SMS per episode and number, restart or not"


def test_a_second_interface_is_supervised(make_hub, subscribe, broker, tmp_path):
    import shutil
    import uuid

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a veth pair")
    tag = uuid.uuid4().hex[:8]
    name, peer = f"chg{tag}", f"chp{tag}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", "link", *args], check=True, capture_output=True)

    ip("add", name, "type", "veth", "peer", "name", peer)  # a cable with both ends here: up, with carrier
    try:
        ip("set", peer, "up")
        ip("set", name, "up")
        sub = subscribe([f"{BASE}/event/#"])
        hub = make_hub(extra=f'\n[fallback]\ninterface = "{name}"\ninterface_check_s = 0.3\n').start().wait_online()
        hub.wait_log(lambda e: e.get("event") == "path_up" and e.get("path") == "interface")
        assert status(broker)["paths"]["interface"]["state"] == "up"
        ip("set", name, "down")
        sub.wait_for(lambda _: events(sub, "path.lost"), timeout=20)
        (lost,) = events(sub, "path.lost")
        assert lost["data"]["path"] == "interface" and lost["data"]["reason"] == "down"
        assert lost["data"]["detail"]["interface"] == name and lost["source"]["device"] == "hub"
        assert status(broker)["paths"]["interface"]["state"] == "down"
        ip("set", name, "up")
        sub.wait_for(lambda _: events(sub, "path.restored"), timeout=20)
        (back,) = events(sub, "path.restored")
        assert back["data"]["was"] == "down" and back["scaip"]["stc"] == "0116"
        ip("del", name)
        sub.wait_for(lambda _: len(events(sub, "path.lost")) == 2, timeout=20)
        assert events(sub, "path.lost")[1]["data"]["reason"] == "missing"
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)  # takes its peer with it


def test_new_on_call_numbers_apply_on_a_reload_and_only_an_sms_sent_is_answered(make_hub, subscribe, broker, modem):
    import signal

    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(devices=gpio_devices() + modem_device(modem),
                   extra=fallback(fallback_after_s=2.0, link_down_after_s=600)).start().wait_online()
    gsm_up(hub)
    text = hub.config.read_text()
    hub.config.write_text(text.replace(f'care = ["{CARE}"]', 'care = ["+4740000009"]'))
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)
    sub.wait_for(lambda _: events(sub, "hub.config_reloaded"))
    modem.sms(NURSE, "OK")  # on call, but answering no SMS of an open alarm: ignored, and not kept for one
    hub.wait_log(lambda e: e.get("event") == "sms_ok_nothing_open")
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    until(lambda: Counter(modem.cmgs()) == Counter({NURSE: 1, "+4740000009": 1}), what="SMS to the new numbers")
    modem.sms(CARE, "OK")  # no longer on call
    hub.wait_log(lambda e: e.get("event") == "sms_from_unknown_number")
    assert not events(sub, "alarm.acknowledged")
    modem.sms("+4740000009", "Ok")
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    (acked,) = events(sub, "alarm.acknowledged")
    assert acked["data"]["by"] == "+4740000009"
    wait_feedback(hub, "steady")


def test_the_simulated_modem_backend_through_the_sim_socket(make_hub, subscribe, broker):
    """``backend = "sim"`` (the demo's): the same fallback, the modem inside the hub, driven by sim ops."""
    sub = subscribe([f"{BASE}/event/#"])
    sim_modem = '\n[[device]]\nid = "modem"\nkind = "modem"\n[device.modem]\nport = "unused"\nbackend = "sim"\n' \
                'check_s = 0.3\ninbox_s = 0.2\n'
    hub = make_hub(devices=gpio_devices() + sim_modem, extra=fallback(fallback_after_s=1.0)).start().wait_online()
    gsm_up(hub)
    hub.press("button-1")
    state = until(lambda: len((st := hub.sim.call({"op": "modem_state", "device": "modem"}))["sent"]) == 2 and st,
                  what="two SMS from the simulated modem")
    assert {s["to"] for s in state["sent"]} == {NURSE, CARE}
    hub.sim.call({"op": "modem_sms", "device": "modem", "from": CARE, "text": "OK"})
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    assert events(sub, "alarm.acknowledged")[0]["data"]["by"] == CARE
    hub.sim.call({"op": "modem_fault", "device": "modem", "fault": "no_sim"})
    sub.wait_for(lambda _: events(sub, "path.lost"))
    assert events(sub, "path.lost")[0]["data"]["reason"] == "no_sim"
    hub.sim.call({"op": "modem_fault", "device": "modem", "fault": "none"})
    sub.wait_for(lambda _: events(sub, "path.restored"))
