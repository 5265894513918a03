"""The reload's parts without a hub: what it would do from two config files (hub.reload.plan), and a log
level changed for loggers already in use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from hub import config, logs
from hub.reload import RESTART_KEYS, make_plan
from hub.reload.plan import secrets_digest
from hil.harness.hubproc import gpio_devices, hub_config

BLE_DOOR = """
[[device]]
id = "front-door"
kind = "door"
[device.ble]
address = "A4:C1:38:00:00:01"
"""


def plan(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> Any:
    """The plan from config ``old`` to ``new`` (hub_config's arguments), the same file rewritten as on a site."""
    a = config.load(hub_config(tmp_path, port=1883, **old))
    b = config.load(hub_config(tmp_path, port=1883, **new))
    return make_plan(a, b, old_secrets=secrets_digest(a), new_secrets=secrets_digest(b))


def test_the_same_config_plans_nothing(tmp_path):
    p = plan(tmp_path, {}, {})
    assert p.empty and not p.restart and not p.drivers


EDITS = {
    "hub.id": ('id = "test-hub"', 'id = "other-hub"'),
    "mqtt.prefix": ("[mqtt]\n", '[mqtt]\nprefix = "x/v1"\n'),
    "store.dir": ('dir = "state"', 'dir = "elsewhere"'),
    "store.reserve_kb": ('dir = "state"', 'dir = "state"\nreserve_kb = 2048'),
    "sim.socket": ("[gpio]", '[sim]\nsocket = "/tmp/other.sock"\n\n[gpio]'),
    "log.format": ('format = "json"', 'format = "console"'),
}


def test_each_key_that_needs_a_restart_is_named(tmp_path):
    assert set(RESTART_KEYS) == set(EDITS)
    a = hub_config(tmp_path, port=1883)
    old = config.load(a)
    for key, (was, becomes) in EDITS.items():
        text = a.read_text()
        a.write_text(text.replace(was, becomes, 1))
        moved = ["sim.socket"] if key == "store.dir" else []  # the sim socket lives in the state directory
        assert make_plan(old, config.load(a)).restart == [key, *moved], key
        a.write_text(text)


def test_devices_added_removed_changed_and_only_their_driver(tmp_path):
    moved = gpio_devices().replace('room = "bathroom"', 'room = "hall"')
    p = plan(tmp_path, {}, {"devices": moved + BLE_DOOR, "extra": "[ble]\nbackend = \"sim\""})
    assert p.added == ["front-door"] and p.modified == ["cord-1"] and not p.removed
    assert p.drivers == ["gpio", "ble"]
    assert "device:front-door added" in p.changed and "device:cord-1 changed" in p.changed
    p = plan(tmp_path / "2", {"devices": gpio_devices() + BLE_DOOR}, {"devices": BLE_DOOR})
    assert p.removed == ["button-1", "cord-1"] and p.drivers == ["gpio"]


def test_tables_in_place_touch_no_driver(tmp_path):
    p = plan(tmp_path, {}, {"ack_timeout_s": 5, "heartbeat_s": 10, "extra": '[rules]\nnight = "21:00-06:00"'})
    assert set(p.changed) == {"alarm", "mqtt", "rules"} and p.rules and not p.drivers and not p.restart


def test_a_renewed_password_file_is_a_change_of_the_link(tmp_path):
    a = hub_config(tmp_path / "a", port=1883, extra_mqtt='username = "test-hub"\npassword_file = "pw"')
    pw = a.parent / "pw"
    pw.write_text("one\n")
    pw.chmod(0o600)
    loaded = config.load(a)
    before = secrets_digest(loaded)
    pw.write_text("two\n")
    p = make_plan(loaded, config.load(a), old_secrets=before, new_secrets=secrets_digest(loaded))
    assert p.changed == ["mqtt"] and not p.drivers


def test_a_new_log_level_reaches_loggers_already_in_use(capfd):
    logs.configure("info", "json")
    log = structlog.get_logger("test.reload")
    log.debug("before")
    log.info("cached")  # structlog caches this logger now, with the level it had
    logs.set_level("debug")
    log.debug("after_debug")
    logs.set_level("warning")
    log.info("after_warning")
    log.warning("warned")
    logs.configure("info", "json")
    names = [json.loads(line)["event"] for line in capfd.readouterr().err.splitlines()]
    assert names == ["cached", "after_debug", "warned"]
