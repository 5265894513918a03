"""The options of a ``protocol = "espa444"`` device (parser, logic and emulator take the same set).

Imported by the config loader, so it imports nothing but msgspec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

#: ESPA priority digit (identifier 6) to event priority, before ``EspaOptions.priorities``.
DEFAULT_PRIORITIES: dict[str, str] = {"1": "critical", "2": "high", "3": "normal"}

PriorityName = Literal["critical", "high", "normal", "low"]
Charset = Literal["latin-1", "cp850", "iso646-no", "iso646-se", "iso646-de"]


class EspaOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Options of an ``espa444`` serial device (parser, logic and emulator take the same set)."""

    #: The hub's ESPA station address: a poll of it (``<address> ENQ`` after EOT) is answered EOT,
    #: a selection of it (``<address> ENQ`` after a poll of the caller) ACK; others get no answer.
    #: The standard recommends '2' for the paging system when the nurse-call is '1'.
    address: Annotated[
        str,
        msgspec.Meta(pattern=r"^[0-9A-Za-z]{1,8}$",
                     description="The hub's ESPA station address; '2' (paging system) when the nurse-call is '1'."),
    ] = "1"
    #: ESPA call address (identifier 1) to room name.
    rooms: Annotated[
        dict[str, str], msgspec.Meta(description="ESPA call address to room name, e.g. { \"1201\" = \"bedroom\" }.")
    ] = {}
    #: ESPA priority digit (identifier 6) to event priority; merged over 1=critical, 2=high, 3=normal.
    priorities: Annotated[
        dict[str, PriorityName],
        msgspec.Meta(description="ESPA priority digit to event priority, over 1=critical, 2=high, 3=normal."),
    ] = {}
    #: Event priority of a call whose priority digit is missing or not mapped.
    default_priority: Annotated[
        PriorityName, msgspec.Meta(description="Priority of a call whose priority digit is missing or not mapped.")
    ] = "high"
    #: The same call (address, text, call type, priority) again within this many seconds of the
    #: event it raised gives no new event. 0 turns this off.
    dedup_s: Annotated[
        float,
        msgspec.Meta(ge=0, le=3600, description="The same call again within this many seconds gives no new "
                                                "event; 0 turns this off."),
    ] = 10.0
    #: A session (selection to EOT) with no completed block for this long is dropped.
    timeout_s: Annotated[
        float,
        msgspec.Meta(gt=0, le=300, description="A session with no completed block for this many seconds is "
                                               "dropped."),
    ] = 10.0
    #: How bytes in text values map to characters (ESPA is 7-bit; Nordic systems often use ISO 646).
    charset: Annotated[
        Charset,
        msgspec.Meta(description="How bytes of text values read (ESPA is 7-bit; Nordic systems often use ISO 646)."),
    ] = "latin-1"


def convert_options(options: Mapping[str, Any]) -> EspaOptions:
    """The :class:`EspaOptions` of ``**options``; ``msgspec.ValidationError`` on a bad or unknown one."""
    return msgspec.convert(dict(options), EspaOptions)
