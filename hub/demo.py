"""``carehub demo``: a simulated residence, a broker, and a pretend alarm central.

Runs the hub on ``config/examples/demo.toml`` as a real subprocess against the
Mosquitto the config names (127.0.0.1:1883) when it answers, else against one
it starts on a free port. Then it plays the alarm central: it prints every
event as it arrives, presses the simulated alarm button, acknowledges the
alarm over ``cmd/ack`` as an operator would, and shows the button's LED go
from blinking to steady ("help is on its way").

Stopping and running again:

* Ctrl-C (SIGINT) or SIGTERM stops the demo at any point with one line and no
  traceback; it stops the hub (and the private broker) it started first. Exit
  status 130 (SIGINT) or 143 (SIGTERM) while the scripted part runs; 0 when
  ``--keep-running`` is ended that way, as it says to. 0 after the scripted
  part, 1 when it fails.
* The demo can be run again at once, whatever the last run left: a hub or
  broker of a demo that was killed (kill -9) is stopped first (they also get
  SIGTERM from the kernel when their demo dies, on Linux); alarms the hub
  re-opens from its state directory are acknowledged by the operator before
  the resident presses; events the hub re-sends from an earlier run are shown
  as such and never taken for this run's; a stale sim socket is replaced by the
  hub. A hub or demo that is really still running on the same state directory
  is reported, not fought with.
* The status the central receives is labelled: a retained one the broker kept
  from before this run as ``previous run (retained)``, one the hub publishes
  now (its birth, its clean offline) as ``live``. (MQTT sets the retain flag
  only on messages the broker replays to a new subscription.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console

from hub import config as hubconfig
from drivers.simctl import SimClient, SimCommandError, answers

console = Console(highlight=False, soft_wrap=True)

#: exit status when a signal stopped the scripted part (the shell's 128 + signal number)
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: the file in the hub's state directory naming the demo's processes, for the next run
PIDFILE = "demo.pid"
HUB_STOP_S = 15.0


class Stopped(Exception):
    """Ctrl-C (SIGINT) or SIGTERM arrived while the demo ran."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class DemoError(Exception):
    """The demo cannot go on (another hub on the state directory, the hub exited)."""


class _Signals:
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


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the demo dies (kill -9 too)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, ctypes.c_ulong(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the demo died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


# --- what an earlier run left ------------------------------------------------------------


def _cmdline(pid: int) -> list[str] | None:
    """A live process's arguments; None if it is gone, a zombie, or cannot be checked."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, IndexError):
        return None


def _is_hub(args: list[str]) -> bool:
    return "hub.cli" in args and "run" in args


def _is_demo(args: list[str]) -> bool:
    return "demo" in args and any(a.endswith(("hub.cli", "carehub")) for a in args)


def _is_broker(args: list[str]) -> bool:
    return bool(args) and os.path.basename(args[0]) == "mosquitto"


def _stop_pid(pid: int, what: str, is_it: Callable[[list[str]], bool]) -> None:
    """Stop a process an earlier demo left running, if ``pid`` is still that process."""
    args = _cmdline(pid)
    if args is None or not is_it(args):
        return
    console.print(f"[bold]cleanup[/bold] stopping the {what} an earlier demo left running (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a stopped process (kill -STOP, Ctrl-Z) handles the SIGTERM only when continued
    deadline = time.monotonic() + HUB_STOP_S
    while _cmdline(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if _cmdline(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _cmdline(pid) is not None and time.monotonic() < deadline + 5:
            time.sleep(0.05)


def _clear_leftovers(state_dir: Path, sim_socket: Path) -> None:
    """Stop what an earlier (killed) demo left running on ``state_dir``; raise if a live one still uses it."""
    pidfile = state_dir / PIDFILE
    try:
        pids = json.loads(pidfile.read_text())
    except (OSError, ValueError):
        pids = {}
    if not isinstance(pids, dict):
        pids = {}
    demo_pid = pids.get("demo")
    if isinstance(demo_pid, int) and demo_pid != os.getpid():
        args = _cmdline(demo_pid)
        if args is not None and _is_demo(args):
            raise DemoError(f"another carehub demo (pid {demo_pid}) is running on {state_dir}; stop it first")
    for key, what, is_it in (("hub", "hub", _is_hub), ("broker", "broker", _is_broker)):
        pid = pids.get(key)
        if isinstance(pid, int):
            _stop_pid(pid, what, is_it)
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    if answers(sim_socket):
        raise DemoError(f"a hub is already running on {state_dir} (its sim socket {sim_socket} answers); stop it first")


def _write_pids(state_dir: Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    body = {"demo": os.getpid(), **{k: p.pid for k, p in procs.items()}}
    tmp = state_dir / f".{PIDFILE}.tmp"
    tmp.write_text(json.dumps(body))
    tmp.replace(state_dir / PIDFILE)


# --- the pretend central ------------------------------------------------------------------


def _epoch(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Central:
    """A pretend alarm central: subscribes to the hub's topics and sends commands.

    Only events of this run count: everything up to this run's ``hub.started``
    (:attr:`floor`) is what the hub re-sent from an earlier run.
    """

    def __init__(self, host: str, port: int, base: str, *, launched: float) -> None:
        self.base = base
        self.launched = launched  # wall clock just before this run's hub was started
        self.events: list[dict[str, Any]] = []
        self.statuses: list[tuple[dict[str, Any], bool]] = []  # (body, live)
        self.replies: dict[bytes, dict[str, Any]] = {}
        self.floor: int | None = None
        self.hub: subprocess.Popen[bytes] | None = None
        self.cond = threading.Condition()
        self._subscribed = threading.Event()
        self.reply_topic = f"demo-central/{uuid.uuid4().hex[:8]}/reply"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe([(f"{base}/#", 1), (self.reply_topic, 1)])
        self.client.loop_start()
        # a retained message seen from here on was on the broker before this run's hub started
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError(f"the broker on {host}:{port} did not confirm the central's subscription")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        with self.cond:
            if msg.topic == self.reply_topic:
                self.replies[msg.properties.CorrelationData] = body
            elif "/event/" in msg.topic:
                self._event(body)
            elif msg.topic == f"{self.base}/status":
                live = not msg.retain
                self.statuses.append((body, live))
                label = "[green]live[/green]" if live else "[dim]previous run (retained)[/dim]"
                console.print(f"  [dim]central ←[/dim] [green]status[/green] {body.get('state')}  {label}")
            self.cond.notify_all()

    def _event(self, body: dict[str, Any]) -> None:
        t = _epoch(body.get("ts"))
        earlier = t is not None and t < self.launched
        if self.floor is None and body.get("type") == "hub.started" and not earlier:
            self.floor = int(body["seq"])
        self.events.append(body)
        colour = {"critical": "bold red", "high": "yellow"}.get(body.get("priority", ""), "cyan")
        cause = f" cause={body['cause'][:13]}…" if body.get("cause") else ""
        tag = "  [dim](earlier run)[/dim]" if earlier else ""
        console.print(
            f"  [dim]central ←[/dim] [{colour}]{body.get('type', '?'):<20}[/{colour}] seq={body.get('seq', '?'):<4} "
            f"id={str(body.get('id'))[:13]}… device={body.get('source', {}).get('device')} route={body.get('route')}"
            f"{cause}{tag}"
        )

    def _wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait for ``ready()`` to return something; fail at once if the hub exits."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = ready()
                if found:
                    return found
                if self.hub is not None and self.hub.poll() is not None:
                    raise DemoError(f"the hub exited with status {self.hub.returncode} while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout}s")
                self.cond.wait(min(remaining, 0.25))

    def wait_started(self, timeout: float = 20.0) -> dict[str, Any]:
        """This run's ``hub.started`` (not one the hub re-sends from an earlier run)."""

        def ready() -> dict[str, Any] | None:
            if self.floor is None:
                return None
            return next(e for e in self.events if e.get("type") == "hub.started" and e.get("seq") == self.floor)

        return self._wait(ready, timeout, "hub.started event")

    def wait_event(
        self, type_: str, *, device: str | None = None, cause: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The latest event of this run of ``type_`` (from ``device``, caused by ``cause``)."""

        def ready() -> dict[str, Any] | None:
            found = [
                e
                for e in self.events
                if e.get("type") == type_
                and self.floor is not None
                and int(e.get("seq", 0)) > self.floor
                and (device is None or e.get("source", {}).get("device") == device)
                and (cause is None or e.get("cause") == cause)
            ]
            return found[-1] if found else None

        return self._wait(ready, timeout, f"{type_} event")

    def wait_online(self, timeout: float = 20.0) -> None:
        """The hub's live birth: it is connected and subscribed to its commands."""
        self._wait(lambda: any(live and b.get("state") == "online" for b, live in self.statuses), timeout, "live online status")

    def command(self, name: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr
        self.client.publish(f"{self.base}/cmd/{name}", json.dumps(body), qos=1, properties=props)
        return self._wait(lambda: self.replies.get(corr), timeout, f"reply to {name}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _led(sim: SimClient, device: str) -> str:
    st = sim.call({"op": "state", "device": device})
    return f"LED {st['feedback']}"


def _stop_child(p: subprocess.Popen[bytes], signals: _Signals) -> None:
    """SIGTERM and wait; kill after :data:`HUB_STOP_S`, or at once after a second Ctrl-C."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    count = signals.count
    deadline = time.monotonic() + HUB_STOP_S
    while p.poll() is None:
        if time.monotonic() > deadline or signals.count > max(count, 1):
            p.kill()
            p.wait()
            break
        time.sleep(0.05)


def _heal_open_alarms(central: _Central) -> None:
    """Acknowledge, as an operator, the alarms the hub re-opened from an earlier run."""
    status = central.command("status", {})
    for alarm in status.get("open_alarms", []):
        console.print(
            f"\n[bold]central[/bold]  open alarm from an earlier run: {alarm['event_id'][:13]}… on {alarm['device']}; "
            "operator acknowledges it"
        )
        reply = central.command("ack", {"event_id": alarm["event_id"], "by": "operator-demo"})
        console.print(f"  hub replies {reply}")


def _script(central: _Central, sim: SimClient, cfg: Any) -> None:
    """The scripted part: press, alarm at the central, ack, LED steady; the pull-cord and its cancel."""
    button = next(d.id for d in cfg.devices if d.kind == "alarm_button")
    console.print(f"\n[bold]resident[/bold] presses {button}")
    t0 = time.perf_counter()
    sim.call({"op": "press", "device": button})
    alarm = central.wait_event("alarm.button", device=button)
    ms = 1000 * (time.perf_counter() - t0)
    sim.call({"op": "release", "device": button})
    console.print(f"  alarm at the central {ms:.1f} ms after the press; {_led(sim, button)}")
    time.sleep(1.0)
    console.print(f"\n[bold]central[/bold]  operator acknowledges {alarm['id'][:13]}… (cmd/ack)")
    reply = central.command("ack", {"event_id": alarm["id"], "by": "operator-demo"})
    console.print(f"  hub replies {reply}")
    central.wait_event("alarm.acknowledged", cause=alarm["id"])
    time.sleep(0.2)
    console.print(f"  {_led(sim, button)}: help is on its way")
    cord = next((d.id for d in cfg.devices if d.kind == "pull_cord"), None)
    if cord:
        console.print(f"\n[bold]resident[/bold] pulls {cord}, then holds it to cancel")
        sim.call({"op": "click", "device": cord})
        pulled = central.wait_event("alarm.button", device=cord)
        sim.call({"op": "hold", "device": cord, "seconds": 3.5})
        central.wait_event("alarm.cancelled", cause=pulled["id"])
    status = central.command("status", {})
    console.print(
        f"\n[bold]status[/bold]   seq={status['seq']} pending={status['outbox']['pending']} link={status['link']['state']}"
    )


def run_demo(config_path: Path, *, keep_running: bool = False) -> int:
    """Run the demo; returns the exit code (see the module docstring)."""
    signals = _Signals()
    signals.install()
    try:
        return _run(config_path, keep_running, signals)
    finally:
        signals.restore()


def _run(config_path: Path, keep_running: bool, signals: _Signals) -> int:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    central: _Central | None = None
    workdir = Path(tempfile.mkdtemp(prefix="carehub-demo-"))
    demo_cfg: Path | None = None
    state_dir: Path | None = None
    code = 0
    try:
        loaded = hubconfig.load(config_path)
        cfg = loaded.config
        state_dir = loaded.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(state_dir, loaded.sim_socket)
        preexec = _die_with_parent()
        broker = cfg.mqtt.broker[0]
        host, port = broker.host, broker.port
        if _port_open(broker.host, broker.port):
            console.print(f"[bold]broker[/bold]  using the Mosquitto on {broker.host}:{broker.port}")
        else:
            mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            host, port = "127.0.0.1", _free_port()
            conf = workdir / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            with signals.held():
                procs["broker"] = subprocess.Popen(
                    [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec
                )
                _write_pids(state_dir, procs)
            for _ in range(100):
                if _port_open(host, port):
                    break
                time.sleep(0.05)
            console.print(f"[bold]broker[/bold]  started a private Mosquitto on {host}:{port}")
            text = config_path.read_text().replace(f"port = {broker.port}", f"port = {port}")
            demo_cfg = config_path.parent / f".demo-{port}.toml"
            demo_cfg.write_text(text)
            config_path = demo_cfg
        base = f"{cfg.mqtt.prefix}/{cfg.hub.id}"
        launched = time.time()
        central = _Central(host, port, base, launched=launched)
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
            _write_pids(state_dir, procs)
        central.hub = hub
        central.wait_started()
        central.wait_online()
        _heal_open_alarms(central)
        with SimClient(loaded.sim_socket) as sim:
            _script(central, sim, cfg)
        if keep_running:
            console.print(f"\nhub keeps running; press buttons with `carehub sim {loaded.sim_socket} press …`; Ctrl-C to stop")
            try:
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
        _stop_child(hub, signals)
        time.sleep(0.3)  # its clean offline status reaches the central
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
            _stop_child(hub_proc, signals)
            console.print(f"  hub stopped (exit status {hub_proc.returncode})")
        if "broker" in procs:
            _stop_child(procs["broker"], signals)
        if central is not None:
            central.close()
        if state_dir is not None and procs:
            with contextlib.suppress(OSError):
                (state_dir / PIDFILE).unlink()
        if demo_cfg is not None:
            with contextlib.suppress(OSError):
                demo_cfg.unlink()
        shutil.rmtree(workdir, ignore_errors=True)
    return code
