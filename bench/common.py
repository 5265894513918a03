"""Small pieces every benchmark uses: progress lines, clean interrupts, CPU time, log timestamps, a subscriber,
a raw sim-socket client and a pacer."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import eventbatch

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


def rss_mb(pid: int | None) -> float | None:
    """``VmRSS`` of a process in MB (10^6 bytes), from ``/proc/<pid>/status``; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_parts_mb(pid: int | None) -> dict[str, float] | None:
    """``RssAnon`` (what the process allocated), ``RssFile`` (its code and libraries, pages of files it
    mapped: read in on first use, dropped by the kernel under pressure) and ``RssShmem`` in MB, from
    ``/proc/<pid>/status``; None if it is gone."""
    if pid is None:
        return None
    parts: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("RssAnon", "RssFile", "RssShmem"):
                    parts[key[3:].lower()] = int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return parts


class Part(NamedTuple):
    """One event of a batch, handed to :meth:`BenchSubscriber.on_message` as if it had come alone."""

    topic: str
    payload: bytes


class BenchSubscriber:
    """A paho-mqtt MQTT v5 subscriber (QoS 1) on its own network thread, ready when subscribed.

    Subclasses set up their state, then call ``super().__init__`` (messages may
    arrive at once), and override :meth:`on_message`, which runs on paho's thread.
    A filter for a hub's events (``.../event/#``) brings its batches (``.../events``,
    contract 1.5) along: each event of a batch reaches :meth:`on_message` as a
    :class:`Part` on ``.../event/{type}``, as if it had come alone; :attr:`batches`
    counts the batches.
    """

    def __init__(self, port: int, topics: Sequence[str], name: str, *, host: str = "127.0.0.1") -> None:
        self._ready = threading.Event()
        self._failed: str | None = None
        self.topics = list(topics)
        self.topics += [f for f in {eventbatch.batch_filter(t) for t in topics} - {None} if f not in self.topics]
        self.batches = 0
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{name}-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda client, userdata, msg: self._deliver(msg)
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

    def _deliver(self, msg: mqtt.MQTTMessage) -> None:
        if eventbatch.is_batch_topic(msg.topic):
            try:
                parts = eventbatch.explode(msg.topic, msg.payload)
            except ValueError:
                parts = None  # no batch: as it came
            if parts is not None:
                self.batches += 1
                for topic, payload in parts:
                    self.on_message(Part(topic, payload))  # type: ignore[arg-type]
                return
        self.on_message(msg)

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        """One message arrived (paho's thread), or one event of a batch (a :class:`Part`)."""

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class RawSim:
    """The hub's sim socket with pre-serialized requests (the bench's own cost kept small)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rb")

    def call_raw(self, line: bytes) -> dict[str, Any]:
        """Send one JSON line (with its newline); return the reply, raising on ``ok: false``."""
        self.sock.sendall(line)
        reply = self.f.readline()
        if not reply:
            raise ConnectionError("sim socket closed")
        out = json.loads(reply)
        if not out.get("ok"):
            raise RuntimeError(f"sim request refused: {out.get('error')}")
        return out

    def close(self) -> None:
        self.f.close()
        self.sock.close()


class Pacer:
    """One slot every ``period_s`` against the clock (``time.perf_counter``), counting slots started late.

    :meth:`wait` sleeps until slot ``k`` is due (``t0 + k * period_s``) and
    counts it late if it starts more than one period after that; a late slot
    is not skipped, so a sender that falls behind catches up as fast as it can.
    """

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.t0 = time.perf_counter()
        self.k = 0
        self.late = 0

    def wait(self) -> None:
        due = self.t0 + self.k * self.period_s
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > self.period_s:
            self.late += 1
        self.k += 1

    def elapsed(self) -> float:
        """Seconds since the pacer started."""
        return time.perf_counter() - self.t0
