"""ESPA 4.4.4 on the wire: control characters, text charsets, blocks and records; no state.

A data block is ``SOH <header> STX <records> ETX <BCC>``; a record is
``<identifier> US <value>``, records are separated by ``RS``. :func:`bcc`,
:func:`encode_block`, :func:`parse_records`, :func:`decode_call` (a call block's
records as a reading) and the text charsets are here; the link (poll, selection,
ACK/NAK) is the parser's. The byte-level description is ``PROTOCOL-espa444.md``
in ``drivers/serial``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from drivers.serial.base import Reading

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

#: The only header (function code) the hub takes: call to pager. Every other one is NAKed.
CALL_TO_PAGER = b"1"
#: Call type (identifier 4) of a record that resets (cancels) the call at its call address.
RESET_CALL_TYPE = "1"

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


def decode_call(text: bytes, charset: str = "latin-1") -> tuple[Reading, int]:
    """The ``call`` reading of a call block's text (between STX and ETX), and how many records
    were skipped for having no separator (see :func:`parse_records`).

    Fields: ``address`` (identifier 1), ``text`` (2), ``priority`` (6), ``call_type`` (4),
    each stripped and ``None`` when missing or blank, and ``raw``: every record as decoded text.
    """
    pairs, bad = parse_records(text)
    raw = {decode_text(i, charset): decode_text(v, charset) for i, v in pairs}

    def field(ident: str) -> str | None:
        value = raw.get(ident)
        if value is None:
            return None
        return value.strip() or None

    reading = Reading(
        "call",
        {
            "address": field("1"),
            "text": field("2"),
            "priority": field("6"),
            "call_type": field("4"),
            "raw": raw,
        },
    )
    return reading, bad
