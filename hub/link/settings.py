"""What the link is given and what it hands back: its settings, its state, an incoming message."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from paho.mqtt.properties import Properties


class LinkState(str, enum.Enum):
    """What the heartbeat reports about the link."""

    CONNECTING = "connecting"
    ONLINE = "online"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One broker address."""

    host: str
    port: int


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """TLS towards the broker: a CA, and optionally a client certificate."""

    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Will:
    """The retained last will the broker publishes when the hub vanishes."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, kw_only=True)
class LinkSettings:
    """Everything the link needs; the daemon builds it from ``[mqtt]``."""

    brokers: tuple[Endpoint, ...]
    client_id: str
    will: Will
    subscriptions: tuple[str, ...] = ()
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_inflight: int = 50
    attempts_per_broker: int = 2


@dataclass
class Incoming:
    """A message received on a subscribed topic."""

    topic: str
    payload: bytes
    properties: Properties | None
    response_topic: str | None = None
    correlation_data: bytes | None = None


OnConnected = Callable[[], Awaitable[None]]
OnMessage = Callable[[Incoming], None]
