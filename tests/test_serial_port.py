"""The real port reader (pyserial on a real pty pair) under garbage, chunking and random bytes.

Each example opens a fresh pty pair, points a symlink at it as a
/dev/serial/by-id link would, and runs :class:`drivers.serial.port.SerialDevice`
with the real protocol parser; the test plays the device on the pty master.
"""

from __future__ import annotations

import asyncio
import os
import struct
import termios
import time
import tty
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.serial.base import DeviceLogic, Emit, Reading
from drivers.serial.bedmat import BedMatParser, encode
from drivers.serial.dispenser import DOSE_DUE, DispenserParser, encode_frame
from drivers.serial.port import SerialDevice
from tests.support.until import until


class Recorder(DeviceLogic):
    """Logic that keeps every reading, to compare with what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.readings: list[Reading] = []

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        self.readings.append(reading)
        return []


async def _pump(parser: Any, chunks: list[bytes], expect: int, tmp: Path) -> tuple[Recorder, SerialDevice, bytes]:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    tty.setraw(master, termios.TCSANOW)
    link = tmp / f"tty-{os.getpid()}-{time.monotonic_ns()}"
    link.symlink_to(os.ttyname(slave))
    logic = Recorder()
    emitted: list[Emit] = []

    async def emit(e: Emit) -> None:
        emitted.append(e)

    dev = SerialDevice(device_id="d", port=str(link), parser=parser, logic=logic, emit=emit)
    task = asyncio.create_task(dev.run())
    replies = b""
    try:
        for _ in range(200):
            if dev.online:
                break
            await asyncio.sleep(0.005)
        for chunk in chunks:
            os.write(master, chunk)
            await asyncio.sleep(0)
        deadline = time.monotonic() + 3
        while len(logic.readings) < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        os.set_blocking(master, False)
        try:
            replies = os.read(master, 65536)
        except BlockingIOError:
            pass
        assert dev.online, "garbage must never take the port down"
        assert not [e for e in emitted if e.type == "device.offline"]
    finally:
        dev.stop()
        await asyncio.wait_for(task, 5)
        os.close(master)
        os.close(slave)
        link.unlink()
    return logic, dev, replies


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


garbage = st.binary(max_size=120)
states = st.sampled_from(["IN", "OUT"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.lists(st.tuples(states, st.integers(0, 1023), st.integers(0, 100), garbage), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
)
def test_bedmat_frames_between_random_garbage_all_arrive_in_order(tmp_path: Path, frames, cuts) -> None:
    stream = b""
    sent = []
    for i, (state, pressure, battery, junk) in enumerate(frames):
        stream += junk + b"\r\n" + encode(i, state, pressure, battery)
        sent.append({"state": state.lower(), "pressure": pressure, "battery": battery, "seq": i})
    logic, dev, _ = asyncio.run(_pump(BedMatParser(), _split(stream, cuts), len(sent), tmp_path))
    got = [r.fields for r in logic.readings if r.kind == "occupancy"]
    assert [{k: g[k] for k in ("state", "pressure", "battery", "seq")} for g in got] == sent


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doses=st.lists(st.tuples(st.integers(0, 65535), garbage), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
)
def test_dispenser_frames_between_random_garbage_all_arrive_in_order_and_are_acked(tmp_path: Path, doses, cuts) -> None:
    stream = b""
    for i, (dose_id, junk) in enumerate(doses):
        # garbage is closed by a flag, as a line that went quiet would be
        stream += junk + b"\x7e" + encode_frame(DOSE_DUE, i, struct.pack(">HIB", dose_id, 0, 1))
    logic, dev, replies = asyncio.run(_pump(DispenserParser(), _split(stream, cuts), len(doses), tmp_path))
    got = [r.fields["dose_id"] for r in logic.readings if r.kind == "dose_due"]
    assert got == [d for d, _ in doses]
    assert replies.count(b"\x7e") >= 2 * len(doses), "every frame is answered with an ACK frame"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.lists(st.binary(min_size=1, max_size=512), min_size=1, max_size=10))
def test_random_bytes_never_break_the_reader(tmp_path: Path, noise) -> None:
    for parser in (BedMatParser(), DispenserParser()):
        logic, dev, _ = asyncio.run(_pump(parser, noise, 0, tmp_path))
        assert dev.online


class EveryReading(DeviceLogic):
    """Logic that turns every occupancy reading into one event carrying its seq."""

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        return [Emit("bed.exit", "normal", {"seq": reading.fields["seq"]})]  # type: ignore[arg-type]


async def test_a_burst_read_at_once_is_emitted_in_order_as_one_batch(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    tty.setraw(master, termios.TCSANOW)
    link = tmp_path / "tty-burst"
    link.symlink_to(os.ttyname(slave))
    batches: list[list[Emit]] = []
    singles: list[Emit] = []

    async def emit(e: Emit) -> None:
        singles.append(e)

    async def emit_many(es: list[Emit]) -> None:
        batches.append(es)

    dev = SerialDevice(device_id="d", port=str(link), parser=BedMatParser(), logic=EveryReading(), emit=emit, emit_many=emit_many)
    task = asyncio.create_task(dev.run())
    try:
        for _ in range(200):
            if dev.online:
                break
            await asyncio.sleep(0.005)
        os.write(master, b"".join(encode(i, "IN", 500, 90) for i in range(50)))
        await until(lambda: sum(map(len, batches)) >= 50, what="50 events")
        assert [e.data["seq"] for b in batches for e in b] == list(range(50)), "all of them, in order"
        assert len(batches) < 50, "a read of many frames is one batch, not one task per event"
        assert singles == []
    finally:
        dev.stop()
        await asyncio.wait_for(task, 5)
        os.close(master)
        os.close(slave)
