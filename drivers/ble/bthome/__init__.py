"""BTHome v2: decode (and encode) the service data of UUID 0xFCD2.

Pure functions over bytes: no radio, no bleak, no clock reads. The BLE
scanner hands :func:`decode` the service data of UUID 0xFCD2 (the bytes after
the UUID) together with the advertiser's address; the hub gets an
:class:`Advert` back, or a :class:`BTHomeError` subclass, never anything
else. :class:`ReplayGuard` then drops replayed and repeated adverts;
:func:`encode`, :func:`encode_payload` and :func:`build_advert` build adverts
for the simulator, the tests and the benches.

The modules, each re-exported here (``from drivers.ble import bthome;
bthome.decode(...)``):

* :mod:`~drivers.ble.bthome.objects` -- the object id table and event codes (data);
* :mod:`~drivers.ble.bthome.advert` -- the UUID, the device information byte,
  and the decoded result (:class:`Advert`, :class:`Measurement`...);
* :mod:`~drivers.ble.bthome.decoder` -- :func:`decode`, :func:`device_info`;
* :mod:`~drivers.ble.bthome.encoder` -- :func:`encode`, :func:`encode_payload`, :func:`build_advert`;
* :mod:`~drivers.ble.bthome.crypto` -- AES-CCM encryption and decryption;
* :mod:`~drivers.ble.bthome.replay` -- :class:`ReplayGuard`, :class:`Verdict`;
* :mod:`~drivers.ble.bthome.arguments` -- :func:`normalize_mac`, :func:`format_mac`, bindkeys;
* :mod:`~drivers.ble.bthome.errors` -- :class:`BTHomeError` and its subclasses.

The object table follows the BTHome v2 spec as bthome-ble 3.25 implements it
(the tests check the two tables against each other and decode thousands of
generated adverts with both).
"""

from __future__ import annotations

from drivers.ble.bthome.advert import (
    INFO_ENCRYPTED,
    INFO_MAC_INCLUDED,
    INFO_TRIGGER_BASED,
    SERVICE_UUID,
    UUID16,
    VERSION,
    Advert,
    CommandEvent,
    DeviceInfo,
    DimmerEvent,
    Measurement,
    Value,
)
from drivers.ble.bthome.arguments import format_mac, normalize_mac
from drivers.ble.bthome.decoder import decode, device_info
from drivers.ble.bthome.encoder import build_advert, encode, encode_payload
from drivers.ble.bthome.errors import (
    BTHomeError,
    DecryptionError,
    DowngradeError,
    EncodeError,
    InvalidArgumentError,
    KeyRequiredError,
    MalformedAdvertError,
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
    ObjectSpec,
)
from drivers.ble.bthome.replay import ACCEPTED, ReplayGuard, Verdict

# The kinds of object (SENSOR, BINARY, ...), the info byte's bits, VERSION and
# Value are reachable here too (``bthome.TEXT``), as before the split, but stay
# out of ``import *``.
__all__ = [
    "ACCEPTED",
    "BUTTON_EVENTS",
    "COMMAND_EVENTS",
    "DIMMER_EVENTS",
    "OBJECTS",
    "SERVICE_UUID",
    "UUID16",
    "Advert",
    "BTHomeError",
    "CommandEvent",
    "DecryptionError",
    "DeviceInfo",
    "DimmerEvent",
    "DowngradeError",
    "EncodeError",
    "InvalidArgumentError",
    "KeyRequiredError",
    "MalformedAdvertError",
    "Measurement",
    "ObjectSpec",
    "OutOfOrderError",
    "ReplayGuard",
    "TruncatedError",
    "UnknownObjectError",
    "UnsupportedVersionError",
    "Verdict",
    "build_advert",
    "decode",
    "device_info",
    "encode",
    "encode_payload",
    "format_mac",
    "normalize_mac",
]
