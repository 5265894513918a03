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
See ``drivers/serial/PROTOCOL-espa444.md`` for the byte-level details, the
choices made where the 1984 standard is loose, and hex examples.

Pure pieces, no I/O:

* :mod:`.wire`: control characters, :func:`bcc`, :func:`encode_block`,
  :func:`parse_records`, :func:`decode_call`, the text charsets;
* :mod:`.options`: :class:`EspaOptions`;
* :mod:`.parser`: :class:`EspaParser` (hub side, the link state machine);
* :mod:`.logic`: :class:`EspaLogic` (calls to ``alarm.nursecall`` events, resets to ``alarm.cancelled``);
* :mod:`.emulator`: :class:`EspaEmulator` (the nurse-call side).
"""

from __future__ import annotations

from drivers.serial.espa444.emulator import EspaEmulator
from drivers.serial.espa444.logic import EspaLogic
from drivers.serial.espa444.options import DEFAULT_PRIORITIES, Charset, EspaOptions, PriorityName
from drivers.serial.espa444.parser import EspaParser
from drivers.serial.espa444.wire import (
    ACK,
    CALL_TO_PAGER,
    ENQ,
    EOT,
    ETX,
    MAX_BLOCK,
    NAK,
    RESET_CALL_TYPE,
    RS,
    SOH,
    STX,
    US,
    bcc,
    decode_call,
    decode_text,
    encode_block,
    encode_text,
    parse_records,
)

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
    "Charset",
    "EspaEmulator",
    "EspaLogic",
    "EspaOptions",
    "EspaParser",
    "PriorityName",
    "bcc",
    "decode_call",
    "decode_text",
    "encode_block",
    "encode_text",
    "parse_records",
]
