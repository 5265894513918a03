"""The central's side of ``push_config`` on the virtual rig: a push key, and a signed ``cmd/config``.

:func:`provision` makes the central's Ed25519 key for one scenario and names
its public half in the residence config (``[push] key``) before the hub
starts; :func:`push` sends the rig's config, changed by dotted keys, as a
version, signed, and returns the hub's reply. A push may point the hub at a
port on the broker's host where nothing listens (``unreachable``): the link
the probation must see fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.harness.broker import request
from hil.harness.mosquitto import free_port
from hil.rigs import tomlout
from hil.rigs.residence import set_dotted
from hub.configpush.signing import public_pem, sign


class RigPushError(Exception):
    """A push_config the rig cannot make (a dotted key that does not fit the config)."""


def provision(doc: dict[str, Any], where: Path) -> Ed25519PrivateKey:
    """A new central key; its public half in ``where/central-push.pub``, named by ``doc``'s ``[push] key``."""
    key = Ed25519PrivateKey.generate()
    where.mkdir(parents=True, exist_ok=True)
    path = where / "central-push.pub"
    path.write_bytes(public_pem(key))
    doc.setdefault("push", {})["key"] = str(path.resolve())
    return key


def push(doc: dict[str, Any], key: Ed25519PrivateKey, host: str, port: int, version: int, set_: dict[str, Any],
         unreachable: bool, *, timeout: float = 30.0) -> dict[str, Any]:
    """Push ``doc`` with ``set_`` applied as ``version`` through the broker at ``host:port``; the reply."""
    pushed = tomlout.merge(doc, {})
    for name, value in set_.items():
        try:
            set_dotted(pushed, name, value)
        except ValueError as exc:
            raise RigPushError(str(exc)) from exc
    if unreachable:
        pushed["mqtt"]["broker"] = [{"host": b["host"], "port": free_port(host)} for b in pushed["mqtt"]["broker"]]
    text = tomlout.dumps(pushed)
    hub_id, prefix = doc["hub"]["id"], doc["mqtt"].get("prefix", "carehub/v1")
    sha256, signature = sign(key, hub_id, version, text)
    body = {"version": version, "sha256": sha256, "signature": signature, "toml": text, "by": "hil-central"}
    return request(host, port, f"{prefix}/{hub_id}/cmd/config", body, timeout=timeout)
