"""The bed-occupancy mat: NMEA-style ASCII sentences with an XOR checksum.

The mat sends, and never expects an answer::

    $BED,<seq>,<IN|OUT>,<pressure 0-1023>,<battery 0-100>*<XX>\\r\\n
    $BST,<seq>,<battery 0-100>,<firmware>*<XX>\\r\\n

``XX`` is the XOR of every byte between ``$`` and ``*``, as two hex digits.
The full description, with hex examples that the tests also decode, is in
``PROTOCOL-bedmat.md`` next to this file.

* :class:`BedMatParser` turns bytes into ``occupancy`` and ``status`` readings.
  It reads byte by byte through a three-state machine, so the result never
  depends on how the bytes were chunked, and a ``$`` always starts a new frame.
  Every discarded line is counted exactly once, under the first problem found.
* :class:`BedMatLogic` debounces occupancy into ``bed.exit`` / ``bed.return``
  and raises ``device.battery_low`` once, with hysteresis.
* :class:`BedMatEmulator` is the mat: valid sentences and spoilt ones on request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from drivers.serial.base import BatteryWatch, DeviceLogic, Emit, Emulator, FeedResult, Parser, Reading
from hub.events import Priority

__all__ = [
    "MAX_LINE",
    "BedMatEmulator",
    "BedMatLogic",
    "BedMatOptions",
    "BedMatParser",
    "checksum",
    "decode_line",
    "encode",
    "encode_status",
    "load_options",
]

#: The longest line accepted, in bytes, counting the ``$`` and the terminating ``\n`` (and its ``\r``), as in NMEA 0183.
MAX_LINE = 82
#: At most this many bytes (``$`` included, ``\n`` excluded) are held while waiting for the newline.
_MAX_HELD = MAX_LINE - 1

SEQ_MAX = 65535
PRESSURE_MAX = 1023
BATTERY_MAX = 100

_DOLLAR, _LF, _CR = 0x24, 0x0A, 0x0D
#: Bytes that may appear in a line: printable ASCII. ``\r`` and ``\n`` are handled apart; anything else is noise.
_PRINTABLE = frozenset(range(0x20, 0x7F))

#: ``$``, a body of printable ASCII without ``*``, ``*``, two hex digits
_LINE = re.compile(rb"\$([\x20-\x29\x2B-\x7E]*)\*([0-9A-Fa-f]{2})")
_SEQ = re.compile(rb"[0-9]{1,5}")
_PRESSURE = re.compile(rb"[0-9]{1,4}")
_BATTERY = re.compile(rb"[0-9]{1,3}")
_FIRMWARE = re.compile(rb"[A-Za-z0-9._+-]{1,16}")
_FIRMWARE_STR = re.compile(r"[A-Za-z0-9._+-]{1,16}")

# parser states
_IDLE = 0  # at the start of a line: nothing held
_FRAME = 1  # inside a frame that began with '$': bytes held in the buffer
_SKIP = 2  # discarding a line already counted as an error, up to the next '$' or '\n'


def checksum(body: bytes) -> int:
    """The NMEA checksum: XOR of every byte of ``body`` (the bytes between ``$`` and ``*``)."""
    c = 0
    for b in body:
        c ^= b
    return c


def _frame(body: bytes) -> bytes:
    return b"$" + body + b"*%02X\r\n" % checksum(body)


def _int_in(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def _state_word(state: Any) -> str:
    if not isinstance(state, str) or state.lower() not in ("in", "out"):
        raise ValueError(f"state must be 'in' or 'out', not {state!r}")
    return state.upper()


def encode(seq: int, state: str, pressure: int, battery: int) -> bytes:
    """One ``$BED`` sentence, ``\\r\\n`` included. Raises ``ValueError`` on a value out of range."""
    body = b"BED,%d,%s,%d,%d" % (
        _int_in("seq", seq, 0, SEQ_MAX),
        _state_word(state).encode(),
        _int_in("pressure", pressure, 0, PRESSURE_MAX),
        _int_in("battery", battery, 0, BATTERY_MAX),
    )
    return _frame(body)


def encode_status(seq: int, battery: int, firmware: str) -> bytes:
    """One ``$BST`` status sentence, ``\\r\\n`` included. Raises ``ValueError`` on a bad value."""
    if not isinstance(firmware, str) or not _FIRMWARE_STR.fullmatch(firmware):
        raise ValueError(f"firmware must be 1 to 16 of A-Z a-z 0-9 . _ + -, not {firmware!r}")
    body = b"BST,%d,%d,%s" % (
        _int_in("seq", seq, 0, SEQ_MAX),
        _int_in("battery", battery, 0, BATTERY_MAX),
        firmware.encode(),
    )
    return _frame(body)


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
                        result.readings.append(out)
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
        return result


# --------------------------------------------------------------------------- logic

Pct = Annotated[int, msgspec.Meta(ge=1, le=100)]
HoldSeconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class BedMatOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Options of a bed mat's logic. Ranges are checked by ``msgspec.convert``/decode;
    the cross-field rule by :meth:`check` (both done by :func:`load_options`)."""

    exit_after_s: Annotated[
        HoldSeconds, msgspec.Meta(description="bed.exit once the mat has read OUT this long without a break.")
    ] = 10.0
    return_after_s: Annotated[
        HoldSeconds, msgspec.Meta(description="bed.return once the mat has read IN this long after a bed.exit.")
    ] = 5.0
    battery_low_pct: Annotated[Pct, msgspec.Meta(description="device.battery_low when the battery is below this.")] = 20
    battery_ok_pct: Annotated[
        Pct, msgspec.Meta(description="Re-arms battery_low when the battery is back at or above this (> low).")
    ] = 30

    def check(self) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key, message)``; empty when the options are consistent."""
        problems: list[tuple[str, str]] = []
        if self.battery_ok_pct <= self.battery_low_pct:
            problems.append(
                (
                    "battery_ok_pct",
                    f"must be greater than battery_low_pct ({self.battery_low_pct}), "
                    f"not {self.battery_ok_pct}: it is the level that re-arms the low-battery warning",
                )
            )
        return problems


def load_options(options: Mapping[str, Any] | BedMatOptions | None = None) -> BedMatOptions:
    """Validate options (ranges, unknown keys, cross-field rules); ``ValueError`` lists the problems."""
    if isinstance(options, BedMatOptions):
        # built directly: msgspec does not check Meta constraints on __init__, so round-trip
        options = msgspec.structs.asdict(options)
    try:
        opts = msgspec.convert(dict(options or {}), BedMatOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bedmat options: {exc}") from None
    problems = opts.check()
    if problems:
        raise ValueError("bedmat options: " + "; ".join(f"{k}: {m}" for k, m in problems))
    return opts


class BedMatLogic(DeviceLogic):
    """Occupancy readings → ``bed.exit`` / ``bed.return``; battery → ``device.battery_low``.

    * The first occupancy reading sets the baseline. If it is IN, a
      ``bed.return`` with ``data.baseline = true`` says so: after a hub restart
      this is how the rules learn that a resident who left before the crash
      is back, instead of alarming all night. An OUT baseline emits nothing
      (the hub did not see the resident leave).
    * ``bed.exit`` when the mat has read OUT without a break for ``exit_after_s``
      (measured from the first OUT reading); ``bed.return`` when it has then read
      IN for ``return_after_s``. A return is only reported after an exit this
      logic emitted, so exits and returns come in pairs.
    * A state is taken to hold until a reading says otherwise, and the timers are
      checked both on :meth:`tick` and on each reading (before the reading is
      applied), so the events do not depend on how often ``tick`` is called.
    * ``device.battery_low`` once when the battery is below ``battery_low_pct``
      (the first reading included), re-armed when it is back at or above
      ``battery_ok_pct``.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = load_options(options)
        self._now: float | None = None
        self._stable: str | None = None  # the debounced occupancy the hub reports
        self._stable_since: float | None = None
        self._raw: str | None = None  # what the mat reads now
        self._raw_since = 0.0  # the first reading of the current raw run
        self._raw_first: dict[str, Any] = {}
        self._exited_at: float | None = None  # when OUT began, for an exit emitted and not yet returned
        self._battery = BatteryWatch(self.opts.battery_low_pct, self.opts.battery_ok_pct)

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        self._now = now
        emits: list[Emit] = []
        f = reading.fields
        if reading.kind == "occupancy" and f.get("state") in ("in", "out"):
            state = f["state"]
            if self._raw is None:
                self._stable = self._raw = state
                self._stable_since = self._raw_since = now
                self._raw_first = dict(f)
                if state == "in":
                    emits.append(Emit("bed.return", Priority.NORMAL, {"baseline": True, "since_s": 0.0}))
            else:
                emits += self._due(now)  # the previous reading held until now
                if state != self._raw:
                    self._raw = state
                    self._raw_since = now
                    self._raw_first = dict(f)
                emits += self._due(now)
        battery = f.get("battery")
        if reading.kind in ("occupancy", "status") and isinstance(battery, int) and not isinstance(battery, bool):
            emits += self._battery_seen(battery)
        return emits

    def tick(self, now: float) -> list[Emit]:
        self._now = now
        return self._due(now)

    def state(self) -> dict[str, Any]:
        since = None
        if self._stable_since is not None and self._now is not None:
            since = round(max(0.0, self._now - self._stable_since), 3)
        return {"occupancy": self._stable, "since_s": since, "battery": self._battery.level}

    def _due(self, now: float) -> list[Emit]:
        if self._raw is None or self._raw == self._stable:
            return []
        first = self._raw_first
        data = {
            "since_s": round(now - self._raw_since, 3),
            "pressure": first.get("pressure"),
            "seq": first.get("seq"),
        }
        if self._raw == "out":
            if now < self._raw_since + self.opts.exit_after_s:
                return []
            self._stable, self._stable_since = "out", self._raw_since
            self._exited_at = self._raw_since
            return [Emit("bed.exit", Priority.NORMAL, data)]
        if now < self._raw_since + self.opts.return_after_s:
            return []
        self._stable, self._stable_since = "in", self._raw_since
        if self._exited_at is None:
            return []  # in bed after an OUT baseline: no exit was reported, so no return either
        data["away_s"] = round(self._raw_since - self._exited_at, 3)
        self._exited_at = None
        return [Emit("bed.return", Priority.NORMAL, data)]

    def _battery_seen(self, pct: int) -> list[Emit]:
        return self._battery.seen(pct)


# --------------------------------------------------------------------------- emulator

#: What ``corrupt`` / ``noise`` puts in the middle of a frame: binary, no ``$`` and no ``\n``.
NOISE_BURST = bytes([0x00, 0xFF, 0x1B, 0x80, 0xFE, 0x07, 0x9C])


class BedMatEmulator(Emulator):
    """The mat. Ops (``ValueError`` on anything else):

    * ``occupancy`` ``{state: "in"|"out", pressure?: int, battery?: int}``: one ``$BED``;
      pressure defaults to 640 for IN and 12 for OUT, battery to the last one sent;
    * ``status`` ``{battery?: int, firmware?: str}``: one ``$BST``;
    * ``corrupt`` ``{how: bad_checksum|truncate|noise|overlong, terminated?: bool}``:
      a ``$BED`` of the current state, spoilt (it uses up a seq, as on the real mat);
    * ``raw`` ``{hex: str}``: exactly those bytes.

    Every sentence takes the next seq (one counter for both sentences, 65535 wraps to 0).
    Options: ``seq`` (first seq, 0), ``battery`` (100), ``firmware`` ("2.1.0"),
    ``repeat_s`` (re-send the current ``$BED`` from :meth:`tick` this often; off by default).
    """

    name = "bedmat"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._seq = _int_in("seq", options.get("seq", 0), 0, SEQ_MAX)
        self._battery = _int_in("battery", options.get("battery", 100), 0, BATTERY_MAX)
        self._firmware = options.get("firmware", "2.1.0")
        encode_status(0, 0, self._firmware)  # validates
        repeat = options.get("repeat_s")
        if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, (int, float)) or repeat <= 0):
            raise ValueError(f"repeat_s must be a positive number, not {repeat!r}")
        self._repeat_s: float | None = repeat
        self._next_repeat: float | None = None
        self._occupancy = "in"
        self._pressure = 640
        self._sent = 0

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % (SEQ_MAX + 1)
        self._sent += 1
        return seq

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        args = dict(args or {})
        if op == "occupancy":
            state = _state_word(args.get("state")).lower()
            pressure = args.get("pressure", 640 if state == "in" else 12)
            battery = args.get("battery", self._battery)
            encode(0, state, pressure, battery)  # validate before a seq is used
            self._occupancy, self._pressure, self._battery = state, pressure, battery
            if self._repeat_s is not None:
                self._next_repeat = now + self._repeat_s
            return encode(self._next_seq(), state, pressure, battery)
        if op == "status":
            battery = args.get("battery", self._battery)
            firmware = args.get("firmware", self._firmware)
            encode_status(0, battery, firmware)
            self._battery, self._firmware = battery, firmware
            return encode_status(self._next_seq(), battery, firmware)
        if op == "corrupt":
            return self._corrupt(args.get("how"), args.get("terminated", True))
        if op == "raw":
            hexstr = args.get("hex")
            if not isinstance(hexstr, str):
                raise ValueError("raw needs 'hex': a string of hex digits")
            return bytes.fromhex(hexstr)  # ValueError on bad hex
        raise ValueError(f"unknown op {op!r}: occupancy, status, corrupt or raw")

    def _corrupt(self, how: Any, terminated: Any) -> bytes:
        if how not in ("bad_checksum", "truncate", "noise", "overlong"):
            raise ValueError(f"corrupt 'how' must be bad_checksum, truncate, noise or overlong, not {how!r}")
        frame = encode(self._next_seq(), self._occupancy, self._pressure, self._battery)
        star = frame.index(b"*")
        if how == "bad_checksum":
            good = int(frame[star + 1 : star + 3], 16)
            return frame[: star + 1] + b"%02X\r\n" % (good ^ 0xFF)
        if how == "truncate":
            cut = frame[: frame.rindex(b",", 0, star)]  # lost the battery field and the checksum
            return cut + b"\r\n" if terminated else cut
        if how == "noise":
            middle = star // 2
            return frame[:middle] + NOISE_BURST + frame[middle:]
        # overlong: a well-formed frame with a correct checksum, padded past MAX_LINE
        body = frame[1:star] + b"," + b"0" * MAX_LINE
        return _frame(body)

    def tick(self, now: float) -> bytes:
        if self._repeat_s is None or self._next_repeat is None or now < self._next_repeat:
            return b""
        self._next_repeat = now + self._repeat_s
        return encode(self._next_seq(), self._occupancy, self._pressure, self._battery)

    def state(self) -> dict[str, Any]:
        return {
            "next_seq": self._seq,
            "occupancy": self._occupancy,
            "pressure": self._pressure,
            "battery": self._battery,
            "firmware": self._firmware,
            "sent": self._sent,
        }
