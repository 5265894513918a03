"""Secure by default: TLS off this machine, secrets private to the service, a private state directory.

* ``check-config`` refuses a broker that is not on this machine without ``[mqtt.tls]``
  unless ``[mqtt] insecure = true`` says so; the hub then warns ``mqtt_insecure`` at
  every start.
* key and password files must be owned by root or the service user, and readable by
  no one else.
* the daemon makes its state directory 0700 and its files 0600, whatever the umask.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from hil.harness.broker import make_tls
from hil.harness.hubproc import HubProcess, hub_config
from hub.config import ConfigError, parse
from hub.statedir import private_state

ROOT = Path(__file__).resolve().parent.parent


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``carehub check-config PATH`` as an installer runs it."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "check-config", str(path)], capture_output=True, text=True, cwd=ROOT
    )


def issue_lines(proc: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    """The ``FILE:LINE:COL: key: message`` lines of check-config's output (not its summary)."""
    return [line for line in proc.stderr.splitlines() if re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line)]


def residence(brokers: str, mqtt: str = "") -> str:
    return f"""[hub]
id = "hub-1"
resident = "R-0001"

[mqtt]
{mqtt}
{brokers}
[store]
dir = "state"
"""


REMOTE = """[[mqtt.broker]]
host = "mqtt1.responssenter.example"
port = 1883

[[mqtt.broker]]
host = "127.0.0.1"

[[mqtt.broker]]
host = "10.0.0.5"
"""


# --------------------------------------------------------------------------- TLS by default


def test_a_remote_broker_without_tls_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(residence(REMOTE))
    proc = check_config(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = issue_lines(proc, path)
    # every remote broker, at its host key; the one on this machine is fine
    assert [line.split(": expected")[0] for line in lines] == [
        f"{path}:8:1: mqtt.broker[0].host",
        f"{path}:15:1: mqtt.broker[2].host",
    ], proc.stderr
    assert "'mqtt1.responssenter.example': add [mqtt.tls]" in lines[0]
    assert "insecure = true" in lines[0]


def test_insecure_true_lets_it_pass(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(residence(REMOTE, mqtt="insecure = true"))
    proc = check_config(path)
    assert proc.returncode == 0, proc.stderr


def test_with_tls_a_remote_broker_passes(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "pki")
    path = tmp_path / "hub.toml"
    path.write_text(residence(REMOTE, mqtt=f'[mqtt.tls]\nca = "{tls.ca}"'))
    proc = check_config(path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "broker.localhost", "127.0.0.1", "127.1.2.3", "::1"])
def test_brokers_on_this_machine_need_no_tls(host: str) -> None:
    parse(residence(f'[[mqtt.broker]]\nhost = "{host}"\n'), check_files=False)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.10", "mqtt.local", "localhost.example", "::ffff:10.0.0.1", "0.0.0.0"])
def test_brokers_elsewhere_need_tls(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(residence(f'[[mqtt.broker]]\nhost = "{host}"\n'), check_files=False)
    assert [i.key for i in info.value.issues] == ["mqtt.broker[0].host"]


def test_the_hub_warns_at_every_start_when_insecure(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    extra = "insecure = true"
    path = hub_config(tmp_path / "hub", port=broker.port, extra_mqtt=extra,
                      brokers=[("127.0.0.1", broker.port), ("mqtt.example.invalid", 1883)])
    hub = HubProcess(path)
    for _ in range(2):
        hub.start().wait_online()
        warning = hub.wait_log(lambda e: e.get("event") == "mqtt_insecure")
        assert warning["level"] == "warning"
        assert warning["brokers"] == ["mqtt.example.invalid:1883"]
        hub.stop()
    # without it the daemon refuses to start, as check-config does
    path.write_text(path.read_text().replace(extra, ""))
    hub.start(wait_ready=False)
    assert hub.proc is not None and hub.proc.wait(15) != 0
    assert "mqtt.broker[1].host: expected a broker on this machine" in hub.tail()
    # with brokers on this machine only, no warning
    quiet = HubProcess(hub_config(tmp_path / "quiet", port=broker.port))
    quiet.start().wait_online()
    quiet.stop()
    assert not [e for e in quiet.log_lines() if e.get("event") == "mqtt_insecure"]


# --------------------------------------------------------------------------- who owns the secrets


def secrets_config(tmp_path: Path) -> tuple[Path, Path, Path]:
    tls = make_tls(tmp_path / "pki")
    pw = tmp_path / "mqtt.pass"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    assert tls.client_cert is not None and tls.client_key is not None
    path = tmp_path / "hub.toml"
    path.write_text(residence(
        '[[mqtt.broker]]\nhost = "mqtt.example"\nport = 8883\n',
        mqtt=(f'username = "hub-1"\npassword_file = "mqtt.pass"\n'
              f'[mqtt.tls]\nca = "{tls.ca}"\ncert = "{tls.client_cert}"\nkey = "{tls.client_key}"'),
    ))
    return path, pw, tls.client_key


def test_secrets_owned_by_root_or_the_service_pass(tmp_path: Path) -> None:
    path, _, _ = secrets_config(tmp_path)
    proc = check_config(path)
    assert proc.returncode == 0, proc.stderr


def test_secrets_owned_by_another_user_are_refused(tmp_path: Path) -> None:
    path, pw, key = secrets_config(tmp_path)
    os.chown(key, 12345, 12345)
    os.chown(pw, 23456, -1)
    proc = check_config(path)
    assert proc.returncode == 1
    lines = issue_lines(proc, path)
    assert [line.split(": expected")[0] for line in lines] == [
        f"{path}:7:1: mqtt.password_file", f"{path}:11:1: mqtt.tls.key",
    ], proc.stderr
    assert "expected a file owned by " in lines[0] and "root (uid 0)" in lines[0]
    assert lines[0].endswith("found 'mqtt.pass' owned by uid 23456"), lines[0]
    assert lines[1].endswith(f"found '{key}' owned by uid 12345"), lines[1]
    # owner and mode are both said at once
    key.chmod(0o640)
    proc = check_config(path)
    assert [line.split(": expected")[0] for line in issue_lines(proc, path)] == [
        f"{path}:7:1: mqtt.password_file", f"{path}:11:1: mqtt.tls.key", f"{path}:11:1: mqtt.tls.key",
    ], proc.stderr
    # back to root: fine again
    os.chown(key, 0, 0)
    os.chown(pw, 0, 0)
    key.chmod(0o600)
    assert check_config(path).returncode == 0


# --------------------------------------------------------------------------- the state directory


def _modes(state: Path) -> dict[str, str]:
    out = {".": f"{stat.S_IMODE(state.stat().st_mode):04o}"}
    for p in sorted(state.iterdir()):
        out[p.name] = f"{stat.S_IMODE(p.lstat().st_mode):04o}"
    return out


def test_state_directory_and_files_are_private_whatever_the_umask(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    path = hub_config(tmp_path / "hub", port=broker.port)
    umask_000 = ["/bin/sh", "-c", 'umask 000 && exec "$0" "$@"']
    hub = HubProcess(path, prefix=umask_000)
    state = path.parent / "state"
    hub.start().wait_online()
    hub.press("button-1")
    hub.wait_log(lambda e: e.get("event") == "event_committed" and e.get("type") == "alarm.button")
    modes = _modes(state)
    assert {"outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm", "sim.sock"} <= set(modes), modes
    assert modes == {name: _private(name) for name in modes}, modes
    hub.stop()

    # an older installation's world-readable leftovers are mended at the next start
    state.chmod(0o777)
    for p in state.iterdir():
        if p.is_file():
            p.chmod(0o666)
    hub.start().wait_online()
    modes = _modes(state)
    assert modes == {name: _private(name) for name in modes}, modes
    hub.stop()


def _private(name: str) -> str:
    """The mode each entry of the state directory must have: the directory 0700, every file 0600, and the
    control socket 0660 (inside the 0700 directory the group reaches it only where the unit's
    RuntimeDirectory holds it instead: carehub status for the carehub group)."""
    return {".": "0700", "control.sock": "0660"}.get(name, "0600")


def test_a_state_directory_it_cannot_chmod_is_said_not_fatal(tmp_path: Path) -> None:
    """Only the hub's own files are touched; a directory it cannot chmod (not its own, a read-only mount)
    is logged (state_not_private), not fatal: alarms matter more."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "notes.txt").write_text("the installer's own file\n")
    (state / "notes.txt").chmod(0o644)
    (state / "outbox.sqlite3").write_bytes(b"")
    (state / "outbox.sqlite3").chmod(0o644)
    private_state(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "outbox.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "notes.txt").stat().st_mode) == 0o644, "only the hub's own files are touched"

    # a read-only mount (as under ProtectSystem=strict): said, not fatal
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=0755,size=64k", "tmpfs", str(ro)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {proc.stderr.strip()}")
    try:
        with structlog.testing.capture_logs() as logs:
            private_state(ro)
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert [(e["event"], e["want"], "Read-only" in e["error"]) for e in logs] == [("state_not_private", "0700", True)]
