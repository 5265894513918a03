"""The state directory and its files are the hub's alone: 0700 and 0600, whatever the umask.

The outbox holds every event of the residence (who pressed, when the bed was
left): outside systemd (``UMask=0077``, ``StateDirectoryMode=0700``) a umask of
022 or 000 would leave it readable by every user of the Pi. :func:`private_dir`
and :func:`private_sqlite` set the modes themselves, and :func:`private_state`
mends an older installation's files at the next start.

A directory or file the hub cannot chmod (not its own, a read-only mount) is
logged (``state_not_private``) and left as it is: alarms matter more than the mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

__all__ = ["HUB_FILES", "private_dir", "private_file", "private_sqlite", "private_state"]

log = structlog.get_logger("hub.statedir")

#: The files the hub keeps in its state directory (the outbox with the rules' state, the alarms' reserve).
HUB_FILES = ("outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm", "outbox.sqlite3-journal", "reserve")


def _chmod(path: Path, mode: int) -> None:
    """``chmod`` unless the mode is right already; a refusal is logged, not raised."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except OSError as exc:
        log.warning("state_not_private", path=str(path), want=f"{mode:04o}", error=str(exc))


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing; make it 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing (never truncate); make it 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    _chmod(path, 0o600)


def private_sqlite(path: Path) -> None:
    """An SQLite database and its ``-wal`` and ``-shm`` files 0600, in a 0700 directory.

    SQLite creates a new database with mode 0644 less the umask, and gives its
    ``-wal`` and ``-shm`` files the database's mode: so the database is made
    0600 before SQLite opens it, and leftovers of an older run are mended.
    """
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _chmod(side, 0o600)


def private_state(path: Path) -> None:
    """The daemon's state directory at start: 0700, and the hub's files already in it 0600.

    Only the hub's own files (:data:`HUB_FILES`) are touched, whatever else an
    installer keeps there; the sockets are made 0600 as they are bound.
    """
    private_dir(path)
    for name in HUB_FILES:
        if (path / name).is_file():
            _chmod(path / name, 0o600)
