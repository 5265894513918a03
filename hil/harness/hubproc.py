"""Run the real ``carehub`` daemon as a subprocess, the way systemd would.

:func:`hub_config` writes a residence config for a test broker;
:class:`HubProcess` starts ``python -m hub.cli run``, reads its JSON log lines,
and drives its simulated devices through the sim control socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.simctl import SimClient
from hil.harness.procstop import terminate

REPO = Path(__file__).resolve().parents[2]


def hub_config(
    dir: Path,  # noqa: A002
    *,
    port: int,
    hub_id: str = "test-hub",
    extra_mqtt: str = "",
    extra_store: str = "",
    extra: str = "",
    brokers: list[tuple[str, int]] | None = None,
    ack_timeout_s: float = 60.0,
    unack_repeat_s: float = 60.0,
    hold_s: float = 0.6,
    heartbeat_s: float = 60.0,
    devices: str | None = None,
    keepalive_s: int = 30,
) -> Path:
    """Write ``dir/hub.toml``: one alarm button with LED and buzzer, one pull-cord, on sim GPIO."""
    dir.mkdir(parents=True, exist_ok=True)
    brokers = brokers or [("127.0.0.1", port)]
    broker_tables = "\n".join(f'[[mqtt.broker]]\nhost = "{h}"\nport = {p}\n' for h, p in brokers)
    if devices is None:
        devices = gpio_devices(hold_s)
    if "[control]" not in extra:
        # said explicitly: a hub under test never takes /run/carehub/control.sock (the installed service's,
        # or the one another test's hub on the same machine would take too when /run/carehub exists)
        extra += '\n[control]\nsocket = "control.sock"\n'
    text = f"""
[hub]
id = "{hub_id}"
resident = "R-test-0001"

[mqtt]
heartbeat_s = {heartbeat_s}
keepalive_s = {keepalive_s}
backoff_initial_s = 0.2
backoff_max_s = 1.0
connect_timeout_s = 3
{extra_mqtt}
{broker_tables}

[store]
dir = "state"
{extra_store}

[log]
format = "json"
level = "info"

[gpio]
factory = "sim"

[alarm]
ack_timeout_s = {ack_timeout_s}
unack_repeat_s = {unack_repeat_s}
steady_s = 600
{extra}
{devices}
"""
    path = dir / "hub.toml"
    path.write_text(text)
    return path


def gpio_devices(hold_s: float = 0.6, *, button_route: str = "any") -> str:
    """The default devices: an alarm button with LED and buzzer (route ``button_route``), a pull-cord
    with an LED (route care), on sim GPIO."""
    return f"""
[[device]]
id = "button-1"
kind = "alarm_button"
room = "bedroom"
route = "{button_route}"
[device.gpio]
pin = 17
led_pin = 27
buzzer_pin = 22
hold_s = {hold_s}
bounce_s = 0

[[device]]
id = "cord-1"
kind = "pull_cord"
room = "bathroom"
route = "care"
[device.gpio]
pin = 23
led_pin = 24
bounce_s = 0
"""


class HubProcess:
    """A running ``carehub run`` subprocess with its log and sim socket."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, prefix: list[str] | None = None) -> None:
        self.config = config
        self.prefix = prefix or []
        self.dir = config.parent
        self.log_path = self.dir / "hub.log"
        self.sim_socket = self.dir / "state" / "sim.sock"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._sim: SimClient | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 15.0) -> HubProcess:
        """Start the daemon; by default wait for its ``hub_ready`` log line."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        if "NOTIFY_SOCKET" not in self.env:
            env.pop("NOTIFY_SOCKET", None)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "hub.cli", "run", "--config", str(self.config)],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.dir,
        )
        if wait_ready:
            self.wait_log(lambda e: e.get("event") == "hub_ready", timeout=timeout)
        return self

    def wait_online(self, timeout: float = 15.0) -> HubProcess:
        """Wait until the hub is connected, subscribed to its commands and has published its birth."""
        self.wait_log(lambda e: e.get("event") == "birth_published", timeout=timeout)
        return self

    # --- log -----------------------------------------------------------------------

    def log_lines(self, *, all_runs: bool = False) -> list[dict[str, Any]]:
        """Parsed JSON log lines of this run (or of every run of this config dir)."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            if not all_runs:
                f.seek(self._log_offset)
            out = []
            for line in f.read().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": "_raw", "line": line.decode(errors="replace")})
            return out

    def wait_log(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a log line matching ``predicate``; fail with the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.log_lines():
                if predicate(entry):
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching log line within {timeout}s; hub exit={self.returncode}\n{self.tail()}")

    def committed(self, *, all_runs: bool = False) -> list[dict[str, Any]]:
        """The ``event_committed`` log lines: every event the hub accepted."""
        return [e for e in self.log_lines(all_runs=all_runs) if e.get("event") == "event_committed"]

    def tail(self, n: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    # --- sim -------------------------------------------------------------------------

    @property
    def sim(self) -> SimClient:
        """A sim control client connected to this run."""
        if self._sim is None:
            self._sim = SimClient(self.sim_socket)
        return self._sim

    def press(self, device: str = "button-1", seconds: float = 0.05) -> dict[str, Any]:
        """A short press and release."""
        return self.sim.call({"op": "click", "device": device, "seconds": seconds})

    def state(self, device: str = "button-1") -> dict[str, Any]:
        return self.sim.call({"op": "state", "device": device})

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def _drop_sim(self) -> None:
        if self._sim is not None:
            try:
                self._sim.close()
            except OSError:
                pass
            self._sim = None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait, as systemd stops a service."""
        self._drop_sim()
        if self.proc is None or self.proc.poll() is not None:
            return self.returncode
        try:
            if not terminate(self.proc, timeout):
                raise AssertionError(f"hub did not stop within {timeout}s\n{self.tail()}")
            return self.proc.returncode
        finally:
            self._logf.close()

    def kill(self) -> None:
        """kill -9: no cleanup at all, like a power cut for the process.

        The process goes before the sim client is closed: a sim call another thread has waiting on
        a frozen hub (a press at a power cut) then ends at once with the connection, rather than
        holding the client's read lock, and with it this close, until its timeout."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self._logf.close()
        self._drop_sim()

    def __enter__(self) -> HubProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
