"""The bed-occupancy mat: NMEA-style ASCII sentences with an XOR checksum.

The mat sends, and never expects an answer::

    $BED,<seq>,<IN|OUT>,<pressure 0-1023>,<battery 0-100>*<XX>\\r\\n
    $BST,<seq>,<battery 0-100>,<firmware>*<XX>\\r\\n

``XX`` is the XOR of every byte between ``$`` and ``*``, as two hex digits.
The full description, with hex examples that the tests also decode, is in
``drivers/serial/PROTOCOL-bedmat.md``.

* :mod:`.wire`: :func:`checksum`, :func:`encode`, :func:`encode_status`, :func:`decode_line`.
* :mod:`.parser`: :class:`BedMatParser` turns bytes into ``occupancy`` and ``status``
  readings. It reads byte by byte through a three-state machine, so the result never
  depends on how the bytes were chunked, and a ``$`` always starts a new frame (whole
  valid ``$BED`` lines at a line start take one regular expression instead, the same result).
  Every discarded line is counted exactly once, under the first problem found.
* :mod:`.options`: :class:`BedMatOptions` and :func:`load_options`.
* :mod:`.logic`: :class:`BedMatLogic` debounces occupancy into ``bed.exit`` /
  ``bed.return`` and raises ``device.battery_low`` once, with hysteresis.
* :mod:`.emulator`: :class:`BedMatEmulator` is the mat: valid sentences and spoilt ones on request.
"""

from __future__ import annotations

from drivers.serial.bedmat.emulator import NOISE_BURST, BedMatEmulator
from drivers.serial.bedmat.logic import BedMatLogic
from drivers.serial.bedmat.options import BedMatOptions, HoldSeconds, Pct, load_options
from drivers.serial.bedmat.parser import BedMatParser
from drivers.serial.bedmat.wire import (
    BATTERY_MAX,
    MAX_LINE,
    PRESSURE_MAX,
    SEQ_MAX,
    checksum,
    decode_line,
    encode,
    encode_status,
)

__all__ = [
    "BATTERY_MAX",
    "MAX_LINE",
    "NOISE_BURST",
    "PRESSURE_MAX",
    "SEQ_MAX",
    "BedMatEmulator",
    "BedMatLogic",
    "BedMatOptions",
    "BedMatParser",
    "HoldSeconds",
    "Pct",
    "checksum",
    "decode_line",
    "encode",
    "encode_status",
    "load_options",
]
