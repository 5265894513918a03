"""The bed mat's sentences on the wire: encoding and decoding, no state.

``$BED,<seq>,<IN|OUT>,<pressure>,<battery>*XX\\r\\n`` and
``$BST,<seq>,<battery>,<firmware>*XX\\r\\n``, where ``XX`` is :func:`checksum`
of the bytes between ``$`` and ``*``. :func:`decode_line` reads one line;
:func:`encode` and :func:`encode_status` build one (the emulator's sentences).
The byte-level description is ``PROTOCOL-bedmat.md`` in ``drivers/serial``.
"""

from __future__ import annotations

import re
from typing import Any

from drivers.serial.base import Reading

#: The longest line accepted, in bytes, counting the ``$`` and the terminating ``\n`` (and its ``\r``), as in NMEA 0183.
MAX_LINE = 82

SEQ_MAX = 65535
PRESSURE_MAX = 1023
BATTERY_MAX = 100

#: ``$``, a body of printable ASCII without ``*``, ``*``, two hex digits
_LINE = re.compile(rb"\$([\x20-\x29\x2B-\x7E]*)\*([0-9A-Fa-f]{2})")
_SEQ = re.compile(rb"[0-9]{1,5}")
_PRESSURE = re.compile(rb"[0-9]{1,4}")
_BATTERY = re.compile(rb"[0-9]{1,3}")
_FIRMWARE = re.compile(rb"[A-Za-z0-9._+-]{1,16}")
_FIRMWARE_STR = re.compile(r"[A-Za-z0-9._+-]{1,16}")


def checksum(body: bytes) -> int:
    """The NMEA checksum: XOR of every byte of ``body`` (the bytes between ``$`` and ``*``)."""
    c = 0
    for b in body:
        c ^= b
    return c


def frame(body: bytes) -> bytes:
    """``body`` as a sentence: ``$``, the body, ``*``, its checksum and ``\\r\\n`` (no check of the body)."""
    return b"$" + body + b"*%02X\r\n" % checksum(body)


def int_in(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` if it is an int (not a bool) in ``lo..hi``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def state_word(state: Any) -> str:
    """``"IN"`` or ``"OUT"`` for ``"in"`` / ``"out"`` in any case; ``ValueError`` otherwise."""
    if not isinstance(state, str) or state.lower() not in ("in", "out"):
        raise ValueError(f"state must be 'in' or 'out', not {state!r}")
    return state.upper()


def encode(seq: int, state: str, pressure: int, battery: int) -> bytes:
    """One ``$BED`` sentence, ``\\r\\n`` included. Raises ``ValueError`` on a value out of range."""
    body = b"BED,%d,%s,%d,%d" % (
        int_in("seq", seq, 0, SEQ_MAX),
        state_word(state).encode(),
        int_in("pressure", pressure, 0, PRESSURE_MAX),
        int_in("battery", battery, 0, BATTERY_MAX),
    )
    return frame(body)


def encode_status(seq: int, battery: int, firmware: str) -> bytes:
    """One ``$BST`` status sentence, ``\\r\\n`` included. Raises ``ValueError`` on a bad value."""
    if not isinstance(firmware, str) or not _FIRMWARE_STR.fullmatch(firmware):
        raise ValueError(f"firmware must be 1 to 16 of A-Z a-z 0-9 . _ + -, not {firmware!r}")
    body = b"BST,%d,%d,%s" % (
        int_in("seq", seq, 0, SEQ_MAX),
        int_in("battery", battery, 0, BATTERY_MAX),
        firmware.encode(),
    )
    return frame(body)


def _number(field: bytes, pattern: re.Pattern[bytes], hi: int) -> int | None:
    if not pattern.fullmatch(field):
        return None
    value = int(field)
    return value if value <= hi else None


def decode_line(line: bytes) -> Reading | str:
    """Decode one line (from ``$`` up to, not including, the ``\\n``; one trailing ``\\r`` allowed).

    Returns the :class:`Reading`, or the error kind (``"framing"`` or ``"checksum"``).
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    m = _LINE.fullmatch(line)
    if m is None:
        return "framing"
    body = m.group(1)
    if checksum(body) != int(m.group(2), 16):
        return "checksum"
    fields = body.split(b",")
    if fields[0] == b"BED" and len(fields) == 5:
        seq = _number(fields[1], _SEQ, SEQ_MAX)
        state = {b"IN": "in", b"OUT": "out"}.get(fields[2])
        pressure = _number(fields[3], _PRESSURE, PRESSURE_MAX)
        battery = _number(fields[4], _BATTERY, BATTERY_MAX)
        if seq is None or state is None or pressure is None or battery is None:
            return "framing"
        return Reading("occupancy", {"state": state, "pressure": pressure, "battery": battery, "seq": seq})
    if fields[0] == b"BST" and len(fields) == 4:
        seq = _number(fields[1], _SEQ, SEQ_MAX)
        battery = _number(fields[2], _BATTERY, BATTERY_MAX)
        if seq is None or battery is None or not _FIRMWARE.fullmatch(fields[3]):
            return "framing"
        return Reading("status", {"battery": battery, "firmware": fields[3].decode("ascii"), "seq": seq})
    return "framing"
