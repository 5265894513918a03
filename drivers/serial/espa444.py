"""ESPA 4.4.4 from a nurse-call system: the hub is the paging-system (receiving) side.

After ``EOT`` the line is in its poll phase: ``<address> ENQ`` *polls* that
station, which answers ``EOT`` when it has nothing to send (the hub always
answers so) or becomes the master and *selects* a station with its own
``<address> ENQ``. A nurse-call that has calls polls itself and selects the hub
(``EOT 2 ENQ 1 ENQ`` for a nurse-call '2' and a hub '1'); the hub answers
``ACK`` and the nurse-call sends data blocks ``SOH <header> STX <records> ETX <BCC>``,
each answered ``ACK`` (a call, taken; sent as a :class:`~drivers.serial.base.Confirm`,
once the call is committed) or ``NAK`` (bad BCC, malformed, or a header the hub
does not carry out: send it again / give up), and ends with ``EOT``.
A record is ``<identifier> US <value>``; records are separated by ``RS``.
A call record with call type (identifier 4) '1' is a reset of the call at its address.
See ``PROTOCOL-espa444.md`` next to this file for the byte-level details, the
choices made where the 1984 standard is loose, and hex examples.

Pure pieces, no I/O: :func:`bcc`, :func:`encode_block`, :func:`parse_records`,
:class:`EspaParser` (hub side), :class:`EspaLogic` (calls to ``alarm.nursecall``
events, resets to ``alarm.cancelled``) and :class:`EspaEmulator` (the nurse-call side).
"""

from __future__ import annotations

import enum
import random
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from drivers.serial.base import Confirm, DeviceLogic, Emit, Emulator, FeedResult, Parser, Reading
from hub.events import Priority

__all__ = [
    "ACK",
    "CALL_TO_PAGER",
    "DEFAULT_PRIORITIES",
    "ENQ",
    "EOT",
    "ETX",
    "MAX_BLOCK",
    "NAK",
    "RESET_CALL_TYPE",
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
ENQ = 0x05  #: enquiry: ``<address> ENQ`` polls (after EOT) or selects (after a poll); bare: "say that again"
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

    #: The hub's ESPA station address: a poll of it (``<address> ENQ`` after EOT) is answered EOT,
    #: a selection of it (``<address> ENQ`` after a poll of the caller) ACK; others get no answer.
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
    IDLE = "idle"  # poll phase (after EOT): the next <address> ENQ is a poll
    POLLED = "polled"  # another station was polled: its <address> ENQ (or EOT) follows
    PASSIVE = "passive"  # another station was selected: its exchange is not ours, up to EOT
    FOREIGN = "foreign"  # inside a block that is not for us, up to its ETX
    FOREIGN_BCC = "foreign_bcc"  # that block's BCC, whatever it is
    SELECTED = "selected"  # we answered ACK to our selection; waiting for SOH or EOT
    BLOCK = "block"  # inside SOH ... ETX
    BCC = "bcc"  # ETX seen; the next byte is the BCC
    SKIP = "skip"  # an overlong block: discarding up to its ETX
    SKIP_BCC = "skip_bcc"  # discarding the overlong block's BCC; then NAK


#: States of a session the hub is in (selected by the caller): these time out with ``timeout`` counted.
_SESSION = frozenset({_St.SELECTED, _St.BLOCK, _St.BCC, _St.SKIP, _St.SKIP_BCC})

#: The only header (function code) the hub takes: call to pager. Every other one is NAKed.
CALL_TO_PAGER = b"1"


class EspaParser(Parser):
    """Receiving (paging-system) side of ESPA 4.4.4: see the module docstring and the protocol doc."""

    name = "espa444"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        self._our = self.opts.address.encode("ascii")
        self._state = _St.IDLE
        self._foreign_return = _St.IDLE  # where a foreign block's end leads back to
        self._addr = bytearray()  # printable bytes since the last control character
        self._buf = bytearray()  # block content after SOH, without ETX
        self._bcc = 0
        self._deadline = 0.0
        self._last_reply: bytes | None = None
        self._last_block: bytes | None = None  # last block accepted this session (duplicate check)
        #: Polls of the hub's address, each answered EOT (the hub never has anything to send).
        self.polls = 0

    @property
    def state(self) -> str:
        """The link state, for ``status``: idle, polled, passive, foreign, foreign_bcc,
        selected, block, bcc, skip or skip_bcc."""
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

    def unconfirmed(self, confirm: Confirm) -> None:
        """The block ACK in ``confirm`` was not sent (its call could not be stored).

        Forget the block, so the caller's re-send is read again rather than taken as a
        duplicate; a bare ENQ ("say that again") is now answered NAK, which asks for that re-send.
        """
        self._last_block = None
        if self._state in _SESSION:
            self._last_reply = bytes([NAK])

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
            if self._state in _SESSION:
                self.errors["timeout"] += 1  # our own session went quiet; another station's is not ours to count
            self._to_idle()

    def _reply(self, res: FeedResult, out: bytes | Confirm) -> None:
        self._last_reply = out.data if isinstance(out, Confirm) else out
        res.replies.append(out)

    def _address_before(self, b: int) -> bytes | None:
        """A printable byte joins the address being read (None); a control byte takes it: returns it, cleared."""
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return None
        addr = bytes(self._addr)
        self._addr.clear()
        return addr

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
        elif st is _St.SKIP_BCC:  # the overlong block's BCC, whatever it is
            self._state = _St.SELECTED
            self._reply(res, bytes([NAK]))
        else:  # another station's traffic: quiet time, not traffic, ends it
            self._deadline = now + self.opts.timeout_s
            if st is _St.POLLED:
                self._polled(b, now, res)
            elif st is _St.PASSIVE:
                self._passive(b, now, res)
            elif st is _St.FOREIGN:
                self._foreign(b, now, res)
            else:  # FOREIGN_BCC
                self._state = self._foreign_return

    def _select(self, now: float, res: FeedResult) -> None:
        """``<our address> ENQ`` as a selection: ready to receive."""
        self._state = _St.SELECTED
        self._deadline = now + self.opts.timeout_s
        self._last_block = None
        self._reply(res, bytes([ACK]))

    def _enter_foreign(self, back: _St, now: float) -> None:
        self._foreign_return = back
        self._state = _St.FOREIGN
        self._deadline = now + self.opts.timeout_s

    def _idle(self, b: int, now: float, res: FeedResult) -> None:
        """Poll phase. ``<address> ENQ`` here is a poll (ESPA 4.4.4 section 3.1), never a selection."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == ENQ:
            if addr and addr.endswith(self._our):  # polled: the hub never has anything to send
                self.polls += 1
                res.replies.append(bytes([EOT]))
            elif addr:  # another station polled (the caller polling itself before it selects)
                self._state = _St.POLLED
                self._deadline = now + self.opts.timeout_s
            else:
                self.errors["noise"] += 1
        elif b == SOH:
            self.errors["not_addressed"] += 1  # a block without our selection: not for us
            self._enter_foreign(_St.IDLE, now)
        elif b not in (EOT, STX, ETX, RS, US, ACK, NAK):
            self.errors["noise"] += 1

    def _polled(self, b: int, now: float, res: FeedResult) -> None:
        """Another station was polled: it answers EOT (nothing to send) or selects a station."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == EOT:
            self._to_idle()
        elif b == ENQ:
            if addr and addr.endswith(self._our):
                self._select(now, res)
            elif addr:
                self.errors["not_addressed"] += 1  # another station is selected
                self._state = _St.PASSIVE
            else:
                self.errors["noise"] += 1
        elif b == SOH:
            self.errors["not_addressed"] += 1
            self._enter_foreign(_St.PASSIVE, now)
        elif b not in (STX, ETX, RS, US, ACK, NAK):
            self.errors["noise"] += 1

    def _passive(self, b: int, now: float, res: FeedResult) -> None:
        """Another station's exchange: its blocks are skipped whole (a BCC may be any byte), up to EOT."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == EOT:
            self._to_idle()
        elif b == SOH:
            self._enter_foreign(_St.PASSIVE, now)
        elif b == ENQ and addr and addr.endswith(self._our):  # the master selects us next
            self._select(now, res)

    def _foreign(self, b: int, now: float, res: FeedResult) -> None:
        """Inside a block not for us."""
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        if b == ETX:
            self._addr.clear()
            self._state = _St.FOREIGN_BCC
        elif b == EOT:
            self._to_idle()
        elif b == ENQ:  # ENQ is never part of a block: the block was abandoned
            self._state = self._foreign_return
            self._byte(b, now, res)
        else:
            self._addr.clear()

    def _selected(self, b: int, now: float, res: FeedResult) -> None:
        addr = self._address_before(b)
        if addr is None:
            return
        if b == SOH:
            self._state = _St.BLOCK
            self._buf.clear()
            self._bcc = 0
        elif b == EOT:
            self._to_idle()
        elif b == ENQ:
            if addr.endswith(self._our) and addr:  # selected again (the caller missed our ACK)
                self._deadline = now + self.opts.timeout_s
                self._reply(res, bytes([ACK]))
            elif addr:  # another station selected without an EOT first: our session is over
                self.errors["not_addressed"] += 1
                self._to_idle()
                self._state = _St.PASSIVE
                self._deadline = now + self.opts.timeout_s
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
        self._deadline = now + self.opts.timeout_s
        if b != self._bcc:
            self.errors["checksum"] += 1
            self._reply(res, bytes([NAK]))
            return
        if block == self._last_block:  # our ACK was lost and the caller sent it again
            self.errors["duplicate"] += 1
            self._reply(res, bytes([ACK]))  # its call was taken the first time: confirms nothing new
            return
        header, stx, text = block.partition(bytes([STX]))
        if not stx or not header.strip() or STX in text:
            self.errors["framing"] += 1
            self._reply(res, bytes([NAK]))
            return
        function = header.split(bytes([US]))[0].strip()
        if function != CALL_TO_PAGER:
            # status information/request, call to subscriber line, other: the hub carries none of
            # them out, so it refuses them (NAK) rather than let the caller believe them delivered
            self.errors["unmapped_header"] += 1
            self._reply(res, bytes([NAK]))
            return
        self._last_block = block
        res.readings.append(self._call(header, text))
        self._reply(res, Confirm(bytes([ACK]), readings=len(res.readings)))

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


#: Call type (identifier 4) of a record that resets (cancels) the call at its call address.
RESET_CALL_TYPE = "1"


class EspaLogic(DeviceLogic):
    """Each call record becomes one ``alarm.nursecall`` event, each reset record one
    ``alarm.cancelled`` naming the call address; repeats within ``dedup_s`` are dropped."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        self._priorities = {**DEFAULT_PRIORITIES, **self.opts.priorities}
        self._recent: dict[tuple[Any, ...], float] = {}  # record key -> when it last raised an event
        self._calls = 0
        self._resets = 0
        self._suppressed = 0
        self._last: dict[str, Any] | None = None

    def on_reading(self, reading: Reading, now: float) -> list[Emit]:
        if reading.kind != "call":
            return []
        f = reading.fields
        address, text = f.get("address"), f.get("text")
        espa_priority, call_type = f.get("priority"), f.get("call_type")
        reset = call_type == RESET_CALL_TYPE
        key = (address, text, call_type, espa_priority)
        seen = self._recent.get(key)
        if seen is not None and now - seen < self.opts.dedup_s:
            self._suppressed += 1
            return []
        if self.opts.dedup_s > 0:
            # A reset ends the call at its address and a call after a reset is a new one: neither
            # may be taken as a repeat of what came before the other.
            self._recent = {
                k: t for k, t in self._recent.items() if k[0] != address or (k[2] == RESET_CALL_TYPE) == reset
            }
            self._recent[key] = now
        data = {
            "call_address": address,
            "room": self.opts.rooms.get(address) if address is not None else None,
            "text": text,
            "espa_priority": espa_priority,
            "call_type": call_type,
        }
        if reset:
            self._resets += 1
            return [
                Emit(
                    "alarm.cancelled",
                    Priority.CRITICAL,
                    {"how": "nursecall_reset", **data},
                    closes={"call_address": address},
                )
            ]
        self._calls += 1
        priority = Priority(self._priorities.get(espa_priority or "", self.opts.default_priority))
        self._last = {**data, "priority": priority.value, "at": now}
        return [Emit("alarm.nursecall", priority, data)]

    def tick(self, now: float) -> list[Emit]:
        if self._recent:
            horizon = self.opts.dedup_s
            self._recent = {k: t for k, t in self._recent.items() if now - t < horizon}
        return []

    def state(self) -> dict[str, Any]:
        return {"calls": self._calls, "resets": self._resets, "suppressed": self._suppressed, "last_call": self._last}


# --- emulator (nurse-call side) ------------------------------------------------------------

_CALL_ARGS = {"address": "1", "text": "2", "call_type": "4", "priority": "6"}
_NOISE = bytes([0x00, 0x07, 0x08, 0x0D, 0x0A, 0x1B, 0x7F, 0x80, 0x9B, 0xC3, 0xE6, 0xFF, 0x11, 0x13])
_STATION = re.compile(r"^[0-9A-Za-z]{1,8}$")


@dataclass
class _Job:
    block: bytes = b""  # empty for a poll
    spoil: str | None = None  # bad_checksum / truncate: the first transmission only
    sent: int = 0
    poll: bool = False


class EspaEmulator(Emulator):
    """The nurse-call (calling) side, as the ESPA control station.

    To send, it polls its own ``station`` address and selects the hub
    (``EOT <station> ENQ <hub> ENQ``), sends the blocks and ends with EOT; it retries
    on NAK or silence. ``command("poll")`` polls the hub (``EOT <hub> ENQ``), which
    must answer EOT. ``station`` defaults to ``"1"``, or ``"2"`` when the hub is ``"1"``.
    """

    name = "espa444"
    #: Re-sends after the first transmission, on NAK or no reply (ESPA: three).
    RETRIES = 3
    #: Seconds to wait for ACK/NAK (or a poll's EOT) before sending again.
    REPLY_TIMEOUT_S = 2.0

    def __init__(self, *, station: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _convert_options(options)
        hub = self.opts.address
        self.station = station if station is not None else ("2" if hub == "1" else "1")
        if not _STATION.match(self.station) or self.station.endswith(hub):
            raise ValueError(f"station {self.station!r}: 1-8 letters/digits, and not ending with the hub's {hub!r}")
        self._queue: deque[_Job] = deque()
        self._job: _Job | None = None
        self._phase = "idle"  # idle | polling | selecting | sending
        self._attempts = 0
        self._deadline = 0.0
        self._delivered = 0
        self._naks = 0
        self._failed = 0
        self._polls = 0
        self._polls_eot = 0
        self._polls_other = 0

    # -- requests --

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        args = dict(args or {})
        if op == "call":
            job = _Job(self._call_block(args))
        elif op == "reset":
            if args.get("call_type") not in (None, RESET_CALL_TYPE):
                raise ValueError(f"reset: call_type is {RESET_CALL_TYPE!r}")
            job = _Job(self._call_block({**args, "call_type": RESET_CALL_TYPE}))
        elif op == "block":
            job = _Job(self._any_block(args))
        elif op == "poll":
            if args:
                raise ValueError(f"poll: unknown args {sorted(args)}")
            job = _Job(poll=True)
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
            raise ValueError(f"unknown op {op!r} (call, reset, block, poll, corrupt)")
        self._queue.append(job)
        if self._phase == "idle":
            return self._select_next(now)
        return b""

    def _records(self, extra: Any) -> dict[str, str]:
        if not isinstance(extra, Mapping):
            raise ValueError("records must be a table of identifier to value")
        return {str(ident): str(value) for ident, value in extra.items()}

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
        records.update(self._records(extra))
        block = encode_block(CALL_TO_PAGER, records, self.opts.charset)
        if check_length and len(block) > MAX_BLOCK:
            raise ValueError(f"call: block is {len(block)} bytes, more than {MAX_BLOCK}")
        return block

    def _any_block(self, args: dict[str, Any]) -> bytes:
        """``block {header, records}``: any header (function code), e.g. '4' (call to subscriber line)."""
        header = args.pop("header", None)
        records = self._records(args.pop("records", {}) or {})
        if args:
            raise ValueError(f"block: unknown args {sorted(args)}")
        if not isinstance(header, str) or not header.strip():
            raise ValueError("block: header is required (a string such as '4')")
        block = encode_block(header, records, self.opts.charset)
        if len(block) > MAX_BLOCK:
            raise ValueError(f"block: {len(block)} bytes, more than {MAX_BLOCK}")
        return block

    # -- the exchange --

    def _select_next(self, now: float) -> bytes:
        """Start the next queued job (a poll, or a session for blocks); b"" when there is none."""
        if not self._queue:
            self._phase, self._job = "idle", None
            return b""
        self._job = self._queue.popleft()
        self._attempts = 1
        self._deadline = now + self.REPLY_TIMEOUT_S
        if self._job.poll:
            self._phase = "polling"
            self._polls += 1
            return bytes([EOT]) + self.opts.address.encode("ascii") + bytes([ENQ])
        self._phase = "selecting"
        return self._selection()

    def _selection(self) -> bytes:
        """Poll itself, then select the hub: ``EOT <station> ENQ <hub> ENQ``."""
        return (
            bytes([EOT])
            + self.station.encode("ascii")
            + bytes([ENQ])
            + self.opts.address.encode("ascii")
            + bytes([ENQ])
        )

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
        return self._select_next(now) or bytes([EOT])

    def _done(self, now: float) -> bytes:
        """Block acknowledged: the next queued block in the same session, or EOT (and the next job)."""
        self._delivered += 1
        if self._queue and not self._queue[0].poll:
            self._job = self._queue.popleft()
            self._phase, self._attempts = "sending", 1
            return self._send_block(now)
        self._job = None
        return self._select_next(now) or bytes([EOT])

    def _poll_answered(self, b: int, now: float) -> bytes:
        if b == EOT:  # nothing to send: the line is back in the poll phase
            self._polls_eot += 1
            self._job = None
            return self._select_next(now)
        self._polls_other += 1  # a wrong answer to a poll: take the line back
        self._job = None
        return self._select_next(now) or bytes([EOT])

    def on_data(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for b in bytes(data):
            if self._phase == "polling" and b in (EOT, ACK, NAK):
                out += self._poll_answered(b, now)
            elif b == ACK:
                if self._phase == "selecting":
                    self._phase, self._attempts = "sending", 1
                    out += self._send_block(now)
                elif self._phase == "sending":
                    out += self._done(now)
            elif b in (NAK, EOT):
                if self._phase == "selecting":  # hub not ready (EOT: it took our selection for a poll)
                    if b == NAK:
                        self._naks += 1
                    self._deadline = now + self.REPLY_TIMEOUT_S  # try the selection again on tick
                elif self._phase == "sending" and b == NAK:
                    self._naks += 1
                    if self._attempts <= self.RETRIES:
                        self._attempts += 1
                        out += self._send_block(now)
                    else:
                        out += self._give_up(now)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        if self._phase == "idle" or now < self._deadline:
            return b""
        if self._phase == "polling":  # no answer to the poll: take the line back
            self._job = None
            return self._select_next(now) or bytes([EOT])
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
            "polls": self._polls,
            "polls_eot": self._polls_eot,
            "polls_other": self._polls_other,
        }
