"""The hub under test as the systemd service it is on a Pi (``systemd/carehub.service``).

For each scenario the rig writes the bench's config with the scenario's ``[hub.config]``
merged in (plus ``[log] format = "json"`` and ``[store] dir`` = the rig's state directory)
beside the bench's config as ``hub.hil.toml`` (so relative paths still resolve), and a
drop-in that points the unit at it::

    /run/systemd/system/carehub.service.d/hil.conf      (under /etc/... when power_cut is declared:
    [Service]                                             the drop-in must outlive the reboot)
    ExecStartPre=
    ExecStartPre=/opt/carehub/.venv/bin/carehub check-config /etc/carehub/hub.hil.toml
    ExecStart=
    ExecStart=/opt/carehub/.venv/bin/carehub run --config /etc/carehub/hub.hil.toml

then ``systemctl daemon-reload``. :meth:`HubService.restore` removes it again. The hub's
log is its JSON lines in the journal; the rig reads them after a cursor taken at setup,
so a stepped wall clock does not matter (``journalctl --after-cursor``).
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import structlog

from hil.fixtures import RigError
from hil.rigs import hostops
from hil.rigs.commands import CommandRunner
from hil.rigs.rigfile import Hub
from hil.rigs.tomlout import dumps, merge

log = structlog.get_logger("hil.rigs.hubservice")

#: The hub's log lines that mean an alarm was taken (stored, or held in memory on a full disk).
TAKEN_EVENTS = frozenset({"event_committed", "event_held"})


def safe_state_dir(path: str) -> PurePosixPath:
    """The rig's state directory, which it empties: absolute, at least three levels deep, no ``..``."""
    p = PurePosixPath(path)
    if not p.is_absolute() or len(p.parts) < 4 or ".." in p.parts:
        raise RigError(f"hub.state_dir = {path!r}: the rig empties it, so it must be absolute and at least "
                       "three levels deep (e.g. /var/lib/carehub/hil)")
    return p


class HubService:
    """Start, kill, watch and reconfigure the hub's systemd unit through a command runner."""

    def __init__(
        self, hub: Hub, runner: CommandRunner, *, persistent_dropin: bool = False,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.runner = runner
        self.sleep, self.clock = sleep, clock
        self.config_path = str(PurePosixPath(hub.config).with_name("hub.hil.toml"))
        base = "/etc/systemd/system" if persistent_dropin else "/run/systemd/system"
        self.dropin_dir = f"{base}/{hub.unit}.service.d"
        self.dropin = f"{self.dropin_dir}/hil.conf"
        self.config_sha256 = ""
        self.cursor: str | None = None

    # --- config ---------------------------------------------------------------------------

    def render(self, changes: dict[str, Any]) -> str:
        """The bench config with ``changes`` merged in and the rig's own settings on top."""
        text = self.runner.run(["cat", self.hub.config]).out
        try:
            base = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RigError(f"{self.hub.config}: {exc}") from None
        rig = {"log": {"format": "json"}, "store": {"dir": str(safe_state_dir(self.hub.state_dir))}}
        return dumps(merge(merge(base, changes), rig))

    def dropin_text(self) -> str:
        c = self.hub.carehub
        return (
            "# written by the carehub HIL rig (hil/rigs/hubservice.py); removed at the end of each scenario\n"
            "[Service]\nExecStartPre=\n"
            f"ExecStartPre={c} check-config {self.config_path}\n"
            "ExecStart=\n"
            f"ExecStart={c} run --config {self.config_path}\n"
        )

    def prepare(self, changes: dict[str, Any]) -> None:
        """Stop the hub, write the scenario's config and the drop-in, empty the state directory."""
        text = self.render(changes)
        self.config_sha256 = hashlib.sha256(text.encode()).hexdigest()
        self.stop()
        run = self.runner.run
        run(["install", "-m", "0640", "-g", self.hub.user, "/dev/null", self.config_path])
        run(["tee", self.config_path], input=text)
        run(["mkdir", "-p", self.dropin_dir])
        run(["tee", self.dropin], input=self.dropin_text())
        run(["systemctl", "daemon-reload"])
        run(["rm", "-rf", "--one-file-system", str(safe_state_dir(self.hub.state_dir))])
        self.cursor = hostops.parse_cursor(run(hostops.journal_cursor()).out)
        log.info("hub_prepared", config=self.config_path, sha256=self.config_sha256[:12])

    def restore(self) -> None:
        """Remove the drop-in and the scenario's config: the unit is the bench's own again."""
        self.runner.run(["rm", "-f", self.dropin, self.config_path], check=False)
        self.runner.run(["systemctl", "daemon-reload"], check=False)

    # --- the service ----------------------------------------------------------------------

    def state(self) -> tuple[str, str]:
        """The unit's (ActiveState, InvocationID)."""
        out = self.runner.run(hostops.unit_state(self.hub.unit)).out.splitlines()
        return (out[0] if out else "", out[1] if len(out) > 1 else "")

    def start(self, *, timeout_s: float | None = None) -> None:
        """``systemctl start`` (it returns once the hub sent READY=1), then wait until it is online."""
        after = hostops.parse_cursor(self.runner.run(hostops.journal_cursor()).out)
        started = self.runner.run(hostops.systemctl("start", self.hub.unit), timeout=self.hub.online_timeout_s,
                                  check=False)
        if started.code != 0:
            raise RigError(f"systemctl start {self.hub.unit} failed: {started.err.strip()}\n{self.log_tail(30)}")
        self.wait_online(after, timeout_s or self.hub.online_timeout_s)

    def wait_online(self, after: str | None, timeout_s: float) -> None:
        """Wait for the hub's ``birth_published`` log line after cursor ``after``."""
        deadline = self.clock() + timeout_s
        while True:
            lines, _ = hostops.parse_hub_log(self.runner.run(hostops.journal_after(self.hub.unit, after)).out)
            if any(e.get("event") == "birth_published" for e in lines):
                return
            if self.clock() >= deadline:
                raise RigError(f"the hub did not come online within {timeout_s:g} s "
                               f"(unit {self.state()[0] or 'unknown'}):\n{self.log_tail(30)}")
            self.sleep(0.2)

    def kill(self) -> None:
        """kill -9 the hub, wait until systemd has seen it die, and cancel its automatic restart
        (``Restart=always``): the scenario says when it comes back."""
        self.runner.run(hostops.hub_kill(self.hub.unit))
        deadline = self.clock() + 10
        while self.state()[0] == "active":
            if self.clock() >= deadline:
                raise RigError(f"{self.hub.unit} still active 10 s after SIGKILL")
            self.sleep(0.05)
        self.runner.run(hostops.systemctl("stop", self.hub.unit), check=False)
        log.info("hub_killed", unit=self.hub.unit)

    def stop(self) -> None:
        self.runner.run(hostops.systemctl("stop", self.hub.unit), timeout=60, check=False)

    # --- what it logged -----------------------------------------------------------------------

    def log_lines(self) -> list[dict[str, Any]]:
        """The hub's JSON log lines since :meth:`prepare`, across restarts (and reboots: persistent journal)."""
        out = self.runner.run(hostops.journal_after(self.hub.unit, self.cursor), timeout=60).out
        return hostops.parse_hub_log(out)[0]

    def taken(self) -> list[str]:
        """Ids of the alarms the hub stored or held since :meth:`prepare`, first seen first."""
        ids: dict[str, None] = {}
        for e in self.log_lines():
            if e.get("event") in TAKEN_EVENTS and str(e.get("type", "")).startswith("alarm.") and e.get("event_id"):
                ids.setdefault(str(e["event_id"]), None)
        return list(ids)

    def log_tail(self, lines: int = 60) -> str:
        argv = ["journalctl", "-u", self.hub.unit, "-n", str(lines), "-o", "cat", "--no-pager", "-q"]
        return self.runner.run(argv, check=False).out

    def version(self) -> str:
        out = self.runner.run([self.hub.carehub, "--version"], check=False).out.strip()
        return out.removeprefix("carehub ").strip() or "unknown"
