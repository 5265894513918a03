"""The physical rig without a Pi: its rig file, the dry run, PhysicalRig's steps against a fake command
runner and gpiozero's MockFactory (the loopback wires MockConnectedPins), and net_cut's ruleset for real
in a network namespace. Its fixtures one by one: tests/test_hil_pi_fixtures.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from hil.fixtures import FIXTURES, RigError
from hil.model import decode
from hil.rigs import hostops
from hil.rigs.check import check_rig
from hil.rigs.commands import Result, SshRunner
from hil.rigs.physical import PhysicalRig
from hil.rigs.rigfile import BleWiring, Disk, GpioWiring, Power, RigFile, SerialWiring, load_rig
from hil.rigs.tomlout import dumps, merge

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "hil" / "rigs" / "pi-example.toml"


# --- helpers -------------------------------------------------------------------------------------


class FakeRunner:
    """Records every command; answers with ``answer(argv, input)`` (exit 0, no output by default)."""

    def __init__(self, answer: Callable[[tuple[str, ...], str | None], Result | None] | None = None) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.answer = answer or (lambda argv, data: None)

    def run(self, argv: Any, *, input: str | None = None, timeout: float = 30.0, check: bool = True) -> Result:  # noqa: A002
        args = tuple(str(a) for a in argv)
        self.calls.append((args, input))
        return self.answer(args, input) or Result(args, 0)

    def argvs(self) -> list[str]:
        return [" ".join(a) for a, _ in self.calls]


BIRTH = json.dumps({"__CURSOR": "c2", "MESSAGE": json.dumps({"event": "birth_published", "topic": "t"})})
COMMITTED = [
    json.dumps({"__CURSOR": "c3", "MESSAGE": json.dumps({"event": "event_committed", "event_id": i, "type": t})})
    for i, t in (("id-1", "alarm.button"), ("id-2", "device.online"), ("id-1", "alarm.button"))
] + [json.dumps({"__CURSOR": "c4", "MESSAGE": json.dumps({"event": "event_held", "event_id": "id-3",
                                                           "type": "alarm.button"})})]
BENCH_CONFIG = (REPO / "config" / "examples" / "minimal.toml").read_text()


def bench_answers(state: dict[str, str]) -> Callable[[tuple[str, ...], str | None], Result | None]:
    """A hub host: the bench config, a journal with a birth, a unit whose state ``state['unit']`` says."""

    def answer(argv: tuple[str, ...], data: str | None) -> Result | None:
        if argv[:1] == ("cat",):
            return Result(argv, 0, BENCH_CONFIG)
        if argv[:2] == ("journalctl", "-n"):
            return Result(argv, 0, json.dumps({"__CURSOR": "c1"}) + "\n")
        if argv[:2] == ("journalctl", "-u") and "json" in argv:
            return Result(argv, 0, "\n".join([BIRTH, *COMMITTED]) + "\n")
        if argv[:2] == ("systemctl", "show"):
            return Result(argv, 0, f"{state['unit']}\ninv-1\n")
        if argv[:2] == ("systemctl", "kill"):
            state["unit"] = "activating"
        if argv[:2] == ("systemctl", "start"):
            state["unit"] = "active"
        if argv[:2] == ("date", "+%s.%N"):
            return Result(argv, 0, "1000.250\n")
        if argv[:2] == ("df", "--output=avail"):
            return Result(argv, 0, " Avail\n 5242880\n")
        return None

    return answer


def mock_bench(rig: RigFile) -> MockFactory:
    """A MockFactory whose rig pins are wired to the hub's pins as the rig file says (the loopback wires)."""
    f = MockFactory()
    for w in rig.device.values():
        if isinstance(w, GpioWiring):
            if w.drive_pin is not None and w.hub_pin is not None:
                f.pin(w.drive_pin, pin_class=MockConnectedPin, input_pin=f.pin(w.hub_pin))
            for sense, hub in ((w.led_sense_pin, w.hub_led_pin), (w.buzzer_sense_pin, w.hub_buzzer_pin)):
                if sense is not None and hub is not None:
                    f.pin(hub, pin_class=MockConnectedPin, input_pin=f.pin(sense))
    return f


@pytest.fixture
def example() -> RigFile:
    return load_rig(EXAMPLE)


def scenario(steps: list[dict[str, Any]], *, name: str = "s", needs: list[str] | None = None,
             config: dict[str, Any] | None = None, start: bool = True) -> Any:
    sc = decode({"scenario": {"title": name, "needs": needs or []}, "hub": {"config": config or {}, "start": start},
                 "step": steps})
    return msgspec.structs.replace(sc, name=name, path=f"hil/scenarios/{name}.toml")


def write_rig(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rig.toml"
    p.write_text(text)
    return p


# --- the rig file ---------------------------------------------------------------------------------


def test_example_rig_file_wires_every_device_id_the_scenarios_use(example: RigFile) -> None:
    assert example.rig.kind == "physical" and set(example.rig.fixtures) <= set(FIXTURES)
    assert example.path == str(EXAMPLE)
    ids = {"button-1", "cord-1", "bed", "door", "dispenser", "espa", "ble-button", "ble-door"}
    assert set(example.device) == ids
    b = example.device["button-1"]
    assert isinstance(b, GpioWiring) and (b.drive_pin, b.hub_pin, b.led_sense_pin, b.hub_led_pin) == (5, 17, 6, 27)
    assert isinstance(example.device["bed"], SerialWiring) and example.device["bed"].protocol == "bedmat"
    assert isinstance(example.device["ble-button"], BleWiring) and example.device["ble-button"].bindkey
    assert example.broker.control is not None and example.broker.control.unit == "mosquitto"
    assert example.hub.unit == "carehub" and example.ble is not None and example.ble.adapter == "hci1"


@pytest.mark.parametrize(("mistake", "key"), [
    ('fixtures = ["gpio_loopbak"]', "rig.fixtures"),
    ('fixtures = []\nbogus = 1', "bogus"),
])
def test_a_bad_rig_file_is_refused_naming_the_file_and_the_key(tmp_path: Path, mistake: str, key: str) -> None:
    path = write_rig(tmp_path, f'[rig]\nname = "r"\nkind = "physical"\n{mistake}\n')
    with pytest.raises(Exception) as err:
        load_rig(path)
    msg = str(err.value)
    assert str(path) in msg and (key in msg or key.replace(".", "`.`") in msg or f"$.{key}" in msg), msg
    try:
        import hil.loader  # noqa: F401
    except ImportError:
        return
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: .*{re.escape(key)}", msg), msg  # once the loader is merged


@pytest.mark.parametrize("device", [
    'wiring = "gpio"\ndrive_pin = 40',          # no such BCM pin
    'wiring = "relay"\npin = 3',                # unknown wiring
    'wiring = "serial"\nprotocol = "modbus"',   # unknown protocol
    'wiring = "ble"\naddress = "nope"',
    'wiring = "gpio"\ndrive_pin = 5\nled_pin = 6',  # a hub-config key, not a rig-file one
])
def test_device_wiring_is_checked_as_it_loads(tmp_path: Path, device: str) -> None:
    path = write_rig(tmp_path, f'[rig]\nname = "r"\nkind = "physical"\n[device.x]\n{device}\n')
    with pytest.raises(Exception, match="device"):
        load_rig(path)


def test_toml_writer_round_trips_the_example_configs() -> None:
    for p in [*(REPO / "config" / "examples").glob("*.toml"), EXAMPLE]:
        data = tomllib.loads(p.read_text())
        assert tomllib.loads(dumps(data)) == data, p
    merged = merge({"alarm": {"a": 1, "b": 2}, "x": [1]}, {"alarm": {"b": 3}, "x": [2]})
    assert merged == {"alarm": {"a": 1, "b": 3}, "x": [2]}


# --- --dry-run -----------------------------------------------------------------------------------

PRESS_ACK = [{"do": "press", "device": "button-1", "mark": "edge"},
             {"do": "expect_event", "type": "alarm.button", "mark": "alarm"},
             {"do": "ack", "event": "alarm"},
             {"do": "expect_feedback", "device": "button-1", "state": "steady"}]


def test_dry_run_of_the_example_rig(example: RigFile) -> None:
    scenarios = [
        scenario(PRESS_ACK, name="press_ack"),
        scenario([{"do": "power_cut"}, {"do": "disk_fill"}], name="power_cut"),
        scenario([{"do": "unplug", "device": "bed"}, {"do": "replug", "device": "bed"}], name="serial_unplug"),
        scenario([{"do": "advertise", "device": "ble-button", "values": {"button": "press"}},
                  {"do": "advertise", "device": "ble-button", "replay": True}], name="ble_encrypted_button"),
        scenario([{"do": "repeat", "times": 3, "steps": [{"do": "press", "device": "button-9"}]},
                  {"do": "advertise", "device": "bed"}], name="miswired"),
        scenario([{"do": "wait", "ms": 1}], name="bad_config", needs=["check_config"]),
    ]
    report = check_rig(example, scenarios)
    by = {s.name: s for s in report.scenarios}
    assert report.problems == []
    assert by["press_ack"].verdict == "runs" and by["serial_unplug"].verdict == "runs"
    assert by["ble_encrypted_button"].verdict == "runs"
    assert (by["power_cut"].verdict, by["power_cut"].missing) == ("skip", ["disk_fill", "power_cut"])
    assert (by["bad_config"].verdict, by["bad_config"].missing) == ("skip", ["check_config"])
    assert by["miswired"].verdict == "problems"
    assert by["miswired"].problems == ["step 1.1 (press): device 'button-9' is not in the rig file",
                                       "step 2 (advertise): device 'bed' is wired as serial, the step needs ble"]
    text = report.render()
    assert re.search(r"power_cut\s+skip\s+lacks disk_fill, power_cut", text)
    assert "2 run" not in text and "3 run, 2 skipped, 1 with problems" in text
    assert not report.ok


def test_dry_run_finds_fixtures_declared_without_their_wiring(tmp_path: Path) -> None:
    path = write_rig(tmp_path, '''
[rig]
name = "half-wired"
kind = "physical"
fixtures = ["gpio_loopback", "led_readback", "uart_loopback", "ble_fault", "power_cut", "net_cut", "hub_control"]
[device.button-1]
wiring = "gpio"
hub_pin = 17
hub_led_pin = 27
[device.cord-1]
wiring = "gpio"
drive_pin = 12
hub_pin = 12
[device.bed]
wiring = "serial"
protocol = "bedmat"
hub_port = "/dev/ttyUSB0"
''')
    rig = load_rig(path)
    report = check_rig(rig, [
        scenario([{"do": "press", "device": "button-1"}], name="press"),
        scenario([{"do": "serial", "device": "bed", "send": "occupancy"}, {"do": "unplug", "device": "bed"}],
                 name="unplug"),
        scenario([{"do": "net_cut"}, {"do": "hub_kill"}], name="net"),
        scenario([{"do": "ble_fault", "kind": "in_progress"}], name="ble"),
    ])
    problems = {(p.fixture, p.message) for p in report.problems}
    assert (None, "GPIO12 used twice: device.cord-1.drive_pin and device.cord-1.hub_pin") in problems
    assert ("gpio_loopback", "device.button-1: no drive_pin (the rig output wired to the hub's input)") in problems
    assert ("led_readback", "device.button-1: hub_led_pin = 27 but no led_sense_pin reads it back") in problems
    assert ("led_readback", "declared, but no device has a sense pin") in problems
    assert ("uart_loopback", "device.bed: no port (the rig's adapter its emulator plays on)") in problems
    assert ("ble_fault", "declared, but no [ble] hub_usb (the hub's dongle, which adapter_gone unplugs)") in problems
    assert {p.fixture for p in report.problems} >= {"power_cut"}
    by = {s.name: s for s in report.scenarios}
    assert by["press"].verdict == "problems"
    assert "step 1 (press): device 'button-1' has no drive_pin" in by["press"].problems
    assert "step 2 (unplug): device 'bed' has no port for its emulator" in by["unplug"].problems
    assert not any("gpio_loopback" in p for p in by["unplug"].problems)  # only what this scenario needs
    assert by["net"].problems == ["GPIO12 used twice: device.cord-1.drive_pin and device.cord-1.hub_pin"]
    assert "step 1 (ble_fault): BlueZ's InProgress cannot be provoked on real hardware" in by["ble"].problems


def test_dry_run_checks_the_wires_against_the_hubs_config(example: RigFile) -> None:
    hub = tomllib.loads(BENCH_CONFIG)  # button-1 on 17 with its LED on 27; nothing else
    hub["device"][0]["gpio"]["led_pin"] = 26
    report = check_rig(example, [scenario(PRESS_ACK, name="press_ack")], hub_config=hub)
    msgs = [p.message for p in report.problems]
    assert "device.button-1: hub_led_pin = 27, but the hub config's button-1 has led_pin = 26" in msgs
    assert "device.cord-1: no device in the hub config has its input on GPIO23" in msgs
    assert any(m.startswith("device.bed: no device in the hub config reads /dev/serial/by-id/") for m in msgs)
    assert "device.ble-button: no device in the hub config has address C4:7C:8D:6A:00:01" in msgs
    assert report.scenarios[0].verdict == "problems"


# --- PhysicalRig's steps against a fake runner and MockFactory ---------------------------------------


class FakeCentral:
    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bench(example: RigFile, tmp_path: Path) -> Iterator[tuple[PhysicalRig, FakeRunner, dict[str, str]]]:
    state = {"unit": "inactive"}
    runner = FakeRunner(bench_answers(state))
    rig = PhysicalRig(example, factory=mock_bench(example), runner=runner, central_factory=FakeCentral,
                      sleep=lambda s: None)
    yield rig, runner, state
    rig.close()


def test_setup_writes_the_scenario_config_and_starts_the_unit(bench: Any, tmp_path: Path) -> None:
    rig, runner, state = bench
    rig.setup(scenario(PRESS_ACK, config={"alarm": {"ack_timeout_s": 2}}), tmp_path)
    written = {a[1]: data for a, data in runner.calls if a[0] == "tee"}
    cfg = tomllib.loads(written["/etc/carehub/hub.hil.toml"])
    assert cfg["alarm"]["ack_timeout_s"] == 2 and cfg["hub"]["id"] == "minimal-hub"  # merged over the bench's
    assert cfg["log"]["format"] == "json" and cfg["store"]["dir"] == "/var/lib/carehub/hil"
    dropin = written["/run/systemd/system/carehub.service.d/hil.conf"]
    assert "ExecStart=\nExecStart=/opt/carehub/.venv/bin/carehub run --config /etc/carehub/hub.hil.toml" in dropin
    cmds = runner.argvs()
    order = [cmds.index(c) for c in ("systemctl stop carehub", "systemctl daemon-reload",
                                      "rm -rf --one-file-system /var/lib/carehub/hil", "systemctl start carehub")]
    assert order == sorted(order)
    assert isinstance(rig.central, FakeCentral) and rig.central.broker.port == 8883
    assert rig.taken() == ["id-1", "id-3"]  # alarms stored or held, once each; not the device.online
    assert rig.info()["config_hash"] and rig.info()["fixtures"] == sorted(rig.fixtures)
    runner.calls.clear()
    rig.teardown()
    cmds = runner.argvs()
    assert "systemctl stop carehub" in cmds
    assert "rm -f /run/systemd/system/carehub.service.d/hil.conf /etc/carehub/hub.hil.toml" in cmds
    assert "systemctl start carehub" not in cmds  # it was not running before the rig
    assert not any(c.startswith("nft") for c in cmds)  # no fault was made, none undone


def test_hub_kill_is_systemctl_kill_9_and_the_restart_is_cancelled(bench: Any) -> None:
    rig, runner, state = bench
    state["unit"] = "active"
    rig.hub_kill(restart=False)
    assert runner.argvs() == [
        "systemctl kill -s KILL carehub",
        "systemctl show -p ActiveState -p InvocationID --value carehub",  # dead? (activating: auto-restart pending)
        "systemctl stop carehub",                                          # cancel Restart=always
    ]
    runner.calls.clear()
    rig.hub_kill(restart=True)
    cmds = runner.argvs()
    assert cmds[0] == "systemctl kill -s KILL carehub" and "systemctl start carehub" in cmds
    assert cmds[-1].startswith("journalctl -u carehub -o json") and cmds[-1].endswith("--after-cursor c1")


def test_hub_start_waits_for_the_birth_and_says_why_when_it_never_comes(example: RigFile) -> None:
    state = {"unit": "inactive"}
    answers = bench_answers(state)

    def no_birth(argv: tuple[str, ...], data: str | None) -> Result | None:
        if argv[:2] == ("journalctl", "-u") and "json" in argv:
            return Result(argv, 0, "")
        if argv[:2] == ("journalctl", "-u"):
            return Result(argv, 0, '{"event": "link_connect_failed", "error": "connection refused"}\n')
        return answers(argv, data)

    clock = iter(range(0, 1000, 10))
    rig = PhysicalRig(example, factory=mock_bench(example), runner=FakeRunner(no_birth), central_factory=FakeCentral,
                      sleep=lambda s: None)
    rig.service.clock = lambda: float(next(clock))
    with pytest.raises(RigError, match=r"did not come online within 60 s \(unit active\):\n.*link_connect_failed"):
        rig.hub_start()
    rig.close()


def test_broker_network_and_cable_steps_run_the_documented_commands(bench: Any) -> None:
    rig, runner, _ = bench
    rig.broker_stop()
    rig.broker_start()
    assert runner.argvs() == ["systemctl stop mosquitto", "systemctl start mosquitto"]
    runner.calls.clear()
    rig.net_cut()
    (argv, ruleset), = runner.calls
    assert argv == ("nft", "-f", "-")
    assert 'meta skuid "carehub" ct mark set 0x4c1 drop' in ruleset and "hook input" in ruleset
    runner.calls.clear()
    rig.net_impair(100, 10, 5)
    assert runner.argvs()[1:] == [
        "tc qdisc replace dev lo root handle 1: prio bands 4",
        "tc qdisc replace dev lo parent 1:4 handle 40: netem delay 100ms 10ms loss 5%",
        "tc filter replace dev lo parent 1: protocol all prio 1 handle 0x4c2 fw flowid 1:4",
    ]
    assert 'meta skuid "carehub" meta mark set 0x4c2' in runner.calls[0][1]
    assert "ct mark set 0x4c1 drop" in runner.calls[0][1]  # the cut still stands
    runner.calls.clear()
    rig.net_restore()
    assert runner.calls[0][1] == "table inet carehub_hil\ndelete table inet carehub_hil\n"
    assert runner.argvs()[1] == "tc qdisc del dev lo root"
    runner.calls.clear()
    rig.unplug("bed")
    rig.replug("bed")
    assert runner.calls == [(("tee", "/sys/bus/usb/devices/1-1.1.2/authorized"), "0\n"),
                            (("tee", "/sys/bus/usb/devices/1-1.1.2/authorized"), "1\n")]


def test_press_and_feedback_through_the_rig_reach_the_hub_pins(bench: Any) -> None:
    rig, runner, _ = bench
    hub_in = rig.factory.pin(17)
    hub_in.function = "input"  # as the hub's DigitalInputDevice sets it
    n = len(hub_in.states)
    rig.press("button-1", 0.02)
    assert [s.state for s in hub_in.states[n:]] == [False, True]
    hub_led = rig.factory.pin(27)
    hub_led.function = "output"
    hub_led.state = True
    assert rig.feedback("button-1", "led") == "steady"
    with pytest.raises(RigError, match="no buzzer_sense_pin"):
        rig.feedback("cord-1", "buzzer")
    with pytest.raises(RigError, match="no gpio wiring"):
        rig.press("bed", 0.05)
    assert runner.calls == []  # pins only, no program run


def test_what_the_pi_rig_cannot_do_is_a_rig_error_not_a_hub_failure(bench: Any) -> None:
    rig, runner, _ = bench
    with pytest.raises(RigError, match="check_config"):
        rig.check_config({}, "")
    with pytest.raises(RigError, match="InProgress"):
        rig.ble_fault("in_progress", 1, False)
    with pytest.raises(RigError, match=r"no \[power\]"):
        rig.power_cut(True)
    with pytest.raises(RigError, match=r"no \[disk\]"):
        rig.disk_fill()
    with pytest.raises(RigError, match="no hub_usb"):
        rig.ble_fault("adapter_gone", 1, False)
    rig.ble_fault("silent", 1, False)
    assert runner.argvs() == ["systemctl restart bluetooth"]


def test_clock_step_turns_ntp_off_once_and_back_on_at_teardown(bench: Any, tmp_path: Path) -> None:
    rig, runner, _ = bench
    rig.setup(scenario([{"do": "clock_step", "seconds": 3600}], start=False), tmp_path)
    runner.calls.clear()
    rig.clock_step(3600)
    rig.clock_step(-0.5)
    assert runner.argvs() == ["timedatectl set-ntp false", "date +%s.%N", "date -s @4600.250",
                              "date +%s.%N", "date -s @999.750"]
    runner.calls.clear()
    rig.teardown()
    assert runner.argvs()[0] == "timedatectl set-ntp true"


def test_power_cut_and_disk_fill_on_a_two_machine_bench(example: RigFile) -> None:
    rig_file = msgspec.structs.replace(
        example, rig=msgspec.structs.replace(example.rig, fixtures=[*example.rig.fixtures, "power_cut", "disk_fill"]),
        hub=msgspec.structs.replace(example.hub, ssh="pi@hub.local"),
        power=Power(relay_pin=26, off_s=2), disk=Disk(fill_file="/var/lib/carehub/hil-fill"),
    )
    local, remote = FakeRunner(), FakeRunner(bench_answers({"unit": "active"}))
    slept: list[float] = []
    rig = PhysicalRig(rig_file, factory=mock_bench(rig_file), runner=local, hub_runner=remote,
                      central_factory=FakeCentral, sleep=slept.append)
    relay = rig.factory.pin(26)
    rig.power_cut(restart=False)
    assert relay.state is True and slept == [2] and rig.relay is not None and rig.relay.cutting
    rig.hub_start()  # power back, then wait for the birth after the cut
    assert relay.state is False
    assert rig.service.dropin.startswith("/etc/systemd/system/")  # the drop-in must outlive the reboot
    rig.disk_fill()
    assert remote.argvs()[-2:] == [
        "fallocate -l 4194304 /var/lib/carehub/hil-fill",
        "dd if=/dev/zero of=/var/lib/carehub/hil-fill bs=4096 oflag=append conv=notrunc",
    ]
    rig.disk_free()
    assert remote.argvs()[-1] == "rm -f /var/lib/carehub/hil-fill"
    assert local.calls == []  # every hub-side command went to the hub's machine
    rig.close()


def test_ssh_runner_quotes_the_command_for_the_remote_shell() -> None:
    via = FakeRunner()
    SshRunner("pi@hub.local", via).run(["tee", "/sys/bus/usb/devices/1-1.2/authorized"], input="0\n")
    (argv, data), = via.calls
    assert argv[:3] == ("ssh", "-o", "BatchMode=yes") and argv[-3:] == ("pi@hub.local", "--",
                                                                         "tee /sys/bus/usb/devices/1-1.2/authorized")
    assert data == "0\n"


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (apt-get install nftables)")
def test_the_nftables_ruleset_is_valid_nft() -> None:
    for cut, impair in ((True, False), (False, True), (True, True), (False, False)):
        text = hostops.nft_ruleset(user="root", cut=cut, impair=impair)
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# --- net_cut for real: the hub's user's packets dropped silently, everyone else's through -------------

_ECHO_SERVER = """
import socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
def serve(c):
    while (d := c.recv(64)):
        c.sendall(d)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""

_CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for line in sys.stdin:
    c.settimeout(float(line))
    c.sendall(b"x")
    try:
        print("ok" if c.recv(64) else "closed", flush=True)
    except TimeoutError:
        print("timeout", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in ("nft", "ip", "setpriv")),
                    reason="needs root, nft (apt-get install nftables), ip and setpriv")
def test_net_cut_drops_only_the_hub_users_packets_silently_and_restore_brings_them_back() -> None:
    """In a network namespace of its own: two clients of one echo server, one as the 'hub' (uid nobody),
    one as root (the rig's central). The cut's ruleset silences the hub's connection (no reset, no close:
    a timeout) while root's keeps working; deleting the table brings the hub's connection back."""
    ns = f"hilcut{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        # nsenter, not "ip netns exec": no mount namespace of its own holding a copy of every host mount
        # (a state disk another test worker's rig is about to detach)
        inns = ["nsenter", f"--net=/run/netns/{ns}", "--"]
        server = subprocess.Popen([*inns, "/usr/bin/python3", "-c", _ECHO_SERVER], stdout=subprocess.PIPE, text=True)
        procs.append(server)
        port = server.stdout.readline().strip()  # type: ignore[union-attr]

        def client(*prefix: str) -> subprocess.Popen[str]:
            p = subprocess.Popen([*inns, *prefix, "/usr/bin/python3", "-c", _CLIENT, port],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            return p

        def ask(p: subprocess.Popen[str], timeout: float) -> str:
            p.stdin.write(f"{timeout}\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
            return p.stdout.readline().strip()  # type: ignore[union-attr]

        hub = client("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        central = client()
        assert (ask(hub, 2), ask(central, 2)) == ("ok", "ok")

        def nft(ruleset: str) -> None:
            subprocess.run([*inns, "nft", "-f", "-"], input=ruleset, text=True, check=True)

        nft(hostops.nft_ruleset(user="nobody", cut=True, impair=False))
        assert ask(hub, 1.0) == "timeout"  # silent: no RST, no FIN
        assert ask(central, 2) == "ok"
        assert ask(hub, 0.5) == "timeout"
        nft(hostops.nft_ruleset(user="nobody", cut=False, impair=False))
        assert ask(hub, 10) == "ok"  # TCP's retransmission gets through once the table is gone
        assert ask(central, 2) == "ok"
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
        subprocess.run(["ip", "netns", "del", ns], check=False)
