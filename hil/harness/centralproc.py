"""Run the reference alarm central (``carehub central``) as a subprocess, the way an operator would.

:class:`CentralProcess` starts ``python -m hub.cli central --json`` on a test broker with its
own directory: the changes it prints (one JSON object per line) go to ``changes.jsonl``, its
JSON log lines to ``central.log``; both are read back on demand::

    central = CentralProcess(tmp_path / "c1", port=broker.port, auto_ack=True).start()
    hub.press()
    alarm = central.wait_change(lambda c: c["kind"] == "alarm" and c["alarm"]["state"] == "open")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hil.harness.hubproc import REPO
from hil.harness.procstop import terminate

Predicate = Callable[[dict[str, Any]], bool]


class CentralProcess:
    """One ``carehub central`` instance: its database (``db``, default a SQLite file in ``dir``), its config
    (``config``: central.toml text, written to ``dir``), its instance name and its flags."""

    def __init__(self, dir: Path, *, port: int, instance: str = "c1", db: str | None = None,  # noqa: A002
                 config: str | None = None, auto_ack: bool = False, args: Sequence[str] = (),
                 host: str = "127.0.0.1") -> None:
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = db or str(self.dir / "central.db")
        self.instance = instance
        self.argv = ["--broker", f"{host}:{port}", "--db", self.db, "--instance", instance, "--json", *args]
        if auto_ack:
            self.argv.append("--auto-ack")
        if config is not None:
            path = self.dir / "central.toml"
            path.write_text(config)
            self.argv += ["--config", str(path)]
        self.log_path = self.dir / "central.log"
        self.changes_path = self.dir / "changes.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self._offsets = (0, 0)

    def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> CentralProcess:
        """Start it; by default wait for its ``central_ready`` log line (connected, subscriptions granted)."""
        self._offsets = tuple(p.stat().st_size if p.exists() else 0  # type: ignore[assignment]
                              for p in (self.log_path, self.changes_path))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log_path, "ab") as err, open(self.changes_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "central", *self.argv],
                                         stdout=out, stderr=err, env=env, cwd=self.dir)
        if wait_ready:
            self.wait_log(lambda e: e.get("event") == "central_ready", timeout=timeout)
        return self

    # --- reading --------------------------------------------------------------------------

    @staticmethod
    def _lines(path: Path, offset: int) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(offset)
            out = []
            for line in f.read().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": "_raw", "line": line.decode(errors="replace")})
            return out

    def log_lines(self) -> list[dict[str, Any]]:
        """This run's JSON log lines."""
        return self._lines(self.log_path, self._offsets[0])

    def changes(self) -> list[dict[str, Any]]:
        """This run's changes, as printed by ``--json``."""
        return [c for c in self._lines(self.changes_path, self._offsets[1]) if "kind" in c]

    def _wait(self, read: Callable[[], list[dict[str, Any]]], predicate: Predicate, timeout: float,
              what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in read():
                if predicate(item):
                    return item
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching {what} within {timeout}s; central exit={self.returncode}\n{self.tail()}")

    def wait_log(self, predicate: Predicate, *, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a log line matching ``predicate``; fail with the log's tail."""
        return self._wait(self.log_lines, predicate, timeout, "log line")

    def wait_change(self, predicate: Predicate, *, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a change matching ``predicate``; fail with the log's tail."""
        return self._wait(self.changes, predicate, timeout, "change")

    def events(self, name: str) -> list[dict[str, Any]]:
        """This run's log lines of one event name."""
        return [e for e in self.log_lines() if e.get("event") == name]

    def tail(self, n: int = 40) -> str:
        """The last lines of its log (all runs)."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """Its exit code, None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait, as systemd stops a service; its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.returncode
        if not terminate(self.proc, timeout):
            raise AssertionError(f"central did not stop within {timeout}s\n{self.tail()}")
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no clean stop at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
