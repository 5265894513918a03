"""The MQTT 5 link to the alarm central: paho-mqtt driven from the asyncio loop.

No network thread: paho's socket is registered with the loop (``add_reader`` /
``add_writer``) and ``loop_misc`` runs from a task, the way aiomqtt does it.
Only the blocking TCP connect and TLS handshake run in a worker thread, once
per connection attempt; the socket is handed to the loop after that.

:class:`MqttLink` owns the connection for the daemon's lifetime: it connects
to the brokers in failover order with jittered exponential backoff, sets the
retained last will, calls ``on_connected`` after every CONNACK (the daemon
publishes its birth there, so a broker restart always gets a fresh one),
subscribes to the command topics, and resolves each QoS 1 publish's future
on its PUBACK. Incoming messages go to ``on_message``, a plain callback on
the loop: the daemon's command gate decides what to run, queue or refuse, so
a flood cannot make the link spawn a task per message. Nothing a peer sends
can make the link reconnect in a loop, and nothing paho raises in the send
path escapes as anything but :class:`LinkDown`.

A failure to connect of any kind (refused, unreachable, a CA file that is not
a certificate, wrong credentials) is logged, kept in :attr:`MqttLink.last_error`
with its kind (:attr:`MqttLink.error_kind`) and tried again with backoff: the
link task never dies of it.

The parts: :mod:`~hub.link.settings` (settings, state, incoming messages),
:mod:`~hub.link.errors` (errors, their kinds, the topic check),
:mod:`~hub.link.connection` (one paho client on the loop) and
:mod:`~hub.link.link` (:class:`MqttLink`, the retry and failover loop).
"""

from __future__ import annotations

from hub.link.connection import INFLIGHT_HEADROOM, AckSink
from hub.link.errors import BadTopic, ConnectRefused, LinkDown, LinkError, PublishRefused, check_topic, classify_error
from hub.link.link import MqttLink
from hub.link.settings import Endpoint, Incoming, LinkSettings, LinkState, OnConnected, OnMessage, TlsSettings, Will

__all__ = [
    "INFLIGHT_HEADROOM",
    "AckSink",
    "BadTopic",
    "ConnectRefused",
    "Endpoint",
    "Incoming",
    "LinkDown",
    "LinkError",
    "LinkSettings",
    "LinkState",
    "MqttLink",
    "OnConnected",
    "OnMessage",
    "PublishRefused",
    "TlsSettings",
    "Will",
    "check_topic",
    "classify_error",
]
