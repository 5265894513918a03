"""The medication dispenser: binary HDLC-style frames, acknowledged one by one.

Wire format (the full description, with hex examples, is in
``PROTOCOL-dispenser.md`` next to this file)::

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

Pieces (see :mod:`drivers.serial.base`): :class:`DispenserParser` (hub side),
:class:`DispenserLogic` (doses, grace timer, faults, battery),
:class:`DispenserEmulator` (device side), :class:`DispenserOptions`; and the
pure functions :func:`crc16_ccitt_false`, :func:`encode_frame` and the
:class:`FrameDecoder` both sides use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import msgspec

from drivers.serial.base import BatteryWatch, Confirm, DeviceLogic, Emit, Emulator, FeedResult, Parser, Reading
from hub.events import Priority

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


def _stuff(body: bytes) -> bytes:
    out = bytearray()
    for b in body:
        if b in (FLAG, ESC):
            out += bytes((ESC, b ^ ESC_XOR))
        else:
            out.append(b)
    return bytes(out)


def _frame_unchecked(type_: int, seq: int, payload: bytes) -> bytes:
    head = bytes((len(payload) + 2 & 0xFF, type_ & 0xFF, seq & 0xFF)) + payload
    body = head + crc16_ccitt_false(head).to_bytes(2, "big")
    return bytes((FLAG,)) + _stuff(body) + bytes((FLAG,))


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
    return _frame_unchecked(type_, seq, bytes(payload))


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


# --------------------------------------------------------------------------- options

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]


class DispenserOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[devices.options]`` of a ``protocol = "dispenser"`` device."""

    grace_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="A due dose not taken within this many seconds is reported missed by the hub."),
    ] = 1800.0
    battery_low_pct: Annotated[
        Percent, msgspec.Meta(description="device.battery_low once the battery is below this.")
    ] = 20
    battery_ok_pct: Annotated[
        Percent,
        msgspec.Meta(description="A new battery_low only after the battery was back at or above this (hysteresis)."),
    ] = 30
    dedup_window_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="A re-sent frame (same sequence and content) seen again within this many seconds is a duplicate.",
        ),
    ] = 60.0

    def __post_init__(self) -> None:
        if self.battery_ok_pct <= self.battery_low_pct:
            raise ValueError(
                f"battery_ok_pct ({self.battery_ok_pct}) must be above battery_low_pct ({self.battery_low_pct})"
            )


def _options(options: dict[str, Any]) -> DispenserOptions:
    given = options.get("options")
    if len(options) == 1 and isinstance(given, DispenserOptions):
        return given
    return msgspec.convert(options, DispenserOptions)


# --------------------------------------------------------------------------- hub side


class DispenserParser(Parser):
    """Hub side: decodes frames, ACKs every intact one, drops re-sent duplicates."""

    name: ClassVar[str] = "dispenser"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _options(options)
        self._decoder = FrameDecoder()
        #: seq -> (type + payload, last time seen): what each sequence number last carried
        self._seen: dict[int, tuple[bytes, float]] = {}

    def feed(self, data: bytes, now: float) -> FeedResult:
        result = FeedResult()
        try:
            items = self._decoder.feed(bytes(data))
        except Exception:  # pragma: no cover - the decoder does not raise; belt and braces
            self._decoder.reset()
            self.errors["framing"] += 1
            return result
        for item in items:
            if isinstance(item, FrameError):
                self.errors[item.kind] += 1
                continue
            self._frame(item, now, result)
        return result

    def _frame(self, frame: Frame, now: float, result: FeedResult) -> None:
        if frame.type & 0x80:  # a hub frame (our own ACK echoed back): never ACK an ACK
            self.errors["unsupported"] += 1
            return
        ack = encode_ack(frame)
        content = bytes((frame.type,)) + frame.payload
        seen = self._seen.get(frame.seq)
        self._seen[frame.seq] = (content, now)
        if seen is not None and seen[0] == content and now - seen[1] <= self.opts.dedup_window_s:
            self.errors["duplicate"] += 1
            result.replies.append(ack)  # its reading was taken the first time: confirms nothing new
            return
        reading = decode_payload(frame)
        if reading is None:
            self.errors["unsupported"] += 1
            result.replies.append(ack)  # nothing to store: the ACK need not wait
            return
        result.readings.append(reading)
        result.replies.append(Confirm(ack, readings=len(result.readings)))

    def unconfirmed(self, confirm: Confirm) -> None:
        """The ACK in ``confirm`` was not sent: forget its frame's seq, so the re-send is read again."""
        for item in FrameDecoder().feed(confirm.data):
            if isinstance(item, Frame) and item.type == ACK and len(item.payload) == 1:
                seen = self._seen.get(item.seq)
                if seen is not None and seen[0][:1] == item.payload:
                    del self._seen[item.seq]

    def reset(self) -> None:
        self._decoder.reset()


@dataclass
class _Dose:
    dose_id: int
    scheduled: int | None
    compartment: int | None
    due_at: float


#: How long a finished dose is remembered, so late or repeated reports about it are not taken as new.
CLOSED_MEMORY_S = 86400.0


class DispenserLogic(DeviceLogic):
    """Doses due, taken and missed (with the hub's own grace timer), faults and battery."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _options(options)
        self._open: dict[int, _Dose] = {}
        #: dose_id -> ("taken" | "missed", when): finished doses
        self._closed: dict[int, tuple[str, float]] = {}
        self._last_fault: str | None = None
        self._battery = BatteryWatch(self.opts.battery_low_pct, self.opts.battery_ok_pct)
        self._doses_left: int | None = None

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        f = reading.fields
        handler = {
            "dose_due": self._due,
            "dose_taken": self._taken,
            "dose_missed": self._missed,
            "fault": self._fault,
            "status": self._status,
        }.get(reading.kind)
        return handler(f, now) if handler else []

    def _due(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        if dose_id in self._open:  # announced again while still open: one dose, one timer
            return []
        self._closed.pop(dose_id, None)  # a finished id scheduled again is a new dose
        self._open[dose_id] = _Dose(dose_id, f.get("scheduled"), f.get("compartment"), now)
        data = {"dose_id": dose_id, "scheduled": f.get("scheduled"), "compartment": f.get("compartment")}
        return [Emit("medication.due", Priority.NORMAL, data)]

    def _taken(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        closed = self._closed.get(dose_id)
        if closed is not None and closed[0] == "taken":
            return []
        dose = self._open.pop(dose_id, None)
        self._closed[dose_id] = ("taken", now)
        data: dict[str, Any] = {"dose_id": dose_id, "taken_at": f.get("taken_at"), "late": closed is not None}
        if dose is not None:
            data["compartment"] = dose.compartment
        return [Emit("medication.taken", Priority.NORMAL, data)]

    def _missed(self, f: dict[str, Any], now: float) -> list[Emit]:
        dose_id = f["dose_id"]
        if dose_id in self._closed:  # already missed (by the hub's timer) or taken
            return []
        self._open.pop(dose_id, None)
        self._closed[dose_id] = ("missed", now)
        return [Emit("medication.missed", Priority.HIGH, {"dose_id": dose_id, "reported_by": "dispenser"})]

    def _fault(self, f: dict[str, Any], now: float) -> list[Emit]:
        fault = f["fault"]
        if fault == "cleared":
            self._last_fault = None
            return []
        self._last_fault = fault
        return [Emit("device.fault", Priority.HIGH, {"fault": fault, "code": f.get("code")})]

    def _status(self, f: dict[str, Any], now: float) -> list[Emit]:
        battery = f.get("battery")
        self._doses_left = f.get("doses_left")
        if battery is None:
            return []
        return self._battery.seen(battery)

    def tick(self, now: float) -> list[Emit]:
        out: list[Emit] = []
        for dose in sorted(self._open.values(), key=lambda d: d.due_at):
            if now - dose.due_at >= self.opts.grace_s:
                del self._open[dose.dose_id]
                self._closed[dose.dose_id] = ("missed", now)
                data = {"dose_id": dose.dose_id, "reported_by": "hub", "grace_s": self.opts.grace_s}
                out.append(Emit("medication.missed", Priority.HIGH, data))
        for dose_id, (_, when) in list(self._closed.items()):
            if now - when > CLOSED_MEMORY_S:
                del self._closed[dose_id]
        return out

    def state(self) -> dict[str, Any]:
        return {
            "open_doses": [
                {"dose_id": d.dose_id, "scheduled": d.scheduled, "compartment": d.compartment}
                for d in sorted(self._open.values(), key=lambda d: d.due_at)
            ],
            "last_fault": self._last_fault,
            "battery": self._battery.level,
            "battery_low": self._battery.low,
            "doses_left": self._doses_left,
        }


# --------------------------------------------------------------------------- device side


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
            return bytes((FLAG,)) + _stuff(head + crc.to_bytes(2, "big")) + bytes((FLAG,))
        if how == "truncate":
            return good[: len(good) // 2]  # no closing flag: the next frame's opening flag ends it
        if how == "noise":
            return bytes((0x00, 0xFF, 0x13, 0x37, 0xA5, 0x5A, 0x0D, 0x0A))
        if how == "overlong":
            return _frame_unchecked(STATUS, self._seq, bytes(range(1, MAX_PAYLOAD + 11)))
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
