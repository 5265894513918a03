"""One fleet measurement: a private Mosquitto, the reference central, and the worker processes of sim hubs.

:class:`Session` starts the broker (configured as ``config/broker/mosquitto.conf`` is, less TLS and
passwords, on 127.0.0.1 and a free port) and ``carehub central --auto-ack --json`` on a SQLite file
(:class:`hil.harness.centralproc.CentralProcess`), and follows the central's feed
(:class:`~bench.fleet.feedwatch.FeedWatch`). :meth:`Session.phase` runs N hubs in P worker processes
(:mod:`bench.fleet.worker`) for S seconds against them, waits for the drain, checks the central's
store (:mod:`bench.fleet.verify`) and returns a :class:`Phase`. Several phases may share a session
(the bench's one-hub baseline, then the fleet); their hub ids differ by the phase's tag.
"""

from __future__ import annotations

import os
import queue
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from bench.common import cpu_s
from bench.fleet.feedwatch import FeedWatch
from bench.fleet.spec import AlarmRecord, HubReport, Profile, WorkerReport, WorkerSpec
from bench.fleet.verify import CentralCheck, check
from hil.harness.centralproc import CentralProcess
from hil.harness.hubproc import REPO
from hil.harness.mosquitto import Mosquitto

PREFIX = "carehub/v1"

#: The shipped broker config's limits and logging (config/broker/mosquitto.conf), plain on localhost.
BROKER_CONF = """\
persistence true
persistence_location {workdir}
autosave_interval 30
max_queued_messages 1000000
max_queued_bytes 536870912
queue_qos0_messages false
max_packet_size 262144
set_tcp_nodelay true
log_dest file {workdir}/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages false
allow_anonymous true
listener {port} {host}
"""

#: The central's feed queue, large enough that the --json printer is never dropped to a resync.
CENTRAL_CONF = "[central]\nfeed_queue = 100000\n"


@dataclass
class Phase:
    """One phase's raw results."""

    tag: str
    hubs: int
    processes: int
    seconds: float
    profile: Profile
    ran_s: float
    connect_s: float
    drained: bool
    reports: list[HubReport]
    alarms: list[AlarmRecord]
    #: episode id -> (wall time seen on the feed, the central's "received")
    feed: dict[str, tuple[float, float]]
    check: CentralCheck
    #: % of one core over the traffic and drain: the central, the broker, all workers together
    cpu: dict[str, float] = field(default_factory=dict)
    #: MB resident once the hubs drained (still connected): the central, the broker, all workers together
    rss_mb: dict[str, float] = field(default_factory=dict)
    outage_hubs: int = 0


class _Worker:
    """One worker process and a thread that reads its stdout lines into a queue."""

    def __init__(self, spec: WorkerSpec, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.fleet.worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, cwd=REPO, env=env)
        self.log = log
        self.lines: queue.Queue[bytes] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.send(msgspec.json.encode(spec).decode())

    def _read(self, out: IO[bytes]) -> None:
        for line in out:
            self.lines.put(line)
        self.lines.put(b"")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def expect(self, timeout: float) -> bytes:
        """Its next line; RuntimeError when it ended, said an error, or said nothing in time."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"worker {self.proc.pid}: nothing within {timeout:g} s; log {self.log}") from None
        if not line or line.startswith(b'{"error"'):
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"worker {self.proc.pid}: {line.decode(errors='replace') or 'ended'}\n{tail}")
        return line

    def end(self, timeout: float = 60.0) -> None:
        self.send("stop")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_s(p) or 0.0 for p in group) for name, group in pids.items()}


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Session:
    """A broker and a central for one or more phases. A context manager."""

    def __init__(self, *, keep: bool = False, quiet: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="carehub-fleet-"))
        self.keep = keep
        self.quiet = quiet
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the broker inherits it: a socket per hub
        self.broker = Mosquitto(workdir=self.dir / "broker", config=BROKER_CONF)
        self.central: CentralProcess | None = None
        self.feed: FeedWatch | None = None

    def __enter__(self) -> Session:
        self.broker.start()
        self.central = CentralProcess(self.dir / "central", port=self.broker.port, auto_ack=True,
                                      config=CENTRAL_CONF).start(timeout=60)
        self.feed = FeedWatch(self.central.changes_path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.feed is not None:
            self.feed.close()
        try:
            if self.central is not None:
                self.central.stop(timeout=30)
        finally:
            self.broker.stop()
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def phase(self, tag: str, n: int, *, processes: int, seconds: float, profile: Profile, seed: int = 1,
              drain_s: float = 30.0, verify_s: float = 60.0) -> Phase:
        """Run ``n`` hubs in ``processes`` workers for ``seconds`` and check what the central got."""
        assert self.central is not None and self.feed is not None and self.central.proc is not None
        hubs = [f"{tag}-{i:05d}" for i in range(n)]
        rng = random.Random(seed)
        k = max(1, round(n * profile.outage_fraction)) if n >= 10 and profile.outage_fraction > 0 else 0
        outage = set(rng.sample(hubs, k))
        p = max(1, min(processes, n))
        specs = [WorkerSpec(host=self.broker.host, port=self.broker.port, prefix=PREFIX, hubs=hubs[i::p],
                            outage_hubs=[h for h in hubs[i::p] if h in outage], profile=profile, seconds=seconds,
                            seed=seed * 1000 + i, drain_s=drain_s) for i in range(p)]
        self._log(f"[{tag}] {n} hubs in {p} processes: connecting")
        workers = [_Worker(s, self.dir / f"{tag}-worker{i}.log") for i, s in enumerate(specs)]
        try:
            ready = [msgspec.json.decode(w.expect(180)) for w in workers]
            connect_s = max(r["connect_s"] for r in ready)
            pids = {"central": [self.central.proc.pid], "broker": [self.broker.pid or 0],
                    "workers": [w.proc.pid for w in workers]}
            cpu0, t0 = _cpu(pids), time.monotonic()
            self._log(f"[{tag}] connected in {connect_s:.1f} s; traffic for {seconds:g} s")
            for w in workers:
                w.send("go")
            done = [msgspec.json.decode(w.expect(seconds + drain_s + 120), type=WorkerReport) for w in workers]
            cpu1, t1 = _cpu(pids), time.monotonic()
            rss = {name: round(sum(_rss_mb(p) for p in group), 1) for name, group in pids.items()}
            reports = [h for d in done for h in d.hubs]
            alarms = [a for d in done for a in d.alarms]
            self._log(f"[{tag}] drained: {all(d.drained for d in done)}; checking the central's store")
            result = check(self.central.changes_path.parent / "central.db", {h.hub: h.last_seq for h in reports},
                           [a.id for a in alarms], timeout=verify_s)
        finally:
            for w in workers:
                w.end()
        time.sleep(0.1)  # the feed thread reads the last lines
        feed = {a.id: self.feed.seen[a.id] for a in alarms if a.id in self.feed.seen}
        cpu = {name: round(100 * (cpu1[name] - cpu0[name]) / (t1 - t0), 1) for name in pids}
        return Phase(tag=tag, hubs=n, processes=p, seconds=seconds, profile=profile,
                     ran_s=max(d.ran_s for d in done), connect_s=connect_s, drained=all(d.drained for d in done),
                     reports=reports, alarms=alarms, feed=feed, check=result, cpu=cpu, rss_mb=rss, outage_hubs=k)
