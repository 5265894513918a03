"""Small pieces every benchmark uses: progress lines, clean interrupts, CPU time, log timestamps, a subscriber."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str, *, quiet: bool) -> None:
    """A progress line on stderr (stdout carries the figures)."""
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def raise_interrupt(signum: int, frame: Any) -> None:
    """Signal handler: turn SIGTERM/SIGINT into KeyboardInterrupt so cleanup runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def stop_hub(hub: Any) -> None:
    """Stop a benchmark's hub as systemd would (SIGTERM); if that fails, kill it, but always end it."""
    try:
        hub.stop()
    except Exception as exc:  # noqa: BLE001
        print(f"hub stop: {exc}", file=sys.stderr)
        hub.kill()


def iso_to_epoch(ts: str) -> float:
    """An RFC 3339 timestamp from the hub's log or events, as Unix seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads) in seconds, from /proc; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


class BenchSubscriber:
    """A paho-mqtt MQTT v5 subscriber (QoS 1) on its own network thread, ready when subscribed.

    Subclasses set up their state, then call ``super().__init__`` (messages may
    arrive at once), and override :meth:`on_message`, which runs on paho's thread.
    """

    def __init__(self, port: int, topics: Sequence[str], name: str, *, host: str = "127.0.0.1") -> None:
        self._ready = threading.Event()
        self._failed: str | None = None
        self.topics = list(topics)
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{name}-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda client, userdata, msg: self.on_message(msg)
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()
        if not self._ready.wait(10) or self._failed:
            self.close()
            raise RuntimeError(f"{name}: {self._failed or 'not connected/subscribed within 10 s'}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self._failed = f"CONNACK {rc}"
            self._ready.set()
        elif self.topics:
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])
        else:
            self._ready.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            self._failed = f"SUBACK {rcs}"
        self._ready.set()

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        """One message arrived (paho's thread)."""

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
