
"""Resident memory: of a process, and of the baseline "a process that only imports the same dependencies".

The hub under measurement runs with ``PYTHONPROFILEIMPORTTIME=1``: every
module it imports, at start or later (drivers, backends, lazily imported
parts), is written to its stderr, which :class:`~hil.harness.hubproc.HubProcess`
keeps in its log. :func:`imported_modules` reads those names back, less the
project's own packages; :class:`ImportOnly` starts a Python process that
imports exactly those modules (the interpreter, the standard library parts,
paho, msgspec, structlog, SQLite, gpiozero, bleak ... whatever the hub
loaded) and nothing else, and reads its RSS. The hub's RSS over that one is
what the hub's own code and data cost.

RSS is ``VmRSS`` from ``/proc/<pid>/status`` (no psutil here), in MB (10^6 bytes).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from bench.common import rss_mb

#: the project's own packages: not "dependencies"
OWN = ("hub", "drivers", "central", "hil", "bench", "tests", "__main__")

IMPORT_ONLY = """
import gc, importlib, sys
failed = []
for name in sys.stdin.readline().split():
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(name)
gc.collect()
print(len(failed), " ".join(failed[:20]), flush=True)
sys.stdin.read()
"""




def imported_modules(log: Path) -> list[str]:
    """Every module named in ``import time:`` lines of ``log``, less the project's own, in first-seen order."""
    seen: dict[str, None] = {}
    with open(log, "rb") as f:
        for raw in f:
            if not raw.startswith(b"import time:"):
                continue
            name = raw.decode(errors="replace").rsplit("|", 1)[-1].strip()
            if not name or name == "imported package" or name.split(".")[0] in OWN:
                continue
            seen.setdefault(name)
    return list(seen)


class ImportOnly:
    """A Python process that imports ``modules`` and then waits: its RSS is the baseline."""

    def __init__(self, modules: Iterable[str]) -> None:
        self.modules = list(modules)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", IMPORT_ONLY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd="/",  # nothing of the project on its path
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(self.modules) + "\n")
        self.proc.stdin.flush()
        first = self.proc.stdout.readline().split(maxsplit=1)
        self.failed = int(first[0]) if first else -1
        self.failed_names = first[1].strip() if len(first) > 1 else ""

    def rss_mb(self, settle_s: float = 0.5) -> float | None:
        time.sleep(settle_s)
        return rss_mb(self.proc.pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
