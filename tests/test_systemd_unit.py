"""The production install: the hardened unit, sysusers.d, tmpfiles.d, udev rules and scripts/install.sh.

What an installer or a reviewer would check: ``systemd-analyze verify`` passes, ``systemd-analyze
security`` scores the unit at most 2.0, the unit does not wait for the network, the user gets the
groups it needs and no more, the directories get their modes, the hub still works inside the
unit's syscall filter, and install.sh can be run twice without harm or lost config.
systemd is not PID 1 here: the systemd tools run offline (``--root``, ``--offline``), and the
unit's kernel-side sandbox is applied by ``tests/support/unit_sandbox.py``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.harness.broker import Mosquitto, Subscriber, make_tls
from hil.harness.hubproc import HubProcess, hub_config
from tests.support.unit_sandbox import unit_settings

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "carehub.service"
SYSUSERS = REPO / "systemd" / "carehub.sysusers"
TMPFILES = REPO / "systemd" / "carehub.tmpfiles"
UDEV = REPO / "systemd" / "99-carehub.rules"
INSTALL = REPO / "scripts" / "install.sh"
SANDBOX = REPO / "tests" / "support" / "unit_sandbox.py"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
needs_sysusers = pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="no systemd-sysusers / systemd-tmpfiles",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh and sysusers --root need root")


def run(*cmd: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=check, timeout=300)


def unit_section(path: Path, section: str) -> dict[str, list[str]]:
    """``Key=value`` lines of one section, values in file order."""
    out: dict[str, list[str]] = {}
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line
        elif current == f"[{section}]":
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# --- systemd-analyze --------------------------------------------------------------------------------


def offline_root(root: Path, unit_text: str, *, prefix: str = "/opt/carehub", binary: bool = True) -> Path:
    """A filesystem root holding the unit where systemd looks for it, the targets every service
    depends on (sysinit, basic, shutdown) and, unless ``binary`` is false, a stand-in for the
    executable the unit runs, since verify checks that ExecStart= can be executed."""
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/system/carehub.service").write_text(unit_text)
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True, exist_ok=True)
    for target in ("sysinit", "basic", "shutdown"):
        (lib / f"{target}.target").write_text(f"[Unit]\nDescription={target}\n")
    if binary:
        exe = root / prefix.lstrip("/") / ".venv/bin/carehub"
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    kill = root / "bin/kill"  # ExecReload= (procps has it on every Debian)
    kill.parent.mkdir(parents=True, exist_ok=True)
    kill.write_text("#!/bin/sh\nexit 0\n")
    kill.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of the unit as installed in ``root`` (its paths resolved inside root)."""
    return run("systemd-analyze", "verify", f"--root={root}", "carehub.service")


@needs_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(offline_root(tmp_path / "root", UNIT.read_text()))
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


@needs_analyze
def test_verify_catches_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: a missing executable and an unknown setting are both reported."""
    no_exe = verify(offline_root(tmp_path / "a", UNIT.read_text(), binary=False))
    assert no_exe.returncode != 0 and "/opt/carehub/.venv/bin/carehub is not executable" in no_exe.stderr
    typo = verify(offline_root(tmp_path / "b", UNIT.read_text().replace("ProtectClock=", "ProtectClok=")))
    assert "Unknown key 'ProtectClok'" in typo.stderr  # exit 0 all the same: hence the empty stderr above


def exposure(unit: Path) -> float:
    result = run("systemd-analyze", "security", "--offline=yes", "--no-pager", unit)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert m, f"no exposure line in:\n{result.stdout}\n{result.stderr}"
    return float(m.group(1))


@needs_analyze
def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    score = exposure(UNIT)
    print(f"systemd-analyze security --offline=yes: {score}")
    assert score <= 2.0
    # and the parser reads a bad score too: the unit without its sandbox lines
    bare = tmp_path / "carehub.service"
    bare.write_text(UNIT.read_text().split("# --- sandbox")[0] + "\n[Install]\nWantedBy=multi-user.target\n")
    assert exposure(bare) > 5.0


def test_unit_runs_without_network_and_under_the_watchdog() -> None:
    unit = unit_section(UNIT, "Unit")
    ordering = " ".join(sum((unit.get(k, []) for k in ("Wants", "Requires", "After", "BindsTo", "Requisite")), []))
    assert "network-online" not in ordering and "network.target" not in ordering
    assert "time-sync" not in ordering  # alarms must not wait for NTP either
    assert unit.get("StartLimitIntervalSec") == ["0"], "Restart=always must never give up"
    svc = unit_settings(UNIT)
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert svc["Restart"] == ["always"]
    assert int(svc["WatchdogSec"][0]) > 0
    assert "check-config /etc/carehub/hub.toml" in svc["ExecStartPre"][0]
    assert svc["ExecStart"] == ["/opt/carehub/.venv/bin/carehub run --config /etc/carehub/hub.toml"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # systemctl reload: SIGHUP, the config read again


def test_unit_user_directories_and_sandbox() -> None:
    svc = unit_settings(UNIT)
    assert svc["User"] == ["carehub"] and svc["Group"] == ["carehub"]
    assert "SupplementaryGroups" not in svc, "the groups come from carehub.sysusers (a missing group would stop the hub)"
    assert svc["CapabilityBoundingSet"] == [""] and svc["AmbientCapabilities"] == [""]
    assert (svc["StateDirectory"], svc["StateDirectoryMode"]) == (["carehub"], ["0700"])
    assert (svc["RuntimeDirectory"], svc["RuntimeDirectoryMode"]) == (["carehub"], ["0750"])
    assert svc["ConfigurationDirectory"] == ["carehub"] and svc["UMask"] == ["0077"]
    assert svc["WorkingDirectory"] == ["/var/lib/carehub"]  # lgpio's FIFO
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectClock", "ProtectKernelLogs",
                "ProtectHostname", "RestrictNamespaces", "MemoryDenyWriteExecute", "LockPersonality"):
        assert svc[key] == ["yes"], key
    assert svc["ProtectSystem"] == ["strict"] and svc["ProtectProc"] == ["invisible"]
    assert svc["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert svc["SystemCallArchitectures"] == ["native"]
    assert svc["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert svc["DevicePolicy"] == ["closed"]
    allowed = {line.split()[0] for line in svc["DeviceAllow"]}
    assert allowed == {"char-gpiochip", "char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS"}
    assert "PrivateDevices" not in svc and "PrivateNetwork" not in svc and "IPAddressDeny" not in svc


# --- sysusers.d, tmpfiles.d, udev ---------------------------------------------------------------------


def debian_root(root: Path) -> Path:
    """An /etc as a stock Debian 12 with bluez has it: dialout (GID 20) and bluetooth, no gpio."""
    (root / "etc/sysusers.d").mkdir(parents=True)
    (root / "etc/tmpfiles.d").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\nbluetooth:x:112:\n")
    shutil.copy(SYSUSERS, root / "etc/sysusers.d/carehub.conf")
    shutil.copy(TMPFILES, root / "etc/tmpfiles.d/carehub.conf")
    return root


def groups(root: Path) -> dict[str, tuple[int, list[str]]]:
    out = {}
    for line in (root / "etc/group").read_text().splitlines():
        name, _, gid, members = line.split(":")
        out[name] = (int(gid), [m for m in members.split(",") if m])
    return out


def passwd(root: Path, user: str) -> list[str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.split(":")[0] == user:
            return line.split(":")
    raise AssertionError(f"no user {user} in {root}/etc/passwd")


@needs_sysusers
@needs_root
def test_sysusers_user_and_only_the_groups_it_needs(tmp_path: Path) -> None:
    root = debian_root(tmp_path / "root")
    dry = run("systemd-sysusers", f"--root={root}", "--dry-run", "carehub.conf")
    assert dry.returncode == 0, dry.stderr
    assert "Creating group 'gpio'" in dry.stdout + dry.stderr and "carehub" not in (root / "etc/passwd").read_text()

    run("systemd-sysusers", f"--root={root}", "carehub.conf", check=True)
    name, _, uid, gid, gecos, home, shell = passwd(root, "carehub")
    assert int(uid) < 1000 and (home, shell) == ("/var/lib/carehub", "/usr/sbin/nologin")
    g = groups(root)
    assert g["dialout"][0] == 20 and g["bluetooth"][0] == 112, "existing groups are kept"
    assert "gpio" in g and g["carehub"][0] == int(gid)
    assert sorted(n for n, (_, members) in g.items() if "carehub" in members) == ["bluetooth", "dialout", "gpio"]

    before = (root / "etc/group").read_text(), (root / "etc/passwd").read_text()
    run("systemd-sysusers", f"--root={root}", "carehub.conf", check=True)
    assert ((root / "etc/group").read_text(), (root / "etc/passwd").read_text()) == before


def mode_owner(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return f"{stat.S_IMODE(st.st_mode):04o}", st.st_uid, st.st_gid


@needs_sysusers
@needs_root
def test_tmpfiles_directories_and_modes(tmp_path: Path) -> None:
    root = debian_root(tmp_path / "root")
    run("systemd-sysusers", f"--root={root}", "carehub.conf", check=True)
    result = run("systemd-tmpfiles", f"--root={root}", "--create", "carehub.conf")
    assert result.returncode == 0, result.stderr
    uid, gid = int(passwd(root, "carehub")[2]), int(passwd(root, "carehub")[3])
    assert mode_owner(root / "etc/carehub") == ("0750", 0, gid)
    assert mode_owner(root / "var/lib/carehub") == ("0700", uid, gid)
    # a directory someone loosened is put back at the next run (or boot)
    (root / "var/lib/carehub").chmod(0o755)
    run("systemd-tmpfiles", f"--root={root}", "--create", "carehub.conf", check=True)
    assert mode_owner(root / "var/lib/carehub") == ("0700", uid, gid)


UDEV_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVER", "DRIVERS", "ATTR", "ATTRS",
             "ENV", "TAG", "GROUP", "OWNER", "MODE", "SYMLINK", "NAME", "RUN", "TEST", "PROGRAM", "RESULT"}
UDEV_TOKEN = re.compile(r'\s*([A-Z]+)(?:\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def udev_rules(path: Path) -> list[list[tuple[str, str, str]]]:
    """Each rule line as (key, operator, value) tokens; fails on anything udev would not parse."""
    rules = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens, pos = [], 0
        while pos < len(line):
            m = UDEV_TOKEN.match(line, pos)
            assert m, f"{path.name}:{number}: cannot parse {line[pos:]!r}"
            assert m.group(1) in UDEV_KEYS, f"{path.name}:{number}: unknown key {m.group(1)}"
            tokens.append(m.groups())
            pos = m.end()
        rules.append(tokens)
    return rules


def test_udev_gives_gpio_chips_to_group_gpio() -> None:
    rules = udev_rules(UDEV)
    assert len(rules) == 1
    (rule,) = rules
    matches = {k: v for k, op, v in rule if op == "=="}
    assigns = {k: v for k, op, v in rule if op in ("=", ":=")}
    assert matches["SUBSYSTEM"] == "gpio"
    assert all(fnmatch.fnmatchcase(dev, matches["KERNEL"]) for dev in ("gpiochip0", "gpiochip4", "gpiochip512"))
    assert not fnmatch.fnmatchcase("ttyUSB0", matches["KERNEL"])
    assert assigns == {"GROUP": "gpio", "MODE": "0660"}
    # the group it names is one sysusers makes, and carehub is in it
    assert re.search(r"^g gpio\s", SYSUSERS.read_text(), re.M) and re.search(r"^m carehub gpio$", SYSUSERS.read_text(), re.M)
    assert "dialout" in UDEV.read_text()  # says why serial ports need no rule


# --- install.sh ------------------------------------------------------------------------------------


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("bash", INSTALL, "--root", root, *args)


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every path under root: mode, owner, group and content hash (or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            what = "-> " + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        out[str(path.relative_to(root))] = (f"{st.st_mode:o}", st.st_uid, st.st_gid, what)
    return out


@needs_sysusers
@needs_root
def test_install_into_a_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = install(root, "--no-venv")
    assert result.returncode == 0, result.stderr + result.stdout
    etc = root / "etc"
    assert (etc / "systemd/system/carehub.service").read_text() == UNIT.read_text()
    assert (etc / "sysusers.d/carehub.conf").read_text() == SYSUSERS.read_text()
    assert (etc / "tmpfiles.d/carehub.conf").read_text() == TMPFILES.read_text()
    assert (etc / "udev/rules.d/99-carehub.rules").read_text() == UDEV.read_text()
    for f in ("systemd/system/carehub.service", "sysusers.d/carehub.conf", "udev/rules.d/99-carehub.rules"):
        assert mode_owner(etc / f)[0] == "0644"
    assert os.readlink(etc / "systemd/system/multi-user.target.wants/carehub.service") == "/etc/systemd/system/carehub.service"
    uid, gid = int(passwd(root, "carehub")[2]), int(passwd(root, "carehub")[3])
    assert sorted(n for n, (_, m) in groups(root).items() if "carehub" in m) == ["bluetooth", "dialout", "gpio"]
    assert mode_owner(etc / "carehub") == ("0750", 0, gid)
    assert mode_owner(root / "var/lib/carehub") == ("0700", uid, gid)
    assert not (etc / "carehub/hub.toml").exists(), "the config is carehub provision's to write"
    assert "carehub provision writes it" in result.stdout
    opt = root / "opt/carehub"
    assert (opt / "README.md").exists() and (opt / "constraints.txt").read_bytes() == (REPO / "constraints.txt").read_bytes()
    assert (opt / "examples/residence.toml").exists()
    # the venv step it skipped installs the package from the lock, not an editable dev install
    line = next(ln for ln in result.stdout.splitlines() if "skipped (--no-venv)" in ln)
    pip = line.split(": ", 2)[-1].split()
    assert pip[:4] == [str(opt / ".venv/bin/python"), "-m", "pip", "install"]
    assert pip[pip.index("-c") + 1] == str(REPO / "constraints.txt")
    assert "--ignore-installed" in pip and "-e" not in pip and not any("[test]" in a for a in pip)
    # the unit as installed passes verify with the binary the venv would hold
    exe = opt / ".venv/bin/carehub"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    offline_root(root, (etc / "systemd/system/carehub.service").read_text(), binary=False)
    assert verify(root).returncode == 0


@needs_sysusers
@needs_root
def test_install_twice_changes_nothing_and_keeps_the_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert install(root, "--no-venv").returncode == 0
    config = root / "etc/carehub/hub.toml"
    config.write_text('[hub]\nid = "omsorgsbolig-7"\n')  # the installer's own config
    first = snapshot(root)
    again = install(root, "--no-venv")
    assert again.returncode == 0, again.stderr
    assert "keeping /etc/carehub/hub.toml" in again.stdout
    assert snapshot(root) == first
    assert config.read_text() == '[hub]\nid = "omsorgsbolig-7"\n'


@needs_sysusers
@needs_root
def test_install_with_another_prefix(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert install(root, "--no-venv", "--prefix", "/srv/carehub").returncode == 0
    unit = root / "etc/systemd/system/carehub.service"
    assert "/opt/carehub" not in unit.read_text()
    assert "ExecStart=/srv/carehub/.venv/bin/carehub run --config /etc/carehub/hub.toml" in unit.read_text()
    assert (root / "srv/carehub/README.md").exists()
    if shutil.which("systemd-analyze"):
        assert verify(offline_root(root, unit.read_text(), prefix="/srv/carehub")).returncode == 0


def test_install_refuses_bad_arguments(tmp_path: Path) -> None:
    assert run("bash", INSTALL, "--bogus").returncode != 0
    assert run("bash", INSTALL, "--root", tmp_path, "--prefix", "relative/dir").returncode != 0
    assert "sudo scripts/install.sh" in run("bash", INSTALL, "--help").stdout


# --- the hub inside the unit's sandbox ------------------------------------------------------------

PROBE = """
import errno, mmap, os, socket
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print(attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),
      attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)),
      attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)),
      attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()),
      attempt(lambda: os.setuid(0)),
      attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),
      oct(os.umask(0)))
"""


def sandboxed(*cmd: str | Path) -> list[str]:
    return [sys.executable, str(SANDBOX), str(UNIT), "--", *map(str, cmd)]


@needs_analyze
def test_sandbox_applies_the_units_restrictions() -> None:
    """The emulation is not a no-op: what the unit forbids fails inside it and works outside."""
    inside = run(*sandboxed(sys.executable, "-c", PROBE), check=True).stdout.split()
    assert inside == ["EPERM", "ok", "EAFNOSUPPORT", "ok", "EPERM", "EPERM", "0o77"]
    outside = run(sys.executable, "-c", PROBE, check=True).stdout.split()
    assert outside[:3] == ["ok", "ok", "ok"]


@needs_analyze
@pytest.mark.slow
def test_hub_works_inside_the_units_sandbox(tmp_path: Path) -> None:
    """check-config (cryptography parses the CA, cert and key) and the daemon over TLS, under the
    unit's syscall filter, MemoryDenyWriteExecute, address families and no capabilities: a press
    reaches the broker and SIGTERM stops the hub cleanly."""
    tls = make_tls(tmp_path / "pki", client_cn="test-hub")
    tls_line = f'tls = {{ ca = "{tls.ca}", cert = "{tls.client_cert}", key = "{tls.client_key}" }}'
    with Mosquitto(workdir=tmp_path / "broker", tls=tls) as broker:
        config = hub_config(tmp_path / "hub", port=broker.port, extra_mqtt=tls_line)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        check = subprocess.run(sandboxed(sys.executable, "-m", "hub.cli", "check-config", config),
                               capture_output=True, text=True, env=env, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        sub = Subscriber(port=broker.port, topics=["carehub/#"], tls=tls)
        hub = HubProcess(config, prefix=[sys.executable, str(SANDBOX), str(UNIT), "--"])
        try:
            hub.start().wait_online()
            assert hub.proc is not None
            status = Path(f"/proc/{hub.proc.pid}/status").read_text()  # what systemd would have set up
            assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
            assert "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status
            hub.press()
            sub.wait_for(lambda msgs: any(m.topic.endswith("/event/alarm.button") for m in msgs), timeout=10)
            assert hub.stop() == 0, hub.tail()  # SIGTERM: a clean stop (stop() fails past its 15 s timeout)
        finally:
            sub.close()
            if hub.returncode is None:
                hub.kill()
        assert not [e for e in hub.log_lines() if e.get("level") in ("error", "critical")], hub.tail()


@needs_sysusers
@needs_root
@needs_analyze
@pytest.mark.slow
def test_install_builds_the_venv_from_the_lock(tmp_path: Path) -> None:
    """The real step 2 (pip, from PyPI or its cache): every distribution in the venv at its locked
    version, a second run installs nothing, and the installed daemon, on the OS's own Python and
    libffi, runs inside the unit's sandbox until its birth is published."""
    root = tmp_path / "root"
    first = install(root)
    assert first.returncode == 0, first.stderr + first.stdout
    venv = root / "opt/carehub/.venv"
    assert run(venv / "bin/carehub", "--version", check=True).stdout.startswith("carehub ")
    pins = dict(ln.split("==") for ln in (REPO / "constraints.txt").read_text().splitlines() if "==" in ln)
    pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
    site = next(venv.glob("lib/python3*/site-packages"))
    listed = run(venv / "bin/python", "-m", "pip", "list", "--path", site, "--format=freeze", check=True).stdout
    have = dict(ln.split("==") for ln in listed.splitlines() if "==" in ln)
    assert have.pop("carehub") == "0.1.0"
    for tool in ("pip", "setuptools"):  # the venv's own, from ensurepip: nothing the hub imports
        have.pop(tool, None)
    for dist, version in have.items():
        assert pins.get(dist.lower().replace("_", "-")) == version, f"{dist}=={version} is not the locked version"
    assert {"paho-mqtt", "msgspec", "cryptography", "bleak", "gpiozero"} <= {d.lower() for d in have}
    assert os.path.realpath(venv / "bin/python").startswith("/usr/bin/python3")  # the OS's Python, not PATH's

    again = install(root)
    assert again.returncode == 0 and "is up to date" in again.stdout  # a second run installs nothing

    with Mosquitto(workdir=tmp_path / "broker") as broker:
        config = hub_config(tmp_path / "hub", port=broker.port)
        log = tmp_path / "hub.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(sandboxed(venv / "bin/carehub", "run", "--config", config),
                                    stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
            try:
                deadline = time.monotonic() + 30
                while '"birth_published"' not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert '"birth_published"' in log.read_text(), log.read_text()[-3000:]
                proc.terminate()
                assert proc.wait(20) == 0, log.read_text()[-3000:]
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
