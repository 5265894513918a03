"""A small tmpfs for disk-full tests, and a filler that eats whatever space it finds.

Mounting needs root (the test machines run tests as root); :func:`mount_small_fs`
skips the test with the reason otherwise.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest


def mount_small_fs(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` (e.g. ``"4m"``) on ``path``, or skip the test saying why."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Filler:
    """Another program filling the disk: writes until ENOSPC, and (``runaway``) keeps taking
    every block that comes free, like a log gone mad, until :meth:`stop`."""

    def __init__(self, path: Path, *, runaway: bool = False) -> None:
        self.path = path
        self.runaway = runaway
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Held around each write and the close: the fd number is never written to after it is closed
        #: (it may belong to anything of this process by then).
        self._fd_lock = threading.Lock()
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def fill(self) -> None:
        """Write until the filesystem says it is full (or the file is closed)."""
        chunk = b"\0" * 4096
        while True:
            with self._fd_lock:
                if self.fd is None:
                    return
                try:
                    os.write(self.fd, chunk)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        return
                    raise

    def _close(self) -> bool:
        """Close the file once; False if it was closed already."""
        with self._fd_lock:
            if self.fd is None:
                return False
            os.close(self.fd)
            self.fd = None
            return True

    def start(self) -> Filler:
        self.fill()
        if self.runaway:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.fill()

    def halt(self) -> None:
        """Stop filling and close the file, leaving it where it is (the machine lost power)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._close()

    def stop(self) -> None:
        """Stop and delete the file: the space is back (again: a no-op)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if not self._close():
            return
        self.path.unlink(missing_ok=True)
        time.sleep(0.01)
