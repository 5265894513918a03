"""The signature on a pushed config: Ed25519 by the alarm central, over the hub, the version and the text's hash.

The signed message binds a config to one hub and one version::

    carehub-config-push/1\\n<hub id>\\n<version>\\n<sha256 of the TOML text, hex>

so a config signed for one hub cannot be played to another, and one signed
as version 5 cannot come back as version 9. The hub holds only the
central's public key (``[push] key``, a PEM file in its local config); the
private key stays at the central. :func:`sign` is the central's side (the
reference central, the tests and the rig use it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["KeyError_", "message", "load_public_key", "sign", "sha256_text", "verify", "public_pem", "private_pem"]

#: What the first line of every signed message says: the scheme and its version.
SCHEME = "carehub-config-push/1"


class KeyError_(Exception):  # noqa: N801 - not the builtin KeyError
    """A key file that cannot be read or is not an Ed25519 key."""


def sha256_text(text: str) -> str:
    """The SHA-256 of a config text as UTF-8, hex: what ``cmd/config`` names and the history keeps."""
    return hashlib.sha256(text.encode()).hexdigest()


def message(hub: str, version: int, sha256: str) -> bytes:
    """The bytes the central signs for ``version`` (text hash ``sha256``) of ``hub``'s config."""
    return f"{SCHEME}\n{hub}\n{version}\n{sha256}".encode()


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The central's public key from a PEM file; :class:`KeyError_` when it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(exc.strerror or str(exc)) from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"a {type(key).__name__.removesuffix('PublicKey').lstrip('_')} key, not Ed25519")
    return key


def verify(key: Ed25519PublicKey, hub: str, version: int, sha256: str, signature: str) -> bool:
    """Is ``signature`` (base64) the central's over :func:`message`?"""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, message(hub, version, sha256))
    except InvalidSignature:
        return False
    return True


def sign(key: Ed25519PrivateKey, hub: str, version: int, text: str) -> tuple[str, str]:
    """The central's side: ``(sha256, signature)`` for pushing ``text`` as ``version`` to ``hub``."""
    digest = sha256_text(text)
    return digest, base64.b64encode(key.sign(message(hub, version, digest))).decode()


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half of ``key`` as PEM, for a hub's ``[push] key`` file."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (the central's to keep)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
