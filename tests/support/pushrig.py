"""A hub that takes pushed configs, behind the shipped broker ACL: the central's accounts, its signing key.

The broker runs ``config/broker/acl`` as shipped, with passwords for the hub
(``test-hub``), the central's main system (``central.main``, which may push
configs) and its staff tools (``central.staff``, which may not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.harness.broker import Mosquitto, Subscriber, new_client, request
from hil.harness.hubproc import REPO, HubProcess, hub_config
from hub.configpush.signing import public_pem, sign

HUB = "test-hub"
BASE = f"carehub/v1/{HUB}"
SHIPPED_ACL = (REPO / "config" / "broker" / "acl").read_text()
PASSWORDS = {HUB: "hub-pw", "central.main": "main-pw", "central.staff": "staff-pw"}


@dataclass
class PushRig:
    """The broker, the central's key, and the hub's local config (written by :meth:`write_local`)."""

    dir: Path
    broker: Mosquitto
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    probation_s: float = 30.0
    hub: HubProcess | None = None
    subs: list[Subscriber] = field(default_factory=list)
    #: every reply the hub sent to cmd/config and cmd/config-status, for the contract check
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        secrets = self.dir / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "hub.pass").write_text(PASSWORDS[HUB] + "\n")
        os.chmod(secrets / "hub.pass", 0o600)
        (secrets / "central-push.pub").write_bytes(public_pem(self.key))

    def text(self, *, port: int | None = None, extra: str = "", **cfg: Any) -> str:
        """A whole config for this hub, as the central would push it (the local file is one too)."""
        src = self.dir / "src"
        creds = f'username = "{HUB}"\npassword_file = "{self.dir / "secrets" / "hub.pass"}"\n'
        push = f'[push]\nkey = "{self.dir / "secrets" / "central-push.pub"}"\nprobation_s = {self.probation_s}\n'
        path = hub_config(src, port=port or self.broker.port, extra_mqtt=creds + cfg.pop("extra_mqtt", ""),
                          extra=push + extra, **cfg)
        return path.read_text()

    def start_hub(self, **cfg: Any) -> HubProcess:
        """Write the local file ``hub/hub.toml`` and start the hub on it."""
        local = self.dir / "hub" / "hub.toml"
        local.parent.mkdir(exist_ok=True)
        local.write_text(self.text(**cfg))
        self.hub = HubProcess(local).start()
        return self.hub

    def subscribe(self, user: str = "central.main") -> Subscriber:
        """The central's view of the hub's topics."""
        sub = Subscriber(port=self.broker.port, topics=[f"{BASE}/#"], username=user, password=PASSWORDS[user])
        self.subs.append(sub)
        return sub

    def command(self, version: int, text: str, *, key: Ed25519PrivateKey | None = None, hub: str = HUB,
                toml: bool = True, by: str = "central.main") -> dict[str, Any]:
        """A signed ``cmd/config`` payload."""
        sha256, signature = sign(key or self.key, hub, version, text)
        body: dict[str, Any] = {"version": version, "sha256": sha256, "signature": signature, "by": by}
        if toml:
            body["toml"] = text
        return body

    def push(self, version: int, text: str, *, user: str = "central.main", timeout: float = 20.0,
             **kw: Any) -> dict[str, Any]:
        """Push ``text`` as ``version`` as ``user``; the hub's reply."""
        reply = request("127.0.0.1", self.broker.port, f"{BASE}/cmd/config", self.command(version, text, **kw),
                        timeout=timeout, username=user, password=PASSWORDS[user])
        self.replies.append(("config", reply))
        return reply

    def retain(self, version: int, text: str, *, user: str = "central.main") -> None:
        """Publish ``text`` retained on ``{prefix}/{hub}/config/<version>`` (a push by reference), as ``user``."""
        client = new_client(f"retain-{version}", None, user, PASSWORDS[user])
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        try:
            info = client.publish(f"{BASE}/config/{version}", text.encode(), qos=1, retain=True)
            info.wait_for_publish(timeout=10)
        finally:
            client.disconnect()
            client.loop_stop()

    def status(self, timeout: float = 15.0) -> dict[str, Any]:
        """``cmd/config-status``."""
        reply = request("127.0.0.1", self.broker.port, f"{BASE}/cmd/config-status", {}, timeout=timeout,
                        username="central.main", password=PASSWORDS["central.main"])
        self.replies.append(("config-status", reply))
        return reply

    def close(self) -> None:
        for s in self.subs:
            s.close()
        if self.hub is not None:
            self.hub.stop()
