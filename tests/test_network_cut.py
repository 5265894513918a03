"""A real network cut between the residence and the broker (network namespace + veth).

The hub runs inside its own network namespace ("the residence"), joined to
the broker's side by a veth pair. Taking the broker's end of the pair down
cuts the link silently, as an unplugged router does: no FIN, no RST, a
half-open TCP connection. The hub must notice through MQTT keepalive, keep
every press, come back by itself, and publish its birth again; the broker
publishes the last will meanwhile.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.hubproc import HubProcess, hub_config

from tests.support.central import BASE, events


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class ResidenceNet:
    ns: str
    host_if: str
    broker_ip: str

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")


@pytest.fixture
def residence_net() -> Iterator[ResidenceNet]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns, host_if, res_if = f"chres{tag}", f"chh{tag}", f"chr{tag}"
    octet = random.randrange(1, 250)
    broker_ip, hub_ip = f"10.203.{octet}.1", f"10.203.{octet}.2"
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", res_if)
        _ip("link", "set", res_if, "netns", ns)
        _ip("addr", "add", f"{broker_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{hub_ip}/30", "dev", res_if, ns=ns)
        _ip("link", "set", res_if, "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot build a network namespace here: {exc.stderr.decode().strip()}")
    try:
        yield ResidenceNet(ns, host_if, broker_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)




def test_silent_network_cut_keeps_every_press_and_rebirths(tmp_path: Path, residence_net: ResidenceNet) -> None:
    with Mosquitto(workdir=tmp_path / "broker", host=residence_net.broker_ip) as broker:
        sub = Subscriber(host=residence_net.broker_ip, port=broker.port, topics=[f"{BASE}/#"])
        # a broker across a (virtual) network without TLS: said so explicitly
        cfg = hub_config(tmp_path / "hub", port=broker.port, brokers=[(residence_net.broker_ip, broker.port)],
                         keepalive_s=5, extra_mqtt="insecure = true")
        hub = HubProcess(cfg, prefix=["ip", "netns", "exec", residence_net.ns]).start()
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
