"""``carehub status``, ``tail``, ``test-alarm``, ``ack``, ``ble-forget``, ``replay`` as an installer runs them:
the real command against a real hub subprocess and a real Mosquitto; what they print and their exit codes."""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys

from hil.central.recorder import CentralRecorder
from hil.harness.hubproc import REPO
from tests.support.central import BASE, events
from tests.support.control import ble_button_press, carehub, start


def test_status_json_and_table_with_the_network_down(make_hub, broker, tmp_path):
    hub, sock = start(make_hub)
    hub.wait_online()
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    out = carehub("status", "--config", str(hub.config), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["hub"] == "test-hub" and doc["link"]["online"] is False
    assert [r["id"] for r in doc["device_list"]] == ["button-1", "cord-1", "ble-button", "front-door"]
    assert {r["id"]: r["state"] for r in doc["device_list"]}["front-door"] == "never heard"

    table = carehub("status", "-c", str(hub.config))
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "not connected" in text and "front-door" in text and "never heard" in text
    assert re.search(r"degraded:\s*\n\s+link: not connected", text), text
    assert carehub("status", "--socket", str(sock), "--json").returncode == 0  # the socket named directly

    gone = carehub("status", "--socket", str(tmp_path / "no.sock"))
    assert gone.returncode == 3 and "no such socket" in gone.stderr
    unreadable = carehub("status", "--config", str(tmp_path / "missing.toml"))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    hub.stop()
    stopped = carehub("status", "-c", str(hub.config))
    assert stopped.returncode == 3 and "is the hub running?" in stopped.stderr and not sock.exists()


def leg_times(stdout: str) -> dict[str, float]:
    """``{leg: ms}`` from test-alarm's lines, in the order printed."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^\s+(\w+)\s+([\d.]+) ms", stdout, re.M)}


def test_test_alarm_exit_1_without_an_ack_and_0_with_one(make_hub, broker):
    hub, sock = start(make_hub)
    hub.wait_online()
    alone = carehub("test-alarm", "-c", str(hub.config), "--timeout", "1")
    assert alone.returncode == 1, alone.stdout + alone.stderr
    legs = leg_times(alone.stdout)
    assert list(legs) == ["requested", "committed", "published", "timeout"], alone.stdout
    assert "no ack within 1 s" in alone.stdout and 900 <= legs["timeout"] < 3000
    assert legs["committed"] <= legs["published"] < 1000

    with CentralRecorder(port=broker.port, auto_ack=True, ack_by="operator-12") as central:
        acked = carehub("test-alarm", "-c", str(hub.config), "--device", "button-1", "--timeout", "8")
        assert acked.returncode == 0, acked.stdout + acked.stderr
        legs = leg_times(acked.stdout)
        assert list(legs) == ["requested", "committed", "published", "acknowledged"], acked.stdout
        assert legs["requested"] <= legs["committed"] <= legs["published"] <= legs["acknowledged"] < 8000
        assert "by operator-12" in acked.stdout
        (test,) = central.events("alarm.test")  # the central got it, from the button's source
        assert test["source"]["device"] == "button-1"
        assert f"event {test['id']}" in acked.stdout
    lines = carehub("test-alarm", "-c", str(hub.config), "--timeout", "0.5", "--json").stdout.splitlines()
    assert [json.loads(x).get("leg") for x in lines][:3] == ["requested", "committed", "published"]
    assert json.loads(lines[-1]) == {**json.loads(lines[-1]), "done": True, "ok": False}
    unknown = carehub("test-alarm", "-c", str(hub.config), "--device", "no-such-device", "--timeout", "1")
    assert unknown.returncode == 1 and "unknown device" in unknown.stderr


def test_ack_ble_forget_and_replay_wrappers(make_hub, broker, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub, sock = start(make_hub)
    hub.wait_online()
    cfg = str(hub.config)
    hub.press("button-1")
    sub.wait_for(lambda _: events(sub, "alarm.button"))
    (alarm,) = events(sub, "alarm.button")
    ok = carehub("ack", alarm["id"], "--by", "nurse-7", "-c", cfg)
    assert ok.returncode == 0 and f"acknowledged: alarm {alarm['id']} (closes 1 alarm(s))" in ok.stdout, ok.stderr
    sub.wait_for(lambda _: events(sub, "alarm.acknowledged"))
    (acked,) = events(sub, "alarm.acknowledged")
    assert acked["cause"] == alarm["id"] and acked["data"]["by"] == "nurse-7"
    again = carehub("ack", alarm["id"], "-c", cfg, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["result"] == "already_acknowledged"
    unknown = carehub("ack", "01900000-0000-7000-8000-000000000000", "-c", cfg)
    assert unknown.returncode == 1 and "no open alarm" in unknown.stderr
    assert carehub("ack", "not-an-id", "-c", cfg).returncode == 2  # usage: caught before the hub is asked
    hub.press("cord-1")  # acked without --by: the local user, from the socket's peer credentials
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 2)
    cord = events(sub, "alarm.button")[1]
    assert carehub("ack", cord["id"], "-c", cfg).returncode == 0
    sub.wait_for(lambda _: len(events(sub, "alarm.acknowledged")) == 2)
    assert events(sub, "alarm.acknowledged")[1]["data"]["by"] == f"local:{pwd.getpwuid(os.getuid()).pw_name}"

    ble_button_press(hub, counter=5000)  # then the button is reflashed and counts from a random 200
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 3)
    forget = carehub("ble-forget", "ble-button", "--by", "tech-3", "-c", cfg)
    assert forget.returncode == 0 and "was 5000" in forget.stdout, forget.stderr
    ble_button_press(hub, counter=200)
    sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 4)
    assert hub.wait_log(lambda e: e.get("event") == "ble_counter_forgotten")["by"] == "tech-3"
    not_ble = carehub("ble-forget", "button-1", "-c", cfg)
    assert not_ble.returncode == 1 and "no BLE device 'button-1'" in not_ble.stderr

    before = len(sub.json(f"{BASE}/event/#"))
    replay = carehub("replay", "1", "3", "-c", cfg, "--json")
    assert replay.returncode == 0 and json.loads(replay.stdout)["sent"] == 3, replay.stderr
    msgs = sub.wait_for(lambda m: len(m) >= before + 3)
    assert sorted(json.loads(m.payload)["seq"] for m in msgs[before:before + 3]) == [1, 2, 3]
    human = carehub("replay", "2", "-c", cfg)
    assert human.returncode == 0 and "published again: 1 event(s), seq 2..2" in human.stdout
    backwards = carehub("replay", "5", "2", "-c", cfg)
    assert backwards.returncode == 1 and "to_seq is before from_seq" in backwards.stderr
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    down = carehub("replay", "1", "1", "-c", cfg)
    assert down.returncode == 1 and "link" in down.stderr


def test_tail_prints_one_readable_line_per_matching_event(make_hub):
    hub, sock = start(make_hub)
    hub.wait_online()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "tail", "-c", str(hub.config), "--type", "alarm.*", "--device", "button-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert "following alarm.* from button-1" in proc.stderr.readline()
        hub.press("cord-1")
        hub.press("button-1")
        line = proc.stdout.readline()
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3}  #\d+  alarm\.button\s+critical\s+button-1 \(bedroom\)", line), line
        assert "cord-1" not in line and "gesture=press" in line
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    hub.wait_log(lambda e: e.get("event") == "control_tail_ended")


def test_every_ops_command_documents_its_exit_codes():
    for cmd in ("status", "tail", "test-alarm", "ack", "ble-forget", "replay"):
        out = carehub(cmd, "--help")
        assert out.returncode == 0
        text = " ".join(out.stdout.split())
        assert "exit status: 0" in text and " 2 usage or config error" in text, cmd
        assert " 3 cannot reach the hub's socket" in text and "--config FILE" in text and "--socket PATH" in text
    assert carehub("status", "--config", "a.toml", "--socket", "b.sock").returncode == 2
