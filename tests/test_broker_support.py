"""Self-tests for tests/support/broker.py against a real, private mosquitto."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hil.harness.broker import (
    Mosquitto,
    Received,
    Subscriber,
    TlsFiles,
    free_port,
    make_tls,
    request,
)

BrokerFactory = Callable[..., Mosquitto]


@pytest.fixture
def make_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BrokerFactory]:
    """Start brokers in tmp_path; stop them afterwards and attach their logs
    to the test report (shown only when the test fails)."""
    brokers: list[Mosquitto] = []

    def factory(**kwargs: Any) -> Mosquitto:
        broker = Mosquitto(workdir=tmp_path / f"broker{len(brokers)}", **kwargs)
        brokers.append(broker)
        return broker.start()

    yield factory
    for broker in brokers:
        broker.stop()
        request.node.add_report_section("teardown", f"mosquitto log {broker.workdir.name}", broker.log_text())


@pytest.fixture
def broker(make_broker: BrokerFactory) -> Mosquitto:
    return make_broker()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert port != 1883


def test_pubsub_round_trip(broker: Mosquitto) -> None:
    assert broker.running and broker.host == "127.0.0.1" and broker.port != 1883
    with (
        Subscriber(port=broker.port, topics=["carehub/+/state"]) as sub,
        Subscriber(port=broker.port, topics=[]) as pub,
    ):
        t0 = time.monotonic()
        assert not pub.publish("carehub/bed1/state", {"ok": True}).is_failure
        pub.publish("carehub/bed2/state", b'{"ok": false}')
        pub.publish("carehub/bed1/other", "ignored")
        msgs = sub.wait_for(lambda m: len(m) >= 2, timeout=5)
        assert [m.topic for m in msgs] == ["carehub/bed1/state", "carehub/bed2/state"]
        assert all(isinstance(m, Received) and not m.retain and m.t >= t0 for m in msgs)
        assert sub.json("carehub/bed1/#") == [{"ok": True}]
        assert sub.json() == [{"ok": True}, {"ok": False}]

        with pytest.raises(AssertionError, match="2 message"):
            sub.wait_for(lambda m: len(m) >= 3, timeout=0.3)


def test_retained_flag_and_properties(broker: Mosquitto) -> None:
    with Subscriber(port=broker.port, topics=[]) as pub:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("k", "v")
        pub.publish("carehub/retained", b"r", retain=True, properties=props)
    with Subscriber(port=broker.port, topics=["carehub/#"]) as sub:
        (msg,) = sub.wait_for_topic("carehub/retained")
        assert msg.retain and msg.payload == b"r"
        assert msg.properties is not None and msg.properties.UserProperty == [("k", "v")]


def _responder(port: int) -> mqtt.Client:
    """A minimal MQTT v5 service echoing requests on svc/echo to their ResponseTopic."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe("svc/echo", qos=1)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = msg.properties.CorrelationData
        c.publish(msg.properties.ResponseTopic, b'{"echo": ' + msg.payload + b"}", qos=1, properties=props)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(5)
    return client


def test_request_response(broker: Mosquitto) -> None:
    responder = _responder(broker.port)
    try:
        assert request(broker.host, broker.port, "svc/echo", {"n": 1}) == {"echo": {"n": 1}}
        assert request(broker.host, broker.port, "svc/echo", b"[2]") == {"echo": [2]}
        with pytest.raises(TimeoutError):
            request(broker.host, broker.port, "svc/nobody-listens", {}, timeout=0.5)
    finally:
        responder.disconnect()
        responder.loop_stop()


def test_restart_keeps_port_and_persistent_subscriber_reconnects(broker: Mosquitto) -> None:
    port = broker.port
    with Subscriber(port=port, topics=["carehub/#"], persistent=True) as sub:
        broker.stop()
        assert not broker.running
        broker.start()
        assert broker.running and broker.port == port
        # Publish right away, most likely while the subscriber is still reconnecting:
        # the session (restored from the persistence DB) queues it for delivery.
        with Subscriber(port=port, topics=[]) as pub:
            pub.publish("carehub/after-restart", b"1")
        sub.wait_for_topic("carehub/after-restart", timeout=5)
        assert sub.disconnects >= 1
        sub.wait_connected(5)  # queued messages may arrive before the re-SUBACK


@pytest.mark.parametrize("restart_broker", [False, True], ids=["same-broker", "broker-restarted"])
def test_offline_persistent_subscriber_gets_queued_message(broker: Mosquitto, restart_broker: bool) -> None:
    sub = Subscriber(port=broker.port, topics=["carehub/#"], client_id="persist-1", persistent=True)
    sub.close()
    with Subscriber(port=broker.port, topics=[]) as pub:
        pub.publish("carehub/queued", {"n": 1})
        pub.publish("carehub/volatile", b"q0", qos=0)  # QoS 0 is not queued for offline clients
    if restart_broker:
        broker.restart()
        assert "Saving in-memory database" in broker.log_text()
    with Subscriber(port=broker.port, topics=["carehub/#"], client_id="persist-1", persistent=True) as again:
        again.wait_for_topic("carehub/queued", timeout=5)
        assert again.json("carehub/queued") == [{"n": 1}]
        assert not again.json("carehub/volatile")


def test_kill_and_log_text(broker: Mosquitto) -> None:
    broker.kill()
    assert not broker.running
    broker.start()
    assert len(re.findall(r"mosquitto version \S+ running", broker.log_text())) == 2


def test_start_failure_reports_log(tmp_path: Path) -> None:
    broker = Mosquitto(workdir=tmp_path, acl="topic read #")
    broker.conf_path.write_text(broker.conf_path.read_text() + "no_such_option 1\n")
    with pytest.raises(RuntimeError, match="no_such_option"):
        broker.start()
    assert not broker.running


# ------------------------------------------------------------------------ TLS


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "pki", client_cn="hub-test")


def test_make_tls_files(tls: TlsFiles) -> None:
    for key in (tls.server_key, tls.client_key):
        assert key.stat().st_mode & 0o777 == 0o600
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.load_cert_chain(tls.client_cert, tls.client_key)  # key matches cert


def test_tls_client_cert_round_trip(make_broker: BrokerFactory, tls: TlsFiles) -> None:
    broker = make_broker(tls=tls)
    with (
        Subscriber(port=broker.port, topics=["carehub/#"], tls=tls) as sub,
        Subscriber(port=broker.port, topics=[], tls=tls) as pub,
    ):
        pub.publish("carehub/tls", b"secure")
        sub.wait_for_topic("carehub/tls", timeout=5)
    # use_identity_as_username: the certificate CN becomes the MQTT username.
    assert "u'hub-test'" in broker.log_text()


def test_tls_port_refuses_plaintext(make_broker: BrokerFactory, tls: TlsFiles) -> None:
    broker = make_broker(tls=tls)
    with Subscriber(port=broker.port, connect_timeout=None) as plain:
        with pytest.raises(AssertionError, match="not connected"):
            plain.wait_connected(1.0)
        assert plain.connack_reasons == []


def test_tls_port_requires_client_certificate(make_broker: BrokerFactory, tls: TlsFiles) -> None:
    broker = make_broker(tls=tls)
    ctx = ssl.create_default_context(cafile=str(tls.ca))  # trusts the CA, no client cert
    with socket.create_connection((broker.host, broker.port), timeout=3) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
                # TLS 1.3: the server rejects the missing certificate after the
                # client considers the handshake done, so read to see the alert.
                if conn.recv(1) == b"":
                    raise ConnectionError("closed by broker")


# ------------------------------------------------------------ passwords / ACL


def test_password_auth(make_broker: BrokerFactory) -> None:
    broker = make_broker(passwords={"hub": "s3cret", "other": "pw"})
    with Subscriber(port=broker.port, username="hub", password="s3cret") as ok:
        assert ok.connected
    with Subscriber(port=broker.port, username="hub", password="wrong", connect_timeout=None) as bad:
        with pytest.raises(AssertionError, match="not connected"):
            bad.wait_connected(1.0)
        reasons = bad.connack_reasons
        assert reasons and all(rc.is_failure for rc in reasons)
        assert str(reasons[0]) == "Not authorized"  # 2.0.11 sends 0x87, not 0x86
    with Subscriber(port=broker.port, connect_timeout=None) as anonymous:
        with pytest.raises(AssertionError):
            anonymous.wait_connected(0.5)


def test_acl(make_broker: BrokerFactory) -> None:
    acl = "user admin\ntopic readwrite #\n\nuser hub\ntopic write carehub/#\n"
    broker = make_broker(passwords={"admin": "a", "hub": "h"}, acl=acl)
    with (
        Subscriber(port=broker.port, username="admin", password="a") as admin,
        Subscriber(port=broker.port, topics=[], username="hub", password="h") as hub,
    ):
        # mosquitto 2.0 answers an ACL-denied QoS 1 publish with PUBACK 0x87 for MQTT v5.
        assert str(hub.publish("other/denied", b"x")) == "Not authorized"
        hub.publish("carehub/allowed", b"y")
        admin.wait_for_topic("carehub/allowed", timeout=5)
        assert [m.topic for m in admin.messages] == ["carehub/allowed"]
