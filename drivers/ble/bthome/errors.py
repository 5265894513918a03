"""The errors of the BTHome codec: every one is a :class:`BTHomeError`.

:func:`~drivers.ble.bthome.decode` raises nothing else, so a caller that
catches :class:`BTHomeError` keeps running whatever bytes arrive over the air.
"""

from __future__ import annotations


class BTHomeError(Exception):
    """Base of everything the BTHome package raises."""


class MalformedAdvertError(BTHomeError):
    """The service data does not follow the BTHome v2 format."""


class TruncatedError(MalformedAdvertError):
    """The service data ends in the middle of a field."""


class UnsupportedVersionError(MalformedAdvertError):
    """The version bits of the device information byte are not 2."""

    def __init__(self, version: int) -> None:
        super().__init__(f"BTHome version {version} is not supported (only version 2)")
        self.version = version


class UnknownObjectError(MalformedAdvertError):
    """An object id not in :data:`OBJECTS` (only raised with ``strict=True``)."""

    def __init__(self, object_id: int, offset: int) -> None:
        super().__init__(f"unknown object id 0x{object_id:02x} at payload offset {offset}")
        self.object_id = object_id
        self.offset = offset


class OutOfOrderError(MalformedAdvertError):
    """Object ids not in ascending order (only raised with ``strict=True``)."""


class DecryptionError(BTHomeError):
    """The MIC does not match: wrong bindkey, wrong MAC, or tampered data."""


class KeyRequiredError(BTHomeError):
    """The advert is encrypted and no bindkey was given."""


class DowngradeError(BTHomeError):
    """A plain advert for a device whose bindkey we have: someone may be spoofing it."""


class InvalidArgumentError(BTHomeError, ValueError):
    """A MAC or bindkey argument that is not one."""


class EncodeError(BTHomeError, ValueError):
    """A value that cannot be encoded (out of range, wrong type, unknown id)."""
