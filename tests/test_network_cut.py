"""A real network cut between the residence and the broker (network namespace + veth).

The hub runs inside its own network namespace ("the residence"), joined to
the broker's side by a veth pair. Taking the broker's end of the pair down
cuts the link silently, as an unplugged router does: no FIN, no RST, a
half-open TCP connection. The hub must notice through MQTT keepalive, keep
every press, come back by itself, and publish its birth again; the broker
publishes the last will meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.harness import netns
from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.hubproc import HubProcess, hub_config
from hil.harness.netns import ResidenceNet

from tests.support.central import BASE, events


@pytest.fixture
def residence_net() -> Iterator[ResidenceNet]:
    if (why := netns.available()) is not None:
        pytest.skip(why)
    try:
        net = ResidenceNet.create()
    except netns.NetnsError as exc:
        pytest.skip(f"cannot build a network namespace here: {exc}")
    try:
        yield net
    finally:
        net.destroy()


def test_silent_network_cut_keeps_every_press_and_rebirths(tmp_path: Path, residence_net: ResidenceNet) -> None:
    with Mosquitto(workdir=tmp_path / "broker", host=residence_net.broker_ip) as broker:
        sub = Subscriber(host=residence_net.broker_ip, port=broker.port, topics=[f"{BASE}/#"])
        # a broker across a (virtual) network without TLS: said so explicitly
        cfg = hub_config(tmp_path / "hub", port=broker.port, brokers=[(residence_net.broker_ip, broker.port)],
                         keepalive_s=5, extra_mqtt="insecure = true")
        hub = HubProcess(cfg, prefix=residence_net.exec_prefix).start()
        try:
            hub.wait_log(lambda e: e.get("event") == "birth_published")
            hub.press()
            sub.wait_for(lambda _: len(events(sub, "alarm.button")) == 1)

            residence_net.cut()
            for _ in range(5):
                hub.press(seconds=0.01)  # published into a dead link: no PUBACK can come
            hub.wait_log(lambda e: len([c for c in hub.committed() if c["type"] == "alarm.button"]) == 6)
            # the hub notices by keepalive, without any FIN or RST
            hub.wait_log(lambda e: e.get("event") == "mqtt_disconnected", timeout=30)
            # the broker notices too and publishes the last will (the subscriber is on the broker's side)
            sub.wait_for(
                lambda msgs: any(m.topic == f"{BASE}/status" and m.json()["state"] == "offline" for m in msgs), timeout=30
            )
            residence_net.restore()
            sub.wait_for(lambda _: len({e["id"] for e in events(sub, "alarm.button")}) == 6, timeout=40)
            sub.wait_for(
                lambda msgs: [m.json()["state"] for m in msgs if m.topic == f"{BASE}/status"][-1] == "online", timeout=20
            )
            statuses = [m.json()["state"] for m in sub.messages if m.topic == f"{BASE}/status"]
            assert statuses[0] == "online" and "offline" in statuses and statuses[-1] == "online"
            seqs = sorted({e["seq"] for e in events(sub, "alarm.button")})
            assert len(seqs) == 6
            assert hub.returncode is None
        finally:
            hub.stop()
            sub.close()
