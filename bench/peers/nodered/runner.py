"""Set up, start and stop Node-RED headless for the bench: its own userDir in a temp dir, a free port.

:func:`missing` says why Node-RED cannot run here (no node, no npm, node too old), or None.
:func:`ensure_installed` runs ``npm ci`` in this directory when ``node_modules`` is missing or older than
the lock. :class:`NodeRed` is one running instance: ``node red.js --settings settings.js --userDir DIR
--port PORT flow.json``, with the committed flow copied into ``DIR`` and the serial port, broker port,
hub id and resident handed over as environment variables (the flow reads ``${BEDMAT_PORT}`` and
``${MQTT_PORT}``, the function node ``env.get("HUB_ID")``). Its log is JSON lines (``settings.js``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hil.harness.mosquitto import free_port
from hil.harness.procstop import terminate

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
RED_JS = NODE_MODULES / "node-red" / "red.js"
LOCK = HERE / "package-lock.json"
MIN_NODE = (18, 5)


def missing() -> str | None:
    """Why Node-RED cannot be set up and run on this machine, or None when node and npm are there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return f"node-red needs node and npm on PATH (node: {node or 'missing'}, npm: {npm or 'missing'})"
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        version = tuple(int(p) for p in out.lstrip("v").split(".")[:2])
    except ValueError:
        return f"node --version said {out!r}"
    if version < MIN_NODE:
        return f"node-red 4 needs node >= {'.'.join(map(str, MIN_NODE))}, found {out}"
    return None


def installed() -> bool:
    """True when ``npm ci`` has run against the current lock (npm writes ``node_modules/.package-lock.json``)."""
    marker = NODE_MODULES / ".package-lock.json"
    return RED_JS.exists() and marker.exists() and marker.stat().st_mtime >= LOCK.stat().st_mtime


def ensure_installed(*, force: bool = False, quiet: bool = False) -> float:
    """``npm ci`` (exactly the lock) when not :func:`installed` or ``force``; returns the seconds it took."""
    if installed() and not force:
        return 0.0
    why = missing()
    if why:
        raise RuntimeError(why)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel", "error"],
        cwd=HERE,
        capture_output=quiet,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci failed in {HERE} (exit {proc.returncode})\n{proc.stderr or ''}")
    return time.monotonic() - t0


class NodeRed:
    """One Node-RED process with the bench flow; everything it writes lives in ``workdir``."""

    def __init__(self, workdir: Path, *, mqtt_port: int, serial_port: Path, hub_id: str, resident: str) -> None:
        self.workdir = Path(workdir)
        self.user_dir = self.workdir / "userdir"
        self.log_path = self.workdir / "node-red.log"
        self.out_path = self.workdir / "node-red.out"
        self.env = {
            "BEDMAT_PORT": str(serial_port),
            "MQTT_PORT": str(mqtt_port),
            "HUB_ID": hub_id,
            "RESIDENT": resident,
            "NR_BENCH_LOG": str(self.log_path),
        }
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The node process's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self, *, timeout: float = 60.0) -> NodeRed:
        """Start Node-RED; wait until its flows run, its broker is connected and the serial port is open."""
        if not RED_JS.exists():
            raise RuntimeError(f"{RED_JS} is missing: run the setup (python -m bench.nodered_vs_hub --setup)")
        self.user_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "flow.json", self.user_dir / "flow.json")
        self.port = free_port()
        env = {**os.environ, **self.env, "NODE_ENV": "production"}
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    shutil.which("node") or "node",
                    str(RED_JS),
                    "--settings", str(HERE / "settings.js"),
                    "--userDir", str(self.user_dir),
                    "--port", str(self.port),
                    "flow.json",
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C on the bench reaches it through stop(), once
            )
        self.wait_log(lambda e: e.get("msg") == "Started flows", timeout=timeout, what="flows started")
        self.wait_online(timeout=timeout)
        return self

    def wait_online(self, *, timeout: float = 30.0, after: int = 0) -> None:
        """Wait for the serial port's "opened" and the broker's "Connected" lines (from line ``after`` on)."""
        self.wait_log(lambda e: "opened at" in e.get("msg", ""), timeout=timeout, what="serial port open")
        self.wait_connected(timeout=timeout, after=after)

    def wait_connected(self, *, timeout: float = 30.0, after: int = 0) -> float:
        """Wait for a "Connected to broker" line past line ``after``; return when it was logged (epoch s)."""
        e = self.wait_log(
            lambda e: e.get("msg", "").startswith("Connected to broker"), timeout=timeout, what="broker", after=after
        )
        return _epoch(e["ts"])

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (settings.js writes them)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"level": "raw", "msg": line})
        return out

    def wait_log(
        self, pred: Callable[[dict[str, Any]], bool], *, timeout: float, what: str, after: int = 0
    ) -> dict[str, Any]:
        """The first log line past ``after`` matching ``pred``; raises with the log's tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.log_lines()[after:]:
                if pred(e):
                    return e
            if self.returncode is not None:
                raise RuntimeError(f"node-red exited ({self.returncode}) waiting for {what}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"node-red: no {what} within {timeout} s\n{self.tail()}")
            time.sleep(0.05)

    def problems(self) -> list[str]:
        """Warnings and errors it logged once its flows ran (a lost broker, a closed port, the flow's own);
        the start-up notices of this setup (projects off, credentials unencrypted) are not problems."""
        lines = self.log_lines()
        started = next((i for i, e in enumerate(lines) if e.get("msg") == "Started flows"), len(lines))
        return [f"{e.get('level')}: {e.get('name') or e.get('type') or ''} {e.get('msg')}".strip()
                for e in lines[started:] if e.get("level") in ("warn", "error", "fatal")]

    def tail(self, n: int = 30) -> str:
        lines = [json.dumps(e) for e in self.log_lines()[-n:]]
        if self.out_path.exists():
            lines += ["--- stdout/stderr ---", *self.out_path.read_text(errors="replace").splitlines()[-n:]]
        return "\n".join(lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (Node-RED closes its nodes and exits), SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        terminate(proc, timeout)
        return proc.returncode


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
