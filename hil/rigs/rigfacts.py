"""What the virtual rig records about itself (:meth:`hil.rigs.virtual.VirtualRig.info`)."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hub

if TYPE_CHECKING:
    from hil.rigs.virtual import VirtualRig

REPO = Path(__file__).resolve().parents[2]


def info(rig: VirtualRig) -> dict[str, Any]:
    """The hub's version and commit, the config's sha256, this machine, the fixtures and their mechanisms."""
    return {
        "rig": rig.name,
        "kind": rig.kind,
        "hub_version": hub.__version__,
        "hub_commit": _first_line(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"]),
        "config_sha256": hashlib.sha256(rig.config_text.encode()).hexdigest() if rig.config_text else None,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "mosquitto": _first_line(["mosquitto", "-h"]),
        "fixtures": sorted(rig.fixtures),
        "missing": dict(sorted(rig.missing.items())),
        "mechanisms": mechanisms(rig),
        "unheard_while_hub_down": dict(sorted(rig.line.unheard.items())),
    }


def mechanisms(rig: VirtualRig) -> dict[str, str]:
    """How the rig makes each thing happen, in a sentence each."""
    out = {
        "gpio": "gpiozero MockFactory pins in the hub ([gpio] factory = 'sim'), driven and read over its sim socket",
        "serial": "emulator processes on pty pairs (drivers.serial.emulator)",
        "ble": "the hub's simulated advert source (sim ops ble_advert, ble_fault); BTHome encoded by the rig",
        "broker": "a private Mosquitto with persistence, stopped (SIGTERM) and started on the same port",
        "hub_kill": "SIGKILL of the hub process, restarted on the same state directory",
    }
    if (net := rig.net) is not None:
        out["network"] = f"netns {net.ns}, veth {net.host_if} ({net.broker_ip}) <-> {net.res_if} ({net.hub_ip})"
        out["net_cut"] = "host end of the veth down: silent, no FIN or RST"
        out["net_impair"] = "userspace TUN wire (hil.rigs.netwire), per IP packet both ways; no netem in this kernel"
    if (disk := rig.disk) is not None:
        out["power_cut"] = (f"ext4 ({disk.size_mb} MiB, commit={disk.commit_s}) on {disk.device}: hub SIGSTOP, "
                            "consistent image copy, SIGKILL, journal replay of the copy")  # fmt: skip
        out["disk_fill"] = "a runaway writer keeps the state disk at 0 bytes free until disk_free"
    return out


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None
