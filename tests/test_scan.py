"""``carehub scan``: a real subprocess on the simulated radio, adverts injected through its sim socket."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drivers.ble import bthome
from drivers.simctl import SimClient
from hil.harness.hubproc import REPO, hub_config

THERMO = "A4:C1:38:00:00:10"  # plain BTHome, not configured
BUTTON = "A4:C1:38:00:00:11"  # encrypted, configured with its key
DOOR = "A4:C1:38:00:00:12"  # encrypted, configured with the wrong key
PHONE = "5C:F3:70:00:00:13"  # not BTHome, not configured
LOCK = "A4:C1:38:00:00:14"  # encrypted BTHome, not configured
KEY = "231d39c1d7cc1ab1aee224cd096db932"
WRONG = "00" * 16
FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"

DEVICES = f"""
[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BUTTON}"
bindkey = "{KEY}"

[[device]]
id = "front-door"
kind = "door"
room = "hall"
[device.ble]
address = "{DOOR}"
bindkey = "{WRONG}"

[[device]]
id = "bath-motion"
kind = "motion"
room = "bath"
[device.ble]
address = "A4:C1:38:00:00:99"
"""


#: a GPIO button on the sim pin factory, so a hub with DEVICES has something to press
HUB_BUTTON = """
[[device]]
id = "button-1"
kind = "alarm_button"
room = "bedroom"
[device.gpio]
pin = 17
led_pin = 27
bounce_s = 0
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return hub_config(tmp_path, port=1883, devices=DEVICES, extra='[ble]\nbackend = "sim"\n')


class Scan:
    """``python -m hub.cli scan`` as a subprocess; stderr read on a thread."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "scan", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def sim_socket(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("sim socket: "):
                return line[len("sim socket: ") :].strip()
        self.proc.kill()
        raise AssertionError("no 'sim socket:' line; stderr:\n" + "".join(self.stderr))

    def finish(self, *, interrupt: bool = False, timeout: float = 20.0) -> tuple[int, str, str]:
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None
        try:
            out = self.proc.stdout.read()
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        time.sleep(0.05)  # let the reader thread take the last stderr lines
        return rc, out.decode(), "".join(self.stderr)


def inject(path: str) -> None:
    with SimClient(path) as sim:

        def advert(address: str, data: bytes, rssi: int, name: str | None = None) -> None:
            req = {"op": "ble_advert", "address": address, "rssi": rssi, "service_data_hex": {FCD2: data.hex()}}
            if name:
                req["name"] = name
            assert sim.call(req)["delivered"] is True

        advert(THERMO, bthome.encode([(0x02, 21.5), (0x03, 45.0), (0x01, 87)], packet_id=3), -70, "ATC_thermo")
        advert(THERMO, bthome.encode([(0x02, 21.7), (0x03, 45.5), (0x01, 87)], packet_id=4), -64, "ATC_thermo")
        advert(BUTTON, bthome.encode(buttons=["press"], bindkey=KEY, mac=BUTTON, counter=7), -55)
        advert(DOOR, bthome.encode([(0x1A, True)], bindkey=KEY, mac=DOOR, counter=3), -80)
        advert(LOCK, bthome.encode([(0x1A, False)], bindkey=KEY, mac=LOCK, counter=1), -75)
        advert(BUTTON, b"\x41\x3a", -58)  # garbage after a good advert: kept as undecodable
        reply = sim.call(
            {"op": "ble_advert", "address": PHONE, "rssi": -40, "name": "Phone", "manufacturer_data_hex": {"0x004c": "0215aabb"}}
        )
        assert reply["delivered"] is True


def test_json_lists_devices_with_flags_and_values(config: Path) -> None:
    scan = Scan("--config", str(config), "--seconds", "60", "--json", cwd=config.parent)
    inject(scan.sim_socket())
    rc, out, err = scan.finish(interrupt=True)
    assert rc == 0, err
    devices = {d["address"]: d for d in json.loads(out)}
    assert PHONE not in devices, "without --all an unknown non-BTHome device is not listed"
    assert set(devices) == {THERMO, BUTTON, DOOR, LOCK}

    thermo = devices[THERMO]
    assert thermo["bthome"] is True and thermo["encrypted"] is False and thermo["key"] == "-"
    assert thermo["device"] is None and thermo["name"] == "ATC_thermo"
    assert (thermo["rssi_last"], thermo["rssi_best"], thermo["adverts"]) == (-64, -64, 2)
    assert thermo["values"] == {"battery": 87, "temperature": 21.7, "humidity": 45.5} and thermo["packet_id"] == 4
    assert thermo["decoded"] is True and "temperature=21.7" in thermo["summary"]

    button = devices[BUTTON]
    assert button["bthome"] and button["encrypted"] is True and button["key"] == "yes"
    assert button["device"] == "ble-button" and button["buttons"] == ["press"] and button["counter"] == 7
    assert (button["rssi_last"], button["rssi_best"]) == (-58, -55)
    assert button["decoded"] is False and button["summary"].startswith("undecodable")

    door = devices[DOOR]
    assert door["encrypted"] is True and door["key"] == "no: wrong key" and door["device"] == "front-door"
    assert door["decoded"] is False and door["states"] == {}

    lock = devices[LOCK]
    assert lock["encrypted"] is True and lock["key"] == "no key configured" and lock["device"] is None

    assert "configured but not heard: bath-motion (A4:C1:38:00:00:99)" in err
    assert "Traceback" not in err


def test_all_includes_non_bthome_and_table_output(config: Path, tmp_path: Path) -> None:
    sock = tmp_path / "scan.sock"
    scan = Scan("--config", str(config), "--seconds", "60", "--json", "--all", "--sim-socket", str(sock), cwd=tmp_path)
    assert scan.sim_socket() == str(sock)
    inject(str(sock))
    rc, out, err = scan.finish(interrupt=True)
    assert rc == 0, err
    devices = {d["address"]: d for d in json.loads(out)}
    phone = devices[PHONE]
    assert phone["bthome"] is False and phone["encrypted"] is None and phone["key"] == "-"
    assert phone["device"] is None and phone["manufacturer_ids"] == [0x004C] and phone["rssi_best"] == -40
    assert not sock.exists(), "the sim socket is removed at the end"

    # the table, on a timed scan that ends by itself
    scan = Scan("--config", str(config), "--seconds", "3", cwd=tmp_path)
    inject(scan.sim_socket())
    rc, out, err = scan.finish()
    assert rc == 0, err
    assert THERMO in out and "temperature=21.7" in out and "no: wrong key" in out and "no key configured" in out
    assert "ble-button" in out and "front-door" in out and PHONE not in out
    assert "1 other device(s) heard" in out


def test_invalid_config_exits_2_with_position(tmp_path: Path) -> None:
    bad = hub_config(tmp_path, port=1883, devices=DEVICES, extra='[ble]\nbackend = "radio"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "scan", "--config", str(bad), "--seconds", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert proc.returncode == 2
    assert re.search(rf"{re.escape(str(bad))}:\d+:\d+: ", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""

    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "scan", "--config", str(tmp_path / "missing.toml"), "--seconds", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_backend_that_cannot_start_exits_2(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """In-process: a start failure is a message and exit 2, not a traceback."""
    import argparse

    from drivers.ble import sim
    from hub import logs, scan

    class Broken(sim.SimBackend):
        async def start(self, callback, on_error=None):  # type: ignore[no-untyped-def]
            raise sim.AdapterGoneError("adapter hci0 not found (test)")

    args = argparse.Namespace(
        config=str(config), seconds=1.0, json=True, all=False, sim_socket=str(tmp_path / "s.sock")
    )
    monkeypatch.setattr(sim, "SimBackend", Broken)
    monkeypatch.setattr(logs, "configure", lambda *a, **k: None)  # leave this process's logging alone
    assert scan.run_scan(args) == 2
    err = capsys.readouterr().err
    assert "cannot start BLE scan on hci0 (adapter_gone): adapter hci0 not found (test)" in err


def test_decoding_never_raises() -> None:
    from drivers.ble.backend import Advert
    from hub.scan import Configured, ScanTable

    table = ScanTable({BUTTON: Configured("ble-button", "alarm_button", KEY)})
    for data in (b"", b"\x00", b"\x41", b"\x40\xff\xff", b"\x44\x02", bthome.encode([(0x02, 20.0)]), b"\x41" + b"\x00" * 40):
        table.feed(Advert(address=BUTTON, service_data={FCD2: data}))
        table.feed(Advert(address=THERMO, service_data={FCD2: data}))
    assert table.heard[BUTTON].adverts == 7
    plain_with_key = table.heard[BUTTON]
    assert plain_with_key.key in {"-", "yes", "no: wrong key"} and plain_with_key.error


def test_scan_never_touches_a_running_hubs_sim_socket(make_hub, tmp_path: Path) -> None:
    """An installer scans with the hub's own config while the hub runs: the hub keeps its socket."""
    hub = make_hub(devices=DEVICES + HUB_BUTTON, extra='[ble]\nbackend = "sim"\n')
    hub.start()
    hub_sock = hub.sim_socket
    assert hub_sock.exists()
    inode = hub_sock.stat().st_ino

    scan = Scan("--config", str(hub.config), "--seconds", "60", "--json", cwd=hub.dir)
    scan_sock = scan.sim_socket()
    assert Path(scan_sock) != hub_sock, "the scan opens a socket of its own"
    assert hub_sock.exists() and hub_sock.stat().st_ino == inode
    inject(scan_sock)
    rc, out, err = scan.finish(interrupt=True)
    assert rc == 0, err
    assert {d["address"] for d in json.loads(out)} == {THERMO, BUTTON, DOOR, LOCK}
    assert not Path(scan_sock).exists() and not Path(scan_sock).parent.exists(), "its private socket is removed"

    # the hub's socket is still there and still the hub's: it answers, and a press raises an alarm
    assert hub_sock.exists() and hub_sock.stat().st_ino == inode
    with SimClient(hub_sock) as sim:
        assert sim.call({"op": "state", "device": "button-1"})["ok"] is True
        sim.call({"op": "click", "device": "button-1", "seconds": 0.05})
    hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("type") == "alarm.button")

    # asked for the hub's socket by name, the scan refuses it and leaves it alone
    scan = Scan("--config", str(hub.config), "--seconds", "5", "--sim-socket", str(hub_sock), cwd=hub.dir)
    rc, out, err = scan.finish()
    assert rc == 2 and "in use by a running process" in err and "Traceback" not in err, err
    assert hub_sock.exists() and hub_sock.stat().st_ino == inode
    with SimClient(hub_sock) as sim:
        assert sim.call({"op": "state", "device": "button-1"})["ok"] is True
    assert hub.returncode is None


def test_stale_sim_socket_is_replaced(tmp_path: Path) -> None:
    """A socket file left by a process that died (nobody answers on it) is taken over."""
    import socket as _socket

    stale = tmp_path / "stale.sock"
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: what kill -9 leaves
    assert stale.exists()
    config = hub_config(tmp_path / "cfg", port=1883, devices=DEVICES, extra='[ble]\nbackend = "sim"\n')
    scan = Scan("--config", str(config), "--seconds", "60", "--json", "--sim-socket", str(stale), cwd=tmp_path)
    assert scan.sim_socket() == str(stale)
    inject(str(stale))
    rc, out, err = scan.finish(interrupt=True)
    assert rc == 0, err
