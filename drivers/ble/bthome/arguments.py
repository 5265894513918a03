"""The arguments of the BTHome codec checked and put in one form: MAC addresses, bindkeys, service data.

Each raises :class:`~drivers.ble.bthome.errors.InvalidArgumentError` for a
value that is not what it claims to be.
"""

from __future__ import annotations

from typing import Any

from drivers.ble.bthome.errors import InvalidArgumentError

def normalize_mac(mac: bytes | bytearray | str) -> bytes:
    """A MAC as its 6 bytes in display order ("54:48:E6:8F:80:A5" -> 54 48 e6 8f 80 a5)."""
    if isinstance(mac, (bytes, bytearray, memoryview)):
        raw = bytes(mac)
    elif isinstance(mac, str):
        digits = mac.strip().replace(":", "").replace("-", "")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise InvalidArgumentError(f"not a MAC address: {mac!r}") from None
    else:
        raise InvalidArgumentError(f"not a MAC address: {mac!r}")
    if len(raw) != 6:
        raise InvalidArgumentError(f"a MAC address has 6 bytes, got {len(raw)}: {mac!r}")
    return raw


def format_mac(mac: bytes | bytearray | str) -> str:
    """A MAC as "AA:BB:CC:DD:EE:FF"."""
    return ":".join(f"{b:02X}" for b in normalize_mac(mac))


def normalize_key(bindkey: bytes | bytearray | str | None) -> bytes | None:
    """A bindkey (16 bytes or 32 hex digits) as its 16 bytes; None stays None."""
    if bindkey is None:
        return None
    if isinstance(bindkey, str):
        try:
            key = bytes.fromhex(bindkey.strip())
        except ValueError:
            raise InvalidArgumentError("a bindkey is 32 hex digits") from None
    elif isinstance(bindkey, (bytes, bytearray, memoryview)):
        key = bytes(bindkey)
    else:
        raise InvalidArgumentError(f"a bindkey is 16 bytes, got {type(bindkey).__name__}")
    if len(key) != 16:
        raise InvalidArgumentError(f"a bindkey is 16 bytes (32 hex digits), got {len(key)} bytes")
    return key


def as_bytes(data: Any) -> bytes:
    """Service data as ``bytes`` (bytes, bytearray or memoryview)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"service data must be bytes, got {type(data).__name__}")
