"""Tests marked ``alone`` run with no other test at the same time, also under pytest-xdist.

A test that measures latency against a budget (the acceptance set's press-to-central p99) or that
saturates the CPU on purpose (the full-speed serial storm) cannot share two cores with another
test: the budget would measure the neighbour, and the neighbour's own timing would suffer.

Every xdist worker of one run holds a lock file while it runs a test (setup, call, teardown):
shared for an ordinary test, exclusive for an ``alone`` one. A second file is the gate that keeps
the exclusive request from being starved: a worker wanting it closes the gate first (no new
shared holder gets in), then waits for the tests already running to end, and keeps the gate
closed while its test runs. flock locks belong to the open file, so a worker that dies lets go of
them with it. Without xdist nothing is locked.

A test whose quiet part ends before it does (the acceptance set: its latency scenario runs first,
the rest need no quiet machine) calls :meth:`Held.share` (the ``alone_done`` fixture): from then
on it holds the lock shared, and ordinary tests run beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

MARKER = "alone"
DESCRIPTION = f"{MARKER}: runs with no other test at the same time (a latency budget, or it loads the CPU on purpose)"


class RunLock:
    """The reader-writer lock of one test run, in ``dir`` (a directory every worker of the run shares)."""

    def __init__(self, dir: Path) -> None:  # noqa: A002
        self.main = dir / "carehub-alone.lock"
        self.gate = dir / "carehub-alone.gate"

    @contextmanager
    def hold(self, *, alone: bool) -> Iterator[Held]:
        """Hold the run's lock around one test: exclusively when ``alone``, else shared."""
        with open(self.gate, "a+") as gate, open(self.main, "a+") as main:
            if alone:
                fcntl.flock(gate, fcntl.LOCK_EX)  # no new test starts
                fcntl.flock(main, fcntl.LOCK_EX)  # the running ones have ended
            else:
                fcntl.flock(gate, fcntl.LOCK_SH)  # waits while an alone test is waiting or running
                fcntl.flock(main, fcntl.LOCK_SH)
                fcntl.flock(gate, fcntl.LOCK_UN)
            held = Held(gate, main, exclusive=alone)
            try:
                yield held
            finally:
                held.share()
                fcntl.flock(main, fcntl.LOCK_UN)


class Held:
    """One test's hold on the run's lock (exclusive while ``exclusive``)."""

    def __init__(self, gate: IO[str] | None = None, main: IO[str] | None = None, *, exclusive: bool = False) -> None:
        self._gate, self._main = gate, main
        self.exclusive = exclusive

    def share(self) -> None:
        """End the test's alone part: hold the lock shared, and open the gate to other tests.

        Safe while the gate is closed: every other worker waits at the gate, none on the lock itself,
        so none slips in while flock turns the exclusive lock into a shared one (not atomically)."""
        if not self.exclusive:
            return
        self.exclusive = False
        if self._main is not None and self._gate is not None:
            fcntl.flock(self._main, fcntl.LOCK_SH)
            fcntl.flock(self._gate, fcntl.LOCK_UN)


#: Where a running test finds its :class:`Held` (``item.stash[HELD]``).
HELD = pytest.StashKey[Held]()


def run_dir(config: pytest.Config) -> Path | None:
    """The directory every xdist worker of this run shares (the run's basetemp, parent of each
    worker's own, which xdist hands the worker as ``--basetemp``); None when not an xdist worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not config.option.basetemp:
        return None
    return Path(config.option.basetemp).parent
