"""What check-config knows about TLS files: each parses, the key fits the certificate.

A CA file that is not a certificate used to pass ``check-config`` and kill the
link at run time. :func:`check_tls` reads the files the way the link will
(PEM, with ``cryptography``) and says what is wrong in the installer's terms.
Expiry is not checked: a Pi without a real-time clock boots with a wrong
date, and ``check-config`` runs before NTP has set it (``ExecStartPre``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

#: One problem: the key (``ca``, ``cert`` or ``key``) and what is wrong.
Problem = tuple[str, str]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None  # unreadable files are reported by the file checks already


def check_tls(ca: Path, cert: Path | None, key: Path | None) -> list[Problem]:
    """Parse the CA bundle, the client certificate and its key; check that key and certificate match."""
    problems: list[Problem] = []
    data = _read(ca)
    if data is not None:
        try:
            if not x509.load_pem_x509_certificates(data):
                raise ValueError("no certificate")
        except ValueError:
            problems.append(("ca", f"expected PEM CA certificate(s) (-----BEGIN CERTIFICATE-----), found {_looks(data)}"))
    certificate = None
    if cert is not None and (data := _read(cert)) is not None:
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            problems.append(("cert", f"expected a PEM certificate (-----BEGIN CERTIFICATE-----), found {_looks(data)}"))
    private = None
    if key is not None and (data := _read(key)) is not None:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            problems.append(("key", "expected an unencrypted private key (the hub has no passphrase to give), found an encrypted one"))
        except (ValueError, Exception):  # unsupported algorithms raise UnsupportedAlgorithm
            problems.append(("key", f"expected a PEM private key (-----BEGIN PRIVATE KEY-----), found {_looks(data)}"))
    if certificate is not None and private is not None:
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if certificate.public_key().public_bytes(enc, fmt) != private.public_key().public_bytes(enc, fmt):
            problems.append(("key", "expected the private key of the certificate in cert, found a key that does not match it"))
    return problems


def _looks(data: bytes) -> str:
    """A few words on what a file holds instead."""
    if not data.strip():
        return "an empty file"
    first = data.strip().splitlines()[0][:40]
    if first.startswith(b"-----BEGIN"):
        return f"{first.decode(errors='replace')!r} with a body that does not parse"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:200]):
        return f"text starting {first.decode(errors='replace')!r}"
    return "binary data"
