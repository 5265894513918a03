"""A throwaway PKI for TLS tests: a CA plus server and client certificates made with ``cryptography``.

:func:`make_tls` writes them to a directory and returns their paths as :class:`TlsFiles`,
which :class:`hil.harness.mosquitto.Mosquitto` (server side) and the MQTT clients
(:mod:`hil.harness.mqttclient`) take.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "make_tls"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of PEM files for a CA, a server identity and a client identity.

    Without ``client_cert`` and ``client_key`` a client checks the server and shows no
    certificate of its own (it logs in with a username and password instead).
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path | None = None
    client_key: Path | None = None


def _write_pem(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    *,
    subject_cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    eku: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls(dir: Path, client_cn: str = "hub-test") -> TlsFiles:  # noqa: A002 - name from the spec
    """Generate a throwaway PKI in ``dir`` and return the file paths.

    Creates a self-signed EC P-256 CA, a server certificate for ``CN=localhost``
    (SAN ``DNS:localhost``, ``IP:127.0.0.1``, EKU serverAuth) and a client
    certificate for ``CN=<client_cn>`` (EKU clientAuth), both signed by the CA.
    Certificates are written with mode 0644, private keys with mode 0600.
    """
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carehub test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        subject_cn="localhost",
        key=server_key,
        issuer=ca_name,
        issuer_key=ca_key,
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        subject_cn=client_cn,
        key=client_key,
        issuer=ca_name,
        issuer_key=ca_key,
        eku=ExtendedKeyUsageOID.CLIENT_AUTH,
    )

    files = TlsFiles(
        ca=dir / "ca.crt",
        server_cert=dir / "server.crt",
        server_key=dir / "server.key",
        client_cert=dir / "client.crt",
        client_key=dir / "client.key",
    )
    pem = serialization.Encoding.PEM
    _write_pem(files.ca, ca_cert.public_bytes(pem), 0o644)
    _write_pem(files.server_cert, server_cert.public_bytes(pem), 0o644)
    _write_pem(files.server_key, _key_pem(server_key), 0o600)
    _write_pem(files.client_cert, client_cert.public_bytes(pem), 0o644)
    _write_pem(files.client_key, _key_pem(client_key), 0o600)
    return files
