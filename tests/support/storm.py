"""A serial storm: bed-mat frames written into a real pty as fast as it takes them.

A mat with a broken cable or a firmware loop, as the field saw it: every
other frame flips the battery between low and fine, so each pair is a
``device.battery_low`` the hub would have to store. :class:`SerialStorm`
writes from a thread of its own, never waiting for the hub: the pty's buffer
(and the hub's back-pressure) decide the pace.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from drivers.serial.bedmat import encode
from drivers.serial.emulator import PtyDevice


def storm_frames(pairs: int = 20_000) -> bytes:
    """``pairs`` × (battery 5 %, battery 90 %) ``$BED`` frames, sequence numbers counting up."""
    out = []
    seq = 0
    for _ in range(pairs):
        for battery in (5, 90):
            out.append(encode(seq, "in", 640, battery))
            seq = (seq + 1) % 65536
    return b"".join(out)


class SerialStorm:
    """The mat's end of a pty (``link`` is the path the hub opens), written at full speed by a thread."""

    def __init__(self, link: Path) -> None:
        self.device = PtyDevice(link)
        self.device.plug()
        self.bytes = 0
        self.frames_per_byte = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> SerialStorm:
        """Start writing (again, after a :meth:`stop` that left the pty plugged)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="serial-storm", daemon=True)
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        data = storm_frames()
        self.frames_per_byte = 40_000 / len(data)
        master = self.device.master
        assert master is not None
        poller = select.poll()
        poller.register(master, select.POLLOUT)
        view = memoryview(data)
        off = 0
        while not self._stop.is_set():
            try:
                n = os.write(master, view[off:])
                self.bytes += n
                off = (off + n) % len(view)
            except BlockingIOError:
                poller.poll(20)
            except OSError:
                return
            self._drain(master)

    @staticmethod
    def _drain(master: int) -> None:
        try:
            while os.read(master, 65536):
                pass
        except (BlockingIOError, OSError):
            pass

    @property
    def frames(self) -> int:
        """Frames written so far (about)."""
        return int(self.bytes * self.frames_per_byte)

    def stop(self, *, unplug: bool = True) -> None:
        """Stop writing; by default unplug the pty too (``unplug=False`` keeps it for another :meth:`start`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.stopped = time.monotonic()
        if unplug:
            self.device.unplug()
