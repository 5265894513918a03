"""Writing provision's files: never over an existing one (unless forced), secrets private from the start.

A secret (the client key, the password file) is created mode 0600 whatever
the umask and handed to the service user (``carehub``) before a byte of it is
written; where that user does not exist yet it stays root's, and provision
says how to hand it over (check-config accepts either owner, the service
reads only its own). Each file is written beside its final name and linked
into place, so a file that exists is never touched without ``--force`` and a
reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.config.checks import SERVICE_USER

__all__ = ["Owner", "make_csr", "make_key", "make_password", "owner_for", "write_file"]


@dataclass(frozen=True)
class Owner:
    """Who gets provision's files: ``uid`` for secrets, ``gid`` as the group of the directory and
    the config (None: leave as created), and a ``note`` for the installer when that is not the
    service user."""

    uid: int | None
    gid: int | None
    note: str | None = None


def owner_for(user: str = SERVICE_USER) -> Owner:
    """The service user's ids when it exists and we may chown; else who we are, with a note."""
    try:
        import pwd

        entry = pwd.getpwnam(user)
    except (KeyError, ImportError):
        return Owner(None, None, f"no user {user!r} here yet (scripts/install.sh makes it): the secrets are "
                                 f"owned by {_me()}, which check-config accepts but the service cannot read")
    if os.geteuid() != 0:
        return Owner(None, None, f"not root: the secrets are owned by {_me()}, not {user}")
    return Owner(entry.pw_uid, entry.pw_gid)


def _me() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"


def write_file(path: Path, data: bytes, *, mode: int, uid: int | None = None, gid: int | None = None,
               force: bool = False) -> None:
    """Write ``path`` with ``mode`` (and owner) set before its content; refuse an existing file
    unless ``force`` (:class:`FileExistsError`)."""
    tmp = path.with_name(f".{path.name}.provision-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if it exists, however it came to be meanwhile
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def make_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 private key (the client identity of a hub)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the hub has no passphrase to give)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(key: ec.EllipticCurvePrivateKey, hub_id: str) -> bytes:
    """A PEM certificate request with CN = ``hub_id`` (the broker takes the CN as the username),
    asking for client authentication."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hub_id)]))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def make_password() -> bytes:
    """A random MQTT password (192 bits, URL-safe characters), alone on the first line."""
    return (secrets.token_urlsafe(24) + "\n").encode()
