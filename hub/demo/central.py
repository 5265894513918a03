"""The pretend alarm central: it subscribes to the hub's topics, prints what arrives, and sends commands."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.demo.common import DemoError, console


def _epoch(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Central:
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
