"""The shipped broker config (``config/broker/``) keeps hubs apart, on a real Mosquitto.

The broker runs ``config/broker/mosquitto.conf`` and ``config/broker/acl`` as
shipped: only the ports (8883, 8884) and the file paths (/etc, /var) are
replaced. Hub A logs in with a client certificate (CN ``hub-a``) on the first
listener, hub B and the central with passwords on the second, all over TLS.
What an operator would check: a hub cannot speak for another hub nor read its
commands; the central reads everything and may send commands but no events;
real hubs answer the central's commands through the ACL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hil.harness.broker import MOSQUITTO_PASSWD, Mosquitto, Subscriber, TlsFiles, make_tls, request
from hil.harness.hubproc import HubProcess, hub_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "broker"
CENTRAL = "central.main"
STAFF = "central.staff"  # the staff's tools: an account of their own (one client id per account)
PASSWORDS = {"hub-b": "pw-hub-b", CENTRAL: "pw-central", STAFF: "pw-staff"}
NOT_AUTHORIZED = 135  # MQTT 5 reason code


@dataclass
class Site:
    """The shipped broker with its PKI and accounts."""

    broker: Mosquitto
    pki: TlsFiles  # client identity: CN=hub-a
    server_only: TlsFiles  # the CA only: a password login over TLS
    etc: Path

    @property
    def cert_port(self) -> int:
        return self.broker.ports[0]

    @property
    def password_port(self) -> int:
        return self.broker.ports[1]


def shipped_config(etc: Path) -> str:
    """``mosquitto.conf`` as shipped, with only ports and file paths replaced."""
    text = (SHIPPED / "mosquitto.conf").read_text()
    replace = {
        "/etc/mosquitto/carehub/": f"{etc}/",
        "persistence_location /var/lib/mosquitto/": "persistence_location {workdir}/",
        "/var/log/mosquitto/mosquitto.log": "{workdir}/mosquitto.log",
        "listener 8883\n": "listener {port} {host}\n",
        "listener 8884\n": "listener {port2} {host}\n",
    }
    for old, new in replace.items():
        assert old in text, f"the shipped mosquitto.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    pki = make_tls(tmp_path / "pki", client_cn="hub-a")
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copy(pki.ca, etc / "ca.crt")
    shutil.copy(pki.server_cert, etc / "server.crt")
    shutil.copy(pki.server_key, etc / "server.key")
    shutil.copy(SHIPPED / "acl", etc / "acl")
    for i, (user, password) in enumerate(PASSWORDS.items()):
        args = [MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(etc / "passwd"), user, password]
        subprocess.run(args, check=True, capture_output=True)
    os.chmod(etc / "passwd", 0o600)
    broker = Mosquitto(workdir=tmp_path / "broker", config=shipped_config(etc), extra_ports=1)
    broker.start()
    server_only = TlsFiles(ca=pki.ca, server_cert=pki.server_cert, server_key=pki.server_key)
    yield Site(broker=broker, pki=pki, server_only=server_only, etc=etc)
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print("--- broker log ---\n" + broker.log_tail(60))
    broker.stop()


@pytest.fixture
def clients(site: Site) -> Iterator[list[Subscriber]]:
    made: list[Subscriber] = []
    yield made
    for c in made:
        c.close()


def hub_a(site: Site, clients: list[Subscriber], topics: list[str], client_id: str = "carehub-hub-a") -> Subscriber:
    """Hub A: its client certificate (CN hub-a), no username, any client id (the broker replaces it)."""
    c = Subscriber(port=site.cert_port, topics=topics, tls=site.pki, client_id=client_id)
    clients.append(c)
    return c


def login(site: Site, clients: list[Subscriber], user: str, topics: list[str], client_id: str | None = None) -> Subscriber:
    """A password login over TLS (hub B or the central)."""
    c = Subscriber(
        port=site.password_port, topics=topics, tls=site.server_only, username=user, password=PASSWORDS[user],
        client_id=client_id,
    )
    clients.append(c)
    return c


def code(rc: object) -> int:
    """A PUBACK's reason code (0 success, 16 no subscribers, 135 not authorized)."""
    return int(getattr(rc, "value", -1))


def ok(rc: object) -> bool:
    """The broker took the publish (a success reason code)."""
    return 0 <= code(rc) < 0x80


def on(sub: Subscriber, topic_filter: str) -> list[str]:
    return [m.topic for m in sub.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]


# --------------------------------------------------------------------------- who may connect


def test_nobody_connects_without_credentials_or_tls(site: Site) -> None:
    def refused(**kw: object) -> Subscriber:
        c = Subscriber(connect_timeout=None, topics=[], **kw)  # type: ignore[arg-type]
        time.sleep(1.0)
        try:
            assert not c.connected, c.summary()
        finally:
            c.close()
        return c

    # anonymous, wrong password, a hub's name without its password
    for user, password in ((None, None), ("hub-b", "wrong"), ("hub-a", "anything")):
        c = refused(port=site.password_port, tls=site.server_only, username=user, password=password)
        assert c.connack_reasons and all(rc.is_failure for rc in c.connack_reasons), c.summary()
    # the certificate listener without a certificate, even with a valid password
    c = refused(port=site.cert_port, tls=site.server_only, username="hub-b", password=PASSWORDS["hub-b"])
    assert not c.connack_reasons
    # plain MQTT (no TLS) on either port
    for port in site.broker.ports:
        c = refused(port=port, username="hub-b", password=PASSWORDS["hub-b"])
        assert not c.connack_reasons


# --------------------------------------------------------------------------- hubs are kept apart


def test_hub_cannot_publish_as_another_hub(site: Site, clients: list[Subscriber]) -> None:
    central = login(site, clients, CENTRAL, ["carehub/v1/#"])
    a = hub_a(site, clients, [])
    b = login(site, clients, "hub-b", [])

    forged = {"v": 1, "hub": "hub-b", "type": "alarm.button", "note": "forged by hub-a"}
    # hub A writes into hub B's prefix: events, its retained status, its heartbeat, a reply; and commands
    for topic, retain in (
        ("carehub/v1/hub-b/event/alarm.button", False),
        ("carehub/v1/hub-b/events", False),
        ("carehub/v1/hub-b/status", True),
        ("carehub/v1/hub-b/heartbeat", False),
        ("carehub/v1/hub-b/reply/central.main", False),
        ("carehub/v1/hub-b/cmd/ack", False),
        ("carehub/v1/hub-a/cmd/ack", False),  # not even its own commands
        ("carehub/v1/central.main/event/x", False),
        ("elsewhere/hub-a", False),
    ):
        assert code(a.publish(topic, forged, retain=retain)) == NOT_AUTHORIZED, topic
    # ... while its own topics go through, after them on the same connection
    assert ok(a.publish("carehub/v1/hub-a/event/alarm.button", {"hub": "hub-a"}))
    assert ok(a.publish("carehub/v1/hub-a/status", {"state": "online"}, retain=True))
    assert ok(a.publish("carehub/v1/hub-a/events", {"hub": "hub-a"}))  # a batch of events (contract 1.5)
    assert ok(b.publish("carehub/v1/hub-b/event/door.open", {"hub": "hub-b"}))

    central.wait_for_topic("carehub/v1/hub-a/event/alarm.button")
    central.wait_for_topic("carehub/v1/hub-a/status")
    central.wait_for_topic("carehub/v1/hub-a/events")
    central.wait_for_topic("carehub/v1/hub-b/event/door.open")
    bodies = [m.payload for m in central.messages]
    assert all(b"forged" not in body for body in bodies), central.summary()
    assert on(central, "carehub/v1/hub-b/#") == ["carehub/v1/hub-b/event/door.open"], central.summary()

    # no retained forgery waits for the next subscriber either
    late = login(site, clients, CENTRAL, ["carehub/v1/hub-b/#"], client_id="late")
    time.sleep(0.5)
    assert late.messages == [], late.summary()


def test_hub_reads_only_its_own_commands(site: Site, clients: list[Subscriber]) -> None:
    a = hub_a(site, clients, ["carehub/v1/hub-a/cmd/+", "carehub/v1/hub-b/cmd/+", "carehub/v1/+/event/+", "#"])
    b = login(site, clients, "hub-b", ["carehub/v1/hub-b/cmd/+"])
    central = login(site, clients, CENTRAL, [])

    assert ok(central.publish("carehub/v1/hub-b/cmd/status", {"for": "b"}))
    assert ok(b.publish("carehub/v1/hub-b/event/door.open", {"from": "b"}))
    assert ok(central.publish("carehub/v1/hub-a/cmd/status", {"for": "a"}))

    a.wait_for_topic("carehub/v1/hub-a/cmd/status")  # after B's command, from the same sender
    b.wait_for_topic("carehub/v1/hub-b/cmd/status")
    time.sleep(0.3)
    # (once per matching subscription: "#" and its own cmd/+)
    assert {m.topic for m in a.messages} == {"carehub/v1/hub-a/cmd/status"}, a.summary()
    assert {m.payload for m in a.messages} == {b'{"for": "a"}'}


def test_central_reads_everything_and_writes_only_commands(site: Site, clients: list[Subscriber]) -> None:
    central = login(site, clients, CENTRAL, ["carehub/v1/#"])
    a = hub_a(site, clients, ["carehub/v1/hub-a/cmd/+"])
    b = login(site, clients, "hub-b", ["carehub/v1/hub-b/cmd/+"])

    # the central cannot publish events or status for a hub
    assert code(central.publish("carehub/v1/hub-a/event/alarm.cancelled", {"by": "central"})) == NOT_AUTHORIZED
    assert code(central.publish("carehub/v1/hub-b/status", {"state": "offline"}, retain=True)) == NOT_AUTHORIZED
    assert code(central.publish("carehub/v1/hub-b/heartbeat", {})) == NOT_AUTHORIZED
    # ... but commands to either hub
    assert ok(central.publish("carehub/v1/hub-a/cmd/test-alarm", {"note": "a"}))
    assert ok(central.publish("carehub/v1/hub-b/cmd/ack", {"event_id": "x", "by": "op"}))
    a.wait_for_topic("carehub/v1/hub-a/cmd/test-alarm")
    b.wait_for_topic("carehub/v1/hub-b/cmd/ack")

    # and it reads every hub's events, status, heartbeat and replies
    for hub, client in (("hub-a", a), ("hub-b", b)):
        for leaf in ("event/alarm.button", "status", "heartbeat", "reply/central.main"):
            assert ok(client.publish(f"carehub/v1/{hub}/{leaf}", {"hub": hub}))
    expected = {"carehub/v1/hub-a/cmd/test-alarm", "carehub/v1/hub-b/cmd/ack"} | {
        f"carehub/v1/{hub}/{leaf}"
        for hub in ("hub-a", "hub-b")
        for leaf in ("event/alarm.button", "status", "heartbeat", "reply/central.main")
    }
    central.wait_for(lambda ms: {m.topic for m in ms} >= expected, timeout=5)
    time.sleep(0.3)
    assert sorted(m.topic for m in central.messages) == sorted(expected), central.summary()


def test_client_id_is_the_username(site: Site, clients: list[Subscriber]) -> None:
    """Another account asking for hub A's client id gets its own: it cannot push hub A off."""
    a = hub_a(site, clients, ["carehub/v1/hub-a/cmd/+"], client_id="hub-a")
    intruder = login(site, clients, "hub-b", [], client_id="hub-a")
    central = login(site, clients, CENTRAL, [])
    time.sleep(0.5)
    assert a.connected and a.disconnects == 0, a.summary()
    assert ok(central.publish("carehub/v1/hub-a/cmd/status", {}))
    a.wait_for_topic("carehub/v1/hub-a/cmd/status")
    # and the intruder's "hub-a" session is hub-b's: it may write only hub-b's topics
    assert code(intruder.publish("carehub/v1/hub-a/event/alarm.button", {})) == NOT_AUTHORIZED
    assert ok(intruder.publish("carehub/v1/hub-b/event/alarm.button", {}))


# --------------------------------------------------------------------------- real hubs


def _real_hub(site: Site, dir: Path, hub_id: str) -> HubProcess:  # noqa: A002
    if hub_id == "hub-a":  # a client certificate on 8883, no username: the broker takes the CN
        port = site.cert_port
        mqtt_keys = f'[mqtt.tls]\nca = "{site.pki.ca}"\ncert = "{site.pki.client_cert}"\nkey = "{site.pki.client_key}"\n'
    else:  # a password on 8884; the client id is the username by default
        port = site.password_port
        dir.mkdir(parents=True, exist_ok=True)
        pw = dir / "mqtt.pass"
        pw.write_text(PASSWORDS[hub_id] + "\n")
        os.chmod(pw, 0o600)
        mqtt_keys = f'username = "{hub_id}"\npassword_file = "mqtt.pass"\n[mqtt.tls]\nca = "{site.pki.ca}"\n'
    return HubProcess(hub_config(dir, port=port, hub_id=hub_id, extra_mqtt=mqtt_keys))


def test_real_hubs_answer_commands_through_the_acl(site: Site, clients: list[Subscriber], tmp_path: Path) -> None:
    central = login(site, clients, CENTRAL, ["carehub/v1/#"])
    hubs = {h: _real_hub(site, tmp_path / h, h) for h in ("hub-a", "hub-b")}
    try:
        for h in hubs.values():
            h.start().wait_online()
        central.wait_for_topic("carehub/v1/hub-a/status")
        central.wait_for_topic("carehub/v1/hub-b/status")

        # cmd/status round trip, the reply under the hub's own prefix
        for hub in hubs:
            reply = request(
                site.broker.host, site.password_port, f"carehub/v1/{hub}/cmd/status", {}, timeout=10,
                tls=site.server_only, username=STAFF, password=PASSWORDS[STAFF],
                response_topic=f"carehub/v1/{hub}/reply/{STAFF}/{uuid.uuid4().hex[:8]}",
            )
            assert reply["ok"] is True and reply["hub"] == hub, reply

        # an alarm from each reaches the central under its own prefix
        hubs["hub-a"].press("button-1")
        hubs["hub-b"].press("cord-1")
        a_ev = central.wait_for_topic("carehub/v1/hub-a/event/alarm.button")[0].json()
        b_ev = central.wait_for_topic("carehub/v1/hub-b/event/alarm.button")[0].json()
        assert (a_ev["hub"], a_ev["source"]["device"]) == ("hub-a", "button-1")
        assert (b_ev["hub"], b_ev["source"]["device"]) == ("hub-b", "cord-1")

        # a hub cannot answer into another hub's prefix: no reply comes, the hub says why
        with pytest.raises(TimeoutError):
            request(
                site.broker.host, site.password_port, "carehub/v1/hub-a/cmd/status", {}, timeout=3,
                tls=site.server_only, username=STAFF, password=PASSWORDS[STAFF],
                response_topic=f"carehub/v1/hub-b/reply/{STAFF}",
            )
        hubs["hub-a"].wait_log(lambda e: e.get("event") == "mqtt_reply_failed")
        assert central.disconnects == 0, "the staff's requests pushed the central off"
    finally:
        for h in hubs.values():
            if h.returncode is None and h.proc is not None:
                h.stop()
