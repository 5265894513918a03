"""A worker process of the fleet bench: its share of the simulated hubs, all on one asyncio loop.

``python -m bench.fleet.worker`` speaks JSON lines with the bench (:mod:`bench.fleet.session`):

1. in: the :class:`~bench.fleet.spec.WorkerSpec`;
2. out: ``{"ready": N, "connect_s": S}`` once every hub is connected with its birth published;
3. in: ``go``; each hub makes its traffic for ``seconds`` (heartbeats, telemetry, presses, the
   outages of the hubs chosen for one), then the worker waits until every event is PUBACKed and
   every alarm acked (at most ``drain_s``);
4. out: the :class:`~bench.fleet.spec.WorkerReport`; the hubs stay connected and keep answering
   (the central may still ask for a replay) and sending heartbeats;
5. in: ``stop``; every hub leaves cleanly (retained ``offline``/``stopped``), exit 0.

Each hub is one paho client driven from the loop by :class:`hub.link.MqttLink`: no thread per client.
"""

from __future__ import annotations

import asyncio
import random
import resource
import sys
import time
from typing import Any

import msgspec

from bench.fleet.simhub import SimHub
from bench.fleet.spec import WorkerReport, WorkerSpec


def _say(obj: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(obj) + b"\n")
    sys.stdout.flush()


async def _line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def _telemetry(hub: SimHub, rng: random.Random) -> None:
    n = 0
    while True:
        await asyncio.sleep(rng.expovariate(1 / hub.profile.telemetry_s))
        hub.telemetry(n)
        n += 1


async def _presses(hub: SimHub, rng: random.Random) -> None:
    while True:
        await asyncio.sleep(rng.expovariate(1 / hub.profile.alarm_s))
        device = hub.free_button()
        if device is not None:
            hub.press(device)


async def _outage(hub: SimHub, at: float, seconds: float) -> None:
    await asyncio.sleep(at)
    while hub.profile.outage_waits_for_ack and hub.open:
        await asyncio.sleep(0.01)
    await hub.outage(seconds)


async def connect(hubs: list[SimHub], timeout: float) -> float:
    """Start every hub's link (a little apart, so the broker's accept queue keeps up) and wait for all
    births; the seconds it took. TimeoutError when some never connected."""
    t0 = time.monotonic()
    for hub in hubs:
        hub.start()
        await asyncio.sleep(0.002)
    async with asyncio.timeout(timeout):
        while any(h.births == 0 for h in hubs):
            await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def traffic(spec: WorkerSpec, hubs: list[SimHub], rng: random.Random) -> float:
    """Heartbeats for good; telemetry, presses and the outages for ``spec.seconds``. The seconds it ran."""
    p = spec.profile
    outage_s = min(p.outage_s, spec.seconds * 0.3)
    chosen = set(spec.outage_hubs)
    running: list[asyncio.Task[None]] = []
    outages: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    for hub in hubs:
        r = random.Random(rng.random())
        hub.spawn(hub.heartbeats(first_in=r.uniform(0, p.heartbeat_s)))
        running += [asyncio.create_task(_telemetry(hub, r)), asyncio.create_task(_presses(hub, r))]
        if hub.id in chosen:
            outages.append(asyncio.create_task(_outage(hub, r.uniform(0.15, 0.45) * spec.seconds, outage_s)))
    await asyncio.sleep(spec.seconds)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await asyncio.gather(*outages)
    return time.monotonic() - t0


async def drain(hubs: list[SimHub], timeout: float) -> bool:
    """Wait until every event is PUBACKed and every alarm acked; False when ``timeout`` came first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(h.settled for h in hubs):
            return True
        await asyncio.sleep(0.1)
    return all(h.settled for h in hubs)


async def main_async(spec: WorkerSpec) -> int:
    """Run one worker's share (see the module docstring)."""
    hubs = [SimHub(h, host=spec.host, port=spec.port, prefix=spec.prefix, profile=spec.profile) for h in spec.hubs]
    rng = random.Random(spec.seed)
    try:
        connect_s = await connect(hubs, spec.connect_s)
    except TimeoutError:
        _say({"error": f"{sum(h.births == 0 for h in hubs)} of {len(hubs)} hubs not connected "
                       f"within {spec.connect_s:g} s"})
        return 1
    _say({"ready": len(hubs), "connect_s": round(connect_s, 3)})
    if await _line() != "go":
        return 1
    ran_s = await traffic(spec, hubs, rng)
    drained = await drain(hubs, spec.drain_s)
    reports = [h.report() for h in hubs]
    _say(WorkerReport(drained=drained, hubs=[r[0] for r in reports], alarms=[a for r in reports for a in r[1]],
                      ran_s=round(ran_s, 3)))
    await _line()  # "stop", or the bench's end of stdin
    await asyncio.gather(*(h.stop() for h in hubs), return_exceptions=True)
    return 0


def main() -> int:
    """Read the spec from stdin and run."""
    from hub import logs

    logs.configure("warning", "json")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = msgspec.json.decode(sys.stdin.readline(), type=WorkerSpec)
    return asyncio.run(main_async(spec))


if __name__ == "__main__":
    sys.exit(main())
