"""What the hub says about itself: the retained birth, the heartbeat and the ``status`` document.

The birth (``status``, retained) goes out on every (re)connect, so a broker
restart always gets a fresh one; the heartbeat every ``[mqtt] heartbeat_s``
while connected; ``cmd/status`` answers with the same document as the
heartbeat: outbox, link, forwarder, every device's health as its driver and
the telemetry limit see it, open alarms, the hub's own health and tasks, each
path out of the residence (``paths``: mqtt, gsm, interface) and the SMS fallback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from hub import __version__
from hub.events import rfc3339
from hub.link import LinkError

log = structlog.get_logger("hub.status")


class StatusReporter:
    """Builds the birth and status documents from the hub's parts; publishes birth and heartbeat."""

    def __init__(self, hub: Any, drivers: Callable[[], Sequence[Any]]) -> None:
        self.hub = hub
        self.drivers = drivers
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        #: births the broker acknowledged (PUBACK) since start: a pushed config's probation counts them
        self.births_acked = 0

    def birth(self) -> dict[str, Any]:
        """The retained ``status`` document published on every (re)connect."""
        cfg = self.hub.cfg
        return {
            "state": "online",
            "hub": cfg.hub.id,
            "version": __version__,
            "started": rfc3339(self.started_at),
            "config_sha256": self.hub.loaded.sha256,
            "devices": [{"id": d.id, "kind": d.kind, "room": d.room, "route": d.routing.value} for d in cfg.devices],
        }

    async def on_connected(self) -> None:
        """After every CONNACK: the birth, retained."""
        topic = f"{self.hub.base}/status"
        await self.hub.link.publish(topic, json.dumps(self.birth()).encode(), qos=1, retain=True)
        self.births_acked += 1
        log.info("birth_published", topic=topic)

    def devices(self) -> dict[str, Any]:
        """Every configured device, heard or not: its health as its driver knows it, when it was last
        heard from (``last_seen``, None: not since the hub started) and its telemetry limit's count."""
        health: dict[str, Any] = {}
        for driver in self.drivers():
            health.update(driver.health())
        flood = self.hub.emitter.flood
        for dev_id, dev in self.hub.devices.items():
            entry = health.get(dev_id) or {"kind": dev.kind, "state": "unknown"}
            seen = self.hub.sightings.get(dev_id)
            entry = {**entry, "last_seen": entry.get("last_seen") or (seen["last_seen"] if seen else None)}
            limited = flood.status(dev_id)
            if limited is not None:
                entry["telemetry"] = limited
            health[dev_id] = entry
        return health

    async def status(self) -> dict[str, Any]:
        """What ``status`` and the heartbeat report."""
        h = self.hub
        stats = await h.outbox.stats()
        return {
            "hub": h.cfg.hub.id,
            "ts": rfc3339(),
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
            "seq": stats.last_seq,
            "outbox": stats.as_dict(),
            "link": h.link.status(),
            "forwarder": h.forwarder.status(),
            "devices": self.devices(),
            "open_alarms": h.alarms.status(),
            "health": h.health.status(),
            "tasks": h.supervisor.status(),
            "commands": h.commands.status(),
            "alarm_counters": dict(h.alarms.counters),
            "paths": h.paths.status(),
            "fallback": h.fallback.status(),
        }

    async def heartbeat(self) -> None:
        """The heartbeat loop, for the daemon's lifetime (supervised); ``heartbeat_s`` is read anew each time."""
        link = self.hub.link
        while True:
            await link.online.wait()
            try:
                body = json.dumps(await self.status()).encode()
                await link.publish(f"{self.hub.base}/heartbeat", body, qos=0)
            except LinkError:
                pass
            await asyncio.sleep(self.hub.cfg.mqtt.heartbeat_s)
