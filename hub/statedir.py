"""The state directory and its files are the hub's alone: 0700 and 0600, whatever the umask.

The outbox holds every event of the residence (who pressed, when the bed was
left): outside systemd (``UMask=0077``, ``StateDirectoryMode=0700``) a umask of
022 or 000 would leave it readable by every user of the Pi. :func:`private_dir`
and :func:`private_sqlite` set the modes themselves, and mend an older
installation's on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_dir", "private_file", "private_sqlite", "private_state"]


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing; make it 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing (never truncate); make it 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


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
            os.chmod(side, 0o600)


def private_state(path: Path) -> None:
    """The daemon's state directory at start: 0700, and every file already in it 0600.

    Mends what an older run left with a looser umask (the sockets are made 0600 as they are
    bound; symbolic links are not followed).
    """
    private_dir(path)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, 0o600)
