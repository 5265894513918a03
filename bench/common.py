"""Small pieces every benchmark uses: progress lines, clean interrupts, CPU time, log timestamps."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str, *, quiet: bool) -> None:
    """A progress line on stderr (stdout carries the figures)."""
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def raise_interrupt(signum: int, frame: Any) -> None:
    """Signal handler: turn SIGTERM/SIGINT into KeyboardInterrupt so cleanup runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def iso_to_epoch(ts: str) -> float:
    """An RFC 3339 timestamp from the hub's log or events, as Unix seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads) in seconds, from /proc; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None
