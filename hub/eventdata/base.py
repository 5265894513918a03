"""What every data struct shares: the base class and the value types of the fields."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hub.events import EventId, Timestamp

__all__ = ["Data", "EventId", "Timestamp", "Seconds", "Percent", "UNSET", "UnsetType", "Sha256", "Unset"]

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType
#: A field the producer sends only sometimes (absent, never null, when it does not).
Unset = msgspec.UnsetType

#: A duration in seconds.
Seconds = Annotated[float, msgspec.Meta(ge=0)]
#: A battery level in percent.
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
#: A file's SHA-256 as 64 hex digits.
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class Data(msgspec.Struct, kw_only=True, frozen=True):
    """The ``data`` of one event type.

    A field without a default is always there (possibly null, where its type
    says so); a field defaulting to UNSET is there only when it applies, and
    never null. The published schema names the first kind in its description
    but requires none, and leaves other keys open: a later minor version of
    the contract may add fields, which a central ignores.
    """
