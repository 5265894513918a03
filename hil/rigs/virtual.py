"""The virtual rig: the real hub, broker and devices on this machine, driven from outside the hub.

Per scenario (:meth:`VirtualRig.setup`), in ``workdir``:

* the residence's own network (:class:`hil.harness.netns.ResidenceNet`): the hub
  runs in a network namespace joined to the host by a veth pair;
* its own Mosquitto (:class:`hil.harness.broker.Mosquitto`, with persistence) on
  the host end's address;
* the serial devices' emulators on ptys, the residence config
  (:mod:`hil.rigs.residence`) with the scenario's ``[hub.config]`` merged in;
* the state directory on a small ext4 disk on a loop device
  (:mod:`hil.rigs.powercut`) when the scenario cuts the power or fills the disk;
* the central (``make_central(host, port, hub_id, prefix)``), then the hub
  (``carehub run`` with ``[gpio] factory = "sim"`` and ``[ble] backend = "sim"``).

The faults: :mod:`hil.rigs.netfault` (cut, delay/jitter/loss without netem),
:mod:`hil.rigs.powercut` (power cut, full disk). The wall clock cannot be stepped
for the hub alone (that would step this machine's), so ``wall_clock`` is not a
fixture here. Several rigs may run at once: every name, address, port and path is their own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from hil.fixtures import FIXTURES, Central, RigError, RigKind, needed
from hil.harness import netns
from hil.harness.broker import LOCALHOST, Mosquitto
from hil.harness.hubproc import HubProcess
from hil.model import Scenario
from hil.rigs import powercut, pushcfg, rigfacts, tomlout
from hil.rigs.netfault import NetFaults
from hil.rigs.residence import merge, residence, set_dotted
from hil.rigs.simdevices import SimDevices
from hil.rigs.simline import SimLine
from hil.rigs.undo import Undo

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]
MakeCentral = Callable[[str, int, str, str], Central]
#: Where the hub says what it took: committed alarms, and alarms held in memory on a full disk.
TAKEN_LINES = frozenset({"event_committed", "event_held", "alarm_held_in_memory"})
_NO_CLOCK = "the hub's wall clock cannot be stepped without stepping this machine's (time namespaces do not shift CLOCK_REALTIME)"


class VirtualRig:
    """The :class:`hil.fixtures.Rig` of this machine. ``make_central`` builds the central recorder."""

    kind: RigKind = "virtual"

    def __init__(
        self, make_central: MakeCentral, *, name: str = "virtual", disk_mb: int = 24, hub_timeout_s: float = 30.0
    ) -> None:
        self.make_central = make_central
        self.name = name
        self.disk_mb = disk_mb
        self.hub_timeout_s = hub_timeout_s
        self.missing: dict[str, str] = {"wall_clock": _NO_CLOCK}
        if (why := netns.available() or _tun_missing()) is not None:
            self.missing |= {"net_cut": why, "net_impair": why}
        if (why := powercut.available()) is not None:
            self.missing |= {"power_cut": why, "disk_fill": why}
        self.fixtures: frozenset[str] = frozenset(FIXTURES) - set(self.missing)
        self._undo = Undo()
        self.line = SimLine()
        self._reset()

    def _reset(self) -> None:
        self.central: Central = None  # type: ignore[assignment]
        self.net: netns.ResidenceNet | None = None
        self.faults: NetFaults | None = None
        self.broker: Mosquitto | None = None
        self.devices: SimDevices | None = None
        self.disk: powercut.StateDisk | None = None
        self.hub: HubProcess | None = None
        self.doc: dict[str, Any] = {}
        self.config_text = ""
        self.workdir: Path | None = None
        self.push_key: Any = None
        self._checks = 0

    # --- setup and teardown -----------------------------------------------------------------

    def setup(self, scenario: Scenario, workdir: Path) -> None:
        """Build everything for ``scenario`` in ``workdir`` (see the module docstring); RigError if it cannot."""
        if len(self._undo):
            raise RigError("setup called twice without teardown")
        atexit.register(self.teardown)
        self._undo.push("atexit", lambda: atexit.unregister(self.teardown))
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        short = Path(tempfile.mkdtemp(prefix="hil-")) / "w"  # sockets need short paths (AF_UNIX: 107 bytes)
        short.symlink_to(workdir.resolve(), target_is_directory=True)
        self._undo.push("short path", lambda: shutil.rmtree(short.parent, ignore_errors=True))
        try:
            self._build(scenario, short)
        except BaseException as exc:
            failures = self.teardown_quietly()
            if isinstance(exc, RigError) or not isinstance(exc, Exception):
                raise
            raise RigError(f"setup failed: {type(exc).__name__}: {exc}" + "".join(f"\n  {f}" for f in failures)) from exc

    def _build(self, scenario: Scenario, workdir: Path) -> None:
        if "net_cut" in self.fixtures:
            self.net = netns.ResidenceNet.create()
            self._undo.push("network namespace", self.net.destroy)
            self.faults = NetFaults(self.net)
            self._undo.push("network wire", self.faults.close)
        host = self.net.broker_ip if self.net else LOCALHOST
        self.broker = Mosquitto(workdir=workdir / "broker", host=host)
        self.broker.start()
        self._undo.push("broker", self.broker.stop)
        self.doc = merge(residence(host, self.broker.port), scenario.hub.config)
        self.devices = SimDevices(self.doc, workdir / "devices", self._sim)
        self._undo.push("emulators", self.devices.stop)
        self.devices.start_emulators()
        hub_dir = workdir / "hub"
        hub_dir.mkdir(parents=True, exist_ok=True)
        state = Path(self.doc["store"]["dir"])
        state = state if state.is_absolute() else hub_dir / state
        _short_sockets(self.doc, state)
        if "config_push" in needed(scenario) & self.fixtures:
            self.push_key = pushcfg.provision(self.doc, hub_dir)
        self.config_text = tomlout.dumps(self.doc)
        config = hub_dir / "hub.toml"
        config.write_text(self.config_text)
        if {"power_cut", "disk_fill"} & needed(scenario) & self.fixtures:
            self.disk = powercut.StateDisk(state, size_mb=self.disk_mb)
            self._undo.push("state disk", self.disk.teardown)
            self.disk.create()
        self.hub = HubProcess(config, prefix=self.net.exec_prefix if self.net else None)
        self.hub.sim_socket = Path(self.doc["sim"]["socket"])
        self._undo.push("hub", self._stop_hub)
        hub_id, prefix = self.doc["hub"]["id"], self.doc["mqtt"].get("prefix", "carehub/v1")
        self.central = self.make_central(host, self.broker.port, hub_id, prefix)
        self._undo.push("central", getattr(self.central, "close", lambda: None))
        log.info("rig_ready", rig=self.name, workdir=str(workdir), broker=f"{host}:{self.broker.port}",
                 ns=self.net.ns if self.net else None, disk=self.disk.device if self.disk else None)  # fmt: skip
        if scenario.hub.start:
            self._start_hub()

    def teardown(self) -> None:
        """Undo everything setup and the steps did, even after a failure; again: a no-op.
        RigError (after undoing all it could) if something would not go."""
        failures = self.teardown_quietly()
        if failures:
            raise RigError("teardown left trouble: " + "; ".join(failures))

    def teardown_quietly(self) -> list[str]:
        """:meth:`teardown` returning the failures instead of raising."""
        failures = self._undo.run()
        self._reset()
        return failures

    # --- the hub ----------------------------------------------------------------------------

    def _need_hub(self) -> HubProcess:
        if self.hub is None:
            raise RigError("the rig is not set up")
        return self.hub

    def _start_hub(self) -> None:
        hub_ = self._need_hub()
        assert self.devices is not None
        # online when it can be: not while the broker is stopped or the link cut (then: ready)
        reachable = self.broker is not None and self.broker.running and not (self.faults and self.faults.cut_now)
        try:
            hub_.start(timeout=self.hub_timeout_s)
            if reachable:
                hub_.wait_online(timeout=self.hub_timeout_s)
        except AssertionError as exc:
            raise RigError(f"the hub did not come up: {exc}") from exc
        # the devices too: each plugged-in serial port open, the BLE scan running
        serial, ble = self.devices.serial_ids(), self.devices.ble_configured()
        deadline = time.monotonic() + self.hub_timeout_s
        while True:
            lines = hub_.log_lines()
            online = {e.get("device") for e in lines if e.get("event") == "serial_online"}
            scanning = not ble or any(e.get("event") == "ble_backend_started" for e in lines)
            modems = not self.devices.modems or any(e.get("event") == "path_up" for e in lines)
            if serial <= online and scanning and modems:
                return
            if hub_.returncode is not None or time.monotonic() > deadline:
                raise RigError(f"the hub's devices did not come up (serial waiting: {sorted(serial - online)}, "
                               f"BLE scanning: {scanning}); hub exit={hub_.returncode}\n{hub_.tail()}")  # fmt: skip
            time.sleep(0.05)

    def _stop_hub(self) -> None:
        if self.hub is None or self.hub.proc is None:
            return
        if self.hub.proc.poll() is None:
            os.kill(self.hub.proc.pid, signal.SIGCONT)  # a hub frozen by a power cut that went wrong
        try:
            self.hub.stop()
        except AssertionError:
            self.hub.kill()

    def _sim(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.line.call(self._need_hub(), req)

    def hub_kill(self, restart: bool) -> None:
        """kill -9; with ``restart``, start again and wait until online."""
        with self.line.down(self.hub):
            self._need_hub().kill()
            if restart:
                self._start_hub()

    def hub_start(self) -> None:
        if self._need_hub().returncode is None and self._need_hub().proc is not None:
            raise RigError("the hub is running already")
        with self.line.down(self.hub):
            self._start_hub()

    def power_cut(self, restart: bool) -> None:
        """Freeze the hub, keep what the disk held, kill it, boot from that disk (see :mod:`hil.rigs.powercut`)."""
        if self.disk is None:
            raise RigError("no state disk: power_cut was not among the scenario's needs at setup")
        hub_ = self._need_hub()

        def freeze() -> None:
            if hub_.proc is not None and hub_.proc.poll() is None:
                os.kill(hub_.proc.pid, signal.SIGSTOP)

        with self.line.down(self.hub):
            try:
                self.disk.power_cut(freeze, hub_.kill)
            except powercut.DiskError as exc:
                raise RigError(str(exc)) from exc
            if restart:
                self._start_hub()

    def taken(self) -> list[str]:
        """Ids of the alarm.* events the hub committed or held, from its log of every run since setup."""
        if self.hub is None:
            return []
        out: dict[str, None] = {}
        for e in self.hub.log_lines(all_runs=True):
            if e.get("event") in TAKEN_LINES and str(e.get("type", "")).startswith("alarm.") and e.get("event_id"):
                out[e["event_id"]] = None
        return list(out)

    def log_tail(self, lines: int = 60) -> str:
        return self.hub.tail(lines) if self.hub is not None else "(no hub)"

    # --- the resident and the devices ---------------------------------------------------

    def _dev(self) -> SimDevices:
        if self.devices is None:
            raise RigError("the rig is not set up")
        return self.devices

    def press(self, device: str, hold_s: float) -> float:
        return self._dev().press(device, hold_s)

    def hold(self, device: str) -> float:
        return self._dev().hold(device)

    def release(self, device: str) -> float:
        return self._dev().release(device)

    def feedback(self, device: str, output: str) -> str:
        return self._dev().feedback(device, output)

    def serial(self, device: str, send: str, args: dict[str, Any]) -> float:
        return self._dev().serial(device, send, args)

    def unplug(self, device: str) -> None:
        self._dev().unplug(device)

    def replug(self, device: str) -> None:
        self._dev().replug(device)

    def advertise(self, device: str, values: dict[str, Any], replay: bool) -> float:
        return self._dev().advertise(device, values, replay)

    def sms(self, device: str) -> dict[str, Any]:
        return self._dev().sms(device)

    def ble_fault(self, kind: str, times: int, running: bool) -> None:
        self._dev().ble_fault(kind, times, running)

    # --- the world ------------------------------------------------------------------------

    def clock_step(self, seconds: float) -> None:
        raise RigError(f"wall_clock: {_NO_CLOCK}")

    def broker_stop(self) -> None:
        self._need_broker().stop()

    def broker_start(self) -> None:
        try:
            self._need_broker().start()
        except RuntimeError as exc:
            raise RigError(f"the broker did not start again: {exc}") from exc

    def _need_broker(self) -> Mosquitto:
        if self.broker is None:
            raise RigError("the rig is not set up")
        return self.broker

    def _net(self) -> NetFaults:
        if self.faults is None:
            raise RigError(f"no residence network: {self.missing.get('net_cut', 'the rig is not set up')}")
        return self.faults

    def net_cut(self) -> None:
        self._net().cut()

    def net_impair(self, delay_ms: float, jitter_ms: float, loss_pct: float) -> None:
        try:
            self._net().impair(delay_ms, jitter_ms, loss_pct)
        except netns.NetnsError as exc:
            raise RigError(str(exc)) from exc

    def net_restore(self) -> None:
        self._net().restore()

    def _disk(self) -> powercut.StateDisk:
        if self.disk is None:
            raise RigError("no state disk: disk_fill was not among the scenario's needs at setup")
        return self.disk

    def disk_fill(self) -> None:
        self._disk().fill()

    def disk_free(self) -> None:
        self._disk().free()

    def check_config(self, set_: dict[str, Any], text: str) -> tuple[int, str]:
        """``carehub check-config`` on a copy of the rig's config with ``set_`` applied and ``text`` appended."""
        if self.workdir is None:
            raise RigError("the rig is not set up")
        doc = merge(self.doc, {})
        for key, value in set_.items():
            try:
                set_dotted(doc, key, value)
            except ValueError as exc:
                raise RigError(str(exc)) from exc
        self._checks += 1
        path = self.workdir / f"check-{self._checks}" / "hub.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomlout.dumps(doc) + (f"\n{text}\n" if text else ""))
        proc = subprocess.run(
            [sys.executable, "-m", "hub.cli", "check-config", str(path)],
            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
        )  # fmt: skip
        return proc.returncode, proc.stdout + proc.stderr

    def push_config(self, version: int, set_: dict[str, Any], unreachable: bool) -> dict[str, Any]:
        """The central pushes the rig's config so changed (:mod:`hil.rigs.pushcfg`); the hub's reply."""
        if self.push_key is None:
            raise RigError("no push key: push_config was not among the scenario's needs at setup")
        try:
            return pushcfg.push(self.doc, self.push_key, self._need_broker().host, self._need_broker().port,
                                version, set_, unreachable)
        except (pushcfg.RigPushError, TimeoutError, ConnectionError) as exc:
            raise RigError(f"push_config: {type(exc).__name__}: {exc}") from exc

    # --- the record ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The hub's version, the config's sha256, this machine, and how each fault is made."""
        return rigfacts.info(self)


def _tun_missing() -> str | None:
    return None if os.path.exists("/dev/net/tun") else "no /dev/net/tun for the impairment wire"


def _short_sockets(doc: dict[str, Any], state: Path) -> None:
    """Name the hub's sim and control sockets by absolute paths under ``state`` (on the rig's short path).

    The hub resolves a relative socket path against its config's real location, the rig's workdir
    itself, which can be too long for a socket (AF_UNIX: 107 bytes; a pytest-xdist worker's tmp_path
    with a scenario's name is). Naming the control socket also keeps the hub off a /run/carehub of
    the machine the rig runs on, where another rig's hub (or the installed service) has its own.
    """
    for table, default in (("sim", "sim.sock"), ("control", "control.sock")):
        section = doc.setdefault(table, {})
        path = Path(str(section.get("socket") or default))
        section["socket"] = str(path if path.is_absolute() else state / path)
