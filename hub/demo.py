"""``carehub demo``: a simulated residence, a broker, and a pretend alarm central.

Runs the hub on ``config/examples/demo.toml`` as a real subprocess against the
Mosquitto on 127.0.0.1:1883 when it answers, else against one it starts on a
free port. Then it plays the alarm central: it prints every event as it
arrives, presses the simulated alarm button, acknowledges the alarm over
``cmd/ack`` as an operator would, and shows the button's LED go from blinking
to steady ("help is on its way").
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console

from hub import config as hubconfig
from hub.simctl import SimClient

console = Console(highlight=False, soft_wrap=True)


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


class _Central:
    """A pretend alarm central: subscribes to the hub's topics and sends commands."""

    def __init__(self, port: int, base: str) -> None:
        self.base = base
        self.events: list[dict[str, Any]] = []
        self.replies: dict[bytes, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.reply_topic = f"demo-central/{uuid.uuid4().hex[:8]}/reply"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"{base}/#", 1), (self.reply_topic, 1)])
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.cond:
            if msg.topic == self.reply_topic:
                self.replies[msg.properties.CorrelationData] = body
            elif "/event/" in msg.topic:
                self.events.append(body)
                colour = {"critical": "bold red", "high": "yellow"}.get(body["priority"], "cyan")
                cause = f" cause={body['cause'][:13]}…" if body.get("cause") else ""
                console.print(
                    f"  [dim]central ←[/dim] [{colour}]{body['type']:<20}[/{colour}] seq={body['seq']:<4} "
                    f"id={body['id'][:13]}… device={body['source']['device']} route={body['route']}{cause}"
                )
            elif msg.topic == f"{self.base}/status":
                console.print(f"  [dim]central ←[/dim] [green]status[/green] {body.get('state')} (retained={msg.retain})")
            self.cond.notify_all()

    def wait_event(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(e["type"] == type_ for e in self.events), timeout)
            if not ok:
                raise TimeoutError(f"no {type_} event within {timeout}s")
            return [e for e in self.events if e["type"] == type_][-1]

    def command(self, name: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr
        self.client.publish(f"{self.base}/cmd/{name}", json.dumps(body), qos=1, properties=props)
        with self.cond:
            if not self.cond.wait_for(lambda: corr in self.replies, timeout):
                raise TimeoutError(f"no reply to {name}")
            return self.replies[corr]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _led(sim: SimClient, device: str) -> str:
    st = sim.call({"op": "state", "device": device})
    return f"LED {st['feedback']}"


def run_demo(config_path: Path, *, keep_running: bool = False) -> int:
    """Run the demo; returns the exit code."""
    loaded = hubconfig.load(config_path)
    cfg = loaded.config
    procs: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="carehub-demo-"))
    try:
        broker = cfg.mqtt.broker[0]
        port = broker.port
        if _port_open(broker.host, broker.port):
            console.print(f"[bold]broker[/bold]  using the Mosquitto on {broker.host}:{broker.port}")
        else:
            mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            port = _free_port()
            conf = workdir / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            procs.append(subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(100):
                if _port_open("127.0.0.1", port):
                    break
                time.sleep(0.05)
            console.print(f"[bold]broker[/bold]  started a private Mosquitto on 127.0.0.1:{port}")
            text = config_path.read_text().replace(f"port = {broker.port}", f"port = {port}")
            demo_cfg = config_path.parent / f".demo-{port}.toml"
            demo_cfg.write_text(text)
            config_path = demo_cfg
        base = f"{cfg.mqtt.prefix}/{cfg.hub.id}"
        central = _Central(port, base)
        log_path = loaded.state_dir.parent / "demo-hub.log"
        loaded.state_dir.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]hub[/bold]     carehub run --config {config_path}  (log: {log_path})")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as logf:
            hub = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "run", "--config", str(config_path)], stderr=logf, stdout=logf, env=env
            )
        procs.append(hub)
        central.wait_event("hub.started", timeout=20)
        sock = loaded.sim_socket
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        sim = SimClient(sock)
        button = next(d.id for d in cfg.devices if d.kind == "alarm_button")
        console.print(f"\n[bold]resident[/bold] presses {button}")
        t0 = time.perf_counter()
        sim.call({"op": "press", "device": button})
        alarm = central.wait_event("alarm.button")
        ms = 1000 * (time.perf_counter() - t0)
        sim.call({"op": "release", "device": button})
        console.print(f"  alarm at the central {ms:.1f} ms after the press; {_led(sim, button)}")
        time.sleep(1.0)
        console.print(f"\n[bold]central[/bold]  operator acknowledges {alarm['id'][:13]}… (cmd/ack)")
        reply = central.command("ack", {"event_id": alarm["id"], "by": "operator-demo"})
        console.print(f"  hub replies {reply}")
        central.wait_event("alarm.acknowledged")
        time.sleep(0.2)
        console.print(f"  {_led(sim, button)}: help is on its way")
        cord = next((d.id for d in cfg.devices if d.kind == "pull_cord"), None)
        if cord:
            console.print(f"\n[bold]resident[/bold] pulls {cord}, then holds it to cancel")
            sim.call({"op": "click", "device": cord})
            central.wait_event("alarm.button")
            sim.call({"op": "hold", "device": cord, "seconds": 3.5})
            central.wait_event("alarm.cancelled")
        status = central.command("status", {})
        console.print(
            f"\n[bold]status[/bold]   seq={status['seq']} pending={status['outbox']['pending']} link={status['link']['state']}"
        )
        sim.close()
        if keep_running:
            console.print("\nhub keeps running; press buttons with `carehub sim` … Ctrl-C to stop")
            hub.wait()
        hub.send_signal(signal.SIGTERM)
        hub.wait(15)
        time.sleep(0.3)
        central.close()
        console.print("\n[bold green]demo done[/bold green]: press → central in milliseconds, ack → LED steady")
        return 0
    except (TimeoutError, OSError) as exc:
        console.print(f"[bold red]demo failed[/bold red]: {exc}")
        return 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for f in config_path.parent.glob(".demo-*.toml"):
            f.unlink()
        shutil.rmtree(workdir, ignore_errors=True)
