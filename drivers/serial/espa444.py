"""ESPA 4.4.4 from a nurse-call system: the hub is the paging-system (receiving) side.

The nurse-call system selects the hub with ``<address> ENQ``; the hub answers
``ACK``; the nurse-call then sends one or more data blocks
``SOH <header> STX <records> ETX <BCC>``, each answered ``ACK`` (BCC right, block
taken) or ``NAK`` (send it again), and ends the session with ``EOT``.
A record is ``<identifier> US <value>``; records are separated by ``RS``.
See ``PROTOCOL-espa444.md`` next to this file for the byte-level details, the
choices made where the 1984 standard is loose, and hex examples.

Pure pieces, no I/O: :func:`bcc`, :func:`encode_block`, :func:`parse_records`,
:class:`EspaParser` (hub side), :class:`EspaLogic` (calls to
``alarm.nursecall`` events) and :class:`EspaEmulator` (the nurse-call side).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from drivers.serial.base import DeviceLogic, Emit, Emulator, FeedResult, Parser, Reading
from hub.events import Priority

__all__ = [
    "ACK",
    "DEFAULT_PRIORITIES",
    "ENQ",
    "EOT",
    "ETX",
    "MAX_BLOCK",
    "NAK",
    "RS",
    "SOH",
    "STX",
    "US",
    "EspaEmulator",
    "EspaLogic",
    "EspaOptions",
    "EspaParser",
    "bcc",
    "decode_text",
    "encode_block",
    "encode_text",
    "parse_records",
]

# --- control characters (ISO 1745 / ESPA 4.4.4 section 2.3) ------------------------------

SOH = 0x01  #: start of header
STX = 0x02  #: start of text (end of header)
ETX = 0x03  #: end of text; the BCC follows
EOT = 0x04  #: end of transmission: the session is over
ENQ = 0x05  #: enquiry: ``<address> ENQ`` selects a station; a bare ENQ asks for the last reply again
ACK = 0x06  #: positive acknowledgement
NAK = 0x15  #: negative acknowledgement
RS = 0x1E  #: record separator: between two data records
US = 0x1F  #: unit separator: between a record's identifier and its value

#: Longest block accepted, SOH through BCC inclusive. Longer ones are counted as
#: ``overlong``, skipped up to their ETX and BCC, and answered NAK.
MAX_BLOCK = 256
_MAX_CONTENT = MAX_BLOCK - 3  # bytes between SOH and ETX (header, STX, records)
_MAX_ADDR = 16  # printable bytes remembered in front of an ENQ

#: ESPA priority digit (identifier 6) to event priority, before ``EspaOptions.priorities``.
DEFAULT_PRIORITIES: dict[str, str] = {"1": "critical", "2": "high", "3": "normal"}

PriorityName = Literal["critical", "high", "normal", "low"]
Charset = Literal["latin-1", "cp850", "iso646-no", "iso646-se", "iso646-de"]


class EspaOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Options of an ``espa444`` serial device (parser, logic and emulator take the same set)."""

    #: The hub's ESPA station address: it answers ``<address> ENQ`` and nothing else.
    #: The standard recommends '2' for the paging system when the nurse-call is '1'.
    address: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z]{1,8}$")] = "1"
    #: ESPA call address (identifier 1) to room name.
    rooms: dict[str, str] = {}
    #: ESPA priority digit (identifier 6) to event priority; merged over 1=critical, 2=high, 3=normal.
    priorities: dict[str, PriorityName] = {}
    #: Event priority of a call whose priority digit is missing or not mapped.
    default_priority: PriorityName = "high"
    #: The same call (address, text, call type, priority) again within this many seconds of the
    #: event it raised gives no new event. 0 turns this off.
    dedup_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0
    #: A session (selection to EOT) with no completed block for this long is dropped.
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    #: How bytes in text values map to characters (ESPA is 7-bit; Nordic systems often use ISO 646).
    charset: Charset = "latin-1"


def _convert_options(options: Mapping[str, Any]) -> EspaOptions:
    return msgspec.convert(dict(options), EspaOptions)


# --- text ----------------------------------------------------------------------------------

_ISO646: dict[str, dict[str, str]] = {
    "iso646-no": {"[": "Æ", "\\": "Ø", "]": "Å", "{": "æ", "|": "ø", "}": "å"},
    "iso646-se": {"[": "Ä", "\\": "Ö", "]": "Å", "{": "ä", "|": "ö", "}": "å"},
    "iso646-de": {"@": "§", "[": "Ä", "\\": "Ö", "]": "Ü", "{": "ä", "|": "ö", "}": "ü", "~": "ß"},
}
_DECODE_TABLES = {name: str.maketrans(table) for name, table in _ISO646.items()}
_ENCODE_TABLES = {name: str.maketrans({v: k for k, v in table.items()}) for name, table in _ISO646.items()}


def decode_text(data: bytes, charset: str = "latin-1") -> str:
    """Bytes of a record value to text; never raises (unknown bytes become U+FFFD)."""
    if charset in _DECODE_TABLES:
        return data.decode("ascii", errors="replace").translate(_DECODE_TABLES[charset])
    return data.decode(charset, errors="replace")


def encode_text(text: str, charset: str = "latin-1") -> bytes:
    """Text to the bytes of a record value; characters the charset lacks become '?'."""
    if charset in _ENCODE_TABLES:
        return text.translate(_ENCODE_TABLES[charset]).encode("ascii", errors="replace")
    return text.encode(charset, errors="replace")


# --- blocks --------------------------------------------------------------------------------


def bcc(data: bytes) -> int:
    """Block check character: XOR of ``data``.

    For a block pass everything after SOH up to and including ETX (header, STX, records, ETX).
    """
    value = 0
    for b in data:
        value ^= b
    return value


def _as_bytes(value: str | bytes | int, charset: str) -> bytes:
    if isinstance(value, bytes):
        return value
    return encode_text(str(value), charset)


def encode_block(
    header: str | bytes,
    records: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
    charset: str = "latin-1",
) -> bytes:
    """``SOH header STX id US value (RS id US value)* ETX BCC``.

    ``records`` is a mapping or pairs of identifier and value, sent in that order.
    Raises ``ValueError`` if the header or a record holds a control character.
    """
    items = records.items() if isinstance(records, Mapping) else records
    parts = []
    for ident, value in items:
        i, v = _as_bytes(ident, charset), _as_bytes(value, charset)
        if not i or any(b < 0x20 for b in i + v):
            raise ValueError(f"record {ident!r}: identifier empty or control character in it")
        parts.append(i + bytes([US]) + v)
    head = _as_bytes(header, charset)
    if any(b < 0x20 and b != US for b in head):
        raise ValueError(f"header {header!r}: control character in it")
    body = head + bytes([STX]) + bytes([RS]).join(parts) + bytes([ETX])
    return bytes([SOH]) + body + bytes([bcc(body)])


def parse_records(text: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
    """Split the text part of a block (between STX and ETX) into (identifier, value) pairs.

    Standard layout ``1 US 101 RS 2 US text``. A block whose first separator is RS
    is read as the swapped layout ``1 RS 101 US 2 RS text`` that some systems send.
    Returns the pairs (identifiers stripped of spaces) and how many records had no
    separator (skipped).
    """
    if not text:
        return [], 0
    first = next((b for b in text if b in (US, RS)), US)
    inner, outer = (RS, US) if first == RS else (US, RS)
    pairs: list[tuple[bytes, bytes]] = []
    bad = 0
    for record in text.split(bytes([outer])):
        if not record:
            continue
        ident, sep, value = record.partition(bytes([inner]))
        ident = ident.strip()
        if not sep or not ident:
            bad += 1
            continue
        pairs.append((ident, value))
    return pairs, bad


# --- parser (hub side) ---------------------------------------------------------------------


class _St(enum.Enum):
    IDLE = "idle"  # not selected: watching for <our address> ENQ
    SELECTED = "selected"  # we answered ACK to our selection; waiting for SOH or EOT
    BLOCK = "block"  # inside SOH ... ETX
    BCC = "bcc"  # ETX seen; the next byte is the BCC
    SKIP = "skip"  # an overlong block: discarding up to its ETX
    SKIP_BCC = "skip_bcc"  # discarding the overlong block's BCC; then NAK


class EspaParser(Parser):
    """Receiving (paging-system) side of ESPA 4.4.4: see the module docstring and the protocol doc."""

    name = "espa444"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        self._our = self.opts.address.encode("ascii")
        self._state = _St.IDLE
        self._addr = bytearray()  # printable bytes since the last control character
        self._buf = bytearray()  # block content after SOH, without ETX
        self._bcc = 0
        self._deadline = 0.0
        self._last_reply: bytes | None = None
        self._last_block: bytes | None = None  # last block accepted this session (duplicate check)

    @property
    def state(self) -> str:
        """The link state, for ``status``: idle, selected, block, bcc, skip or skip_bcc."""
        return self._state.value

    # -- public interface --

    def feed(self, data: bytes, now: float) -> FeedResult:
        res = FeedResult()
        try:
            self._expire(now)
            for b in bytes(data):
                self._byte(b, now, res)
        except Exception:  # pragma: no cover - a bug; the contract says never raise
            self.errors["internal"] += 1
            self._to_idle()
        return res

    def tick(self, now: float) -> list[bytes]:
        try:
            self._expire(now)
        except Exception:  # pragma: no cover
            self.errors["internal"] += 1
            self._to_idle()
        return []

    def reset(self) -> None:
        self._to_idle()

    # -- state machine --

    def _to_idle(self) -> None:
        self._state = _St.IDLE
        self._addr.clear()
        self._buf.clear()
        self._bcc = 0
        self._last_reply = None
        self._last_block = None

    def _expire(self, now: float) -> None:
        if self._state is not _St.IDLE and now >= self._deadline:
            self.errors["timeout"] += 1
            self._to_idle()

    def _reply(self, res: FeedResult, byte: int) -> None:
        out = bytes([byte])
        self._last_reply = out
        res.replies.append(out)

    def _push_addr(self, b: int) -> None:
        self._addr.append(b)
        if len(self._addr) > _MAX_ADDR:
            del self._addr[0]

    def _byte(self, b: int, now: float, res: FeedResult) -> None:
        st = self._state
        if st is _St.IDLE:
            self._idle(b, now, res)
        elif st is _St.SELECTED:
            self._selected(b, now, res)
        elif st is _St.BLOCK:
            self._block(b, now, res)
        elif st is _St.BCC:
            self._check(b, now, res)
        elif st is _St.SKIP:
            self._skip(b, now, res)
        else:  # SKIP_BCC: the overlong block's BCC, whatever it is
            self._state = _St.SELECTED
            self._reply(res, NAK)

    def _idle(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        if b == ENQ:
            if self._addr and self._addr.endswith(self._our):
                self._state = _St.SELECTED
                self._deadline = now + self.opts.timeout_s
                self._last_block = None
                self._reply(res, ACK)
            elif self._addr:
                self.errors["not_addressed"] += 1  # another station is selected or polled
            else:
                self.errors["noise"] += 1
        elif b == SOH:
            self.errors["not_addressed"] += 1  # a block without our selection: not for us
        elif b not in (EOT, STX, ETX, RS, US, ACK, NAK):
            self.errors["noise"] += 1
        self._addr.clear()

    def _selected(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        addr = bytes(self._addr)
        self._addr.clear()
        if b == SOH:
            self._state = _St.BLOCK
            self._buf.clear()
            self._bcc = 0
        elif b == EOT:
            self._to_idle()
        elif b == ENQ:
            if addr.endswith(self._our):  # selected again (the caller missed our ACK)
                self._deadline = now + self.opts.timeout_s
                self._reply(res, ACK)
            elif addr:  # another station selected without an EOT first: our session is over
                self.errors["not_addressed"] += 1
                self._to_idle()
            elif self._last_reply is not None:  # bare ENQ: "say that again"
                res.replies.append(self._last_reply)
            else:
                self.errors["noise"] += 1
        else:
            self.errors["noise"] += 1

    def _abort_block(self, b: int, now: float, res: FeedResult) -> bool:
        """SOH, EOT or ENQ inside a block: the block is abandoned. True if handled."""
        if b == SOH:
            self.errors["framing"] += 1
            self._state = _St.BLOCK
            self._buf.clear()
            self._bcc = 0
            return True
        if b == EOT:
            self.errors["framing"] += 1
            self._to_idle()
            return True
        if b == ENQ:
            self.errors["framing"] += 1
            self._state = _St.SELECTED
            self._selected(b, now, res)  # with the printable bytes in front as the address
            return True
        return False

    def _block(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
        else:
            if self._abort_block(b, now, res):
                return
            self._addr.clear()
        self._bcc ^= b
        if b == ETX:
            self._state = _St.BCC
            return
        self._buf.append(b)
        if len(self._buf) > _MAX_CONTENT:
            self.errors["overlong"] += 1
            self._buf.clear()
            self._state = _St.SKIP

    def _skip(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        if self._abort_block(b, now, res):
            return
        self._addr.clear()
        if b == ETX:
            self._state = _St.SKIP_BCC

    def _check(self, b: int, now: float, res: FeedResult) -> None:
        self._state = _St.SELECTED
        self._addr.clear()
        block = bytes(self._buf)
        self._buf.clear()
        if b != self._bcc:
            self.errors["checksum"] += 1
            self._reply(res, NAK)
            return
        if block == self._last_block:  # our ACK was lost and the caller sent it again
            self.errors["duplicate"] += 1
            self._deadline = now + self.opts.timeout_s
            self._reply(res, ACK)
            return
        header, stx, text = block.partition(bytes([STX]))
        if not stx or not header.strip() or STX in text:
            self.errors["framing"] += 1
            self._reply(res, NAK)
            return
        self._last_block = block
        self._deadline = now + self.opts.timeout_s
        self._reply(res, ACK)
        function = header.split(bytes([US]))[0].strip()
        if function != b"1":
            self.errors["unsupported"] += 1  # status information/request etc.: taken, not used
            return
        res.readings.append(self._call(header, text))

    def _call(self, header: bytes, text: bytes) -> Reading:
        pairs, bad = parse_records(text)
        if bad:
            self.errors["record"] += bad
        cs = self.opts.charset
        raw = {decode_text(i, cs): decode_text(v, cs) for i, v in pairs}

        def field(ident: str) -> str | None:
            value = raw.get(ident)
            if value is None:
                return None
            return value.strip() or None

        return Reading(
            "call",
            {
                "address": field("1"),
                "text": field("2"),
                "priority": field("6"),
                "call_type": field("4"),
                "raw": raw,
            },
        )


# --- logic ---------------------------------------------------------------------------------


class EspaLogic(DeviceLogic):
    """Each call record becomes one ``alarm.nursecall`` event; repeats within ``dedup_s`` are dropped."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        self._priorities = {**DEFAULT_PRIORITIES, **self.opts.priorities}
        self._recent: dict[tuple[Any, ...], float] = {}  # call key -> when it last raised an event
        self._calls = 0
        self._suppressed = 0
        self._last: dict[str, Any] | None = None

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        if reading.kind != "call":
            return []
        f = reading.fields
        address, text = f.get("address"), f.get("text")
        espa_priority, call_type = f.get("priority"), f.get("call_type")
        key = (address, text, call_type, espa_priority)
        seen = self._recent.get(key)
        if seen is not None and now - seen < self.opts.dedup_s:
            self._suppressed += 1
            return []
        if self.opts.dedup_s > 0:
            self._recent[key] = now
        self._calls += 1
        priority = Priority(self._priorities.get(espa_priority or "", self.opts.default_priority))
        data = {
            "call_address": address,
            "room": self.opts.rooms.get(address) if address is not None else None,
            "text": text,
            "espa_priority": espa_priority,
            "call_type": call_type,
        }
        self._last = {**data, "priority": priority.value, "at": now}
        return [Emit("alarm.nursecall", priority, data)]

    def tick(self, now: float) -> list[Emit]:
        if self._recent:
            horizon = self.opts.dedup_s
            self._recent = {k: t for k, t in self._recent.items() if now - t < horizon}
        return []

    def state(self) -> dict[str, Any]:
        return {"calls": self._calls, "suppressed": self._suppressed, "last_call": self._last}


# --- emulator (nurse-call side) ------------------------------------------------------------

_CALL_ARGS = {"address": "1", "text": "2", "call_type": "4", "priority": "6"}
_NOISE = bytes([0x00, 0x07, 0x08, 0x0D, 0x0A, 0x1B, 0x7F, 0x80, 0x9B, 0xC3, 0xE6, 0xFF, 0x11, 0x13])


@dataclass
class _Job:
    block: bytes
    spoil: str | None = None  # bad_checksum / truncate: the first transmission only
    sent: int = 0


class EspaEmulator(Emulator):
    """The nurse-call (calling) side: selects the hub, sends call blocks, retries on NAK or silence."""

    name = "espa444"
    #: Re-sends after the first transmission, on NAK or no reply (ESPA: three).
    RETRIES = 3
    #: Seconds to wait for ACK/NAK before sending again.
    REPLY_TIMEOUT_S = 2.0

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        self._queue: deque[_Job] = deque()
        self._job: _Job | None = None
        self._phase = "idle"  # idle | selecting | sending
        self._attempts = 0
        self._deadline = 0.0
        self._delivered = 0
        self._naks = 0
        self._failed = 0

    # -- requests --

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        args = dict(args or {})
        if op == "call":
            job = _Job(self._call_block(args))
        elif op == "corrupt":
            how = args.pop("how", None)
            if how == "noise":
                seed = args.pop("seed", 0)
                if args:
                    raise ValueError(f"corrupt noise: unknown args {sorted(args)}")
                rng = random.Random(seed)
                return bytes(rng.choice(_NOISE) for _ in range(16))
            if how not in ("bad_checksum", "truncate", "overlong"):
                raise ValueError(f"corrupt: how must be bad_checksum, truncate, noise or overlong, not {how!r}")
            args.setdefault("address", "101")
            if how == "overlong":
                args.setdefault("text", "X" * MAX_BLOCK)
                job = _Job(self._call_block(args, check_length=False))
            else:
                job = _Job(self._call_block(args), spoil=how)
        else:
            raise ValueError(f"unknown op {op!r} (call, corrupt)")
        self._queue.append(job)
        if self._phase == "idle":
            return self._select_next(now)
        return b""

    def _call_block(self, args: dict[str, Any], check_length: bool = True) -> bytes:
        records: dict[str, str] = {}
        extra = args.pop("records", {}) or {}
        unknown = set(args) - set(_CALL_ARGS)
        if unknown:
            raise ValueError(f"call: unknown args {sorted(unknown)}")
        address = args.get("address")
        if address is None or str(address).strip() == "":
            raise ValueError("call: address is required")
        for key, ident in _CALL_ARGS.items():
            if args.get(key) is not None:
                records[ident] = str(args[key])
        if not isinstance(extra, Mapping):
            raise ValueError("call: records must be a table of identifier to value")
        for ident, value in extra.items():
            records[str(ident)] = str(value)
        block = encode_block("1", records, self.opts.charset)
        if check_length and len(block) > MAX_BLOCK:
            raise ValueError(f"call: block is {len(block)} bytes, more than {MAX_BLOCK}")
        return block

    # -- the exchange --

    def _select_next(self, now: float) -> bytes:
        if not self._queue:
            self._phase, self._job = "idle", None
            return b""
        self._job = self._queue.popleft()
        self._phase, self._attempts = "selecting", 1
        self._deadline = now + self.REPLY_TIMEOUT_S
        return self._selection()

    def _selection(self) -> bytes:
        return self.opts.address.encode("ascii") + bytes([ENQ])

    def _send_block(self, now: float) -> bytes:
        job = self._job
        assert job is not None
        self._deadline = now + self.REPLY_TIMEOUT_S
        job.sent += 1
        block = job.block
        if job.sent == 1 and job.spoil == "bad_checksum":
            return block[:-1] + bytes([block[-1] ^ 0x5A])
        if job.sent == 1 and job.spoil == "truncate":
            return block[: len(block) // 2]
        return block

    def _give_up(self, now: float) -> bytes:
        self._failed += 1
        self._job = None
        return bytes([EOT]) + self._select_next(now)

    def _done(self, now: float) -> bytes:
        """Block acknowledged: the next queued call in the same session, or EOT."""
        self._delivered += 1
        if self._queue:
            self._job = self._queue.popleft()
            self._phase, self._attempts = "sending", 1
            return self._send_block(now)
        self._job, self._phase = None, "idle"
        return bytes([EOT])

    def on_data(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for b in bytes(data):
            if b == ACK:
                if self._phase == "selecting":
                    self._phase, self._attempts = "sending", 1
                    out += self._send_block(now)
                elif self._phase == "sending":
                    out += self._done(now)
            elif b == NAK:
                if self._phase == "idle":
                    continue
                self._naks += 1
                if self._phase == "selecting":  # hub busy: try the selection again on tick
                    self._deadline = now + self.REPLY_TIMEOUT_S
                elif self._attempts <= self.RETRIES:
                    self._attempts += 1
                    out += self._send_block(now)
                else:
                    out += self._give_up(now)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        if self._phase == "idle" or now < self._deadline:
            return b""
        if self._attempts > self.RETRIES:
            return self._give_up(now)
        self._attempts += 1
        if self._phase == "selecting":
            self._deadline = now + self.REPLY_TIMEOUT_S
            return self._selection()
        return self._send_block(now)

    def state(self) -> dict[str, Any]:
        return {
            "phase": self._phase,
            "delivered": self._delivered,
            "naks": self._naks,
            "failed": self._failed,
            "attempts": self._attempts if self._phase != "idle" else 0,
            "queued": len(self._queue),
        }
