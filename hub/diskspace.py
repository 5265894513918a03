"""Disk space for alarms: a ballast file that is given up when the state directory fills.

A hub shares its SD card (or a small state partition) with the rest of the
system: logs, a journal, an update that went wrong. When another file fills it,
SQLite cannot grow its WAL and the next commit fails with "database or disk is
full". The telemetry that is refused then is counted and logged; an alarm must
still be stored.

:class:`Ballast` keeps a file of ``size`` bytes of real (allocated) blocks in
the state directory while there is room. When a commit fails for lack of space,
the outbox releases it and tries again: the blocks it held are the alarms'
reserve. Housekeeping puts it back once the filesystem has room for it and a
margin again, and till then telemetry is refused (``space_short``), so the
reserve is not eaten by readings.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import structlog

log = structlog.get_logger("hub.diskspace")

#: The ballast's size by default: room for a few hundred alarms (each a few WAL pages).
DEFAULT_RESERVE_BYTES = 1 << 20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" and for ENOSPC/EDQUOT."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == 13:  # SQLITE_FULL and its extended codes
        return True
    return "disk is full" in str(exc) or "No space left" in str(exc)


class Ballast:
    """A reserve file of allocated blocks, released when the disk is full, restored when room is back."""

    def __init__(self, path: Path, size: int = DEFAULT_RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> bool:
        """True while the reserve file exists at its full size."""
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Create the reserve if the filesystem has room for it and as much again; True when held.

        Blocks are allocated for real (``posix_fallocate``, falling back to
        writing zeros), so the space cannot be promised to anyone else.
        """
        if self.size <= 0:
            return True
        if self.held:
            return True
        try:
            if free_bytes(self.path.parent) < 2 * self.size:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self.size)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.lseek(fd, 0, os.SEEK_SET)
                    chunk = b"\0" * 65536
                    for _ in range(0, self.size, len(chunk)):
                        os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("reserve_not_created", path=str(self.path), error=str(exc))
            self._remove()
            return False
        log.info("reserve_created", path=str(self.path), bytes=self.size)
        return True

    def release(self) -> bool:
        """Give the reserve's blocks back to the filesystem; True if there was one to give."""
        if not self.path.exists():
            return False
        self._remove()
        log.warning("reserve_released", path=str(self.path), bytes=self.size)
        return True

    def _remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # a reserve we cannot remove is no reserve: say so
            log.error("reserve_remove_failed", path=str(self.path), error=str(exc))
