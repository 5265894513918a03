"""Ctrl-C and SIGTERM in the demo: one :class:`Stopped` in the main thread, never while a child is being recorded."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

#: exit status when a signal stopped the scripted part (the shell's 128 + signal number)
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(Exception):
    """Ctrl-C (SIGINT) or SIGTERM arrived while the demo ran."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Signals:
    """SIGINT and SIGTERM raise :class:`Stopped` in the main thread, once.

    Inside :meth:`held` (starting a process and writing it down) the
    exception waits until the block ends, so no child is ever started
    unrecorded. Signals after the first raise nothing: they only count, and
    the cleanup stops waiting politely once a second one came.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        self.count = 0
        self._held = 0
        self._pending = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.first is not None:
            return
        self.first = signum
        if self._held:
            self._pending = True
            return
        raise Stopped(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if self._pending and not self._held:
            self._pending = False
            assert self.first is not None
            raise Stopped(self.first)
