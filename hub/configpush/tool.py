"""``carehub config keygen`` and ``carehub config sign``: the central's side of a push, for operators and scripts.

``keygen`` writes a new Ed25519 key pair: the private key (0600) stays with
the central's main system, the public one goes in each hub's local file
(``[push] key``). ``sign`` prints the ``cmd/config`` payload for a config
file, a hub and a version, to publish as the central's main account::

    carehub config sign --key central-push.key --hub omsorgsbolig-12 --version 8 hub.toml \\
      | mosquitto_pub -V mqttv5 -t carehub/v1/omsorgsbolig-12/cmd/config -s -u central.main ...

With ``--reference`` the payload leaves the text out: publish the file itself,
retained, on ``{prefix}/{hub}/config/<version>`` first.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.configpush.signing import private_pem, public_pem, sign


def keygen(out: str) -> int:
    """Write ``central-push.key`` (0600) and ``central-push.pub`` in ``out``; 2 when either exists."""
    where = Path(out)
    private, public = where / "central-push.key", where / "central-push.pub"
    if private.exists() or public.exists():
        print(f"error: {private} or {public} exists; not overwritten", file=sys.stderr)
        return 2
    where.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem(key))
    public.write_bytes(public_pem(key))
    print(f"{private}: the central's push key (keep it at the central, mode 0600)\n"
          f"{public}: install on each hub and name it in [push] key")
    return 0


def sign_file(key_file: str, hub: str, version: int, file: str, *, by: str, reference: bool) -> int:
    """Print the signed ``cmd/config`` payload for ``file`` as one JSON line; 2 on an unreadable key or file."""
    try:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        text = Path(file).read_text()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(key, Ed25519PrivateKey):
        print(f"error: {key_file} is not an Ed25519 private key", file=sys.stderr)
        return 2
    sha256, signature = sign(key, hub, version, text)
    body = {"version": version, "sha256": sha256, "signature": signature, "by": by}
    if not reference:
        body["toml"] = text
    print(json.dumps(body))
    return 0
