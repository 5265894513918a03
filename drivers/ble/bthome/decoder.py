"""The BTHome v2 decoder: service data of UUID 0xFCD2 in, an :class:`Advert` or a :class:`BTHomeError` out.

Pure functions over bytes: no radio, no clock reads. Layout
(https://bthome.io/format/)::

    plain:      info | object, object, ...
    encrypted:  info | AES-CCM(object, object, ...) | counter (4, LE) | MIC (4)

``info`` is the device information byte: bit 0 encryption, bit 2 trigger
based device, bits 5-7 the BTHome version, which must be 2. Bit 1 is
reserved in the published spec; an early v2 draft used it for "the
advertiser's MAC follows as 6 bytes, least significant first", and bthome-ble
still accepts that, so we do too (:attr:`Advert.included_mac`).

An object is an id byte and a value whose length the id fixes (text, raw and
command objects carry a length byte). Objects come in order of id. An id we
do not know stops decoding, since its length is unknown: the objects before
it are kept and :attr:`Advert.unknown_object_id` tells which id it was
(``strict=True`` raises :class:`UnknownObjectError` instead).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drivers.ble.bthome import crypto
from drivers.ble.bthome.advert import VERSION, Advert, CommandEvent, DeviceInfo, DimmerEvent, Measurement
from drivers.ble.bthome.arguments import as_bytes, format_mac, normalize_key, normalize_mac
from drivers.ble.bthome.errors import (
    DowngradeError,
    KeyRequiredError,
    OutOfOrderError,
    TruncatedError,
    UnknownObjectError,
    UnsupportedVersionError,
)
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
    event_name,
)

__all__ = ["decode", "device_info"]


def device_info(service_data: bytes) -> DeviceInfo:
    """The device information byte of a BTHome v2 advert, checked for the version.

    Enough to tell, before any key lookup, whether an advert is encrypted.
    """
    data = as_bytes(service_data)
    if not data:
        raise TruncatedError("empty service data: no device information byte")
    info = DeviceInfo.from_byte(data[0])
    if info.version != VERSION:
        raise UnsupportedVersionError(info.version)
    return info


def decode(
    service_data: bytes,
    *,
    mac: bytes | str,
    bindkey: bytes | str | None = None,
    strict: bool = False,
) -> Advert:
    """Decode the service data of UUID 0xFCD2 sent by ``mac``.

    ``bindkey`` (16 bytes or 32 hex digits) is the device's key: with it,
    plain adverts are refused (:class:`DowngradeError`) and encrypted ones are
    decrypted (:class:`DecryptionError` when the MIC does not match); without
    it, encrypted adverts raise :class:`KeyRequiredError`.

    Raises only :class:`BTHomeError` subclasses. With ``strict`` an unknown
    object id or out-of-order ids raise instead of being reported on the advert.
    """
    data = as_bytes(service_data)
    mac_bytes = normalize_mac(mac)
    key = normalize_key(bindkey)
    info = device_info(data)

    body = data[1:]
    nonce_mac = mac_bytes
    included_mac: str | None = None
    if info.mac_included:
        if len(body) < 6:
            raise TruncatedError(f"MAC-included flag set but only {len(body)} bytes follow the info byte")
        nonce_mac = body[:6][::-1]
        included_mac = format_mac(nonce_mac)
        body = body[6:]

    counter: int | None = None
    if info.encrypted:
        if key is None:
            raise KeyRequiredError(f"advert from {format_mac(mac_bytes)} is encrypted and no bindkey was given")
        counter, payload = crypto.decrypt(
            body, key=key, mac=nonce_mac, info=info.raw, sender=format_mac(mac_bytes)
        )
    else:
        if key is not None:
            raise DowngradeError(
                f"plain advert from {format_mac(mac_bytes)}, whose bindkey we have: refused (possible spoofing)"
            )
        payload = body

    return _decode_objects(
        payload,
        strict=strict,
        base=dict(
            mac=format_mac(mac_bytes),
            encrypted=info.encrypted,
            trigger_based=info.trigger_based,
            version=info.version,
            counter=counter,
            included_mac=included_mac,
            info=info.raw,
        ),
    )


def _decode_objects(payload: bytes, *, strict: bool, base: dict[str, Any]) -> Advert:
    values: list[Measurement] = []
    states: list[Measurement] = []
    buttons: list[str | None] = []
    dimmers: list[DimmerEvent] = []
    commands: list[CommandEvent] = []
    packet_id: int | None = None
    device_type_id: int | None = None
    firmware: str | None = None
    unknown: int | None = None
    out_of_order = False

    n = len(payload)
    pos = 0
    previous_id = -1
    while pos < n:
        oid = payload[pos]
        spec = OBJECTS.get(oid)
        if spec is None:
            if strict:
                raise UnknownObjectError(oid, pos)
            unknown = oid
            break
        if oid < previous_id:
            if strict:
                raise OutOfOrderError(f"object id 0x{oid:02x} at offset {pos} follows 0x{previous_id:02x}")
            out_of_order = True
        previous_id = oid

        if spec.length is None:
            if pos + 1 >= n:
                raise TruncatedError(f"object 0x{oid:02x} ({spec.name}) at offset {pos}: missing its length byte")
            length = payload[pos + 1]
            if spec.kind == COMMAND:
                length = 1 + (length & 0x1F)  # opcode + args; the top 3 bits are reserved
            start = pos + 2
        else:
            length = spec.length
            start = pos + 1
        end = start + length
        if end > n:
            raise TruncatedError(
                f"object 0x{oid:02x} ({spec.name}) at offset {pos} needs {length} bytes, only {n - start} left"
            )
        raw = payload[start:end]
        pos = end

        kind = spec.kind
        if kind == SENSOR:
            number = int.from_bytes(raw, "little", signed=spec.signed)
            scaled: int | float = number if spec.factor == 1 else float(number * spec.factor)
            values.append(Measurement(oid, spec.name, scaled, spec.unit, raw))
        elif kind == BINARY:
            states.append(Measurement(oid, spec.name, bool(raw[0]), None, raw))
        elif kind == PACKET_ID:
            packet_id = raw[0]
        elif kind == BUTTON:
            buttons.append(event_name(BUTTON_EVENTS, raw[0]))
        elif kind == DIMMER:
            dimmers.append(DimmerEvent(event_name(DIMMER_EVENTS, raw[0]), raw[1]))
        elif kind == COMMAND:
            commands.append(CommandEvent(event_name(COMMAND_EVENTS, raw[0]), raw[1:]))
        elif kind == TEXT:
            values.append(Measurement(oid, spec.name, raw.decode("utf-8", errors="replace"), None, raw))
        elif kind == RAW:
            values.append(Measurement(oid, spec.name, raw, None, raw))
        elif kind == TIMESTAMP:
            stamp = datetime.fromtimestamp(int.from_bytes(raw, "little"), tz=UTC)
            values.append(Measurement(oid, spec.name, stamp, None, raw))
        elif kind == DEVICE_TYPE:
            device_type_id = int.from_bytes(raw, "little")
        elif kind == FIRMWARE:
            # least significant component first: 00 01 02 04 is 4.2.1.0
            firmware = ".".join(str(b) for b in reversed(raw))
        else:  # pragma: no cover - the table only holds the kinds above
            raise AssertionError(kind)

    return Advert(
        packet_id=packet_id,
        values=tuple(values),
        states=tuple(states),
        buttons=tuple(buttons),
        dimmers=tuple(dimmers),
        commands=tuple(commands),
        device_type_id=device_type_id,
        firmware_version=firmware,
        unknown_object_id=unknown,
        out_of_order=out_of_order,
        **base,
    )
