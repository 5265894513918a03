"""Play a serial device on a pty (or a real USB-serial port), driven from outside.

``python -m drivers.serial.emulator PROTOCOL --link PATH --control SOCKET``
creates a pty pair, points the symlink ``PATH`` at its device end (the way
``/dev/serial/by-id/...`` points at ``/dev/ttyUSB0``), and plays the
protocol's :class:`~drivers.serial.base.Emulator` on the other end. The
control socket speaks the same JSON lines as the hub's sim socket
(:mod:`drivers.simctl`):

* ``{"op": "send", "what": "occupancy", "args": {"state": "out"}}`` – a frame;
* ``{"op": "send", "what": "corrupt", "args": {"how": "noise"}}`` – garbage;
* ``{"op": "unplug"}`` / ``{"op": "replug"}`` – the cable out, then in again
  (a new pty behind the same symlink, as a USB adapter comes back);
* ``{"op": "state"}`` – the emulator's state and what the hub wrote back.

``--port /dev/ttyUSB0`` plays the device on a real port instead, so an
installer can test a hub's wiring end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Any

from drivers.serial import protocol
from drivers.serial.base import Emulator
from drivers.base import SimCommandError
from drivers.simctl import SimControl


class PtyDevice:
    """The device end of a serial line: a pty master with a stable symlink to its slave."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        tty.setraw(master, termios.TCSANOW)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None

    def write(self, data: bytes) -> int:
        if self.master is None or not data:
            return 0
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def read(self) -> bytes:
        if self.master is None:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""


class RealPortDevice:
    """The device end on a real serial port (a USB-serial adapter wired to the hub's port)."""

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        import serial

        self._serial = serial
        self.port, self.baudrate = port, baudrate
        self.link = Path(port)
        self.ser: Any = None
        self.master: int | None = None
        self.slave: int | None = None

    def plug(self) -> None:
        self.ser = self._serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=0)
        self.master = self.ser.fileno()

    def unplug(self) -> None:
        if self.ser is not None:
            self.ser.close()
        self.ser, self.master = None, None

    def write(self, data: bytes) -> int:
        return int(self.ser.write(data) or 0) if self.ser is not None and data else 0

    def read(self) -> bytes:
        return bytes(self.ser.read(4096)) if self.ser is not None else b""


class EmulatorRunner:
    """Runs an :class:`Emulator` on a :class:`PtyDevice`, with a control socket."""

    def __init__(
        self, emulator: Emulator, device: PtyDevice | RealPortDevice, control: Path, *, tick_s: float = 0.1
    ) -> None:
        self.emulator = emulator
        self.device = device
        self.ctl = SimControl(control)
        self.tick_s = tick_s
        self.written = bytearray()  # what the hub wrote to the device (bounded)
        self.sent = 0
        for op, fn in {"send": self._send, "unplug": self._unplug, "replug": self._replug, "state": self._state}.items():
            self.ctl.register(op, fn)

    def _register(self) -> None:
        if self.device.master is not None:
            asyncio.get_running_loop().add_reader(self.device.master, self._readable)

    def _unregister(self) -> None:
        if self.device.master is not None:
            asyncio.get_running_loop().remove_reader(self.device.master)

    def _readable(self) -> None:
        data = self.device.read()
        if not data:
            return
        self.written += data
        del self.written[:-4096]
        self._out(self.emulator.on_data(data, time.monotonic()))

    def _out(self, data: bytes) -> None:
        if data:
            self.sent += self.device.write(data)

    async def _send(self, req: dict[str, Any]) -> dict[str, Any]:
        what = req.get("what")
        if not isinstance(what, str):
            raise SimCommandError("send needs 'what'")
        try:
            data = self.emulator.command(what, dict(req.get("args") or {}), time.monotonic())
        except ValueError as exc:
            raise SimCommandError(str(exc)) from None
        self._out(data)
        return {"bytes": len(data), "hex": data.hex()}

    async def _unplug(self, req: dict[str, Any]) -> dict[str, Any]:
        self._unregister()
        self.device.unplug()
        return {"plugged": False}

    async def _replug(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.device.master is None:
            self.device.plug()
            self._register()
        return {"plugged": True, "tty": os.ttyname(self.device.slave) if self.device.slave is not None else None}

    async def _state(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "plugged": self.device.master is not None,
            "emulator": self.emulator.state(),
            "hub_wrote_hex": bytes(self.written).hex(),
            "sent_bytes": self.sent,
        }

    async def run(self, stop: asyncio.Event) -> None:
        self.device.plug()
        self._register()
        await self.ctl.start()
        where = os.ttyname(self.device.slave) if self.device.slave is not None else "real port"
        print(f"ready {self.device.link} -> {where}", flush=True)
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.tick_s)
                except TimeoutError:
                    pass
                if self.device.master is not None:
                    self._out(self.emulator.tick(time.monotonic()))
        finally:
            await self.ctl.close()
            self._unregister()
            self.device.unplug()


def make_emulator(name: str, options: dict[str, Any] | None = None) -> Emulator:
    """An emulator of the named protocol with its default options (or the given ones)."""
    cls = protocol(name).load("emulator")
    return cls(**(options or {}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="carehub emulate", description="Play a serial device on a pty, driven through a control socket."
    )
    ap.add_argument("protocol", help="bedmat, dispenser or espa444")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--link", help="symlink to create to a new pty (the hub's configured port)")
    where.add_argument("--port", help="a real serial port to play the device on (installer wiring test)")
    ap.add_argument("--baud", type=int, default=9600, help="with --port")
    ap.add_argument("--control", required=True, help="control socket path")
    args = ap.parse_args(argv)
    device = RealPortDevice(args.port, args.baud) if args.port else PtyDevice(Path(args.link))
    run_until_stopped(EmulatorRunner(make_emulator(args.protocol), device, Path(args.control)))
    return 0


def run_until_stopped(runner: EmulatorRunner) -> None:
    """Run an emulator ``runner`` (its device and control socket) until SIGTERM or Ctrl-C."""

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop)

    asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
