"""The dispenser itself, for the demo, the tests and the rig: numbered frames, re-sent until acked."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.serial.base import Emulator
from drivers.serial.dispenser.wire import (
    ACK,
    DOSE_DUE,
    DOSE_MISSED,
    DOSE_TAKEN,
    FAULT,
    FAULT_NAMES,
    FLAG,
    MAX_PAYLOAD,
    STATUS,
    UNKNOWN_U8,
    Frame,
    FrameDecoder,
    crc16_ccitt_false,
    encode_frame,
    frame_unchecked,
    stuff,
)


@dataclass
class _Pending:
    frame: bytes
    type: int
    sent_at: float


def _u(args: dict[str, Any], key: str, bits: int, default: int | None = None) -> int:
    value = args.get(key, default)
    if value is None:
        raise ValueError(f"missing {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{key!r} must be an integer 0..{(1 << bits) - 1}, not {value!r}")
    return value


class DispenserEmulator(Emulator):
    """Device side: numbered frames, kept and re-sent every ``resend_s`` until the hub ACKs them.

    Options: ``resend_s`` (1.0), ``resend`` (True; False sends each frame once),
    ``start_seq`` (0: the first sequence number after power-on).
    Besides the frame ops, ``op="reboot"`` forgets the unacked frames and
    restarts the sequence at ``start_seq``, as a dispenser does on power-up.
    """

    name: ClassVar[str] = "dispenser"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        unknown = set(options) - {"resend_s", "resend", "start_seq"}
        if unknown:
            raise ValueError(f"unknown dispenser emulator options: {sorted(unknown)}")
        self.resend_s = float(options.get("resend_s", 1.0))
        if not self.resend_s > 0:
            raise ValueError("resend_s must be > 0")
        self.resend = bool(options.get("resend", True))
        self.start_seq = _u(options, "start_seq", 8, 0)
        self._seq = self.start_seq
        self._unacked: dict[int, _Pending] = {}
        self._decoder = FrameDecoder()
        self.acks_seen = 0
        self.resends = 0

    def _send(self, type_: int, payload: bytes, now: float) -> bytes:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFF
        frame = encode_frame(type_, seq, payload)
        self._unacked.pop(seq, None)  # 256 frames unacked: the oldest with this seq gives way
        self._unacked[seq] = _Pending(frame, type_, now)
        return frame

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        args = args or {}
        if op == "dose_due":
            payload = struct.pack(
                ">HIB", _u(args, "dose_id", 16), _u(args, "scheduled", 32, 0), _u(args, "compartment", 8, 1)
            )
            return self._send(DOSE_DUE, payload, now)
        if op == "dose_taken":
            return self._send(DOSE_TAKEN, struct.pack(">HI", _u(args, "dose_id", 16), _u(args, "taken_at", 32, 0)), now)
        if op == "dose_missed":
            return self._send(DOSE_MISSED, struct.pack(">H", _u(args, "dose_id", 16)), now)
        if op == "fault":
            fault = args.get("fault")
            code = FAULT_NAMES.get(fault) if isinstance(fault, str) else fault
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 0xFF:
                raise ValueError(f"fault must be one of {sorted(FAULT_NAMES)} or a code 0..255, not {fault!r}")
            return self._send(FAULT, bytes((code,)), now)
        if op == "status":
            battery = args.get("battery")
            battery = UNKNOWN_U8 if battery is None else _u(args, "battery", 8)
            if battery > 100 and battery != UNKNOWN_U8:
                raise ValueError(f"battery must be 0..100, not {battery!r}")
            left = args.get("doses_left")
            left = UNKNOWN_U8 if left is None else _u(args, "doses_left", 8)
            return self._send(STATUS, bytes((battery, left)), now)
        if op == "reboot":
            self._seq = self.start_seq
            self._unacked.clear()
            self._decoder.reset()
            return b""
        if op == "corrupt":
            return self._corrupt(args.get("how"))
        raise ValueError(f"unknown dispenser op {op!r}")

    def _corrupt(self, how: Any) -> bytes:
        # spoilt frames are not kept for re-sending and use no sequence number
        payload = bytes((55, 9))
        good = encode_frame(STATUS, self._seq, payload)
        if how == "bad_checksum":
            head = bytes((len(payload) + 2, STATUS, self._seq)) + payload
            crc = crc16_ccitt_false(head) ^ 0x0001
            return bytes((FLAG,)) + stuff(head + crc.to_bytes(2, "big")) + bytes((FLAG,))
        if how == "truncate":
            return good[: len(good) // 2]  # no closing flag: the next frame's opening flag ends it
        if how == "noise":
            return bytes((0x00, 0xFF, 0x13, 0x37, 0xA5, 0x5A, 0x0D, 0x0A))
        if how == "overlong":
            return frame_unchecked(STATUS, self._seq, bytes(range(1, MAX_PAYLOAD + 11)))
        raise ValueError(f"corrupt how must be bad_checksum, truncate, noise or overlong, not {how!r}")

    def on_data(self, data: bytes, now: float) -> bytes:
        for item in self._decoder.feed(bytes(data)):
            if isinstance(item, Frame) and item.type == ACK and len(item.payload) == 1:
                self.acks_seen += 1
                pending = self._unacked.get(item.seq)
                if pending is not None and pending.type == item.payload[0]:
                    del self._unacked[item.seq]
        return b""

    def tick(self, now: float) -> bytes:
        if not self.resend:
            return b""
        out = bytearray()
        for pending in self._unacked.values():
            if now - pending.sent_at >= self.resend_s:
                out += pending.frame
                pending.sent_at = now
                self.resends += 1
        return bytes(out)

    def state(self) -> dict[str, Any]:
        return {
            "unacked": list(self._unacked),
            "acks_seen": self.acks_seen,
            "resends": self.resends,
            "next_seq": self._seq,
        }
