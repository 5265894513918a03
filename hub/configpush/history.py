"""The pushed configs the hub keeps in its state directory, durably: what is active, what is good, what happened.

``<store dir>/config/`` holds each pushed text as ``v<N>.toml`` and one
``history.json``; both are written whole to a temporary file, fsynced,
renamed over the old one and the directory fsynced, so a power cut leaves
either the old file or the new one, never half of either. A text is written
before the history names it.

The history says which version is active (None: the local file), which was
the last good one (None: the local file), whether the active one is on
probation (written *before* it is applied: a hub that finds it there at
start did not see it through, and rolls back), the local file's SHA-256 when
the active push was applied (an installer who edits the file afterwards
wins), the highest version ever applied (a push must be higher), reports
decided but not yet stored as events, and the last ``keep`` outcomes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import structlog

from hub.statedir import private_dir

log = structlog.get_logger("hub.configpush")

#: What became of a pushed version.
Outcome = Literal["probation", "good", "rolled_back", "refused", "superseded"]


class Entry(msgspec.Struct, kw_only=True):
    """One pushed version and what became of it."""

    version: int
    sha256: str
    state: Outcome
    at: str
    by: str = "central"
    reason: str | None = None


class Probation(msgspec.Struct, kw_only=True, frozen=True):
    """The active version is on probation since ``started`` (RFC 3339) for ``probation_s``."""

    version: int
    started: str
    probation_s: float


class Record(msgspec.Struct, kw_only=True):
    """The whole ``history.json``."""

    #: the active pushed version; None: the local file
    active: int | None = None
    #: the last version that passed probation; None: the local file
    last_good: int | None = None
    probation: Probation | None = None
    #: the local file's SHA-256 when ``active`` was applied
    local_sha256: str | None = None
    highest: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: events decided (a rollback at start) and not yet stored in the outbox: (type, data)
    unreported: list[tuple[str, dict[str, Any]]] = msgspec.field(default_factory=list)
    entries: list[Entry] = msgspec.field(default_factory=list)

    def entry(self, version: int | None) -> Entry | None:
        """The newest entry of ``version``."""
        for e in reversed(self.entries):
            if e.version == version:
                return e
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or what it held before, whatever happens: temp file, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class HistoryStore:
    """``<state dir>/config/``: the pushed texts and the history. Blocking file I/O: call from a thread
    on the loop's behalf, or before the loop starts."""

    def __init__(self, state_dir: Path, *, keep: int = 20) -> None:
        self.dir = state_dir / "config"
        self.path = self.dir / "history.json"
        self.keep = keep

    def text_path(self, version: int) -> Path:
        """Where version ``version``'s text is kept."""
        return self.dir / f"v{version}.toml"

    def read(self) -> Record:
        """The history; an empty one when there is none. A history that cannot be read is logged and kept
        aside (``history.json.bad``): the hub then starts on its local file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Record()
        try:
            return msgspec.json.decode(raw, type=Record)
        except msgspec.DecodeError as exc:
            log.error("config_history_unreadable", path=str(self.path), error=str(exc))
            os.replace(self.path, self.path.with_name("history.json.bad"))
            return Record()

    def write(self, record: Record) -> None:
        """Save ``record`` atomically; entries beyond ``keep`` and texts nothing names any more go."""
        private_dir(self.dir)
        if len(record.entries) > self.keep:  # the newest, and always the active and the last good one's
            keep = set(range(len(record.entries) - self.keep, len(record.entries)))
            for version in (record.active, record.last_good):
                found = [i for i, e in enumerate(record.entries) if e.version == version]
                keep.update(found[-1:])
            record.entries = [e for i, e in enumerate(record.entries) if i in keep]
        write_atomic(self.path, msgspec.json.encode(record))
        wanted = {e.version for e in record.entries} | {record.active, record.last_good}
        for f in self.dir.glob("v*.toml"):
            try:
                version = int(f.stem[1:])
            except ValueError:
                continue
            if version not in wanted:
                f.unlink(missing_ok=True)

    def save_text(self, version: int, text: str) -> None:
        """Keep version ``version``'s text (before the history names it)."""
        private_dir(self.dir)
        write_atomic(self.text_path(version), text.encode())

    def text(self, version: int) -> str | None:
        """Version ``version``'s text; None when it is not kept."""
        try:
            return self.text_path(version).read_text()
        except (OSError, UnicodeDecodeError):
            return None
