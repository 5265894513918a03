"""The bed mat itself, for the demo, the tests and the rig: valid sentences and spoilt ones on request."""

from __future__ import annotations

from typing import Any

from drivers.serial.base import Emulator
from drivers.serial.bedmat.wire import (
    BATTERY_MAX,
    MAX_LINE,
    SEQ_MAX,
    encode,
    encode_status,
    frame,
    int_in,
    state_word,
)

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
        self._seq = int_in("seq", options.get("seq", 0), 0, SEQ_MAX)
        self._battery = int_in("battery", options.get("battery", 100), 0, BATTERY_MAX)
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
            state = state_word(args.get("state")).lower()
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
        sentence = encode(self._next_seq(), self._occupancy, self._pressure, self._battery)
        star = sentence.index(b"*")
        if how == "bad_checksum":
            good = int(sentence[star + 1 : star + 3], 16)
            return sentence[: star + 1] + b"%02X\r\n" % (good ^ 0xFF)
        if how == "truncate":
            cut = sentence[: sentence.rindex(b",", 0, star)]  # lost the battery field and the checksum
            return cut + b"\r\n" if terminated else cut
        if how == "noise":
            middle = star // 2
            return sentence[:middle] + NOISE_BURST + sentence[middle:]
        # overlong: a well-formed frame with a correct checksum, padded past MAX_LINE
        body = sentence[1:star] + b"," + b"0" * MAX_LINE
        return frame(body)

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
