"""What the link is given and what it hands back: its settings, its state, an incoming message."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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
    #: None: no last will (the alarm central's link sets none).
    will: Will | None
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
    #: 0 (the hub): a clean session on every connect. Above 0: clean_start off and the broker keeps the
    #: session this many seconds while the client is away (its subscriptions and the QoS 1 messages for
    #: them), so a client that comes back with the same client id gets what it missed.
    session_expiry_s: int = 0
    #: Acknowledge QoS 1 messages only when told (:meth:`~hub.link.MqttLink.ack`), once they are handled,
    #: not when they arrive: a process killed in between gets them again from its persistent session.
    manual_ack: bool = False


@dataclass
class Incoming:
    """A message received on a subscribed topic."""

    topic: str
    payload: bytes
    properties: Properties | None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    #: Its packet id and QoS (what :meth:`~hub.link.MqttLink.ack` needs), and the retain flag.
    mid: int = 0
    qos: int = 0
    retain: bool = False
    #: The connection it came on: an ack is sent on that one only (another would not know the packet id).
    origin: object = field(default=None, repr=False, compare=False)


OnConnected = Callable[[], Awaitable[None]]
OnMessage = Callable[[Incoming], None]
