"""The virtual rig, for real: its own broker, the hub in a network namespace, pty emulators,
the simulated BLE source, a loop-device state disk. Each test is what a rig user would check."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.fixtures import RigError
from hil.harness import netns
from hil.harness.broker import Subscriber, request
from hil.model import decode
from hil.rigs import powercut, residence, tomlout
from hil.rigs.virtual import VirtualRig


class Recorder:
    """A small central for these tests (the runner's is hil.central): events with their arrival instants."""

    def __init__(self, host: str, port: int, hub_id: str, prefix: str) -> None:
        self.base, self.host, self.port = f"{prefix}/{hub_id}", host, port
        self.sub = Subscriber(host=host, port=port, topics=[f"{self.base}/#"], persistent=True,
                              client_id=f"central-{uuid.uuid4().hex[:8]}")  # fmt: skip

    def events(self, type_: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        return [(m.t, m.json()) for m in self.sub.messages
                if m.topic.startswith(f"{self.base}/event/") and (type_ is None or m.json()["type"] == type_)]  # fmt: skip

    def wait(self, type_: str, n: int = 1, timeout: float = 10.0) -> list[tuple[float, dict[str, Any]]]:
        self.sub.wait_for(lambda _: len(self.events(type_)) >= n, timeout=timeout)
        return self.events(type_)

    def statuses(self) -> list[str]:
        return [m.json()["state"] for m in self.sub.messages if m.topic == f"{self.base}/status"]

    def close(self) -> None:
        self.sub.close()


def scenario(*, needs: tuple[str, ...] = (), config: dict[str, Any] | None = None, start: bool = True) -> Any:
    return decode({"scenario": {"title": "rig test", "needs": list(needs)},
                   "hub": {"config": config or {}, "start": start}, "step": [{"do": "wait"}]})  # fmt: skip


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., VirtualRig]]:
    """Set up virtual rigs; torn down after the test (and the teardown must go cleanly)."""
    if os.geteuid() != 0:
        pytest.skip("the virtual rig needs root (namespaces, loop devices)")
    rigs: list[VirtualRig] = []

    def make(**kw: Any) -> VirtualRig:
        rig = VirtualRig(Recorder)
        rigs.append(rig)
        rig.setup(scenario(**kw), tmp_path / f"rig{len(rigs)}")
        return rig

    yield make
    for rig in rigs:
        if rig.hub is not None:
            print(rig.log_tail(80))
        rig.teardown()


def central(rig: VirtualRig) -> Recorder:
    assert isinstance(rig.central, Recorder)
    return rig.central


# --- the resident and the devices --------------------------------------------------------------


def test_press_reaches_the_broker_after_its_edge_and_is_taken(make_rig):
    rig = make_rig()
    edge = rig.press("button-1", 0.05)
    ((t, alarm),) = central(rig).wait("alarm.button")
    assert alarm["source"]["device"] == "button-1"
    assert edge < t < edge + 2.0, "the edge instant is on the central's clock, before the arrival"
    assert taken(rig, alarm["id"]) == [alarm["id"]]
    with pytest.raises(RigError, match="not a GPIO device"):
        rig.press("bed", 0.05)


def test_led_blinks_fast_until_the_broker_has_the_alarm(make_rig):
    rig = make_rig()
    rig.broker_stop()
    rig.press("button-1", 0.05)
    until(lambda: rig.feedback("button-1", "led") == "fast_blink", what="fast_blink")
    time.sleep(0.5)
    assert rig.feedback("button-1", "led") == "fast_blink", "still fast: nobody has it yet"
    assert central(rig).events("alarm.button") == []
    rig.broker_start()
    central(rig).wait("alarm.button", timeout=15)
    until(lambda: rig.feedback("button-1", "led") == "slow_blink", what="slow_blink")
    assert rig.feedback("button-1", "buzzer") == "slow_blink"
    with pytest.raises(RigError, match="no buzzer"):
        rig.feedback("cord-1", "buzzer")


def test_bed_emulator_frames_arrive_as_events(make_rig):
    rig = make_rig()
    rig.serial("bed", "occupancy", {"state": "in"})
    time.sleep(0.2)
    sent = rig.serial("bed", "occupancy", {"state": "out"})
    ((t, ex),) = central(rig).wait("bed.exit")
    assert ex["source"]["device"] == "bed" and t > sent
    rig.serial("espa", "call", {"address": "101", "text": "Rom 101", "priority": "1"})
    ((_, call),) = central(rig).wait("alarm.nursecall")
    assert call["source"]["device"] == "espa" and call["id"] in taken(rig, call["id"])


def test_encrypted_ble_button_arrives_and_its_replay_is_refused(make_rig):
    rig = make_rig()
    sent = rig.advertise("ble-button", {"button": "press"}, replay=False)
    ((t, alarm),) = central(rig).wait("alarm.button")
    assert alarm["source"]["device"] == "ble-button" and alarm["data"]["input"] == "ble" and t > sent
    rig.advertise("ble-button", {}, replay=True)
    rig.advertise("ble-door", {"door": 1}, replay=False)  # plain: a door opening
    central(rig).wait("door.open")
    # the hub's status refreshes a device's advert counts on its next accepted advert: a battery reading
    rig.advertise("ble-button", {"battery": 90}, replay=False)
    time.sleep(0.5)
    assert len(central(rig).events("alarm.button")) == 1, "the replayed advert raised nothing"
    status = request(rig.central.host, rig.central.port, f"{central(rig).base}/cmd/status", {})
    adverts = status["devices"]["ble-button"]["adverts"]
    assert adverts["duplicate"] == 1, "the hub counted the replayed advert (same counter: a duplicate)"


# --- the world ------------------------------------------------------------------------------------


def test_broker_stop_and_start_delivers_what_waited(make_rig):
    rig = make_rig()
    rig.broker_stop()
    for _ in range(3):
        rig.press("cord-1", 0.02)
    until(lambda: len(rig.taken()) == 3, what="three alarms taken")
    rig.broker_start()
    got = central(rig).wait("alarm.button", 3, timeout=15)
    assert {e["id"] for _, e in got} == set(rig.taken())


@pytest.mark.slow
def test_net_cut_is_silent_and_restore_brings_the_hub_back(make_rig):
    rig = make_rig(config={"mqtt": {"keepalive_s": 5}})
    rig.net_cut()
    rig.press("button-1", 0.02)
    sub = central(rig).sub
    sub.wait_for(lambda _: "offline" in central(rig).statuses(), timeout=20)  # the broker's will, by keepalive
    assert central(rig).events("alarm.button") == []
    rig.net_restore()
    central(rig).wait("alarm.button", timeout=30)
    sub.wait_for(lambda _: central(rig).statuses()[-1] == "online", timeout=20)
    assert rig.hub is not None and rig.hub.returncode is None


@pytest.mark.slow
def test_net_impair_delays_and_loses_packets_then_clears(make_rig):
    rig = make_rig()
    rec = central(rig)

    def latency() -> float:
        n = len(rec.events("alarm.button"))
        edge = rig.press("button-1", 0.02)
        t, alarm = rec.wait("alarm.button", n + 1, timeout=20)[n]
        request(rec.host, rec.port, f"{rec.base}/cmd/ack", {"event_id": alarm["id"]}, timeout=20)  # the LED, for the next
        return t - edge

    assert latency() < 0.25
    rig.net_impair(400, 20, 0)
    slow = latency()
    assert slow >= 0.38, f"one way through the wire takes delay - jitter at least, got {slow:.3f}s"
    counters = rig.faults.counters() if rig.faults else None
    assert counters and counters["from_residence"]["sent"] > 0
    rig.net_impair(0, 0, 100)  # every packet lost: nothing gets through
    rig.press("button-1", 0.02)
    time.sleep(1.5)
    assert len(rec.events("alarm.button")) == 2
    assert rig.faults.counters()["from_residence"]["lost"] > 0
    rig.net_impair(0, 0, 0)
    rec.wait("alarm.button", 3, timeout=30)  # TCP retransmits it once the wire passes packets again
    assert latency() < 0.25


def test_kill9_and_restart_keeps_taking_alarms(make_rig):
    rig = make_rig()
    rig.press("button-1", 0.02)
    central(rig).wait("alarm.button")
    rig.hub_kill(restart=True)
    rig.press("button-1", 0.02)
    rig.hub_kill(restart=False)
    rig.press("button-1", 0.02)  # a finger on a dead hub's button: it happens, nobody hears it
    assert rig.line.unheard == {"press": 1, "release": 1}
    with pytest.raises(RigError, match="not running"):
        rig.feedback("button-1", "led")  # reading the hub's LED is the rig asking the hub: an error
    rig.hub_start()
    got = central(rig).wait("alarm.button", 2, timeout=15)
    ids = [e["id"] for _, e in got]
    assert len(taken(rig, *ids)) == 2 and set(ids) == set(rig.taken()), "taken across restarts"
    assert rig.info()["unheard_while_hub_down"] == {"press": 1, "release": 1}


# --- the disk ------------------------------------------------------------------------------------

WRITER = r"""
import os, sys, time
d = sys.argv[1]
fd = os.open(f"{d}/kept", os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"S" * 5000); os.fsync(fd); os.close(fd)
dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
fd = os.open(f"{d}/kept", os.O_WRONLY | os.O_APPEND); os.write(fd, b"U" * 5000); os.close(fd)
fd = os.open(f"{d}/never-synced", os.O_WRONLY | os.O_CREAT, 0o600); os.write(fd, b"U" * 5000); os.close(fd)
print("written", flush=True)
time.sleep(60)
"""


def test_power_cut_loses_unsynced_writes_and_keeps_fsynced_ones(tmp_path):
    if (why := powercut.available()) is not None:
        pytest.skip(why)
    disk = powercut.StateDisk(tmp_path / "state", size_mb=8).create()
    try:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "state")], stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        assert (tmp_path / "state/kept").stat().st_size == 10_000 and (tmp_path / "state/never-synced").exists()

        def kill() -> None:
            writer.kill()
            writer.wait()

        report = disk.power_cut(lambda: os.kill(writer.pid, signal.SIGSTOP), kill)
        assert (tmp_path / "state/kept").read_bytes() == b"S" * 5000, "fsynced bytes kept, the unsynced append lost"
        assert not (tmp_path / "state/never-synced").exists(), "a file never synced is gone"
        assert report.reads >= 2 and disk.cuts == 1
    finally:
        disk.teardown()
    assert not os.path.ismount(tmp_path / "state")


def test_power_cut_restarts_the_hub_from_the_cut_disk_with_every_committed_alarm(make_rig):
    rig = make_rig(needs=("power_cut",))
    assert rig.disk is not None and os.path.ismount(rig.disk.mountpoint)
    rig.broker_stop()  # nothing delivered: the alarms live only on the disk
    for _ in range(3):
        rig.press("button-1", 0.02)
    until(lambda: len(rig.taken()) == 3, what="three alarms committed")
    first_image = rig.disk.image
    rig.power_cut(restart=True)
    assert rig.disk.image != first_image and rig.disk.cuts == 1
    rig.broker_start()
    got = central(rig).wait("alarm.button", 3, timeout=20)
    assert {e["id"] for _, e in got} == set(rig.taken()), "every committed alarm came back from the cut disk"
    assert rig.hub is not None and any(e.get("event") == "hub_ready" for e in rig.hub.log_lines())


def test_a_power_cut_during_a_probation_boots_on_the_last_good_config(make_rig):
    rig = make_rig(needs=("power_cut", "config_push"), config={"push": {"probation_s": 120}})
    assert rig.push_config(1, {"alarm.ack_timeout_s": 30}, False)["result"] == "applying"
    central(rig).wait("config.confirmed")
    assert rig.push_config(2, {"alarm.ack_timeout_s": 30}, True)["result"] == "applying"
    assert rig.hub is not None
    rig.hub.wait_log(lambda e: e.get("event") == "config_applied" and e.get("version") == 2)
    rig.power_cut(restart=True)  # what was not fsynced is gone; the probation mark was, before the apply
    ((_, rolled),) = central(rig).wait("config.rolled_back", timeout=30)
    assert rolled["data"]["reason"] == "restarted" and rolled["data"]["to_version"] == 1
    # by id, as a central de-duplicates: the cut may lose the mark that v1's confirmation was sent, and it is sent again
    (confirmed,) = {e["id"]: e for _, e in central(rig).events("config.confirmed")}.values()
    assert rolled["data"]["to_sha256"] == confirmed["data"]["sha256"]
    selected = [e for e in rig.hub.log_lines() if e.get("event") == "config_selected"]
    assert selected and selected[-1]["origin"] == "pushed:v1"


def test_a_full_disk_still_lets_an_alarm_through(make_rig):
    rig = make_rig(needs=("disk_fill",))
    assert rig.disk is not None
    rig.disk_fill()
    assert os.statvfs(rig.disk.mountpoint).f_bavail == 0
    rig.press("button-1", 0.02)
    ((_, alarm),) = central(rig).wait("alarm.button", timeout=15)
    assert alarm["id"] in taken(rig, alarm["id"])
    rig.disk_free()
    assert os.statvfs(rig.disk.mountpoint).f_bavail > 0


# --- config and cleanup ------------------------------------------------------------------------


def test_check_config_points_at_file_and_line(make_rig):
    rig = make_rig(start=False)
    code, out = rig.check_config({"mqtt.keepalive_s": 1}, "")
    assert code == 1 and re.search(r"hub\.toml:\d+:\d+: mqtt\.keepalive_s", out), out
    code, out = rig.check_config({}, "[mqtt2]\nx = 1")
    assert code == 1 and re.search(r"hub\.toml:\d+:1: mqtt2: unknown key", out), out
    code, out = rig.check_config({"device[0].room": "kitchen"}, "")
    assert code == 0, out
    assert rig.hub is not None and rig.hub.proc is None, "start = false: the hub was never started"


def test_push_config_is_signed_applied_and_an_unreachable_broker_rolled_back(make_rig):
    rig = make_rig(needs=("config_push",), config={"push": {"probation_s": 5}})
    reply = rig.push_config(1, {"alarm.ack_timeout_s": 30}, False)
    assert reply["ok"] is True and reply["result"] == "applying", reply
    central(rig).wait("config.confirmed")
    assert rig.push_config(2, {}, True)["result"] == "applying"
    ((_, rolled),) = central(rig).wait("config.rolled_back", timeout=30)
    assert rolled["data"]["reason"] == "unreachable" and rolled["data"]["to_version"] == 1
    bad = rig.push_config(3, {"alarm.ack_timeout_s": "soon"}, False)
    assert bad["result"] == "invalid" and re.match(r"pushed:v3:\d+:\d+: alarm\.ack_timeout_s", bad["errors"][0])
    plain = make_rig()  # a scenario that does not push: no key, so the rig cannot push either
    with pytest.raises(RigError, match="push key"):
        plain.push_config(1, {}, False)


def test_teardown_leaves_no_namespace_mount_loop_device_or_process(make_rig, tmp_path):
    rig = make_rig(needs=("power_cut",))
    rig.net_impair(5, 0, 0)  # the wire process and its TUN devices too
    assert rig.net is not None and rig.disk is not None and rig.hub is not None and rig.broker is not None
    ns, host_if, image_dir, mnt = rig.net.ns, rig.net.host_if, rig.disk.image_dir, rig.disk.mountpoint
    pids = [rig.hub.proc.pid, rig.broker.pid, *(e.proc.pid for e in rig.devices.emulators.values())]
    rig.teardown()
    rig.teardown()  # twice is fine
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", host_if], capture_output=True).returncode != 0
    assert str(mnt) not in Path("/proc/mounts").read_text()
    assert str(image_dir) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not image_dir.exists()
    assert not [p for p in pids if p and Path(f"/proc/{p}").exists() and "Z" not in _state(p)]


def test_two_rigs_side_by_side_keep_to_themselves(make_rig):
    a, b = make_rig(needs=("disk_fill",)), make_rig(needs=("disk_fill",))
    assert a.net and b.net and a.net.ns != b.net.ns and a.net.broker_ip != b.net.broker_ip
    assert a.disk and b.disk and a.disk.device != b.disk.device
    a.press("button-1", 0.02)
    b.press("cord-1", 0.02)
    ((_, alarm_a),) = central(a).wait("alarm.button")
    ((_, alarm_b),) = central(b).wait("alarm.button")
    assert alarm_a["source"]["device"] == "button-1" and alarm_b["source"]["device"] == "cord-1"
    assert taken(a, alarm_a["id"]) == [alarm_a["id"]] and taken(b, alarm_b["id"]) == [alarm_b["id"]]
    assert a.info()["config_sha256"] != b.info()["config_sha256"], "each config names its own broker"


def test_a_failed_setup_leaves_nothing_behind(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the virtual rig needs root")

    def broken_central(*_: Any) -> Any:
        raise ConnectionError("no central today")

    # what this rig builds, seen as it is built: other rigs (another test worker's) come and go meanwhile,
    # so "the namespace list is as before" would not say whether this one left something
    nets: list[netns.ResidenceNet] = []
    disks: list[powercut.StateDisk] = []
    real_net, real_disk = netns.ResidenceNet.create, powercut.StateDisk.create
    monkeypatch.setattr(netns.ResidenceNet, "create", classmethod(lambda _cls: nets.append(real_net()) or nets[-1]))
    monkeypatch.setattr(powercut.StateDisk, "create", lambda self: disks.append(self) or real_disk(self))
    rig = VirtualRig(broken_central)
    with pytest.raises(RigError, match="no central today"):
        rig.setup(scenario(needs=("power_cut",)), tmp_path / "rig")
    (net,), (disk,) = nets, disks  # both were built before the central failed
    assert net.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", net.host_if], capture_output=True).returncode != 0
    assert str(tmp_path) not in Path("/proc/mounts").read_text()
    assert str(disk.image_dir) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not disk.image_dir.exists()
    rig.teardown()


def test_residence_has_every_device_and_merges_a_scenario_over_it():
    doc = residence.residence("10.0.0.1", 1883)
    ids = [d["id"] for d in doc["device"]]
    assert ids == ["button-1", "cord-1", "bed", "dispenser", "espa", "ble-button", "ble-door"]
    assert residence.device(doc, "ble-button")["ble"]["bindkey"] and "bindkey" not in residence.device(doc, "ble-door")["ble"]
    merged = residence.merge(doc, {"rules": {"night": "00:00-24:00"}, "alarm": {"ack_timeout_s": 2},
                                   "device": [{"id": "bed", "serial": {"bedmat": {"exit_after_s": 2}}}]})  # fmt: skip
    assert merged["rules"] == {"night": "00:00-24:00", "day": "07:00-22:00"}
    assert merged["alarm"]["ack_timeout_s"] == 2 and merged["alarm"]["steady_s"] == 600
    assert residence.device(merged, "bed")["serial"] == {"port": residence.EMULATOR, "protocol": "bedmat",
                                                         "bedmat": {"exit_after_s": 2, "return_after_s": 0.3}}  # fmt: skip
    assert residence.device(doc, "bed")["serial"]["bedmat"]["exit_after_s"] == 0.6, "the residence is not changed"
    assert tomllib.loads(tomlout.dumps(merged)) == merged
    residence.set_dotted(merged, "device[0].gpio.pin", 5)
    assert merged["device"][0]["gpio"]["pin"] == 5
    with pytest.raises(ValueError, match="no element"):
        residence.set_dotted(merged, "device[9].gpio.pin", 5)


# --- helpers ------------------------------------------------------------------------------------


def taken(rig: VirtualRig, *ids: str) -> list[str]:
    """The alarms the hub took, once ``ids`` are among them: the hub publishes an alarm, then logs it
    committed (hub/emitter.py), so the central can have it a moment before the log line the rig reads."""
    until(lambda: set(ids) <= set(rig.taken()), timeout=5, what=f"{list(ids)} in the hub's log")
    return rig.taken()


def until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return result


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
