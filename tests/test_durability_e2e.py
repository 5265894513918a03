"""Processes and links failing for real: kill -9, broker outages, failover, TLS, systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import paho.mqtt.client as mqtt

from hil.harness.broker import Mosquitto, Subscriber, free_port, make_tls

from tests.support.central import BASE, events




def test_kill_9_loses_nothing_and_last_will_says_offline(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#", f"{BASE}/status"], persistent=True, client_id="central-k9")
    hub = make_hub().start()
    hub.wait_log(lambda e: e.get("event") == "mqtt_connected")
    broker.stop()
    hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected")
    for _ in range(20):
        hub.press(seconds=0.01)
    hub.wait_log(lambda e: len([c for c in hub.committed() if c["type"] == "alarm.button"]) == 20)
    accepted = {c["event_id"]: c["seq"] for c in hub.committed()}
    hub.kill()
    broker.start()
    hub.start()  # same state directory, new process
    sub.wait_for(lambda _: accepted.keys() <= {e["id"] for e in events(sub)}, timeout=30)
    got = {e["id"]: e["seq"] for e in events(sub)}
    assert {i: got[i] for i in accepted} == accepted, "every accepted event keeps its id and seq"
    sub.wait_for(lambda _: len({e["id"] for e in events(sub, "hub.started")}) == 2)
    restarted = max(events(sub, "hub.started"), key=lambda e: e["seq"])
    assert restarted["seq"] == max(accepted.values()) + 1, "seq continues across the crash"
    assert restarted["data"]["pending_at_start"] >= 20
    # kill -9 while connected: the broker publishes the retained last will
    hub.wait_log(lambda e: e.get("event") == "birth_published")
    hub.kill()
    will = {"state": "offline", "hub": "test-hub", "reason": "connection lost"}
    sub.wait_for(lambda msgs: any(m.topic == f"{BASE}/status" and m.json() == will for m in msgs))
    late = Subscriber(port=broker.port, topics=[f"{BASE}/status"])  # a central connecting later sees it retained
    try:
        late.wait_for(lambda msgs: msgs and msgs[-1].retain and msgs[-1].json() == will)
    finally:
        late.close()


def test_failover_to_second_broker(make_hub, subscribe, broker):
    dead = free_port()
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(brokers=[("127.0.0.1", dead), ("127.0.0.1", broker.port)]).start()
    hub.wait_log(lambda e: e.get("event") == "mqtt_connected", timeout=20)
    assert any(e.get("event") == "mqtt_failover" for e in hub.log_lines())
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"))


def _tls_config(tls, *, cert=True) -> str:
    parts = [f'ca = "{tls.ca}"']
    if cert:
        parts += [f'cert = "{tls.client_cert}"', f'key = "{tls.client_key}"']
    return "tls = { " + ", ".join(parts) + " }"


def test_tls_with_client_certificate(tmp_path, make_hub):
    tls = make_tls(tmp_path / "pki", client_cn="test-hub")
    with Mosquitto(workdir=tmp_path / "tlsbroker", tls=tls) as tb:
        sub = Subscriber(port=tb.port, topics=[f"{BASE}/#"], tls=tls)
        try:
            hub = make_hub(name="tlshub", port=tb.port, extra_mqtt=_tls_config(tls)).start()
            hub.press()
            sub.wait_for(lambda _: events(sub, "alarm.button"))
            assert any(m.topic == f"{BASE}/status" and m.json()["state"] == "online" for m in sub.messages)
        finally:
            sub.close()
        # the same broker refuses a plaintext MQTT client
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        connacks = []
        plain.on_connect = lambda *a: connacks.append(a)
        try:
            plain.connect("127.0.0.1", tb.port, keepalive=5)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not connacks:
                if plain.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    break
        except OSError:
            pass
        assert connacks == [], "a plaintext connection must not get a CONNACK"
        hub.stop()


def test_daemon_refuses_world_readable_key(tmp_path, make_hub):
    tls = make_tls(tmp_path / "pki")
    os.chmod(tls.client_key, 0o644)
    hub = make_hub(name="badkey", port=8883, extra_mqtt=_tls_config(tls))
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--config", str(hub.config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert f"{hub.config}:" in result.stderr and "mqtt.tls.key" in result.stderr and "chmod 600" in result.stderr
    assert "not starting" in result.stderr
    os.chmod(tls.client_key, 0o600)
    ok = subprocess.run(
        [sys.executable, "-m", "hub.cli", "check-config", str(hub.config)], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr


def test_password_and_acl(tmp_path, make_hub):
    acl = "user test-hub\ntopic readwrite carehub/v1/test-hub/#\n\nuser central\ntopic readwrite #\n"
    with Mosquitto(workdir=tmp_path / "pwbroker", passwords={"test-hub": "s3cret", "central": "c3ntral"}, acl=acl) as pb:
        sub = Subscriber(port=pb.port, topics=[f"{BASE}/#"], username="central", password="c3ntral")
        try:
            pw = tmp_path / "pw"
            pw.mkdir()
            (pw / "hub.pass").write_text("s3cret\n")
            os.chmod(pw / "hub.pass", 0o600)
            hub = make_hub(
                name="pwhub", port=pb.port, extra_mqtt=f'username = "test-hub"\npassword_file = "{pw / "hub.pass"}"'
            ).start()
            hub.press()
            sub.wait_for(lambda _: events(sub, "alarm.button"))
            hub.stop()
        finally:
            sub.close()


def test_wrong_password_keeps_retrying_without_losing_presses(tmp_path, make_hub):
    with Mosquitto(workdir=tmp_path / "pwbroker2", passwords={"test-hub": "right"}) as pb:
        (tmp_path / "hub.pass").write_text("wrong\n")
        os.chmod(tmp_path / "hub.pass", 0o600)
        hub = make_hub(
            name="wrongpw", port=pb.port, extra_mqtt=f'username = "test-hub"\npassword_file = "{tmp_path / "hub.pass"}"'
        ).start()
        hub.wait_log(lambda e: e.get("event") == "mqtt_connect_failed" and "CONNACK" in e.get("error", ""))
        hub.press()
        hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("type") == "alarm.button")
        assert hub.returncode is None, "the daemon keeps running"
        hub.stop()


def test_sd_notify_ready_watchdog_and_stopping(tmp_path, make_hub):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        hub = make_hub(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}).start()
        got: list[str] = []
        while "WATCHDOG=1" not in got or "READY=1" not in got:
            got.append(sock.recv(256).decode())
        hub.stop()
        while "STOPPING=1" not in got:
            got.append(sock.recv(256).decode())
        assert got.index("READY=1") < got.index("STOPPING=1")
    finally:
        sock.close()


def test_after_reconnect_alarms_go_out_before_older_events(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"], persistent=True, client_id="central-order")
    hub = make_hub().start()
    sub.wait_for(lambda _: events(sub, "hub.started"))
    before = {e["id"] for e in events(sub)}
    broker.stop()
    hub.stop()  # hub.stopping, then hub.started of the next run: normal priority, pending
    hub.start()
    for _ in range(3):
        hub.press(seconds=0.01)
    hub.wait_log(lambda e: len([c for c in hub.committed() if c["type"] == "alarm.button"]) == 3)
    broker.start()
    def after() -> list[dict]:
        return [e for e in events(sub) if e["id"] not in before]

    sub.wait_for(lambda _: len(after()) >= 5, timeout=30)
    order = [e["type"] for e in after()]
    assert order[:3] == ["alarm.button"] * 3, order
    assert {"hub.stopping", "hub.started"} <= set(order[3:])
    seqs = [e["seq"] for e in after()]
    assert seqs[:3] == sorted(seqs[:3]) and seqs[3] < seqs[0], "critical first, then by seq"


def test_a_notify_socket_nobody_reads_never_blocks_the_hub(tmp_path, make_hub, subscribe):
    path = str(tmp_path / "deaf.sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(path)  # bound, never read: its queue fills after a few datagrams
    try:
        sub = subscribe([f"{BASE}/event/#"])
        hub = make_hub(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"}).start().wait_online()
        time.sleep(1.0)  # ~100 watchdog pings into a full queue
        hub.press()
        sub.wait_for(lambda _: events(sub, "alarm.button"))
        assert hub.stop(timeout=15) == 0
    finally:
        deaf.close()
