"""The dispenser's frames on the wire: CRC, byte stuffing, frame types and payloads; no state but the decoder's.

``7E | stuffed( LEN TYPE SEQ PAYLOAD CRC_HI CRC_LO ) | 7E``: ``LEN`` counts
``TYPE SEQ PAYLOAD``; the CRC is :func:`crc16_ccitt_false` over
``LEN TYPE SEQ PAYLOAD``, big-endian. :func:`encode_frame` builds a frame,
:class:`FrameDecoder` finds them in a byte stream (both sides use it),
:func:`decode_payload` reads what a frame carries and :func:`encode_ack` is the
hub's answer. The byte-level description is ``PROTOCOL-dispenser.md`` in ``drivers/serial``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.serial.base import Reading

# --------------------------------------------------------------------------- framing

FLAG = 0x7E
ESC = 0x7D
ESC_XOR = 0x20

#: Largest frame body on the line before stuffing and without the flags:
#: ``LEN TYPE SEQ PAYLOAD CRC`` is at most this many bytes.
MAX_BODY = 64
#: So: the largest payload, and the largest value of ``LEN``.
MAX_PAYLOAD = MAX_BODY - 5
MAX_LEN = MAX_PAYLOAD + 2

# frame types, dispenser -> hub
DOSE_DUE = 0x01
DOSE_TAKEN = 0x02
DOSE_MISSED = 0x03
FAULT = 0x04
STATUS = 0x05
# hub -> dispenser (the high bit marks the hub's frames)
ACK = 0x80

#: Frame type -> (reading kind, payload struct format).
FRAME_TYPES: dict[int, tuple[str, str]] = {
    DOSE_DUE: ("dose_due", ">HIB"),  # dose_id, scheduled (unix s, 0 = unknown), compartment
    DOSE_TAKEN: ("dose_taken", ">HI"),  # dose_id, taken_at (unix s, 0 = unknown)
    DOSE_MISSED: ("dose_missed", ">H"),  # dose_id
    FAULT: ("fault", ">B"),  # fault code, see FAULT_CODES
    STATUS: ("status", ">BB"),  # battery % (0xFF = unknown), doses left (0xFF = unknown)
}
KIND_TYPES = {kind: t for t, (kind, _) in FRAME_TYPES.items()}

#: Fault code -> name. Unknown codes are reported as ``code_0xNN`` (still a fault).
FAULT_CODES: dict[int, str] = {
    0x00: "cleared",
    0x01: "jammed",
    0x02: "empty",
    0x03: "lid_open",
    0x04: "motor",
    0x05: "sensor",
    0x06: "clock_lost",
    0x07: "tamper",
    0xFF: "internal",
}
FAULT_NAMES = {name: code for code, name in FAULT_CODES.items()}

UNKNOWN_U8 = 0xFF


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0 (``b"123456789"`` -> 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Byte stuffing: every ``7E`` and ``7D`` in ``body`` becomes ``7D`` and the byte XOR ``20``."""
    out = bytearray()
    for b in body:
        if b in (FLAG, ESC):
            out += bytes((ESC, b ^ ESC_XOR))
        else:
            out.append(b)
    return bytes(out)


def frame_unchecked(type_: int, seq: int, payload: bytes) -> bytes:
    """A frame with its CRC, stuffed and flagged, without :func:`encode_frame`'s range checks."""
    head = bytes((len(payload) + 2 & 0xFF, type_ & 0xFF, seq & 0xFF)) + payload
    body = head + crc16_ccitt_false(head).to_bytes(2, "big")
    return bytes((FLAG,)) + stuff(body) + bytes((FLAG,))


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame as it goes on the line: flags, stuffing and CRC included.

    Raises ``ValueError`` for a type or seq outside 0..255 or a payload longer than :data:`MAX_PAYLOAD`.
    """
    if not 0 <= type_ <= 0xFF:
        raise ValueError(f"frame type {type_!r} is not a byte")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence {seq!r} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    return frame_unchecked(type_, seq, bytes(payload))


@dataclass(frozen=True)
class Frame:
    """An intact frame: its CRC matched and its length was right."""

    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    """Something on the line that was not an intact frame; ``kind`` is an error counter name."""

    kind: str  # "noise", "framing", "checksum" or "overlong"


_HUNT, _FRAME, _DISCARD = 0, 1, 2


class FrameDecoder:
    """Bytes in, :class:`Frame` and :class:`FrameError` out, in line order; never raises.

    Three states. *Hunt* (between frames): bytes other than ``7E`` are noise,
    one :class:`FrameError` ``noise`` per run; a ``7E`` opens a frame.
    *Frame*: bytes are collected (``7D x`` unstuffed to ``x ^ 20``) until a
    ``7E``. An empty frame (``7E 7E``) is idle fill, not an error. An intact
    frame consumes that ``7E`` as its closing flag (back to hunt); a spoilt one
    (``framing``, ``checksum``) does not, because the ``7E`` may be the opening
    flag of the next frame, cut into by the spoilt one. More than
    :data:`MAX_BODY` collected bytes is ``overlong``, a bad escape is
    ``framing``; both *discard* up to the next ``7E``, which opens a frame.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._state = _HUNT
        self._buf = bytearray()
        self._esc = False
        self._in_noise = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        for b in data:
            if self._state == _HUNT:
                if b == FLAG:
                    self._open()
                elif not self._in_noise:
                    self._in_noise = True
                    out.append(FrameError("noise"))
            elif self._state == _DISCARD:
                if b == FLAG:
                    self._open()
            elif b == FLAG:
                if self._esc:  # 7D 7E: an aborted frame
                    out.append(FrameError("framing"))
                    self._open()
                elif self._buf:
                    item = self._close()
                    out.append(item)
                    if isinstance(item, Frame):
                        self._state = _HUNT
                        self._in_noise = False
                    else:
                        self._open()
            elif self._esc:
                self._esc = False
                if b ^ ESC_XOR not in (FLAG, ESC):
                    out.append(FrameError("framing"))
                    self._state = _DISCARD
                else:
                    self._add(b ^ ESC_XOR, out)
            elif b == ESC:
                self._esc = True
            else:
                self._add(b, out)
        return out

    def _open(self) -> None:
        self._state = _FRAME
        self._buf.clear()
        self._esc = False

    def _add(self, b: int, out: list[Frame | FrameError]) -> None:
        self._buf.append(b)
        if len(self._buf) > MAX_BODY:
            out.append(FrameError("overlong"))
            self._buf.clear()
            self._state = _DISCARD

    def _close(self) -> Frame | FrameError:
        buf = bytes(self._buf)
        if len(buf) < 5 or buf[0] != len(buf) - 3:
            return FrameError("framing")
        if crc16_ccitt_false(buf[:-2]) != int.from_bytes(buf[-2:], "big"):
            return FrameError("checksum")
        return Frame(type=buf[1], seq=buf[2], payload=buf[3:-2])


def decode_payload(frame: Frame) -> Reading | None:
    """The reading a dispenser frame carries, or ``None`` for an unknown type or a bad payload."""
    spec = FRAME_TYPES.get(frame.type)
    if spec is None:
        return None
    kind, fmt = spec
    if len(frame.payload) != struct.calcsize(fmt):
        return None
    values = struct.unpack(fmt, frame.payload)
    if frame.type == DOSE_DUE:
        dose_id, scheduled, compartment = values
        return Reading(kind, {"dose_id": dose_id, "scheduled": scheduled or None, "compartment": compartment})
    if frame.type == DOSE_TAKEN:
        dose_id, taken_at = values
        return Reading(kind, {"dose_id": dose_id, "taken_at": taken_at or None})
    if frame.type == DOSE_MISSED:
        return Reading(kind, {"dose_id": values[0]})
    if frame.type == FAULT:
        code = values[0]
        return Reading(kind, {"code": code, "fault": FAULT_CODES.get(code, f"code_0x{code:02x}")})
    battery, left = values
    if battery > 100 and battery != UNKNOWN_U8:
        return None
    return Reading(
        kind,
        {
            "battery": None if battery == UNKNOWN_U8 else battery,
            "doses_left": None if left == UNKNOWN_U8 else left,
        },
    )


def encode_ack(frame: Frame) -> bytes:
    """The hub's ACK of ``frame``: ``SEQ`` is the acked sequence, the payload the acked type."""
    return encode_frame(ACK, frame.seq, bytes((frame.type,)))
