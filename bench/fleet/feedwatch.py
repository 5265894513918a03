"""When each alarm showed on the central's ``--json`` feed: the file it prints to, followed by a thread.

The central prints one JSON line per change and flushes it; an alarm's first line comes once it is
stored (the feed reads the store's journal after each batch). :class:`FeedWatch` polls the file every
``poll_s`` (2 ms: that is the resolution of the times it stamps) and keeps, per alarm episode, the
wall-clock time its first line was seen and the ``received`` time the central put in it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import msgspec


class _Alarm(msgspec.Struct):
    event_id: str
    received: str


class _Change(msgspec.Struct):
    kind: str
    alarm: _Alarm | None = None


_decode = msgspec.json.Decoder(_Change).decode


def epoch(ts: str) -> float:
    """An RFC 3339 UTC timestamp as Unix seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class FeedWatch:
    """Follows ``path`` from its current end in a thread until :meth:`close`."""

    def __init__(self, path: Path, *, poll_s: float = 0.002) -> None:
        self.path = path
        self.poll_s = poll_s
        #: episode id -> (wall time its first line was read, the central's ``received`` as Unix seconds)
        self.seen: dict[str, tuple[float, float]] = {}
        self.resyncs = 0
        self.lines = 0
        self._stop = threading.Event()
        self._offset = path.stat().st_size if path.exists() else 0
        self._thread = threading.Thread(target=self._run, name="feed-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rest = b""
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            while not self._stop.is_set():
                chunk = f.read()
                if not chunk:
                    time.sleep(self.poll_s)
                    continue
                now = time.time()
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    self._line(line, now)

    def _line(self, line: bytes, now: float) -> None:
        self.lines += 1
        if line.startswith(b'{"kind":"resync"'):
            self.resyncs += 1
        if not line.startswith(b'{"kind":"alarm"'):
            return
        try:
            change = _decode(line)
        except msgspec.DecodeError:
            return
        if change.alarm is not None and change.alarm.event_id not in self.seen:
            self.seen[change.alarm.event_id] = (now, epoch(change.alarm.received))

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(5)
