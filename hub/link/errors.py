"""The link's errors, what kind of connect failure each is, and the publish topic check."""

from __future__ import annotations

import ssl

from paho.mqtt.reasoncodes import ReasonCode


class LinkError(Exception):
    """Base of the link's errors."""


class LinkDown(LinkError):
    """The message could not be handed to the broker: there is no connection, or it was lost."""


class PublishRefused(LinkError):
    """The broker answered a publish with a failure reason code."""

    def __init__(self, reason: ReasonCode | int):
        self.reason = reason
        super().__init__(f"broker refused publish: {reason}")


class ConnectRefused(LinkError):
    """The broker answered CONNECT with a failure (bad credentials, not authorised, ...)."""

    def __init__(self, reason: ReasonCode | int):
        self.reason = reason
        super().__init__(f"CONNACK refused: {reason}")


class BadTopic(LinkError):
    """A topic the hub cannot publish to (empty, wildcards, NUL, too long); the connection is fine."""


def check_topic(topic: str) -> None:
    """Raise :class:`BadTopic` unless ``topic`` is a valid MQTT topic name to publish to."""
    if not topic or "+" in topic or "#" in topic or "\0" in topic or len(topic.encode()) > 65535:
        raise BadTopic(f"not a topic name to publish to: {topic[:80]!r}")


def classify_error(exc: BaseException) -> str:
    """What kind of connect failure this is, for status and ``hub.degraded``: tls, auth, network, protocol."""
    if isinstance(exc, ssl.SSLError) or "certificate" in str(exc).lower():
        return "tls"
    if isinstance(exc, ConnectRefused):
        rc = exc.reason
        value = getattr(rc, "value", rc)
        return "auth" if value in (0x86, 0x87, 4, 5) else "protocol"
    if isinstance(exc, (OSError, TimeoutError, LinkDown)):
        return "network"
    return "protocol"
