"""A device sending faster than the disk commits: the port holds a bounded part in memory, the pty the rest.

A real pty and the real port reader with the bed mat's parser; the hub's
side of the seam (``emit_many``) is a stand-in whose commits the test holds
back, as a slow disk would. What a user would check: the port stops reading
once its in-memory part is full (``uncommitted`` in the device's health, as
``status`` shows it), the bytes it has not read wait in the kernel's buffer,
and once the commits go through every event arrives, in order, none lost.
"""

from __future__ import annotations

import asyncio
import os
import termios
import tty
from pathlib import Path

from drivers.serial.base import DeviceLogic, Emit, Reading
from drivers.serial.bedmat import BedMatParser, encode
from drivers.serial.port import MAX_UNCOMMITTED, READ_CHUNK, SerialDevice
from tests.support.until import until

FRAMES = 8_000  # about 190 kB: far more than MAX_UNCOMMITTED events, and more than the pty buffers


class EveryReading(DeviceLogic):
    """One event per occupancy reading, carrying the frame's seq."""

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        return [Emit("bed.exit", "normal", {"seq": reading.fields["seq"]})]  # type: ignore[arg-type]


async def test_a_device_faster_than_the_disk_is_held_back_with_a_bounded_part_in_memory(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    tty.setraw(master, termios.TCSANOW)
    os.set_blocking(master, False)
    link = tmp_path / "tty-fast"
    link.symlink_to(os.ttyname(slave))
    disk = asyncio.Event()  # closed: no commit completes
    committed: list[Emit] = []

    async def emit(e: Emit) -> None:
        raise AssertionError("a read's events go through emit_many")

    async def emit_many(es: list[Emit]) -> list[Emit]:
        await disk.wait()
        committed.extend(es)
        return []

    dev = SerialDevice(device_id="d", port=str(link), parser=BedMatParser(), logic=EveryReading(), emit=emit,
                       emit_many=emit_many)
    task = asyncio.create_task(dev.run())
    data = memoryview(b"".join(encode(i % 65536, "IN", 500, 90) for i in range(FRAMES)))
    written = 0

    def write_what_fits() -> None:
        nonlocal written
        while written < len(data):
            try:
                written += os.write(master, data[written:])
            except BlockingIOError:
                return

    try:
        await until(lambda: dev.online, what="the port open")
        deadline = asyncio.get_running_loop().time() + 30
        while dev.health()["uncommitted"] < MAX_UNCOMMITTED:  # write until the in-memory part is full
            assert asyncio.get_running_loop().time() < deadline, f"never filled: {dev.health()}"
            write_what_fits()
            await asyncio.sleep(0.005)
        seen = -1
        while dev.bytes_in != seen:  # then go on writing: the port must stop taking bytes
            seen = dev.bytes_in
            for _ in range(20):
                write_what_fits()
                await asyncio.sleep(0.01)
        assert written < len(data), "the pty's buffer is full: the device is held back"
        health = dev.health()
        assert MAX_UNCOMMITTED <= health["uncommitted"] < MAX_UNCOMMITTED + READ_CHUNK // 20, \
            "reading stopped once the in-memory part was full (at most one read past it)"
        assert dev.bytes_in < written, "what the port did not read waits in the kernel's buffer"
        assert committed == []

        disk.set()  # the disk takes them now
        while written < len(data):
            write_what_fits()
            await asyncio.sleep(0)
        await until(lambda: len(committed) == FRAMES, timeout=30, what="every event committed")
        assert [e.data["seq"] for e in committed] == [i % 65536 for i in range(FRAMES)], "all of them, in order"
        assert dev.health()["uncommitted"] == 0
        assert dev.paused > 0
    finally:
        dev.stop()
        await asyncio.wait_for(task, 5)
        os.close(master)
        os.close(slave)
