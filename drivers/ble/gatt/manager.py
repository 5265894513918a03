"""The GATT manager: configured devices kept connected, battery polled, notifications turned into events.

:class:`GattManager` keeps every :class:`~drivers.ble.gatt.GattDevice` connected:

- at most ``max_connections`` devices are connected *or connecting* at
  once (a semaphore held from the start of a connection attempt until the
  disconnect; BlueZ adapters handle only a few connections, and parallel
  connection attempts on one adapter fail with ``InProgress``); devices
  beyond the limit wait for a slot (state ``waiting``);
- a failed attempt or a lost connection is retried after a jittered,
  exponentially growing, capped delay (the slot is released meanwhile);
- the first failure of an outage emits ``device.offline`` (HIGH; data:
  reason, address) -- once, however many retries fail after it; the next
  successful connection emits ``device.online`` (NORMAL; data: offline_s,
  address). A device that was never connected and fails its first attempt
  is offline too;
- while connected, Battery Level (0x2A19, Battery Service 0x180F) is read
  right away and then every ``battery_interval_s``; each reading goes to
  ``on_battery(device_id, pct)`` (the daemon passes it to the supervision
  rule, which owns ``device.battery_low``) and into :meth:`GattManager.health`;
- configured notifications are subscribed at every connection and emitted
  as ``Emit(mapping.event_type, mapping.priority, {mapping.key: value,
  "raw": hex})``. A payload that does not decode is counted and logged
  (rate-limited), never raised;
- every notification that decodes calls ``on_heard(device_id)`` first (the
  daemon's supervision report: the device itself spoke); a battery read is
  heard through ``on_battery``.

Events go out in order through one emitter task, as ``await emit(device_id,
Emit)`` (the manager serves many devices, so the caller learns which one;
the daemon adds source and route from its device config).

Run it as a task (``run()``) until :meth:`GattManager.stop` or cancellation;
every connection is closed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from drivers.base import Emit
from drivers.ble.backend import short_uuid
from drivers.ble.gatt.client import BATTERY_LEVEL_UUID, GattClient, GattError
from drivers.ble.gatt.device import DeviceState, GattDevice, stopped_health
from drivers.ble.gatt.notify import DecodeError, NotifyMapping
from drivers.helpers import TaskSet, backoff_delay
from hub.events import Priority

log = structlog.get_logger("drivers.ble.gatt")

#: Decode errors / callback errors are logged at most once per this many seconds per device.
ERROR_LOG_INTERVAL_S = 5.0
#: Events waiting for the hub at most; beyond, notifications are dropped and counted.
MAX_QUEUED = 1000

EmitFn = Callable[[str, Emit], Awaitable[Any]]
BatteryFn = Callable[[str, int], Any]


class GattManager:
    """Keep configured GATT devices connected; poll battery; map notifications to events."""

    def __init__(
        self,
        devices: Iterable[GattDevice],
        client_factory: Callable[[str], GattClient],
        emit: EmitFn | None = None,
        *,
        on_battery: BatteryFn | None = None,
        on_heard: Callable[[str], None] | None = None,
        max_connections: int = 2,
        connect_timeout_s: float = 20.0,
        disconnect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        backoff_initial_s: float = 2.0,
        backoff_max_s: float = 300.0,
        backoff_jitter: float = 0.5,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.devices = list(devices)
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate GATT device id")
        self.client_factory = client_factory
        self.emit = emit
        self.on_battery = on_battery
        self.on_heard = on_heard
        self.dropped = 0  # events dropped because the hub did not keep up
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.disconnect_timeout_s = disconnect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_jitter = backoff_jitter
        self.stop_timeout_s = stop_timeout_s
        self.clock = clock
        self.rng = rng

        self._states: dict[str, DeviceState] = {}
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._sem: asyncio.Semaphore | None = None
        self._queue: asyncio.Queue[tuple[str, Emit]] | None = None
        self._tasks = TaskSet()

    # --- status -------------------------------------------------------------------------

    def health(self) -> dict[str, dict[str, Any]]:
        """Per device id: state and counters, for the heartbeat and ``status``."""
        now = self.clock()
        out: dict[str, dict[str, Any]] = {}
        for dev in self.devices:
            st = self._states.get(dev.device_id)
            out[dev.device_id] = stopped_health(dev) if st is None else st.health(now)
        return out

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep every device connected until :meth:`stop` or cancellation."""
        self._wake = asyncio.Event()
        if self._stopping:
            self._wake.set()
        self._sem = asyncio.Semaphore(self.max_connections)
        self._queue = asyncio.Queue(MAX_QUEUED)
        self._states = {d.device_id: DeviceState(d) for d in self.devices}
        emitter = self._tasks.spawn(self._emit_loop(), "gatt-emitter")
        workers = [self._tasks.spawn(self._device_loop(st), f"gatt-{st.dev.device_id}") for st in self._states.values()]
        cancelled = False
        try:
            await self._wake.wait()  # set by stop(); the workers then stop wherever they are
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            for w in workers:  # each closes its connection on the way out
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for st in self._states.values():  # a worker cancelled before its first step
                await self._disconnect(st)
            if not cancelled:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.stop_timeout_s):
                        await self._queue.join()
            tasks = [emitter, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for st in self._states.values():
                st.state = "stopped"

    def stop(self) -> None:
        """Make :meth:`run` end every connection and attempt, and return (pending events are still emitted)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        for st in self._states.values():
            st.lost.set()

    # --- one device ---------------------------------------------------------------------

    async def _device_loop(self, st: DeviceState) -> None:
        assert self._sem is not None
        while not self._stopping:
            reason: str | None = None
            st.state = "waiting" if not st.reported_offline else "offline"
            async with self._sem:
                if self._stopping:
                    break
                if not st.reported_offline:
                    st.state = "connecting"
                try:
                    reason = await self._connect(st)
                    if reason is None:
                        reason = await self._connected(st)
                finally:
                    await self._disconnect(st)
            if self._stopping or reason is None:
                break
            await self._went_offline(st, reason)
            delay = backoff_delay(st.attempt, self.backoff_initial_s, self.backoff_max_s, self.backoff_jitter, self.rng())
            st.attempt += 1
            log.info("gatt_retry_scheduled", device=st.dev.device_id, in_s=round(delay, 3), attempt=st.attempt, reason=reason)
            await self._sleep(delay)

    async def _connect(self, st: DeviceState) -> str | None:
        """Connect; None when connected, else the reason it failed."""
        st.gen += 1
        gen = st.gen
        st.lost.clear()
        try:
            client = st.client = self.client_factory(st.dev.address)
            client.set_disconnected_callback(lambda gen=gen: self._on_lost(st, gen))
            async with asyncio.timeout(self.connect_timeout_s + 1.0):
                await client.connect(self.connect_timeout_s)
        except TimeoutError:
            st.failures += 1
            return "connect_timeout"
        except GattError as exc:
            st.failures += 1
            log.info("gatt_connect_failed", device=st.dev.device_id, error=str(exc))
            return "connect_failed"
        except Exception as exc:
            st.failures += 1
            log.warning("gatt_connect_crashed", device=st.dev.device_id, error=repr(exc))
            return "connect_failed"
        st.connects += 1
        st.attempt = 0
        st.state = "connected"
        log.info("gatt_connected", device=st.dev.device_id, address=st.dev.address, connects=st.connects)
        await self._came_online(st)
        return None

    async def _connected(self, st: DeviceState) -> str | None:
        """Subscribe, poll battery, wait for loss; the loss reason, or None when stopping."""
        client, gen = st.client, st.gen
        assert client is not None
        for m in st.dev.mappings:
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    await client.start_notify(m.uuid, lambda data, m=m, gen=gen: self._on_notify(st, gen, m, data))
            except Exception as exc:
                if not client.is_connected or st.lost.is_set():
                    return "connection_lost"
                st.notify_errors += 1
                log.warning("gatt_subscribe_failed", device=st.dev.device_id, uuid=short_uuid(m.uuid), error=repr(exc))
        interval = st.dev.battery_interval_s or None
        next_battery = self.clock() if interval else None
        while not self._stopping:
            if st.lost.is_set() or not client.is_connected:
                return None if self._stopping else "connection_lost"
            if next_battery is not None and self.clock() >= next_battery:
                assert interval is not None
                next_battery = self.clock() + interval
                if not await self._read_battery(st, client):
                    return "connection_lost"
                continue
            timeout = None if next_battery is None else max(0.0, next_battery - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await st.lost.wait()
        return None

    async def _read_battery(self, st: DeviceState, client: GattClient) -> bool:
        """Read Battery Level; False when that showed the connection is gone."""
        try:
            async with asyncio.timeout(self.read_timeout_s):
                raw = await client.read(BATTERY_LEVEL_UUID)
            if len(raw) != 1 or raw[0] > 100:
                raise DecodeError(f"battery level must be one byte 0..100, got {bytes(raw).hex()!r}")
        except Exception as exc:
            if not client.is_connected or st.lost.is_set():
                return False
            st.battery_errors += 1
            self._log_error(st, "gatt_battery_read_failed", error=repr(exc))
            return True
        pct = raw[0]
        st.last_battery, st.last_battery_t = pct, self.clock()
        if self.on_battery is not None:
            try:
                self.on_battery(st.dev.device_id, pct)
            except Exception:
                log.exception("gatt_battery_callback_failed", device=st.dev.device_id)
        return True

    async def _disconnect(self, st: DeviceState) -> None:
        st.gen += 1  # ignore whatever the old connection still says
        client, st.client = st.client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self.disconnect_timeout_s):
                await client.disconnect()
        except Exception as exc:
            log.warning("gatt_disconnect_failed", device=st.dev.device_id, error=repr(exc))

    async def _sleep(self, delay: float) -> None:
        assert self._wake is not None
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    # --- callbacks from the client -------------------------------------------------------

    def _on_lost(self, st: DeviceState, gen: int) -> None:
        if gen != st.gen:
            return
        st.losses += 1
        log.warning("gatt_connection_lost", device=st.dev.device_id, address=st.dev.address)
        st.lost.set()

    def _on_notify(self, st: DeviceState, gen: int, m: NotifyMapping, data: bytes) -> None:
        if gen != st.gen:
            return
        st.last_notify = self.clock()
        try:
            e = m.emit(bytes(data))
        except DecodeError as exc:
            st.decode_errors += 1
            self._log_error(st, "gatt_notify_undecodable", uuid=short_uuid(m.uuid), raw=bytes(data).hex(), error=str(exc))
            return
        st.notifications += 1
        if self.on_heard is not None:
            try:
                self.on_heard(st.dev.device_id)
            except Exception:  # supervision's trouble must not lose the notification
                log.exception("gatt_heard_callback_failed", device=st.dev.device_id)
        self._queue_event(st.dev.device_id, e)

    def _log_error(self, st: DeviceState, what: str, **kw: Any) -> None:
        now = self.clock()
        if now - st.last_error_log >= ERROR_LOG_INTERVAL_S:
            st.last_error_log = now
            log.warning(what, device=st.dev.device_id, decode_errors=st.decode_errors, battery_errors=st.battery_errors, **kw)

    # --- state changes and events -------------------------------------------------------

    async def _went_offline(self, st: DeviceState, reason: str) -> None:
        st.state = "offline"
        st.last_reason = reason
        if st.reported_offline:
            return
        st.reported_offline = True
        st.offline_since = self.clock()
        log.warning("gatt_offline", device=st.dev.device_id, address=st.dev.address, reason=reason)
        self._queue_event(st.dev.device_id, Emit("device.offline", Priority.HIGH, {"reason": reason, "address": st.dev.address}))

    async def _came_online(self, st: DeviceState) -> None:
        if not st.reported_offline:
            return
        offline_s = self.clock() - st.offline_since if st.offline_since is not None else 0.0
        st.reported_offline = False
        st.offline_since = None
        st.last_reason = None
        log.info("gatt_online", device=st.dev.device_id, offline_s=round(offline_s, 1))
        self._queue_event(
            st.dev.device_id,
            Emit("device.online", Priority.NORMAL, {"offline_s": round(offline_s, 3), "address": st.dev.address}),
        )

    def _queue_event(self, device_id: str, e: Emit) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((device_id, e))
        except asyncio.QueueFull:  # the hub is not keeping up (a device gone mad): drop, count, say so once
            self.dropped += 1
            if self.dropped in (1, 10, 100, 1000) or self.dropped % 10_000 == 0:
                log.warning("gatt_events_dropped", device=device_id, type=e.type, dropped_total=self.dropped)

    async def _emit_loop(self) -> None:
        assert self._queue is not None
        while True:
            device_id, e = await self._queue.get()
            try:
                if self.emit is not None:
                    await self.emit(device_id, e)
            except Exception:
                log.exception("gatt_emit_failed", device=device_id, type=e.type)
            finally:
                self._queue.task_done()
