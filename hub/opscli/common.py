"""What the operations commands share: finding and reaching the socket, exit codes, times for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hub.control.client import ControlClient, Unreachable, find_socket
from hub.control.paths import DEFAULT_CONFIG, ConfigProblem

EXIT_OK = 0
#: The operation failed: an error reply, no ack within the timeout.
EXIT_FAILED = 1
#: Bad arguments, or the config cannot be read for the socket's path.
EXIT_USAGE = 2
#: The hub's socket cannot be reached.
EXIT_UNREACHABLE = 3


def exit_codes(ok: str, failed: str) -> str:
    """The exit-status table every ``--help`` ends with."""
    return (
        "exit status:\n"
        f"  0  {ok}\n"
        f"  1  {failed}\n"
        "  2  usage or config error: bad arguments, or the config cannot be read to find the socket\n"
        "  3  cannot reach the hub's socket: none there (hub not running), permission denied\n"
        "     (not in group carehub), or no reply in time"
    )


def add_target(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` or ``--socket PATH``: where the hub's control socket is."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", "-c", metavar="FILE", default=None,
                   help=f"the hub's config, to find its socket ([control] socket; default {DEFAULT_CONFIG})")
    g.add_argument("--socket", "-s", metavar="PATH", default=None,
                   help="the control socket itself (default: from the config: /run/carehub/control.sock, "
                        "else control.sock in the state directory)")


def connect(args: argparse.Namespace, *, timeout: float | None = 10.0) -> ControlClient:
    """A connection to the socket the arguments name."""
    return ControlClient(find_socket(args.socket, args.config), timeout=timeout)


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command, turning a config problem into exit 2, an unreachable hub into exit 3, Ctrl-C into 130."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ConfigProblem as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except Unreachable as exc:
            print(f"error: cannot reach the hub: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except KeyboardInterrupt:
            return 130

    return wrapper


def ago(seconds: float | None) -> str:
    """``just now``, ``12 s ago``, ``2 min ago``, ``3 h ago``, ``2 d ago``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400 * 2:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def local_time(ts: str | None) -> str:
    """An event's RFC 3339 UTC time as local ``HH:MM:SS.mmm``."""
    if not ts:
        return "-"
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone()
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def short(value: Any, limit: int = 80) -> str:
    """A value in one line of at most ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
