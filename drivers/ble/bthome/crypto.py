"""BTHome v2 encryption: AES-128-CCM with a 4-byte MIC and no associated data.

An encrypted advert is ``info | ciphertext | counter (4, LE) | MIC (4)``.
The nonce is the MAC (6 bytes, in display order: ``54:48:E6:8F:80:A5``
gives ``54 48 e6 8f 80 a5``) + the UUID little-endian (``d2 fc``) + the info
byte + the counter (4 bytes, as sent).
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from drivers.ble.bthome.advert import UUID16
from drivers.ble.bthome.errors import DecryptionError, TruncatedError

_UUID_LE: Final = UUID16.to_bytes(2, "little")

COUNTER_LEN: Final = 4
MIC_LEN: Final = 4
#: The shortest ciphertext that can hold an object (id + one byte), as bthome-ble.
MIN_CIPHERTEXT: Final = 2

#: A known answer (bthome-ble's encryption vector, a Shelly BLU H&T): this key and MAC, info byte
#: 0x41 and the advert's body (ciphertext, counter, MIC) decrypt to temperature 25.06 and humidity 50.55.
_KAT_KEY: Final = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
_KAT_MAC: Final = bytes.fromhex("5448e68f80a5")
_KAT_BODY: Final = bytes.fromhex("a47266c95f730011223378237214")
_KAT_PLAIN: Final = bytes.fromhex("02ca0903bf13")


def nonce(mac: bytes, info: int, counter: bytes) -> bytes:
    """The CCM nonce of an advert from ``mac`` (6 bytes, display order) with this info byte and counter."""
    return mac + _UUID_LE + bytes([info]) + counter


def encrypt(payload: bytes, *, key: bytes, mac: bytes, info: int, counter: bytes) -> bytes:
    """``ciphertext | counter | MIC`` for the object bytes ``payload`` (``counter``: its 4 bytes as sent)."""
    sealed = AESCCM(key, tag_length=MIC_LEN).encrypt(nonce(mac, info, counter), bytes(payload), None)
    ciphertext, mic = sealed[:-MIC_LEN], sealed[-MIC_LEN:]
    return ciphertext + counter + mic


def self_test() -> str | None:
    """Decrypt a known advert and check the answer: None when AES-CCM works, else what went wrong.

    Run when a driver with encrypted devices starts, so a broken crypto install
    (a wheel for the wrong CPU, an OpenSSL that refuses CCM) is seen at once,
    not at the first encrypted advert; it also reads the cipher's code in then,
    rather than with that advert.
    """
    try:
        counter, payload = decrypt(_KAT_BODY, key=_KAT_KEY, mac=_KAT_MAC, info=0x41, sender="the self-test")
    except Exception as exc:  # noqa: BLE001 - whatever the library raises is the answer
        return f"{type(exc).__name__}: {exc}"
    if (counter, payload) != (0x33221100, _KAT_PLAIN):
        return f"the known advert decrypted to counter {counter:#x}, bytes {payload.hex()}, not {_KAT_PLAIN.hex()}"
    return None


def decrypt(body: bytes, *, key: bytes, mac: bytes, info: int, sender: str) -> tuple[int, bytes]:
    """The counter and the object bytes of ``body`` (what follows the header: ciphertext, counter, MIC).

    ``mac`` is the nonce's MAC; ``sender`` names the advertiser in the error
    messages. Raises :class:`TruncatedError` when ``body`` is too short and
    :class:`DecryptionError` when the MIC does not match.
    """
    if len(body) < MIN_CIPHERTEXT + COUNTER_LEN + MIC_LEN:
        raise TruncatedError(
            f"encrypted advert too short: {len(body)} bytes after the header, "
            f"need at least {MIN_CIPHERTEXT} of ciphertext + {COUNTER_LEN} counter + {MIC_LEN} MIC"
        )
    ciphertext = body[: -(COUNTER_LEN + MIC_LEN)]
    counter_bytes = body[-(COUNTER_LEN + MIC_LEN) : -MIC_LEN]
    mic = body[-MIC_LEN:]
    counter = int.from_bytes(counter_bytes, "little")
    try:
        payload = AESCCM(key, tag_length=MIC_LEN).decrypt(nonce(mac, info, counter_bytes), ciphertext + mic, None)
    except InvalidTag:
        raise DecryptionError(
            f"advert from {sender} (counter {counter}) does not authenticate: wrong bindkey or tampered data"
        ) from None
    return counter, payload
