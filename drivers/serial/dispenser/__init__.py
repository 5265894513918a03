"""The medication dispenser: binary HDLC-style frames, acknowledged one by one.

Wire format (the full description, with hex examples, is in
``drivers/serial/PROTOCOL-dispenser.md``)::

    7E | stuffed( LEN TYPE SEQ PAYLOAD CRC_HI CRC_LO ) | 7E

``LEN`` counts ``TYPE SEQ PAYLOAD``; the CRC is CRC-16/CCITT-FALSE over
``LEN TYPE SEQ PAYLOAD``, big-endian. Between the two flags every ``7E`` and
``7D`` is sent as ``7D`` followed by the byte XOR ``20`` (byte stuffing), so
a ``7E`` on the line is always a frame boundary and a receiver finds the next
frame after any garbage.

The dispenser numbers its frames (``SEQ``, one byte, wrapping) and re-sends a
frame until the hub acknowledges it; the hub ACKs every intact frame and
drops byte-identical re-sends (same ``SEQ``, same type and payload) seen in
the last ``dedup_window_s`` seconds. The ACK of a frame that gave a reading is
a :class:`~drivers.serial.base.Confirm`: it goes out once the reading's events
are committed; if they are not, :meth:`DispenserParser.unconfirmed` forgets the
frame so its re-send is read again.

Modules (pieces as in :mod:`drivers.serial.base`):

* :mod:`.wire`: :func:`crc16_ccitt_false`, :func:`encode_frame`, the
  :class:`FrameDecoder` both sides use, :func:`decode_payload`, :func:`encode_ack`;
* :mod:`.options`: :class:`DispenserOptions`;
* :mod:`.parser`: :class:`DispenserParser` (hub side);
* :mod:`.logic`: :class:`DispenserLogic` (doses, grace timer, faults, battery);
* :mod:`.emulator`: :class:`DispenserEmulator` (device side).
"""

from __future__ import annotations

from drivers.serial.dispenser.emulator import DispenserEmulator
from drivers.serial.dispenser.logic import CLOSED_MEMORY_S, DispenserLogic
from drivers.serial.dispenser.options import DispenserOptions, Percent
from drivers.serial.dispenser.parser import DispenserParser
from drivers.serial.dispenser.wire import (
    ACK,
    DOSE_DUE,
    DOSE_MISSED,
    DOSE_TAKEN,
    ESC,
    ESC_XOR,
    FAULT,
    FAULT_CODES,
    FAULT_NAMES,
    FLAG,
    FRAME_TYPES,
    KIND_TYPES,
    MAX_BODY,
    MAX_LEN,
    MAX_PAYLOAD,
    STATUS,
    UNKNOWN_U8,
    Frame,
    FrameDecoder,
    FrameError,
    crc16_ccitt_false,
    decode_payload,
    encode_ack,
    encode_frame,
)

__all__ = [
    "ACK",
    "CLOSED_MEMORY_S",
    "DOSE_DUE",
    "DOSE_MISSED",
    "DOSE_TAKEN",
    "ESC",
    "ESC_XOR",
    "FAULT",
    "FAULT_CODES",
    "FAULT_NAMES",
    "FLAG",
    "FRAME_TYPES",
    "KIND_TYPES",
    "MAX_BODY",
    "MAX_LEN",
    "MAX_PAYLOAD",
    "STATUS",
    "UNKNOWN_U8",
    "DispenserEmulator",
    "DispenserLogic",
    "DispenserOptions",
    "DispenserParser",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "Percent",
    "crc16_ccitt_false",
    "decode_payload",
    "encode_ack",
    "encode_frame",
]
