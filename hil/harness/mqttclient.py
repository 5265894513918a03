"""MQTT v5 clients on paho-mqtt 2.x: the client factory, payload encoding and a request/response round trip.

* :func:`new_client` - a paho MQTT v5 client (VERSION2 callbacks) with optional TLS
  client certificate and username/password; :class:`hil.harness.subscriber.Subscriber`
  and :func:`request` use it, and so can any other client of the rig.
* :func:`encode_payload` - bytes as they are, str as UTF-8, dict/list as JSON.
* :func:`request` - MQTT v5 request/response (ResponseTopic + CorrelationData).
"""

from __future__ import annotations

import json as _json
import secrets
import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hil.harness.tlsfiles import TlsFiles

__all__ = ["Payload", "encode_payload", "new_client", "request"]

Payload = bytes | bytearray | str | dict[str, Any] | list[Any]


def encode_payload(payload: Payload) -> bytes:
    """bytes pass through, str is UTF-8 encoded, dict/list become JSON."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return _json.dumps(payload).encode()


def new_client(
    client_id: str,
    tls: TlsFiles | None,
    username: str | None,
    password: str | None,
) -> mqtt.Client:
    """A paho-mqtt MQTT v5 client (VERSION2 callbacks), with a TLS client identity and a login if given."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca),
            certfile=None if tls.client_cert is None else str(tls.client_cert),
            keyfile=None if tls.client_key is None else str(tls.client_key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if username is not None:
        client.username_pw_set(username, password)
    return client


def request(
    host: str,
    port: int,
    topic: str,
    payload: Payload,
    timeout: float = 5.0,
    tls: TlsFiles | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    response_topic: str | None = None,
) -> Any:
    """MQTT v5 request/response round trip with a fresh client.

    Subscribes to a unique response topic (``<prefix>/<hub>/reply/<uuid>`` for a hub's
    ``.../cmd/<name>``, where the shipped broker ACL lets the hub answer, unless
    ``response_topic`` is given), publishes ``payload`` (bytes/str as is,
    dict/list as JSON) to ``topic`` with ResponseTopic and random
    CorrelationData, and returns the JSON-decoded payload of the first reply
    carrying the same CorrelationData. Raises TimeoutError if connecting,
    subscribing or the reply takes longer than ``timeout`` overall, and
    ConnectionError if the broker refuses the connection.
    """
    deadline = time.monotonic() + timeout
    base, cmd, _ = topic.rpartition("/cmd/")
    reply_topic = response_topic or (f"{base}/reply/{uuid.uuid4().hex}" if cmd else f"carehub-test/reply/{uuid.uuid4().hex}")
    correlation = secrets.token_bytes(16)
    cond = threading.Condition()
    state: dict[str, Any] = {"connack": None, "subscribed": None, "reply": None}

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        with cond:
            state["connack"] = rc
            cond.notify_all()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Any) -> None:
        with cond:
            state["subscribed"] = rcs
            cond.notify_all()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        if getattr(props, "CorrelationData", None) != correlation:
            return
        with cond:
            if state["reply"] is None:
                state["reply"] = bytes(msg.payload)
            cond.notify_all()

    def wait(key: str, what: str) -> Any:
        with cond:
            while state[key] is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"request to {topic!r}: no {what} within {timeout}s")
                cond.wait(remaining)
            return state[key]

    client = new_client(f"test-req-{uuid.uuid4().hex[:12]}", tls, username, password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        rc = wait("connack", "CONNACK")
        if rc.is_failure:
            raise ConnectionError(f"broker refused connection: {rc}")
        client.subscribe(reply_topic, options=SubscribeOptions(qos=1))
        rcs = wait("subscribed", "SUBACK")
        if any(r.is_failure for r in rcs):
            raise ConnectionError(f"subscription to {reply_topic!r} refused: {rcs}")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        client.publish(topic, encode_payload(payload), qos=1, properties=props)
        return _json.loads(wait("reply", "reply"))
    finally:
        client.disconnect()
        client.loop_stop()
