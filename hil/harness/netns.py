"""The residence's own network: a network namespace joined to the host by a veth pair.

The hub runs inside the namespace (``nsenter --net=/run/netns/NS ...``, :attr:`ResidenceNet.exec_prefix`);
the broker listens on the host end's address (:attr:`ResidenceNet.broker_ip`).
Taking the host end down (:meth:`ResidenceNet.cut`) cuts the link silently, as an
unplugged router does: no FIN, no RST, a half-open TCP connection. The host
end's address stays a local address of the host, so clients on the host (the
central) still reach the broker during a cut.

Names are random (``hil-<hex>``, ``hvh<hex>``/``hvr<hex>``) and each /30 is picked
under a lock among the 10.200.0.0/14 subnets no host interface uses, so several
residences (in one process or many) live side by side. Needs root, iproute2 and nsenter.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NetnsError", "ResidenceNet", "available", "ip"]

_POOL = ipaddress.ip_network("10.200.0.0/14")
_NETNS_DIR = Path("/run/netns")  # where ``ip netns add`` puts a namespace's handle
_LOCK = Path("/run/lock" if Path("/run/lock").is_dir() else tempfile.gettempdir()) / "carehub-hil-netns.lock"


class NetnsError(RuntimeError):
    """iproute2 refused: the message is its stderr."""


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (inside ``ns`` when given); its stdout, or :class:`NetnsError`."""
    cmd = ["ip", "-n", ns, *args] if ns else ["ip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def available() -> str | None:
    """None when a residence network can be built here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        return "iproute2 ('ip') is not installed"
    if shutil.which("nsenter") is None:
        return "nsenter (util-linux) is not installed"
    return None


def _used_subnets() -> set[ipaddress.IPv4Network]:
    used = set()
    for line in ip("-o", "-4", "addr", "show").splitlines():
        parts = line.split()
        if "inet" in parts:
            used.add(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return used


@dataclass
class ResidenceNet:
    """One residence network: namespace ``ns``, host end ``host_if`` (``broker_ip``), hub end ``res_if`` (``hub_ip``)."""

    ns: str
    host_if: str
    res_if: str
    broker_ip: str
    hub_ip: str
    _alive: bool = field(default=True, repr=False)

    @classmethod
    def create(cls) -> ResidenceNet:
        """Build a namespace and its veth pair; :class:`NetnsError` (nothing left behind) if it cannot."""
        tag = secrets.token_hex(4)
        ns, host_if, res_if = f"hil-{tag}", f"hvh{tag}", f"hvr{tag}"
        _LOCK.touch(exist_ok=True)
        with open(_LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _used_subnets()
            for _ in range(1000):
                net = ipaddress.ip_network(
                    (int(_POOL.network_address) + 4 * random.randrange(_POOL.num_addresses // 4), 30)
                )
                if not any(net.overlaps(u) for u in used):
                    break
            else:
                raise NetnsError("no free /30 in 10.200.0.0/14")
            broker_ip, hub_ip = str(net.network_address + 1), str(net.network_address + 2)
            self = cls(ns, host_if, res_if, broker_ip, hub_ip)
            try:
                ip("netns", "add", ns)
                ip("link", "add", host_if, "type", "veth", "peer", "name", res_if)
                ip("link", "set", res_if, "netns", ns)
                ip("addr", "add", f"{broker_ip}/30", "dev", host_if)
                ip("link", "set", host_if, "up")
                ip("addr", "add", f"{hub_ip}/30", "dev", res_if, ns=ns)
                ip("link", "set", res_if, "up", ns=ns)
                ip("link", "set", "lo", "up", ns=ns)
            except NetnsError:
                self.destroy()
                raise
        return self

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the residence.

        ``nsenter --net``, not ``ip netns exec``: the latter also gives the command a mount namespace
        of its own, a private copy of every mount on a host whose mounts do not propagate (no systemd).
        A hub started that way would hold another residence's loop-mounted state disk (a rig running
        beside it, another test worker) after that rig unmounted and detached it, until the hub exits.
        """
        return ["nsenter", f"--net={_NETNS_DIR / self.ns}", "--"]

    def cut(self) -> None:
        """The host end down: the hub's packets vanish, silently."""
        ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        """The host end up again."""
        ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        """Delete the veth pair and the namespace (again: a no-op)."""
        if not self._alive:
            return
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.ns, check=False)
        self._alive = False

    def exists(self) -> bool:
        """Whether the namespace or the host end is still there."""
        in_ns = self.ns in ip("netns", "list").split()
        link = subprocess.run(["ip", "link", "show", self.host_if], capture_output=True).returncode == 0
        return in_ns or link
