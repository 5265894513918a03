"""One serial port, read from the asyncio loop, that survives unplugging and garbage.

:class:`SerialDevice` opens the configured port with pyserial (non-blocking,
registered with the loop through ``add_reader``; no reader thread), feeds
what it reads to the protocol's :class:`~drivers.serial.base.Parser`, writes
the parser's replies back, and hands readings to the device's
:class:`~drivers.serial.base.DeviceLogic`, whose :class:`~drivers.serial.base.Emit`
results become hub events.

Back-pressure and acknowledgements: the port reads on while the events of
earlier reads are being committed (the outbox commits them together, one
fsync for many reads), but only while fewer than :data:`MAX_UNCOMMITTED` of
its events wait for their commit: at that many it stops reading until the
disk has taken them. So the part of a burst in memory is bounded; the rest
waits in the kernel's buffer, and a device that keeps sending faster than
the disk commits is held back by the pty or the line's flow control (RTS/CTS,
XON/XOFF where the line has them). A line without flow control whose
device sends faster than that for longer than the kernel's buffer holds
loses bytes in the UART: the frames they spoil fail their checksum or
framing, are counted in ``errors`` (``status``, the heartbeat) and logged as
``serial_bad_input``, and were never accepted: nothing the hub took is lost,
and a device that waits for an acknowledgement sends them again. A read
whose replies include a protocol's acknowledgement is the last one until
its events are committed, as is any read while the store refuses events. A protocol's acknowledgement (:class:`~drivers.serial.base.Confirm`:
ESPA's block ACK, the dispenser's ACK frame) is written only once the events
it confirms are committed (or held by the hub as alarms). Events the store
refuses (telemetry on a full disk) are tried again, the port unread and the
acknowledgement unsent, until they are stored: the device keeps its frame and
nothing it was told was taken is lost. If the port goes away first, the
parser is told (``unconfirmed``) so the device's re-send is read afresh.

When the port is missing, or vanishes (a USB-serial adapter pulled out, a
pty whose other end closed), it reports ``device.offline`` once, retries
with a short capped backoff, and reports ``device.online`` when the port is
back; a replugged sensor is reading again within about a second. Garbage is
counted by the parser and logged once per burst, never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import serial
import structlog

from drivers.serial.base import Confirm, DeviceLogic, Emit, Parser
from drivers.helpers import TaskSet

log = structlog.get_logger("drivers.serial")

EmitFn = Callable[[Emit], Awaitable[Any]]
#: Emits a burst; returns the Emits the store refused (tried again before any Confirm is written).
EmitManyFn = Callable[[list[Emit]], Awaitable[list[Emit] | None]]
#: A read's events the store refused are tried again after this long, doubling up to the cap.
COMMIT_RETRY_S = (0.5, 5.0)

#: Bytes per read: small enough that parsing it never holds the loop long.
READ_CHUNK = 4096
#: The in-memory part of a port's ingest: it reads on while fewer of its events than this wait for their
#: commit (a few reads: their commits share an fsync), and stops reading at this many (back-pressure).
MAX_UNCOMMITTED = 250

#: Reopen delays after a port vanished: quick first, capped low so a replug is seen within 2 s.
REOPEN_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.0)
#: Supervision hears "this device reported" at most this often per port.
REPORT_INTERVAL_S = 1.0
#: Errors are logged at most once per this many seconds per port (a burst is one line).
ERROR_LOG_INTERVAL_S = 5.0


class SerialDevice:
    """A configured serial device: port + protocol parser + device logic."""

    def __init__(
        self,
        *,
        device_id: str,
        port: str,
        parser: Parser,
        logic: DeviceLogic,
        emit: EmitFn,
        emit_many: EmitManyFn | None = None,
        on_reading: Callable[[], None] | None = None,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        tick_s: float = 0.5,
    ) -> None:
        self.device_id = device_id
        self.port = port
        self.parser = parser
        self.logic = logic
        self.emit = emit
        self.emit_many = emit_many
        self.on_reading = on_reading
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.tick_s = tick_s
        self.online = False
        self.frames = 0
        self.bytes_in = 0
        self.reads = 0
        self.last_reading: float | None = None
        self._last_report = float("-inf")
        self.opened_at: float | None = None
        self._ser: serial.Serial | None = None
        self._closed = asyncio.Event()
        self._stop = False
        self._reported_offline = False
        self._errors_logged: dict[str, int] = {}
        self._last_error_log = 0.0
        self._tasks = TaskSet()
        self._reading = False  # the port is registered with the loop for reading
        #: reads whose events are being committed (or whose replies wait for an earlier read's), in read order
        self._bursts: deque[asyncio.Task[None]] = deque()
        self._confirming = 0  # of those, reads with a Confirm: no reading past them until committed
        #: events read and waiting for their commit (the in-memory part, at most about MAX_UNCOMMITTED)
        self.uncommitted = 0
        #: reads paused (back-pressure), and Confirms withheld because the commit failed
        self.paused = 0
        self.unconfirmed = 0
        self.retrying = 0  # events of reads waiting for the store to take them (it refused them)

    # --- status -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """For the heartbeat and ``status``: state, port, counters, and what the logic knows."""
        now = time.monotonic()
        return {
            "state": "ok" if self.online else "offline",
            "driver": "serial",
            "protocol": self.parser.name,
            "port": self.port,
            "frames": self.frames,
            "reads": self.reads,
            "bytes_in": self.bytes_in,
            "waiting_for_store": self.retrying,
            "uncommitted": self.uncommitted,
            "errors": dict(self.parser.errors),
            "last_reading_s_ago": round(now - self.last_reading, 1) if self.last_reading else None,
            **self.logic.state(),
        }

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Open, read, reopen; until :meth:`stop`."""
        ticker = asyncio.create_task(self._ticker())
        attempt = 0
        try:
            while not self._stop:
                try:
                    self._open()
                except (serial.SerialException, OSError, ValueError) as exc:
                    await self._went_offline(f"cannot open: {exc}")
                    await asyncio.sleep(REOPEN_DELAYS[min(attempt, len(REOPEN_DELAYS) - 1)])
                    attempt += 1
                    continue
                attempt = 0
                await self._came_online()
                await self._closed.wait()
                if not self._stop:
                    await self._went_offline(self._close_reason)
        finally:
            ticker.cancel()
            self._close("stopped")

    def stop(self) -> None:
        self._stop = True
        self._close("stopped")

    def _open(self) -> None:
        ser = serial.Serial(self.port, timeout=0, write_timeout=0, exclusive=True, **self.settings)
        self._ser = ser
        self._closed.clear()
        self._close_reason = ""
        self.parser.reset()
        self.opened_at = time.monotonic()
        self._resume()

    def _resume(self) -> None:
        ser = self._ser
        if ser is None or self._reading:
            return
        try:
            asyncio.get_running_loop().add_reader(ser.fileno(), self._readable)
            self._reading = True
        except (ValueError, OSError) as exc:
            self._close(f"cannot watch the port: {exc}")

    def _pause(self) -> None:
        ser = self._ser
        if ser is None or not self._reading:
            return
        self._reading = False
        try:
            asyncio.get_running_loop().remove_reader(ser.fileno())
        except (ValueError, OSError, RuntimeError):
            pass

    def _close(self, reason: str) -> None:
        ser = self._ser
        if ser is None:
            return
        self._pause()
        self._ser = None
        try:
            ser.close()
        except (serial.SerialException, OSError):
            pass
        self._close_reason = reason
        self._closed.set()

    async def _went_offline(self, reason: str) -> None:
        self.online = False
        if self._reported_offline:
            return
        self._reported_offline = True
        log.warning("serial_offline", device=self.device_id, port=self.port, reason=reason)
        await self._emit(Emit("device.offline", _priority("device.offline"), {"reason": reason, "port": self.port}))

    async def _came_online(self) -> None:
        self.online = True
        log.info("serial_online", device=self.device_id, port=self.port)
        if self._reported_offline:
            self._reported_offline = False
            await self._emit(Emit("device.online", _priority("device.online"), {"port": self.port}))

    # --- reading --------------------------------------------------------------------------

    def _held_back(self) -> bool:
        """Back-pressure: the in-memory part is full, a Confirm waits for its commit, or the store refuses."""
        return self.uncommitted >= MAX_UNCOMMITTED or self._confirming > 0 or self.retrying > 0

    def _readable(self) -> None:
        ser = self._ser
        if ser is None:
            return
        if self._held_back():
            self._pause()
            return
        try:
            data = ser.read(READ_CHUNK)
        except (serial.SerialException, OSError) as exc:
            self._close(f"read failed: {exc}")
            return
        if not data:
            return
        self.bytes_in += len(data)
        self.reads += 1
        now = time.monotonic()
        result = self.parser.feed(data, now)
        burst: list[Emit] = []
        for reading in result.readings:
            self.frames += 1
            self.last_reading = now
            if self.on_reading is not None and now - self._last_report >= REPORT_INTERVAL_S:
                self._last_report = now  # supervision needs "heard lately", not every frame
                self.on_reading()
            try:
                emits = self.logic.on_reading(reading, now)
            except Exception:  # a logic bug must not stop the port
                log.exception("serial_logic_failed", device=self.device_id, reading=reading.kind)
                continue
            burst.extend(emits)
        replies = result.replies
        first_confirm = next((i for i, r in enumerate(replies) if isinstance(r, Confirm)), len(replies))
        for reply in replies[:first_confirm]:  # answers that confirm nothing go out at once
            self._write(reply)  # type: ignore[arg-type]
        rest = replies[first_confirm:]
        if burst or rest:
            # one read, one task: its commit joins those of the reads before it (group commit)
            confirms = any(isinstance(r, Confirm) for r in rest)
            self.uncommitted += len(burst)
            self._confirming += confirms
            prev = self._bursts[-1] if self._bursts else None
            self._bursts.append(self._tasks.spawn(self._commit_then_confirm(burst, rest, prev, confirms)))
            if self._held_back():
                self._pause()
                self.paused += 1
        self._log_errors(now)

    async def _commit_then_confirm(
        self, burst: list[Emit], replies: list[bytes | Confirm], prev: asyncio.Task[None] | None, confirms: bool
    ) -> None:
        me = asyncio.current_task()
        left: list[Emit] = []
        try:
            left = await self._emit_burst(burst) if burst else []
            if left:
                log.warning("serial_commit_refused", device=self.device_id, events=len(left),
                            types=sorted({e.type for e in left}), action="holding the ack; retrying")
                left = await self._retry(left)
            if replies and prev is not None:
                await asyncio.wait([prev])  # replies go out in read order, each after its own commit
            for reply in replies:
                if not isinstance(reply, Confirm):
                    self._write(reply)
                elif not left:
                    self._write(reply.data)
                else:  # the port went away first: let the device's re-send be read afresh
                    self.unconfirmed += 1
                    log.warning("serial_confirm_withheld", device=self.device_id, reason="events not stored")
                    self.parser.unconfirmed(reply)
        finally:
            self.uncommitted -= len(burst)  # counted until its task ends: the task holds them till then
            self._confirming -= confirms
            if me in self._bursts:
                self._bursts.remove(me)
            if not self._held_back():
                self._resume()

    async def _retry(self, left: list[Emit]) -> list[Emit]:
        """Events the store refused, tried again until stored (reading paused meanwhile); those still
        refused when the port goes away."""
        delay = COMMIT_RETRY_S[0]
        self.retrying += len(left)
        self._pause()
        try:
            while left and not self._stop and self._ser is not None:
                # the device's logic has taken these readings already (a re-send would be deduplicated
                # into nothing): they are tried again until stored, and only then acknowledged
                await asyncio.sleep(delay)
                delay = min(delay * 2, COMMIT_RETRY_S[1])
                still = await self._emit_burst(left)
                self.retrying -= len(left) - len(still)
                left = still
            return left
        finally:
            self.retrying -= len(left)

    async def _emit_burst(self, burst: list[Emit]) -> list[Emit]:
        """Emit a read's events; returns those the store refused (all of them on an error)."""
        if self.emit_many is not None:
            try:
                refused = await self.emit_many(burst)
            except Exception:
                log.exception("serial_emit_failed", device=self.device_id, types=sorted({e.type for e in burst}))
                return []  # a bug, not a full disk: retrying would not help
            return list(refused or [])
        for e in burst:
            try:
                await self.emit(e)
            except Exception:
                log.exception("serial_emit_failed", device=self.device_id, type=e.type)
        return []

    def _write(self, data: bytes) -> None:
        ser = self._ser
        if ser is None or not data:
            return
        try:
            ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self._close(f"write failed: {exc}")

    def _log_errors(self, now: float) -> None:
        errors = dict(self.parser.errors)
        if errors == self._errors_logged or now - self._last_error_log < ERROR_LOG_INTERVAL_S:
            return
        delta = {k: v - self._errors_logged.get(k, 0) for k, v in errors.items() if v != self._errors_logged.get(k, 0)}
        self._errors_logged = errors
        self._last_error_log = now
        log.warning("serial_bad_input", device=self.device_id, port=self.port, new=delta, total=errors)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            try:
                for reply in self.parser.tick(now):
                    self._write(reply)
                emits = self.logic.tick(now)
            except Exception:
                log.exception("serial_tick_failed", device=self.device_id)
                continue
            for e in emits:
                await self._emit(e)
            self._log_errors(now)

    async def _emit(self, e: Emit) -> None:
        try:
            await self.emit(e)
        except Exception:
            log.exception("serial_emit_failed", device=self.device_id, type=e.type)



def _priority(event_type: str) -> Any:
    from hub.events import EVENT_TYPES

    return EVENT_TYPES[event_type][0]
