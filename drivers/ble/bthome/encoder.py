"""The BTHome v2 encoder: adverts built from values, for the simulator, the tests and the benches.

:func:`encode` builds a whole advert (service data) from values in the
units :func:`~drivers.ble.bthome.decode` gives back; :func:`encode_payload`
only the object bytes; :func:`build_advert` puts the header (and the
encryption) around object bytes. Values that cannot be sent raise
:class:`~drivers.ble.bthome.errors.EncodeError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from drivers.ble.bthome import crypto
from drivers.ble.bthome.advert import (
    INFO_ENCRYPTED,
    INFO_MAC_INCLUDED,
    INFO_TRIGGER_BASED,
    VERSION,
    CommandEvent,
    DimmerEvent,
)
from drivers.ble.bthome.arguments import normalize_key, normalize_mac
from drivers.ble.bthome.errors import EncodeError
from drivers.ble.bthome.objects import (
    BINARY,
    BUTTON,
    BUTTON_EVENTS,
    COMMAND,
    COMMAND_EVENTS,
    DEVICE_TYPE,
    DIMMER,
    DIMMER_EVENTS,
    FIRMWARE,
    OBJECTS,
    PACKET_ID,
    RAW,
    SENSOR,
    TEXT,
    TIMESTAMP,
    ObjectSpec,
)

__all__ = ["build_advert", "encode", "encode_payload"]


def _uint(value: Any, length: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what}: expected an integer, got {value!r}")
    if not 0 <= value < 1 << (8 * length):
        raise EncodeError(f"{what}: {value} does not fit {length} unsigned byte(s)")
    return value.to_bytes(length, "little")


def _event_code(table: Mapping[int, str | None], event: Any, what: str) -> int:
    if isinstance(event, int) and not isinstance(event, bool):
        if 0 <= event <= 0xFF:
            return event
        raise EncodeError(f"{what}: event code {event} out of range")
    for code, name in table.items():
        if name == event:
            return code
    raise EncodeError(f"{what}: unknown event {event!r} (known: {[n for n in table.values()]})")


def _encode_value(spec: ObjectSpec, value: Any) -> bytes:
    what = f"object 0x{spec.object_id:02x} ({spec.name})"
    kind = spec.kind
    if kind == SENSOR:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise EncodeError(f"{what}: expected a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise EncodeError(f"{what}: {value} is not finite")
        try:
            scaled = (Decimal(str(value)) / spec.factor).to_integral_value(rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            raise EncodeError(f"{what}: cannot encode {value!r}") from None
        number = int(scaled)
        bits = 8 * (spec.length or 0)
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.signed else (0, (1 << bits) - 1)
        if not low <= number <= high:
            raise EncodeError(
                f"{what}: {value} is out of range [{float(low * spec.factor):g}, {float(high * spec.factor):g}]"
            )
        return number.to_bytes(spec.length or 0, "little", signed=spec.signed)
    if kind == BINARY:
        if isinstance(value, bool):
            return bytes([value])
        return _uint(value, 1, what)
    if kind in (PACKET_ID, DEVICE_TYPE):
        return _uint(value, spec.length or 0, what)
    if kind == BUTTON:
        return bytes([_event_code(BUTTON_EVENTS, value, what)])
    if kind == DIMMER:
        if isinstance(value, DimmerEvent):
            event, steps = value.event, value.steps
        else:
            try:
                event, steps = value
            except (TypeError, ValueError):
                raise EncodeError(f"{what}: expected (event, steps), got {value!r}") from None
        return bytes([_event_code(DIMMER_EVENTS, event, what)]) + _uint(steps, 1, what + " steps")
    if kind == COMMAND:
        if isinstance(value, CommandEvent):
            command, args = value.command, value.args
        elif isinstance(value, (str, int)):
            command, args = value, b""
        else:
            try:
                command, args = value
            except (TypeError, ValueError):
                raise EncodeError(f"{what}: expected (command, args), got {value!r}") from None
        if not isinstance(args, (bytes, bytearray)) or len(args) > 0x1F:
            raise EncodeError(f"{what}: args must be at most 31 bytes, got {args!r}")
        return bytes([len(args), _event_code(COMMAND_EVENTS, command, what)]) + bytes(args)
    if kind in (TEXT, RAW):
        if kind == TEXT and isinstance(value, str):
            blob = value.encode("utf-8")
        elif kind == RAW and isinstance(value, (bytes, bytearray)):
            blob = bytes(value)
        else:
            raise EncodeError(f"{what}: expected {'str' if kind == TEXT else 'bytes'}, got {value!r}")
        if len(blob) > 0xFF:
            raise EncodeError(f"{what}: at most 255 bytes, got {len(blob)}")
        return bytes([len(blob)]) + blob
    if kind == TIMESTAMP:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise EncodeError(f"{what}: a timestamp needs a timezone")
            value = int(value.timestamp())
        return _uint(value, 4, what)
    if kind == FIRMWARE:
        parts = value.split(".") if isinstance(value, str) else value
        try:
            numbers = [int(p) for p in parts]
        except (TypeError, ValueError):
            raise EncodeError(f"{what}: expected a version like '1.2.3', got {value!r}") from None
        if len(numbers) != spec.length or not all(0 <= x <= 0xFF for x in numbers):
            raise EncodeError(f"{what}: expected {spec.length} components 0-255, got {value!r}")
        return bytes(reversed(numbers))
    raise AssertionError(kind)  # pragma: no cover


def encode_payload(objects: Iterable[tuple[int, Any]], *, sort: bool = True) -> bytes:
    """The object bytes for ``(object_id, value)`` pairs.

    Values are in the units :func:`decode` gives (21.5 for 21.5 °C; bool for
    binary sensors; an event name or code for buttons; ``(event, steps)`` for
    dimmers; ``(command, args)`` for commands; str / bytes / datetime for
    text / raw / timestamp; "1.2.3" for firmware). ``sort`` orders the objects
    by id as the spec asks, keeping the order of repeated ids (buttons).
    """
    pairs: list[tuple[ObjectSpec, Any]] = []
    for oid, value in objects:
        spec = OBJECTS.get(oid) if isinstance(oid, int) else None
        if spec is None:
            raise EncodeError(f"unknown object id {oid!r}")
        pairs.append((spec, value))
    if sort:
        pairs.sort(key=lambda pair: pair[0].object_id)
    out = bytearray()
    for spec, value in pairs:
        out.append(spec.object_id)
        out += _encode_value(spec, value)
    return bytes(out)


def build_advert(
    payload: bytes,
    *,
    bindkey: bytes | str | None = None,
    mac: bytes | str | None = None,
    counter: int | None = None,
    trigger_based: bool = False,
    include_mac: bool = False,
) -> bytes:
    """Service data around the object bytes ``payload``: plain, or encrypted with
    ``bindkey`` (then ``mac`` and ``counter`` are required)."""
    info = VERSION << 5
    if trigger_based:
        info |= INFO_TRIGGER_BASED
    key = normalize_key(bindkey)
    mac_bytes = normalize_mac(mac) if mac is not None else None
    header = bytearray()
    if include_mac:
        if mac_bytes is None:
            raise EncodeError("include_mac needs the mac")
        info |= INFO_MAC_INCLUDED
        header += mac_bytes[::-1]
    if key is None:
        if counter is not None:
            raise EncodeError("a counter only goes with encryption (give the bindkey)")
        return bytes([info]) + bytes(header) + bytes(payload)
    if mac_bytes is None or counter is None:
        raise EncodeError("encryption needs the mac and the counter")
    info |= INFO_ENCRYPTED
    counter_bytes = _uint(counter, crypto.COUNTER_LEN, "counter")
    sealed = crypto.encrypt(bytes(payload), key=key, mac=mac_bytes, info=info, counter=counter_bytes)
    return bytes([info]) + bytes(header) + sealed


def encode(
    objects: Iterable[tuple[int, Any]] = (),
    *,
    packet_id: int | None = None,
    buttons: Iterable[str | int | None] = (),
    dimmers: Iterable[tuple[str | int | None, int]] = (),
    bindkey: bytes | str | None = None,
    mac: bytes | str | None = None,
    counter: int | None = None,
    trigger_based: bool = False,
) -> bytes:
    """A whole advert (service data): ``encode(buttons=["press"], bindkey=k, mac=m, counter=7)``.

    ``buttons`` gives one button object per entry (None: that button has no event).
    """
    pairs: list[tuple[int, Any]] = list(objects)
    if packet_id is not None:
        pairs.append((0x00, packet_id))
    pairs += [(0x3A, b) for b in buttons]
    pairs += [(0x3C, d) for d in dimmers]
    return build_advert(
        encode_payload(pairs), bindkey=bindkey, mac=mac, counter=counter, trigger_based=trigger_based
    )
