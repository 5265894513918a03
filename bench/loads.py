"""Background loads for ``bench.alarm_latency --load``: a serial storm, a BLE advert storm, a command flood.

Each load runs in a process of its own (:class:`LoadProcess`, multiprocessing
``spawn``), started once and then switched on and off for each phase over a
pipe: its work competes with the hub for the machine's cores as a real storm
would, but never for the bench process's GIL, so the subscriber that stamps an
alarm's arrival and the thread that presses the button are not slowed by the
load generator itself.

* ``serial`` -- :class:`tests.support.storm.SerialStorm` on the bed mat's pty:
  battery-flip ``$BED`` frames written as fast as the pty takes them, from a
  thread; the pty stays plugged between phases (the hub keeps its port open).
* ``ble`` -- the neighbourhood of :mod:`bench.ble_storm` (``noise_pool``,
  ``OurDevices``, ``AdvertMix``): ``rate`` adverts/s, 95 % strangers, in one
  ``ble_adverts`` sim request every ``batch_ms`` (default 2,000/s in batches
  of 50 every 25 ms), paced against the clock on one persistent connection.
* ``commands`` -- a paho client publishing malformed commands on the hub's
  ``cmd/*`` topics, QoS 1, ``rate`` messages/s in batches every ``batch_ms``:
  bad JSON, seqs past int64, an event id of 3,000 characters, a 20 kB
  payload, an unknown command name, wrong field types, with response topics
  that are wildcards, the hub's own command topic, a plain topic or none.
  Nothing in it is a valid command, so it never takes a token from the rate
  limit the central's own acks need.

:meth:`LoadProcess.stop` returns what the load achieved in the window since
:meth:`LoadProcess.start` (frames written, adverts sent, commands the broker
acknowledged, per second).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import random
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ble_storm import AdvertMix, OurDevices, adverts_request, noise_pool
from bench.common import Pacer, RawSim
from tests.support.commandflood import malformed_commands
from tests.support.storm import SerialStorm


class SerialLoad:
    """The bed mat gone mad: :class:`SerialStorm` on ``link`` (the pty is created here, before the hub opens it)."""

    def __init__(self, link: str) -> None:
        self.storm = SerialStorm(Path(link))
        self._b0 = 0
        self._t0 = 0.0

    def start(self) -> None:
        self._b0 = self.storm.bytes
        self._t0 = time.monotonic()
        self.storm.start()

    def stop(self) -> dict[str, Any]:
        self.storm.stop(unplug=False)
        wall = time.monotonic() - self._t0
        written = self.storm.bytes - self._b0
        frames = int(written * self.storm.frames_per_byte)
        return {"wall_s": wall, "bytes": written, "frames": frames, "frames_per_s": frames / wall}

    def close(self) -> None:
        self.storm.stop()


class BleLoad:
    """``rate`` adverts/s into the hub's sim socket, as :mod:`bench.ble_storm` sends them."""

    def __init__(self, sim_socket: str, rate: float = 2000.0, batch_ms: float = 25.0, noise_addresses: int = 400) -> None:
        self.batch_s = batch_ms / 1000
        self.per_batch = max(1, round(rate * self.batch_s))
        rng = random.Random(20240611)
        self.ours = OurDevices()
        self.mix = AdvertMix(noise_pool(noise_addresses, rng), self.ours, rng)
        self.sim = RawSim(Path(sim_socket))
        # one advert of each configured device, so their first readings are not in a phase
        self.sim.call_raw(adverts_request("ble_adverts", [self.ours.next() for _ in range(5)]))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {}
        self.error: str | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ble-storm", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pacer = Pacer(self.batch_s)
        adverts = delivered = batches = 0
        try:
            while not self._stop.is_set():
                pacer.wait()
                reply = self.sim.call_raw(adverts_request("ble_adverts", self.mix.batch(self.per_batch)))
                adverts += self.per_batch
                delivered += reply.get("delivered", 0)
                batches += 1
        except Exception as exc:  # noqa: BLE001 - reported with the phase's figures
            self.error = repr(exc)
        wall = pacer.elapsed()
        self._stats = {
            "wall_s": wall,
            "adverts": adverts,
            "adverts_per_s": adverts / wall if wall else 0.0,
            "batches": batches,
            "per_batch": self.per_batch,
            "late_batches": pacer.late,
            "delivered_to_scanner": delivered,
        }

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return {**self._stats, "error": self.error}

    def close(self) -> None:
        self._stop.set()
        self.sim.close()


class CommandFlood:
    """Malformed commands on ``{base}/cmd/*``, QoS 1, ``rate`` per second, from a thread."""

    def __init__(self, port: int, base: str, rate: float = 1000.0, batch_ms: float = 10.0) -> None:
        self.batch_s = batch_ms / 1000
        self.per_batch = max(1, round(rate * self.batch_s))
        self.messages = malformed_commands(base)
        self.acked = 0
        self._lock = threading.Lock()
        connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"bench-flood-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("command flood: not connected within 10 s")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats: dict[str, Any] = {}
        self.error: str | None = None

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            self.acked += 1

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="command-flood", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pacer = Pacer(self.batch_s)
        with self._lock:
            acked0 = self.acked
        sent = 0
        n = len(self.messages)
        try:
            while not self._stop.is_set():
                pacer.wait()
                for _ in range(self.per_batch):
                    topic, payload, props = self.messages[sent % n]
                    self.client.publish(topic, payload, qos=1, properties=props)
                    sent += 1
        except Exception as exc:  # noqa: BLE001 - reported with the phase's figures
            self.error = repr(exc)
        wall = pacer.elapsed()
        with self._lock:
            acked = self.acked - acked0
        self._stats = {
            "wall_s": wall,
            "sent": sent,
            "sent_per_s": sent / wall if wall else 0.0,
            "acked_by_broker": acked,
            "acked_per_s": acked / wall if wall else 0.0,
            "late_batches": pacer.late,
        }

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        deadline = time.monotonic() + 10  # the rest of the PUBACKs, so the next phase starts clean
        while self.client._out_messages and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.05)
        return {**self._stats, "unacked_at_stop": len(self.client._out_messages), "error": self.error}  # noqa: SLF001

    def close(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()


LOADS: dict[str, Any] = {"serial": SerialLoad, "ble": BleLoad, "commands": CommandFlood}


def _serve(kind: str, params: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    """The child process: build the load, then start/stop it on the parent's word until ``quit`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it tells us to quit
    try:
        load = LOADS[kind](**params)
    except Exception as exc:  # noqa: BLE001
        conn.send({"ok": False, "error": repr(exc)})
        return
    conn.send({"ok": True})
    try:
        while True:
            try:
                cmd = conn.recv()
            except EOFError:  # the bench is gone
                return
            if cmd == "quit":
                conn.send({"ok": True})
                return
            try:
                if cmd == "start":
                    load.start()
                    out: dict[str, Any] = {}
                elif cmd == "stop":
                    out = load.stop()
                else:
                    raise ValueError(f"unknown load command {cmd!r}")
                conn.send({"ok": True, **out})
            except Exception as exc:  # noqa: BLE001
                conn.send({"ok": False, "error": repr(exc)})
    finally:
        load.close()


class LoadProcess:
    """A load (``serial``, ``ble`` or ``commands``, with its keyword ``params``) in a child process."""

    def __init__(self, kind: str, **params: Any) -> None:
        if kind not in LOADS:
            raise ValueError(f"unknown load {kind!r}; have: {', '.join(LOADS)}")
        self.kind = kind
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(kind, params, child), name=f"bench-load-{kind}", daemon=True)
        self.proc.start()
        child.close()
        self._reply(timeout=30)

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def _reply(self, timeout: float) -> dict[str, Any]:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"load {self.kind}: no answer within {timeout} s")
        out = self._conn.recv()
        if not out.pop("ok"):
            raise RuntimeError(f"load {self.kind}: {out.get('error')}")
        return out

    def _call(self, cmd: str, timeout: float = 30.0) -> dict[str, Any]:
        self._conn.send(cmd)
        return self._reply(timeout)

    def start(self) -> None:
        """Switch the load on."""
        self._call("start")

    def stop(self) -> dict[str, Any]:
        """Switch it off; what it achieved since :meth:`start`."""
        return self._call("stop")

    def close(self) -> None:
        """End the child process (politely, then by force)."""
        try:
            if self.proc.is_alive():
                self._call("quit", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self._conn.close()
