"""The BLE scanner: one backend, an allowlist, and self-healing when BlueZ misbehaves.

:class:`BleScanner` runs a :class:`~drivers.ble.backend.ScannerBackend` made
by a factory, drops adverts from addresses not in the config (a set lookup,
counted only as a number: a flat in a block of flats hears hundreds of
phones, TVs and tags), and hands the rest to ``on_advert``.

BlueZ scanning fails in ways that do not heal on their own: discovery stuck
in ``InProgress`` after bluetoothd lost track of it, the USB dongle
re-enumerating as ``hci1``, bluetoothd restarted under a scan that then just
hears nothing. So the scanner rebuilds its backend (stop it, make a new one
through the factory, start it) when

* ``start`` raises a :class:`~drivers.ble.backend.BackendError`
  (``InProgressError``, ``AdapterGoneError``, ...),
* the running backend reports one through the ``on_error`` callback it was
  started with, or
* no advert from any configured device arrived for ``silence_s``,

waiting a jittered, exponentially growing, capped delay between attempts.
The first failure of an outage emits ``hub.ble_degraded`` (HIGH; data:
reason, detail, adapter) -- once, however many rebuilds fail after it; the
first allowed advert after it emits ``hub.ble_recovered`` (NORMAL; data:
outage_s, adapter), whichever adapter it now comes through. Events go out
in order through one emitter task, through the same ``emit`` function shape
as :class:`~drivers.serial.port.SerialDevice`'s.

Run it as a task (``run()``) until :meth:`BleScanner.stop` or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from drivers.ble.backend import Advert, BackendError, ScannerBackend
from drivers.base import Emit
from drivers.helpers import backoff_delay
from hub.events import Priority
from drivers.helpers import TaskSet

log = structlog.get_logger("drivers.ble")

EmitFn = Callable[[Emit], Awaitable[Any]]

#: A failing on_advert callback is logged at most once per this many seconds.
CALLBACK_ERROR_LOG_INTERVAL_S = 5.0


class SilenceError(BackendError):
    """No advert from any configured device for ``silence_s`` (the scanner's own diagnosis)."""

    reason = "silent"


class BleScanner:
    """Scan through a rebuildable backend; deliver allowed adverts; report outages once."""

    def __init__(
        self,
        backend_factory: Callable[[], ScannerBackend],
        addresses: Iterable[str],
        on_advert: Callable[[Advert], Any],
        *,
        emit: EmitFn | None = None,
        silence_s: float | None = 600.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        backoff_jitter: float = 0.5,
        start_timeout_s: float = 20.0,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.backend_factory = backend_factory
        self.on_advert = on_advert
        self.emit = emit
        self.silence_s = silence_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_jitter = backoff_jitter
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.clock = clock
        self.rng = rng
        self._allow: frozenset[str] = frozenset()
        self.set_allowlist(addresses)

        self.adverts_total = 0
        self.adverts_allowed = 0
        self.dropped = 0
        self.rebuilds = 0
        self.callback_errors = 0
        self.last_advert: float | None = None
        self.adapter: str | None = None
        self.degraded = False
        self.degraded_reason: str | None = None
        self._outage_since: float | None = None
        self._attempt = 0
        self._last_callback_log = float("-inf")

        self._backend: ScannerBackend | None = None
        self._gen = 0  # bumped at every start and teardown: callbacks of older backends are ignored
        self._running_gen = -1  # the generation whose start succeeded
        self._failure: BackendError | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._queue: asyncio.Queue[Emit] | None = None
        self._tasks = TaskSet()

    # --- configuration and status ------------------------------------------------------

    def set_allowlist(self, addresses: Iterable[str]) -> None:
        """Replace the configured addresses (any case); takes effect on the next advert."""
        self._allow = frozenset(a.upper() for a in addresses)

    @property
    def allowlist(self) -> frozenset[str]:
        return self._allow

    def health(self) -> dict[str, Any]:
        """For the heartbeat and ``status``."""
        now = self.clock()
        out: dict[str, Any] = {
            "state": "degraded" if self.degraded else "ok",
            "driver": "ble",
            "adapter": self.adapter,
            "devices": len(self._allow),
            "adverts_total": self.adverts_total,
            "adverts_allowed": self.adverts_allowed,
            "dropped": self.dropped,
            "rebuilds": self.rebuilds,
            "last_advert_s_ago": round(now - self.last_advert, 1) if self.last_advert is not None else None,
        }
        if self.degraded:
            out["reason"] = self.degraded_reason
            out["outage_s"] = round(now - self._outage_since, 1) if self._outage_since is not None else None
        if self.callback_errors:
            out["callback_errors"] = self.callback_errors
        return out

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Scan, watch, rebuild; until :meth:`stop` or cancellation."""
        self._wake = asyncio.Event()
        self._queue = asyncio.Queue()
        emitter = self._tasks.spawn(self._emit_loop(), "ble-emitter")
        cancelled = False
        try:
            while not self._stopping:
                failure = await self._start()
                if failure is None:
                    failure = await self._watch()
                    if failure is None:  # stopping
                        break
                self._went_degraded(failure)
                await self._teardown()
                if self._stopping:
                    break
                delay = backoff_delay(
                    self._attempt, self.backoff_initial_s, self.backoff_max_s, self.backoff_jitter, self.rng()
                )
                self._attempt += 1
                log.info("ble_rebuild_scheduled", in_s=round(delay, 3), attempt=self._attempt, reason=failure.reason)
                await self._sleep(delay)
                self.rebuilds += 1
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            await self._teardown()
            if not cancelled:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.stop_timeout_s):
                        await self._queue.join()
            tasks = [emitter, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Make :meth:`run` tear the backend down and return (pending events are still emitted)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    # --- the hot path -------------------------------------------------------------------

    def _on_advert(self, gen: int, advert: Advert) -> None:
        self.adverts_total += 1
        if advert.address not in self._allow:
            self.dropped += 1
            return
        if gen != self._gen:
            return  # a torn-down backend still talking
        self.adverts_allowed += 1
        self.last_advert = now = self.clock()
        if self.degraded and gen == self._running_gen:
            self._recovered(now)
        try:
            self.on_advert(advert)
        except Exception:
            self.callback_errors += 1
            if now - self._last_callback_log >= CALLBACK_ERROR_LOG_INTERVAL_S:
                self._last_callback_log = now
                log.exception("ble_advert_callback_failed", address=advert.address, errors=self.callback_errors)

    def _on_error(self, gen: int, err: BackendError) -> None:
        if gen != self._gen or self._failure is not None:
            return
        self._failure = err
        if self._wake is not None:
            self._wake.set()

    # --- the steps ----------------------------------------------------------------------

    async def _start(self) -> BackendError | None:
        """Build and start a backend; the failure, or None when it runs."""
        self._gen += 1
        gen = self._gen
        self._failure = None
        try:
            backend = self._backend = self.backend_factory()
        except Exception as exc:
            log.exception("ble_backend_factory_failed")
            return BackendError(f"cannot make backend: {exc!r}")
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await backend.start(
                    lambda a, gen=gen: self._on_advert(gen, a),
                    lambda e, gen=gen: self._on_error(gen, e),
                )
        except BackendError as exc:
            self.adapter = backend.adapter
            return exc
        except TimeoutError:
            self.adapter = backend.adapter
            return BackendError(f"start did not finish within {self.start_timeout_s} s")
        except Exception as exc:
            log.exception("ble_backend_start_crashed", adapter=backend.adapter)
            self.adapter = backend.adapter
            return BackendError(f"start failed: {exc!r}")
        self.adapter = backend.adapter
        self._running_gen = gen
        log.info("ble_backend_started", adapter=self.adapter, degraded=self.degraded, rebuilds=self.rebuilds)
        return None

    async def _watch(self) -> BackendError | None:
        """Wait while the backend runs: its failure, silence, or None when stopping."""
        assert self._wake is not None
        started = self.clock()
        while not self._stopping:
            self._wake.clear()
            if self._failure is not None:
                return self._failure
            timeout: float | None = None
            if self.silence_s and self._allow:
                last = started if self.last_advert is None else max(self.last_advert, started)
                timeout = last + self.silence_s - self.clock()
                if timeout <= 0:
                    return SilenceError(
                        f"no advert from any of {len(self._allow)} configured devices for {self.silence_s:g} s"
                    )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        return None

    async def _sleep(self, delay: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _teardown(self) -> None:
        self._gen += 1
        backend, self._backend = self._backend, None
        if backend is None:
            return
        try:
            async with asyncio.timeout(self.stop_timeout_s):
                await backend.stop()
        except Exception as exc:
            log.warning("ble_backend_stop_failed", adapter=backend.adapter, error=repr(exc))

    # --- state changes and events -------------------------------------------------------

    def _went_degraded(self, failure: BackendError) -> None:
        if self.degraded:
            log.info("ble_rebuild_failed", reason=failure.reason, detail=str(failure), adapter=self.adapter)
            return
        self.degraded = True
        self.degraded_reason = failure.reason
        self._outage_since = self.clock()
        log.warning("ble_degraded", reason=failure.reason, detail=str(failure), adapter=self.adapter)
        self._queue_event(
            Emit(
                "hub.ble_degraded",
                Priority.HIGH,
                {"reason": failure.reason, "detail": str(failure), "adapter": self.adapter},
            )
        )

    def _recovered(self, now: float) -> None:
        outage = now - self._outage_since if self._outage_since is not None else 0.0
        self.degraded = False
        self.degraded_reason = None
        self._outage_since = None
        self._attempt = 0
        log.info("ble_recovered", outage_s=round(outage, 1), adapter=self.adapter, rebuilds=self.rebuilds)
        self._queue_event(Emit("hub.ble_recovered", Priority.NORMAL, {"outage_s": round(outage, 3), "adapter": self.adapter}))

    def _queue_event(self, e: Emit) -> None:
        if self._queue is not None:
            self._queue.put_nowait(e)

    async def _emit_loop(self) -> None:
        assert self._queue is not None
        while True:
            e = await self._queue.get()
            try:
                if self.emit is not None:
                    await self.emit(e)
            except Exception:
                log.exception("ble_emit_failed", type=e.type)
            finally:
                self._queue.task_done()

