"""Notify mappings: which characteristic's notifications become which event, and how the payload decodes.

A :class:`NotifyMapping` decodes a payload as ``uint8``, ``uint16le``,
``int16le`` (exactly that long), ``utf8`` (strict) or ``hex``, optionally
scaled, and builds the :class:`~drivers.base.Emit` for it. A payload that
does not fit raises :class:`DecodeError`; the manager counts and logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from drivers.ble.backend import normalize_uuid
from drivers.base import Emit
from hub.events import Priority

Decode = Literal["uint8", "uint16le", "int16le", "utf8", "hex"]
DECODERS = ("uint8", "uint16le", "int16le", "utf8", "hex")
_INT_SIZES = {"uint8": (1, False), "uint16le": (2, False), "int16le": (2, True)}


class DecodeError(ValueError):
    """A notification payload that does not fit its mapping's ``decode``."""


@dataclass(frozen=True, slots=True)
class NotifyMapping:
    """Notifications of ``uuid`` become ``event_type`` events, with the payload decoded into ``data[key]``.

    ``decode``: ``uint8``, ``uint16le``, ``int16le`` (the payload must be
    exactly that long), ``utf8`` (strict) or ``hex``. ``scale`` multiplies an
    integer value (``0.01`` for hundredths). The raw payload is always in
    ``data["raw"]`` as hex.
    """

    uuid: str
    event_type: str
    priority: Priority = Priority.NORMAL
    decode: Decode = "hex"
    scale: float | None = None
    key: str = "value"

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", normalize_uuid(self.uuid))
        if not isinstance(self.priority, Priority):
            object.__setattr__(self, "priority", Priority(self.priority))
        if self.decode not in DECODERS:
            raise ValueError(f"unknown decode {self.decode!r}; have: {', '.join(DECODERS)}")
        if self.scale is not None and self.decode not in _INT_SIZES:
            raise ValueError(f"scale only applies to integer decodes, not {self.decode!r}")
        if not self.event_type or not self.key or self.key == "raw":
            raise ValueError("event_type and key must be non-empty, and key not 'raw'")

    def value(self, payload: bytes) -> Any:
        """The decoded value; raises :class:`DecodeError` when the payload does not fit."""
        if self.decode in _INT_SIZES:
            size, signed = _INT_SIZES[self.decode]
            if len(payload) != size:
                raise DecodeError(f"{self.decode} needs {size} byte(s), got {len(payload)}")
            n = int.from_bytes(payload, "little", signed=signed)
            if self.scale is None:
                return n
            return round(n * self.scale, 9)
        if self.decode == "utf8":
            try:
                return bytes(payload).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"not UTF-8: {exc}") from None
        return bytes(payload).hex()

    def emit(self, payload: bytes) -> Emit:
        """The event for one notification; raises :class:`DecodeError`."""
        return Emit(self.event_type, self.priority, {self.key: self.value(payload), "raw": bytes(payload).hex()})
