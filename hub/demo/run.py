"""``run_demo``: the broker, the hub and the central started in order, the script run, everything stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drivers.simctl import SimClient, SimCommandError
from hub import config as hubconfig
from hub.demo.central import DemoCentral, log_to
from hub.demo.common import DemoError, console
from hub.demo.procs import PIDFILE, clear_leftovers, die_with_parent, free_port, port_open, stop_child, write_pids
from hub.demo.script import heal_open_alarms, script
from hub.demo.signals import EXIT_ON_SIGNAL, Signals, Stopped


def run_demo(config_path: Path, *, keep_running: bool = False) -> int:
    """Run the demo; returns the exit code (see the :mod:`hub.demo` docstring)."""
    signals = Signals()
    signals.install()
    try:
        return _run(config_path, keep_running, signals)
    finally:
        signals.restore()


def _offline_seen(central: DemoCentral, timeout: float = 2.0) -> None:
    """Let the hub's clean offline status reach the central (and be shown) before the central stops."""
    central.hub = None  # it has exited: that is no reason to stop waiting
    with contextlib.suppress(TimeoutError, DemoError):
        central.tap.wait_status("offline", timeout)


def _run(config_path: Path, keep_running: bool, signals: Signals) -> int:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    central: DemoCentral | None = None
    workdir = Path(tempfile.mkdtemp(prefix="carehub-demo-"))
    demo_cfg: Path | None = None
    state_dir: Path | None = None
    code = 0
    try:
        loaded = hubconfig.load(config_path)
        cfg = loaded.config
        state_dir = loaded.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        clear_leftovers(state_dir, loaded.sim_socket)
        preexec = die_with_parent()
        broker = cfg.mqtt.broker[0]
        host, port = broker.host, broker.port
        if port_open(broker.host, broker.port):
            console.print(f"[bold]broker[/bold]  using the Mosquitto on {broker.host}:{broker.port}")
        else:
            mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            host, port = "127.0.0.1", free_port()
            conf = workdir / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            with signals.held():
                procs["broker"] = subprocess.Popen(
                    [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec
                )
                write_pids(state_dir, procs)
            for _ in range(100):
                if port_open(host, port):
                    break
                time.sleep(0.05)
            console.print(f"[bold]broker[/bold]  started a private Mosquitto on {host}:{port}")
            text = config_path.read_text().replace(f"port = {broker.port}", f"port = {port}")
            demo_cfg = config_path.parent / f".demo-{port}.toml"
            demo_cfg.write_text(text)
            config_path = demo_cfg
        launched = time.time()
        db, central_log = state_dir.parent / "demo-central.db", state_dir.parent / "demo-central.log"
        log_to(central_log)
        console.print(f"[bold]central[/bold] the reference alarm central, in this process "
                      f"(store: {db}, log: {central_log})")
        central = DemoCentral(host=host, port=port, prefix=cfg.mqtt.prefix, hub_id=cfg.hub.id, db=db, launched=launched)
        central.start()
        if central.web_url:
            console.print(f"[bold]console[/bold] the operator's web console: {central.web_url}")
        elif central.web_error:
            console.print(f"[bold]console[/bold] [yellow]no web console[/yellow]: {central.web_error}")
        log_path = state_dir.parent / "demo-hub.log"
        console.print(f"[bold]hub[/bold]     carehub run --config {config_path}  (log: {log_path})")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as logf, signals.held():
            procs["hub"] = hub = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "run", "--config", str(config_path)],
                stderr=logf,
                stdout=logf,
                env=env,
                preexec_fn=preexec,
            )
            write_pids(state_dir, procs)
        central.hub = hub
        central.tap.wait_started()
        view = central.wait_online()
        console.print(f"[bold]central[/bold]  sees {view.hub} {view.state} (supervision level {view.level_s:.0f} s)")
        heal_open_alarms(central)
        with SimClient(loaded.sim_socket) as sim:
            script(central, sim, cfg)
        if keep_running:
            try:  # the Ctrl-C may come as soon as the line is out, before print returns: inside the try
                web = f"; the operator's console is at {central.web_url}" if central.web_url else ""
                console.print(f"\nhub keeps running; press buttons with `carehub sim -c {loaded.path} click …`{web}; "
                              "Ctrl-C to stop")
                while hub.poll() is None:
                    time.sleep(0.2)
                # the hub ended: by itself, or the same Ctrl-C reached it first (it shares our process group)
                time.sleep(0.5)
            except Stopped:
                pass  # the way to end --keep-running
            else:
                # exit 0: the hub was stopped (our process group's Ctrl-C, or a SIGTERM), not a failure
                if signals.first is None and hub.returncode != 0:
                    raise DemoError(f"the hub exited with status {hub.returncode} (log: {log_path})")
        stop_child(hub, signals)
        _offline_seen(central)
        console.print("\n[bold green]demo done[/bold green]: press → central in milliseconds, ack → LED steady")
        code = 0
    except Stopped as stop:
        how = "Ctrl-C" if stop.signum == signal.SIGINT else signal.Signals(stop.signum).name
        console.print(f"\n[bold]demo stopped[/bold] ({how})")
        code = EXIT_ON_SIGNAL.get(stop.signum, 1)
    except (DemoError, TimeoutError, OSError, SimCommandError, hubconfig.ConfigError, hubconfig.ConfigUnreadable) as exc:
        console.print(f"[bold red]demo failed[/bold red]: {exc}")
        code = 1
    finally:
        if signals.first is None:
            signals.first = signal.SIGINT  # from here on a signal only hurries the cleanup, never raises
        hub_proc = procs.get("hub")
        if hub_proc is not None and hub_proc.poll() is None:
            console.print(f"  stopping the hub it started (pid {hub_proc.pid}) …")
            stop_child(hub_proc, signals)
            console.print(f"  hub stopped (exit status {hub_proc.returncode})")
            if central is not None:
                _offline_seen(central)
        if central is not None:
            central.close()  # before the broker: it leaves the broker cleanly
        if "broker" in procs:
            stop_child(procs["broker"], signals)
        if state_dir is not None and procs:
            with contextlib.suppress(OSError):
                (state_dir / PIDFILE).unlink()
        if demo_cfg is not None:
            with contextlib.suppress(OSError):
                demo_cfg.unlink()
        shutil.rmtree(workdir, ignore_errors=True)
    return code
