"""A userspace wire between two TUN devices that delays, jitters, loses or cuts IP packets.

This kernel has no netem qdisc, so the rig impairs the hub's link the way
netem would, one IP packet at a time, in a process of its own::

    python -m hil.rigs.netwire HOST_TUN RES_TUN

creates both TUN devices (``IFF_TUN | IFF_NO_PI``, not persistent: they vanish
with the process), prints ``{"ready": true}`` and moves every packet read from
one to the other. Each packet, in either direction:

* is dropped with probability ``loss_pct`` / 100 (independently: no burst model);
* otherwise waits ``delay_ms`` ± a uniform draw of ``jitter_ms``, but never
  leaves before the packet ahead of it in the same direction (a link does not
  reorder; netem does with jitter);
* is dropped when 1000 packets already wait in its direction (netem's default limit);
* with ``cut``, is dropped, and so is everything waiting.

Control: one JSON object per line on stdin, one reply per line on stdout:
``{"op": "set", "delay_ms": .., "jitter_ms": .., "loss_pct": .., "cut": .., "seed": ..}``
and ``{"op": "state"}`` (counters). End of stdin ends the wire.
The rig (:mod:`hil.rigs.netfault`) moves ``RES_TUN`` into the residence's
namespace and routes the hub's traffic through it while impaired.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import struct
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
LIMIT = 1000


def open_tun(name: str) -> int:
    """Create (or attach to) TUN device ``name``; a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


@dataclass
class Impairment:
    """What the wire does to each packet."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    cut: bool = False


class Direction:
    """Packets from ``src`` to ``dst``, each waiting for its release instant."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.queue: deque[tuple[float, bytes]] = deque()
        self.last = 0.0
        self.counts = {"read": 0, "sent": 0, "lost": 0, "cut": 0, "overflow": 0, "unwritable": 0}

    def take(self, packet: bytes, imp: Impairment, rng: random.Random, now: float) -> None:
        self.counts["read"] += 1
        if imp.cut:
            self.counts["cut"] += 1
        elif imp.loss_pct and rng.random() * 100 < imp.loss_pct:
            self.counts["lost"] += 1
        elif len(self.queue) >= LIMIT:
            self.counts["overflow"] += 1
        else:
            wait = (imp.delay_ms + (rng.uniform(-imp.jitter_ms, imp.jitter_ms) if imp.jitter_ms else 0.0)) / 1000
            self.last = max(now + max(wait, 0.0), self.last)
            self.queue.append((self.last, packet))

    def release(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, packet = self.queue.popleft()
            try:
                os.write(self.dst, packet)
                self.counts["sent"] += 1
            except OSError:  # the other end is down (EIO) or full
                self.counts["unwritable"] += 1

    def drop_all(self) -> None:
        self.counts["cut"] += len(self.queue)
        self.queue.clear()


def _read_all(fd: int) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(os.read(fd, 65536))
        except BlockingIOError:
            return out
        except OSError:  # EIO while the device is down
            return out


def serve(host_tun: str, res_tun: str) -> int:
    """Run the wire until stdin ends."""
    a, b = open_tun(host_tun), open_tun(res_tun)
    ways = {a: Direction(a, b), b: Direction(b, a)}
    imp, rng = Impairment(), random.Random()
    stdin = sys.stdin.fileno()
    reply(ready=True)
    while True:
        now = time.monotonic()
        heads = [d.queue[0][0] for d in ways.values() if d.queue]
        timeout = max(0.0, min(heads) - now) if heads else None
        ready, _, _ = select.select([a, b, stdin], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            if fd == stdin:
                line = sys.stdin.readline()
                if not line:
                    return 0
                imp = control(json.loads(line), imp, rng, ways)
            else:
                for packet in _read_all(fd):
                    ways[fd].take(packet, imp, rng, now)
        for d in ways.values():
            d.release(time.monotonic())


def control(req: dict[str, Any], imp: Impairment, rng: random.Random, ways: dict[int, Direction]) -> Impairment:
    """Apply one control request; reply with the impairment and the counters."""
    if req.get("op") == "set":
        imp = Impairment(
            delay_ms=float(req.get("delay_ms", 0)),
            jitter_ms=float(req.get("jitter_ms", 0)),
            loss_pct=float(req.get("loss_pct", 0)),
            cut=bool(req.get("cut", False)),
        )
        if req.get("seed") is not None:
            rng.seed(req["seed"])
        if imp.cut:
            for d in ways.values():
                d.drop_all()
    up, down = ways.values()
    reply(impairment=asdict(imp), to_residence=up.counts, from_residence=down.counts)
    return imp


def reply(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m hil.rigs.netwire HOST_TUN RES_TUN")
    sys.exit(serve(sys.argv[1], sys.argv[2]))
