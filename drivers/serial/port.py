"""One serial port, read from the asyncio loop, that survives unplugging and garbage.

:class:`SerialDevice` opens the configured port with pyserial (non-blocking,
registered with the loop through ``add_reader``; no reader thread), feeds
what it reads to the protocol's :class:`~drivers.serial.base.Parser`, writes
the parser's replies back, and hands readings to the device's
:class:`~drivers.serial.base.DeviceLogic`, whose :class:`~drivers.serial.base.Emit`
results become hub events.

When the port is missing, or vanishes (a USB-serial adapter pulled out, a
pty whose other end closed), it reports ``device.offline`` once, retries
with a short capped backoff, and reports ``device.online`` when the port is
back; a replugged sensor is reading again within about a second. Garbage is
counted by the parser and logged once per burst, never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import serial
import structlog

from drivers.serial.base import DeviceLogic, Emit, Parser
from hub.tasks import TaskSet

log = structlog.get_logger("drivers.serial")

EmitFn = Callable[[Emit], Awaitable[Any]]
EmitManyFn = Callable[[list[Emit]], Awaitable[Any]]

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
        asyncio.get_running_loop().add_reader(ser.fileno(), self._readable)

    def _close(self, reason: str) -> None:
        ser, self._ser = self._ser, None
        if ser is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(ser.fileno())
        except (ValueError, OSError, RuntimeError):
            pass
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

    def _readable(self) -> None:
        ser = self._ser
        if ser is None:
            return
        try:
            data = ser.read(4096)
        except (serial.SerialException, OSError) as exc:
            self._close(f"read failed: {exc}")
            return
        if not data:
            return
        self.bytes_in += len(data)
        now = time.monotonic()
        result = self.parser.feed(data, now)
        from drivers.serial.base import Confirm  # shim until the port honours Confirm

        for r in result.replies:
            data = r.data if isinstance(r, Confirm) else r  # shim until the port honours Confirm
            self._write(data)
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
        if burst and self.emit_many is not None:
            self._tasks.spawn(self._emit_many(burst))  # one read, one commit group, one task
        else:
            for e in burst:
                self._tasks.spawn(self._emit(e))
        self._log_errors(now)

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

    async def _emit_many(self, burst: list[Emit]) -> None:
        assert self.emit_many is not None
        try:
            await self.emit_many(burst)
        except Exception:
            log.exception("serial_emit_failed", device=self.device_id, types=sorted({e.type for e in burst}))

    async def _emit(self, e: Emit) -> None:
        try:
            await self.emit(e)
        except Exception:
            log.exception("serial_emit_failed", device=self.device_id, type=e.type)



def _priority(event_type: str) -> Any:
    from hub.events import EVENT_TYPES

    return EVENT_TYPES[event_type][0]
