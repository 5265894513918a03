"""The control socket of a real hub subprocess, with a real Mosquitto: what ``carehub status``, ``tail``
and friends stand on. The network may be down; a client may be slow or send garbage; the alarms go on."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.ble import bthome
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import REPO
from hub.control.client import ControlClient
from hub.control.protocol import MAX_CLIENTS, MAX_LINE, TAIL_QUEUE
from tests.support.central import BASE
from tests.support.control import BLE_DOOR, CONTROL, FCD2, ble_button_press, residence, start


def poll_status(sock: Path, pred: Any, timeout: float = 8.0) -> dict[str, Any]:
    """The status document once ``pred(doc)`` holds."""
    deadline = time.monotonic() + timeout
    with ControlClient(sock) as c:
        while True:
            doc = c.request({"op": "status"})
            assert doc["ok"], doc
            if pred(doc) or time.monotonic() > deadline:
                return doc
            time.sleep(0.05)


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["device_list"]}


def test_status_with_the_broker_stopped_lists_every_device(make_hub, broker, emulate, tmp_path):
    bed = emulate("bedmat", "bed")
    unplugged = tmp_path / "tty-unplugged"  # a dispenser whose adapter is not plugged in
    hub, sock = start(make_hub, devices=residence(serial_devices(bed=bed, disp=unplugged)))
    hub.wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660 and stat.S_ISSOCK(os.stat(sock).st_mode)
    ble_button_press(hub, counter=10, battery=87, rssi=-67)
    bed.send("occupancy", state="in", pressure=700, battery=90)
    poll_status(sock, lambda d: rows(d)["ble-button"]["last_seen"] and rows(d)["bedmat-1"]["last_seen"])

    broker.stop()  # the network is down from here on
    doc = poll_status(sock, lambda d: not d["link"]["online"])
    hub.press()  # an alarm while the broker is away: stored, pending
    doc = poll_status(sock, lambda d: d["outbox"]["pending_alarms"] >= 1)

    assert doc["link"]["online"] is False and doc["link"]["state"] != "connected"
    assert [r["id"] for r in doc["device_list"]] == [
        "button-1", "cord-1", "ble-button", "front-door", "bedmat-1", "dispenser-1"]
    r = rows(doc)
    door = r["front-door"]
    assert door["state"] == "never heard" and door["last_seen"] is None and door["driver"] == "ble"
    assert doc["devices"]["front-door"]["state"] == "never heard"  # cmd/status's part says so too
    button = r["ble-button"]
    assert button["state"] == "ok" and button["rssi"] == -67 and button["battery"] == 87
    assert 0 <= button["last_seen_s_ago"] < 30 and button["last_seen"].endswith("Z")
    assert r["bedmat-1"]["port"] == str(bed.link) and r["bedmat-1"]["port_state"] == "open"
    assert r["dispenser-1"]["port_state"] == "closed" and r["dispenser-1"]["state"] == "offline"
    assert r["button-1"]["state"] == "ok" and r["button-1"]["last_seen"] is not None  # the press was heard
    assert r["cord-1"]["last_seen"] is None
    assert doc["outbox"]["pending_alarms"] == 1 and doc["outbox"]["oldest_pending_age_s"] >= 0
    assert {a["device"] for a in doc["open_alarms"]} == {"button-1", "ble-button"}
    parts = {d["part"] for d in doc["degraded"]}
    assert "link" in parts and "device:dispenser-1" in parts
    assert {"supervision", "bed_not_returned"} <= {rule["name"] for rule in doc["rules"]}
    assert doc["tasks"]["control"]["state"] == "running"


def test_tail_filters_by_type_and_device(make_hub, subscribe, emulate):
    bed = emulate("bedmat", "bed")
    hub, sock = start(make_hub, devices=residence(serial_devices(bed=bed)))
    hub.wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    alarms, bedmat, everything = (ControlClient(sock) for _ in range(3))
    assert alarms.request({"op": "tail", "types": ["alarm.*"], "devices": ["button-1"]})["tail"] == {
        "types": ["alarm.*"], "devices": ["button-1"]}
    assert bedmat.request({"op": "tail", "devices": ["bedmat-1"]})["ok"]
    assert everything.request({"op": "tail"})["ok"]

    hub.press("button-1")
    hub.press("cord-1")  # an alarm.button too, of another device
    bed.send("occupancy", state="in", pressure=700, battery=90)
    time.sleep(0.3)
    bed.send("occupancy", state="out", pressure=20, battery=90)  # bed.exit after exit_after_s
    seen: dict[str, list[dict[str, Any]]] = {"alarms": [], "bedmat": [], "all": []}
    deadline = time.monotonic() + 8
    while not any(e["type"] == "bed.exit" for e in seen["all"]) and time.monotonic() < deadline:
        reply = everything.poll(0.5)
        if reply is not None:
            seen["all"].append(reply["event"])
    for name, client in (("alarms", alarms), ("bedmat", bedmat)):
        while (reply := client.poll(0.3)) is not None:  # what each had queued by now
            seen[name].append(reply["event"])
    for c in (alarms, bedmat, everything):
        c.close()
    types_all = [(e["type"], e["source"]["device"]) for e in seen["all"]]
    assert ("alarm.button", "button-1") in types_all and ("alarm.button", "cord-1") in types_all
    assert ("bed.exit", "bedmat-1") in types_all
    assert [(e["type"], e["source"]["device"]) for e in seen["alarms"]] == [("alarm.button", "button-1")]
    assert seen["bedmat"] and all(e["source"]["device"] == "bedmat-1" for e in seen["bedmat"])
    assert "bed.exit" in [e["type"] for e in seen["bedmat"]]
    # the tail sees the same events the central gets, ids and seqs included
    (press,) = seen["alarms"]
    assert press["seq"] >= 1 and press["hub"] == "test-hub" and press["id"] in {e["id"] for e in seen["all"]}


def door_flood(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` door-sensor adverts, each with a new temperature: one sensor.reading each."""
    out = []
    for i in range(start, start + n):
        data = bthome.encode([(0x02, round(i * 0.01, 2))], packet_id=i % 256)
        out.append({"address": BLE_DOOR, "service_data_hex": {FCD2: data.hex()}})
    return out


def test_a_slow_tail_client_is_dropped_and_alarms_stay_fast(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/alarm.button"])
    hub, sock = start(make_hub, extra="[limits]\ntelemetry_per_s = 100000\ntelemetry_burst = 100000\n")
    hub.wait_online()
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(str(sock))
    slow.sendall(b'{"op": "tail"}\n')  # and never reads
    keeping_up = ControlClient(sock)
    assert keeping_up.request({"op": "tail", "types": ["alarm.*"]})["ok"]

    latencies = []
    for batch in range(4):  # 4 x 1,500 readings: far more than the slow client's queue and socket buffers
        for part in range(0, 1500, 300):  # the sim socket takes lines up to 64 KiB
            adverts = door_flood(300, batch * 1500 + part)
            assert hub.sim.call({"op": "ble_adverts", "adverts": adverts})["delivered"] == 300
        t0 = time.monotonic()
        hub.press()
        msgs = sub.wait_for(lambda m, k=batch: len(m) > k, timeout=5)
        latencies.append(msgs[batch].t - t0)
    dropped = hub.wait_log(lambda e: e.get("event") == "control_tail_dropped", timeout=10)
    assert f"{TAIL_QUEUE} events queued unread" in dropped["reason"]
    assert max(latencies) < 0.5, f"press to central under a stalled tail client: {latencies}"

    # the client that keeps up got every alarm; the hub counts the one it dropped
    got = [keeping_up.reply()["event"]["type"] for _ in range(4)]
    assert got == ["alarm.button"] * 4
    with ControlClient(sock) as c:
        doc = c.request({"op": "status"})
    assert doc["control"]["tail"]["dropped"] == {"slow": 1} and doc["control"]["tail"]["clients"] == 1
    assert doc["seq"] > 3 * TAIL_QUEUE, "thousands of readings were committed and offered to both clients"
    print("press to central, ms:", [round(x * 1000, 1) for x in latencies])
    assert doc["device_list"][3]["id"] == "front-door" and doc["device_list"][3]["state"] == "ok"
    slow.settimeout(10)  # what the hub sent before it gave up, then the end of the connection
    while slow.recv(65536):
        pass
    slow.close()
    keeping_up.close()


def test_garbage_gets_errors_and_the_hub_keeps_working(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub, sock = start(make_hub)
    hub.wait_online()
    rng = random.Random(13)
    bad_requests: list[bytes] = [
        b"hello", b"{", b"[]", b"42", b'"status"', b"null", b'{"op": 7}', b'{"no_op": "status"}',
        b'{"op": "reboot"}', b'{"op": "ack"}', b'{"op": "ack", "event_id": "not-an-id"}',
        b'{"op": "ack", "event_id": "01900000-0000-7000-8000-000000000000", "by": ""}',
        b'{"op": "replay", "from_seq": -1, "to_seq": 2}', b'{"op": "replay", "from_seq": 1}',
        b'{"op": "replay", "from_seq": 1, "to_seq": 99999999999999999999}',
        b'{"op": "tail", "types": "alarm.*"}', b'{"op": "tail", "colour": "red"}',
        b'{"op": "test-alarm", "timeout_s": 1e9}', b'{"op": "test-alarm", "device": "no-such-device"}',
        b'{"op": "ble-forget"}', b'{"op": "ble-forget", "device": "button-1"}', b"\xff\xfe\x00garbage",
    ]
    bad_requests += [b"x" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b"")
                     for _ in range(100)]
    with ControlClient(sock) as c:
        for line in bad_requests:
            c.sock.sendall(line + b"\n")
            reply = c.reply()
            if b"test-alarm" in line and b"no-such-device" in line:  # the legs of a test alarm that cannot be
                while not reply.get("done"):
                    reply = c.reply()
            assert reply["ok"] is False and reply["error"], (line, reply)
        assert c.request({"op": "status"})["ok"]  # the same connection still serves
    with ControlClient(sock) as c:  # a line past the limit: an error, then the connection ends
        c.sock.sendall(b'{"op": "status", "pad": "' + b"x" * (MAX_LINE * 4) + b'"}\n')
        reply = c.reply()
        assert reply["ok"] is False and "too long" in reply["error"]
        assert list(c.replies()) == []
    clients = [ControlClient(sock) for _ in range(MAX_CLIENTS)]  # as many as it takes; one more is refused
    with ControlClient(sock) as extra:
        assert "busy" in extra.reply()["error"]
    for c in clients:
        c.close()
    hub.press()
    sub.wait_for(lambda m: any(json.loads(x.payload)["type"] == "alarm.button" for x in m))
    with ControlClient(sock) as c:
        doc = c.request({"op": "status"})
    assert doc["ok"] and doc["tasks"]["control"]["restarts"] == 0 and hub.returncode is None
    assert doc["control"]["refused"]["too_long"] == 1 and doc["control"]["refused"]["busy"] == 1
    assert doc["control"]["refused"]["invalid"] + doc["control"]["refused"]["unknown_op"] >= 120
    refused = [e for e in hub.log_lines() if e.get("event") == "control_request_refused"]
    assert refused and len(refused) < 20, "refusals are logged, rate-limited"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="the sandbox expands syscall sets with it")
def test_the_socket_works_inside_the_units_sandbox(make_hub):
    """Under carehub.service's system-call filter (no @chown), address families and UMask=0077: the
    socket is made 0660 with chmod alone, and answers."""
    unit_sandbox = [sys.executable, str(REPO / "tests" / "support" / "unit_sandbox.py"),
                    str(REPO / "systemd" / "carehub.service"), "--"]
    hub = make_hub(devices=residence(), extra=CONTROL)
    hub.prefix = unit_sandbox
    hub.start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "control_listening")
    sock = hub.dir / "state" / "control.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    with ControlClient(sock) as c:
        doc = c.request({"op": "status"})
    assert doc["ok"] and doc["link"]["online"] and len(doc["device_list"]) == 4
    assert hub.stop() == 0 and not sock.exists()
    assert not [e for e in hub.log_lines() if e.get("level") in ("error", "critical")], hub.tail()
