"""The demo's processes: starting children that die with it, stopping them, and the pid file.

The pid file in the hub's state directory names the demo, its hub and its
broker, so the next run can stop what a killed demo left running (after
checking, in ``/proc``, that a pid is still that process), and can refuse to
fight a demo or hub that is really still running on the same directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from drivers.simctl import answers
from hub.demo.common import DemoError, console
from hub.demo.signals import Signals

#: the file in the hub's state directory naming the demo's processes, for the next run
PIDFILE = "demo.pid"
#: how long a child (or a process an earlier run left) gets to stop on SIGTERM before it is killed
HUB_STOP_S = 15.0

# --- starting children ----------------------------------------------------------------------


def port_open(host: str, port: int) -> bool:
    """True if something accepts a TCP connection on ``host:port`` within half a second."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now (for a private broker)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the demo dies (kill -9 too)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, ctypes.c_ulong(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the demo died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


# --- what an earlier run left ------------------------------------------------------------


def _cmdline(pid: int) -> list[str] | None:
    """A live process's arguments; None if it is gone, a zombie, or cannot be checked."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, IndexError):
        return None


def _is_hub(args: list[str]) -> bool:
    return "hub.cli" in args and "run" in args


def _is_demo(args: list[str]) -> bool:
    return "demo" in args and any(a.endswith(("hub.cli", "carehub")) for a in args)


def _is_broker(args: list[str]) -> bool:
    return bool(args) and os.path.basename(args[0]) == "mosquitto"


def _stop_pid(pid: int, what: str, is_it: Callable[[list[str]], bool]) -> None:
    """Stop a process an earlier demo left running, if ``pid`` is still that process."""
    args = _cmdline(pid)
    if args is None or not is_it(args):
        return
    console.print(f"[bold]cleanup[/bold] stopping the {what} an earlier demo left running (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a stopped process (kill -STOP, Ctrl-Z) handles the SIGTERM only when continued
    deadline = time.monotonic() + HUB_STOP_S
    while _cmdline(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if _cmdline(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _cmdline(pid) is not None and time.monotonic() < deadline + 5:
            time.sleep(0.05)


def clear_leftovers(state_dir: Path, sim_socket: Path) -> None:
    """Stop what an earlier (killed) demo left running on ``state_dir``; raise if a live one still uses it."""
    pidfile = state_dir / PIDFILE
    try:
        pids = json.loads(pidfile.read_text())
    except (OSError, ValueError):
        pids = {}
    if not isinstance(pids, dict):
        pids = {}
    demo_pid = pids.get("demo")
    if isinstance(demo_pid, int) and demo_pid != os.getpid():
        args = _cmdline(demo_pid)
        if args is not None and _is_demo(args):
            raise DemoError(f"another carehub demo (pid {demo_pid}) is running on {state_dir}; stop it first")
    for key, what, is_it in (("hub", "hub", _is_hub), ("broker", "broker", _is_broker)):
        pid = pids.get(key)
        if isinstance(pid, int):
            _stop_pid(pid, what, is_it)
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    if answers(sim_socket):
        raise DemoError(f"a hub is already running on {state_dir} (its sim socket {sim_socket} answers); stop it first")


def write_pids(state_dir: Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Name the demo and its children in the pid file (replaced at once, never half written), for the next run."""
    body = {"demo": os.getpid(), **{k: p.pid for k, p in procs.items()}}
    tmp = state_dir / f".{PIDFILE}.tmp"
    tmp.write_text(json.dumps(body))
    tmp.replace(state_dir / PIDFILE)


# --- stopping children ----------------------------------------------------------------------


def stop_child(p: subprocess.Popen[bytes], signals: Signals) -> None:
    """SIGTERM and wait; kill after :data:`HUB_STOP_S`, or at once after a second Ctrl-C."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    count = signals.count
    deadline = time.monotonic() + HUB_STOP_S
    while p.poll() is None:
        if time.monotonic() > deadline or signals.count > max(count, 1):
            p.kill()
            p.wait()
            break
        time.sleep(0.05)
