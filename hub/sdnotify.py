"""systemd's notify protocol (``Type=notify``): READY=1, WATCHDOG=1, STOPPING=1, RELOADING=1.

A datagram to the socket in ``$NOTIFY_SOCKET``; does nothing when unset.
"""

from __future__ import annotations

import os
import socket
import time


def notify(message: str) -> bool:
    """Send ``message`` to systemd; True when it was sent.

    Never blocks the loop: if the receiver's queue is full (or the socket is
    gone) the message is dropped and False returned; a watchdog ping that
    cannot be delivered now is simply sent again next interval.
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(path)
            sock.send(message.encode())
    except (BlockingIOError, OSError):
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (how often to ping), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


def reloading(status: str = "reloading the config") -> bool:
    """Tell systemd a reload begins (``RELOADING=1``); send ``READY=1`` when it is over, applied or refused.

    systemd knows ``RELOADING=1`` since version 217 (Debian 12 has 252) and
    shows the unit as ``reloading`` until ``READY=1``. ``MONOTONIC_USEC`` is
    what ``Type=notify-reload`` (systemd 253 and later) pairs the message
    with its own SIGHUP by; an older systemd ignores the field.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nSTATUS={status}\nMONOTONIC_USEC={usec}")
