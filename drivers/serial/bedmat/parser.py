"""The hub side of the bed mat: a byte-by-byte state machine from bytes to readings.

It cuts the stream into lines and hands each to :func:`~drivers.serial.bedmat.wire.decode_line`;
the result never depends on how the bytes were chunked, and a ``$`` always starts a new frame.
A whole well-formed ``$BED`` line at the start of a line (what the mat sends, hundreds per read in a
burst) is read by one regular expression instead (:data:`_BED_LINE`); anything else, and any line
that expression does not accept, goes through the state machine, which has the last word.
"""

from __future__ import annotations

import re
from typing import Any

from drivers.serial.base import FeedResult, Parser, Reading
from drivers.serial.bedmat.wire import BATTERY_MAX, MAX_LINE, PRESSURE_MAX, SEQ_MAX, checksum, decode_line

#: At most this many bytes (``$`` included, ``\n`` excluded) are held while waiting for the newline.
_MAX_HELD = MAX_LINE - 1

_DOLLAR, _LF, _CR = 0x24, 0x0A, 0x0D
#: Bytes that may appear in a line: printable ASCII. ``\r`` and ``\n`` are handled apart; anything else is noise.
_PRINTABLE = frozenset(range(0x20, 0x7F))

#: The fast path: a whole ``$BED`` line with well-formed fields, from the start of a line to its ``\n``
#: (at most 31 bytes: never overlong). Groups: the body, seq, state, pressure, battery, the checksum. The
#: ranges and the checksum are checked after the match; a line that fails them goes the slow way, so
#: that :func:`decode_line` names its error.
_BED_LINE = re.compile(rb"\$(BED,([0-9]{1,5}),(IN|OUT),([0-9]{1,4}),([0-9]{1,3}))\*([0-9A-Fa-f]{2})\r?\n")
_STATE = {b"IN": "in", b"OUT": "out"}

# parser states
_IDLE = 0  # at the start of a line: nothing held
_FRAME = 1  # inside a frame that began with '$': bytes held in the buffer
_SKIP = 2  # discarding a line already counted as an error, up to the next '$' or '\n'


class BedMatParser(Parser):
    """Hub side: bytes → ``occupancy`` / ``status`` readings. Never replies, never raises.

    Error policy (see PROTOCOL-bedmat.md): the stream is cut into lines at every
    ``$`` (which starts a line) and after every ``\\n``. A line that gives no
    reading is counted once, under the first problem found: ``noise`` (a byte
    that is not printable ASCII, ``\\r`` or ``\\n``), ``overlong`` (more than
    :data:`MAX_LINE` bytes), ``framing`` (does not start with ``$``, cut off by
    the next ``$``, malformed, unknown sentence) or ``checksum``. Blank lines
    (only ``\\r`` / ``\\n``) are ignored. A partial frame at the end of the data
    is kept for the next :meth:`feed` and not counted yet.
    """

    name = "bedmat"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._state = _IDLE
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        """A partial ``$`` sentence is held, waiting for its ``\\n`` (it is counted as
        ``framing`` if the next ``$`` cuts it off)."""
        return self._state == _FRAME

    def reset(self) -> None:
        self._state = _IDLE
        self._buf.clear()

    def feed(self, data: bytes, now: float) -> FeedResult:
        result = FeedResult()
        try:
            data = bytes(memoryview(data))
        except TypeError:
            return result
        readings = result.readings
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _IDLE:  # at the start of a line: whole $BED lines the fast way
                pos = self._feed_bed_lines(data, pos, readings)
                if pos >= end:
                    break
            nl = data.find(b"\n", pos)  # one line (or the rest) the slow way
            stop = end if nl < 0 else nl + 1
            self._feed_bytes(data[pos:stop], readings)
            pos = stop
        return result

    def _feed_bed_lines(self, data: bytes, pos: int, readings: list[Reading]) -> int:
        """Read the whole, valid ``$BED`` lines from ``pos`` on; returns where the first other line begins."""
        match = _BED_LINE.match
        while (m := match(data, pos)) is not None:
            body, seq, word, pressure, battery, check = m.groups()
            seq_i, pressure_i, battery_i = int(seq), int(pressure), int(battery)
            if (
                seq_i > SEQ_MAX or pressure_i > PRESSURE_MAX or battery_i > BATTERY_MAX
                or checksum(body) != int(check, 16)
            ):
                break
            readings.append(Reading("occupancy", {
                "state": _STATE[word], "pressure": pressure_i, "battery": battery_i, "seq": seq_i,
            }))
            pos = m.end()
        return pos

    def _feed_bytes(self, data: bytes, readings: list[Reading]) -> None:
        """The state machine, byte by byte, from the state the last call left."""
        errors = self.errors
        buf = self._buf
        state = self._state
        for b in data:
            if b == _DOLLAR:
                if state == _FRAME:
                    errors["framing"] += 1  # the frame held was cut off by a new one
                buf.clear()
                buf.append(b)
                state = _FRAME
            elif b == _LF:
                if state == _FRAME:
                    out = decode_line(bytes(buf))
                    if isinstance(out, Reading):
                        readings.append(out)
                    else:
                        errors[out] += 1
                buf.clear()
                state = _IDLE
            elif b in _PRINTABLE or b == _CR:
                if state == _FRAME:
                    if len(buf) >= _MAX_HELD:
                        errors["overlong"] += 1
                        buf.clear()
                        state = _SKIP
                    else:
                        buf.append(b)
                elif state == _IDLE and b != _CR:  # a '\r' at the start of a line is part of a blank line
                    errors["framing"] += 1  # a line that does not start with '$'
                    state = _SKIP
            else:
                if state != _SKIP:
                    errors["noise"] += 1  # one count per line the garbage spoils, not per byte
                    buf.clear()
                    state = _SKIP
        self._state = state
