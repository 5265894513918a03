"""``carehub check-config``: every error of a file in one pass, ``--json``, and warnings.

Before, a duplicate device id (a check across devices) showed only once the
type errors and unknown keys were fixed: the cross-key checks ran only on a
config that converted. Now they run on what can be kept of it
(:mod:`hub.config.salvage`), and these tests run the command as an installer
would and read what it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load, parse

ROOT = Path(__file__).resolve().parent.parent

HEAD = """[hub]
id = "hub-1"
resident = "R-0001"

[mqtt]
[[mqtt.broker]]
host = "127.0.0.1"

[store]
dir = "state"
"""


def carehub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def issue_lines(text: str, path: Path) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(rf"{re.escape(str(path))}:\d+:\d+: ", ln)]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` line containing ``needle``."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return hits[nth - 1]


THREE_KINDS = """[hub]
id = "hub-1"
resident = "R-0001"
timezon = "Europe/Oslo"

[mqtt]
keepalive_s = "30"
[[mqtt.broker]]
host = "127.0.0.1"

[store]
dir = "state"

[[device]]
id = "button-1"
kind = "alarm_button"
[device.gpio]
pin = 17

[[device]]
id = "button-1"
kind = "pull_cord"
[device.gpio]
pin = 23
hold_s = "long"
"""


def test_duplicate_id_type_errors_and_unknown_key_in_one_run(tmp_path: Path) -> None:
    """The three kinds of mistake at once, sorted by line; the duplicate id even in a device with its
    own type error."""
    path = tmp_path / "hub.toml"
    path.write_text(THREE_KINDS)
    proc = carehub("check-config", str(path))
    assert proc.returncode == 1, proc.stderr
    got = issue_lines(proc.stderr, path)
    dup, hold = line_of(THREE_KINDS, 'id = "button-1"', 2), line_of(THREE_KINDS, "hold_s")
    assert got == [
        f"{path}:4:1: hub.timezon: unknown key (did you mean 'timezone'?); expected one of: id, resident, timezone",
        f"{path}:7:1: mqtt.keepalive_s: expected an integer, found a string '30'",
        f"{path}:{dup}:1: device[1].id: expected a unique device id, "
        "found 'button-1' again (first at device[0])",
        f"{path}:{hold}:1: device[1].gpio.hold_s: expected a number, found a string 'long'",
    ], proc.stderr
    assert "4 errors; the hub would refuse to start" in proc.stderr
    assert proc.stdout == ""


def test_cross_device_checks_see_past_a_device_that_cannot_be_kept(tmp_path: Path) -> None:
    """device[0]'s kind is wrong (it cannot be checked further); device[1] and device[2] share a pin
    and device[2] repeats device[0]'s id: both found, with the indices of the file."""
    text = HEAD + """
[[device]]
id = "a"
kind = "buton"
[device.gpio]
pin = 5

[[device]]
id = "b"
kind = "alarm_button"
[device.gpio]
pin = 17

[[device]]
id = "a"
kind = "pull_cord"
[device.gpio]
pin = "GPIO17"
"""
    path = tmp_path / "hub.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    got = [(i.line, i.key, i.message) for i in info.value.issues]
    assert [(line, key) for line, key, _ in got] == [
        (line_of(text, "buton"), "device[0].kind"),
        (line_of(text, 'id = "a"', 2), "device[2].id"),
        (line_of(text, '"GPIO17"'), "device[2].gpio.pin"),
    ], got
    assert "(first at device[0])" in got[1][2]
    assert "the same pin as device[1].gpio.pin = 17" in got[2][2]


TLS = '[mqtt.tls]\nca = "ca.pem"\n'


@pytest.mark.parametrize(
    ("mqtt", "extra", "key"),
    [
        # low pruned to its default (20) would make ok (15) look wrong
        ("[mqtt]\n" + TLS, "[rules.supervision]\nbattery_low_pct = \"x\"\nbattery_ok_pct = 15\n",
         "rules.supervision.battery_low_pct"),
        # a broken [mqtt.tls] is not "no TLS": no complaint about the remote broker's missing TLS
        ("[mqtt]\n[mqtt.tls]\nca = 5\n", "", "mqtt.tls.ca"),
        # a password_file of the wrong type is not a missing one
        ('[mqtt]\nusername = "hub-1"\npassword_file = 7\n' + TLS, "", "mqtt.password_file"),
    ],
)
def test_a_pruned_value_raises_no_second_error(tmp_path: Path, mqtt: str, extra: str, key: str) -> None:
    """An error that follows only from a value refused (taken at its default) is not reported."""
    text = f"""[hub]
id = "hub-1"
resident = "R-0001"

{mqtt}
[[mqtt.broker]]
host = "mqtt.example"
port = 8883

[store]
dir = "state"

{extra}"""
    with pytest.raises(ConfigError) as info:
        parse(text, filename="hub.toml", base_dir=tmp_path, check_files=False)
    assert [i.key for i in info.value.issues] == [key], info.value


def test_cross_key_errors_still_found_beside_type_errors(tmp_path: Path) -> None:
    """A wrong time zone, a username without password file and a missing key file beside type errors
    in other tables."""
    text = """[hub]
id = "hub-1"
resident = "R-0001"
timezone = "Europe/Olso"

[mqtt]
username = "hub-1"
[mqtt.tls]
ca = "ca.pem"
[[mqtt.broker]]
host = "127.0.0.1"

[store]
dir = "state"
max_mb = "lots"

[log]
level = "loud"
"""
    with pytest.raises(ConfigError) as info:
        parse(text, filename="hub.toml", base_dir=tmp_path)
    assert [(i.line, i.key) for i in info.value.issues] == [
        (4, "hub.timezone"), (6, "mqtt"), (9, "mqtt.tls.ca"), (15, "store.max_mb"), (18, "log.level"),
    ], info.value


# --------------------------------------------------------------------------- --json


def test_json_invalid(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(THREE_KINDS)
    proc = carehub("check-config", "--json", str(path))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert set(doc) == {"file", "valid", "errors", "warnings"}
    assert doc["file"] == str(path) and doc["valid"] is False and doc["warnings"] == []
    assert [set(e) for e in doc["errors"]] == [{"line", "col", "key", "message"}] * 4
    assert [(e["line"], e["col"], e["key"]) for e in doc["errors"]] == [
        (4, 1, "hub.timezon"), (7, 1, "mqtt.keepalive_s"), (21, 1, "device[1].id"), (25, 1, "device[1].gpio.hold_s"),
    ]
    assert doc["errors"][2]["message"] == "expected a unique device id, found 'button-1' again (first at device[0])"


def test_json_valid_and_unreadable(tmp_path: Path) -> None:
    proc = carehub("check-config", str(ROOT / "config" / "examples" / "minimal.toml"), "--json")
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["valid"] is True and doc["errors"] == [] and doc["warnings"] == []

    missing = tmp_path / "nowhere.toml"
    proc = carehub("check-config", "--json", str(missing))
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and len(doc["errors"]) == 1
    assert doc["errors"][0]["line"] == 0 and doc["errors"][0]["message"].startswith("cannot read")


def test_help_documents_exit_codes_and_json() -> None:
    proc = carehub("check-config", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "0 valid (warnings or not), 1 invalid, 2 unreadable" in text
    assert "--json" in text and "warnings" in text


# --------------------------------------------------------------------------- warnings


SERIAL = HEAD + """
[[device]]
id = "bedmat"
kind = "bed_mat"
[device.serial]
port = "{port}"
protocol = "bedmat"
"""


def test_missing_serial_port_is_a_warning_not_an_error(tmp_path: Path) -> None:
    port = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_NOT_HERE-if00-port0"
    text = SERIAL.format(port=port)
    path = tmp_path / "hub.toml"
    path.write_text(text)
    proc = carehub("check-config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "valid (hub hub-1, 1 devices" in proc.stdout and "1 warning)" in proc.stdout
    (warning,) = issue_lines(proc.stderr, path)
    assert warning.startswith(f"{path}:{line_of(text, 'port =')}:1: device[0].serial.port: warning: no such port {port!r}")
    assert "unplugged" in warning and "install time" in warning

    proc = carehub("check-config", "--json", str(path))
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["valid"] is True and doc["errors"] == []
    assert [(w["line"], w["key"]) for w in doc["warnings"]] == [(line_of(text, "port ="), "device[0].serial.port")]


def test_a_port_that_exists_gives_no_warning_and_relative_ports_start_at_the_config(tmp_path: Path) -> None:
    (tmp_path / "ttyFAKE").write_text("")
    path = tmp_path / "hub.toml"
    path.write_text(SERIAL.format(port="ttyFAKE"))
    assert load(path).warnings == ()
    os.remove(tmp_path / "ttyFAKE")
    (warning,) = load(path).warnings
    assert f"(looked for {tmp_path / 'ttyFAKE'})" in warning.message


def test_warnings_are_kept_beside_errors(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(SERIAL.format(port="/dev/serial/by-id/nothing") + "[log]\nlevel = \"loud\"\n")
    proc = carehub("check-config", "--json", str(path))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [e["key"] for e in doc["errors"]] == ["log.level"]
    assert [w["key"] for w in doc["warnings"]] == ["device[0].serial.port"]


def test_the_daemon_logs_the_same_warning_at_start(make_hub) -> None:  # noqa: ANN001 - conftest fixture
    from hil.harness.emulators import serial_devices

    port = Path("/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_NOT_HERE-if00-port0")
    hub = make_hub(devices=serial_devices(bed=port)).start().wait_online()
    line = hub.wait_log(lambda e: e.get("event") == "config_warning")
    assert line["key"] == "device[0].serial.port" and "no such port" in line["message"] and line["level"] == "warning"
