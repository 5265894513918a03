"""Faults of the hub's network: a silent cut, and delay with jitter and loss, without netem.

What the virtual rig does, and what it models:

* **The link.** The hub runs in its own network namespace joined to the host by a
  veth pair (:class:`hil.harness.netns.ResidenceNet`); the broker listens on the
  host end. Unimpaired, the hub's packets take the kernel's path only.
* **net_cut** takes the host end of the veth down (and drops everything on the
  wire below, if one is up): the hub's packets vanish without FIN or RST, a
  half-open TCP connection, as an unplugged router or a dead uplink. The hub's
  own interface stays up, so it learns of the cut only by MQTT keepalive.
* **net_impair** (this kernel has no netem qdisc) routes the hub's traffic
  through a userspace wire (:mod:`hil.rigs.netwire`): a TUN device in the
  namespace, another on the host, and a process between them that delays each
  IP packet by ``delay_ms`` ± uniform ``jitter_ms`` and drops it with
  probability ``loss_pct``, **in both directions** (one way +delay, round trip
  +2·delay; each direction loses ``loss_pct``). Routes are /32s for the broker
  (in the namespace) and the hub (on the host), so the hub's open TCP connection
  moves onto the wire without reconnecting, and real TCP deals with it:
  retransmissions, RTO back-off, keepalive. Not modelled: reordering (a packet
  never overtakes the one ahead of it, unlike netem with jitter), correlated or
  burst loss, duplication, corruption, rate limits, MTU changes. The wire itself
  costs well under a millisecond here (press to central p50 2.2 ms with it in the
  path, 2.0 to 2.9 ms without: within the noise), more when the machine is busy.
  ``net_impair(0, 0, 0)`` takes the routes away again (kernel path).
* **net_restore** brings the host end up and takes the wire out of the path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from hil.harness.netns import NetnsError, ResidenceNet, ip

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]


class NetFaults:
    """Cut, impair and restore the link of one :class:`ResidenceNet`."""

    def __init__(self, net: ResidenceNet) -> None:
        self.net = net
        tag = net.ns.removeprefix("hil-")
        self.host_tun, self.res_tun = f"hth{tag}", f"htr{tag}"
        self._wire: subprocess.Popen[str] | None = None
        self._routed = False
        self.cut_now = False
        self.impairment: dict[str, float] = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss_pct": 0.0}

    # --- the steps ------------------------------------------------------------------------

    def cut(self) -> None:
        """The link goes silent."""
        self.net.cut()
        self.cut_now = True
        if self._wire is not None:
            self._send(op="set", cut=True)
        log.info("net_cut", ns=self.net.ns)

    def impair(self, delay_ms: float, jitter_ms: float, loss_pct: float, seed: int | None = None) -> None:
        """Delay, jitter and lose the hub's packets (all zero: back to the kernel's path)."""
        self.impairment = {"delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss_pct": loss_pct}
        if not (delay_ms or jitter_ms or loss_pct):
            self._unroute()
            if self._wire is not None:
                self._send(op="set", cut=self.cut_now)
            log.info("net_impair_cleared", ns=self.net.ns)
            return
        self._ensure_wire()
        self._send(op="set", cut=self.cut_now, seed=seed, **self.impairment)
        self._route()
        log.info("net_impaired", ns=self.net.ns, **self.impairment)

    def restore(self) -> None:
        """Undo cut and impairment."""
        self.impairment = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss_pct": 0.0}
        self.cut_now = False
        self._unroute()
        if self._wire is not None:
            self._send(op="set")
        self.net.restore()
        log.info("net_restored", ns=self.net.ns)

    def counters(self) -> dict[str, Any] | None:
        """The wire's packet counters (None when it never ran)."""
        return self._send(op="state") if self._wire is not None else None

    # --- the wire -------------------------------------------------------------------------

    def _ensure_wire(self) -> None:
        if self._wire is not None:
            return
        self._wire = subprocess.Popen(
            [sys.executable, "-m", "hil.rigs.netwire", self.host_tun, self.res_tun],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        first = self._wire.stdout.readline() if self._wire.stdout else ""
        if not first.startswith('{"ready"'):
            self.close()
            raise NetnsError(f"the network wire did not start: {first!r}")
        ip("link", "set", self.res_tun, "netns", self.net.ns)
        ip("link", "set", self.res_tun, "up", ns=self.net.ns)
        ip("link", "set", self.host_tun, "up")

    def _route(self) -> None:
        if self._routed:
            return
        ip("route", "add", f"{self.net.broker_ip}/32", "dev", self.res_tun, ns=self.net.ns)
        ip("route", "add", f"{self.net.hub_ip}/32", "dev", self.host_tun)
        self._routed = True

    def _unroute(self) -> None:
        if not self._routed:
            return
        ip("route", "del", f"{self.net.broker_ip}/32", "dev", self.res_tun, ns=self.net.ns, check=False)
        ip("route", "del", f"{self.net.hub_ip}/32", "dev", self.host_tun, check=False)
        self._routed = False

    def _send(self, **req: Any) -> dict[str, Any]:
        wire = self._wire
        assert wire is not None and wire.stdin is not None and wire.stdout is not None
        wire.stdin.write(json.dumps(req) + "\n")
        wire.stdin.flush()
        line = wire.stdout.readline()
        if not line:
            raise NetnsError(f"the network wire died (exit {wire.poll()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the wire (its TUN devices and routes go with it); again: a no-op."""
        self._unroute()
        wire, self._wire = self._wire, None
        if wire is None:
            return
        try:
            if wire.stdin is not None:
                wire.stdin.close()
            wire.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            wire.kill()
            wire.wait()
        if wire.stdout is not None:
            wire.stdout.close()
        deadline = time.monotonic() + 2
        while ip("link", "show", self.host_tun, check=False) and time.monotonic() < deadline:
            time.sleep(0.02)
