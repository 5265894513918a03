"""Stopping a child process the way systemd stops a service: SIGTERM, wait, SIGKILL if it will not go."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM ``proc`` (if it still runs) and wait up to ``timeout`` s; SIGKILL and reap it after that.

    Returns True when it stopped by itself (or had already), False when it had to be killed;
    ``proc.returncode`` is its exit status either way.
    """
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
