"""A recording MQTT v5 client: :class:`Subscriber` keeps every message it gets (:class:`Received`)
and waits for conditions on them; it reconnects on its own, e.g. across broker restarts. A batch of
events (``.../events``, contract 1.5) is kept as one message per event, as on ``.../event/{type}``."""

from __future__ import annotations

import json as _json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hil.harness.mosquitto import LOCALHOST
from hil.harness.mqttclient import Payload, encode_payload, new_client
from hil.harness.tlsfiles import TlsFiles
from hub import eventbatch

__all__ = ["Received", "Subscriber"]


@dataclass(frozen=True)
class Received:
    """One message received by a :class:`Subscriber`."""

    topic: str
    payload: bytes
    retain: bool
    properties: Properties | None
    t: float  # time.monotonic() at receipt
    #: The batch topic (``.../events``) this event came in, unpacked; None: it came as it is.
    batch: str | None = None

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return _json.loads(self.payload)



class Subscriber:
    """A recording MQTT v5 test client (paho-mqtt 2.x, network loop in a thread).

    It connects in the background, subscribes to ``topics`` at QoS 1 after
    every (re)connect and reconnects automatically (0.1 s .. 1 s backoff), e.g.
    across broker restarts. With ``persistent=True`` it uses clean_start=False
    and SessionExpiryInterval=3600, so the broker keeps its subscriptions and
    queues QoS 1 messages while it (or the broker) is down.

    ``connect_timeout``: if not None (the default), the constructor blocks until
    the first CONNACK and SUBACK arrived, raising AssertionError otherwise. Use
    None for clients that are expected not to connect (or before the broker runs).
    ``topics=[]`` gives a publish-only client.

    ``on_message``: called with each :class:`Received` after it is recorded, on
    paho's network thread (it must not block on this client, and should not raise).

    ``unbatch`` (the default): a topic filter for a hub's events (``.../event/#`` or
    ``.../event/+``) brings its batches (``.../events``) along, and each event of a batch
    is recorded (and handed to ``on_message``) as if it had come alone on
    ``.../event/{type}``, its :attr:`Received.batch` set; :attr:`batches` counts the
    batches. A payload on ``.../events`` that is no batch is kept as it came.
    """

    def __init__(
        self,
        *,
        host: str = LOCALHOST,
        port: int,
        topics: list[str] | None = None,
        client_id: str | None = None,
        persistent: bool = False,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float | None = 10.0,
        on_message: Callable[[Received], None] | None = None,
        unbatch: bool = True,
    ) -> None:
        self.host = host
        self._hook = on_message
        self.port = port
        self.topics = ["#"] if topics is None else list(topics)
        self.unbatch = unbatch
        #: batches received (``.../events`` messages that were unpacked)
        self.batches = 0
        batch_filters = {eventbatch.batch_filter(t) for t in self.topics} - {None} if unbatch else set()
        self._filters = self.topics + sorted(f for f in batch_filters if f not in self.topics)  # type: ignore[misc]
        self.client_id = client_id or f"test-{uuid.uuid4().hex[:12]}"
        self.persistent = persistent
        self._lock = threading.RLock()  # re-entrant: wait_for predicates may read .json()
        self._cond = threading.Condition(self._lock)
        self._messages: list[Received] = []
        self._connack: list[ReasonCode] = []
        self._suback: list[list[ReasonCode]] = []
        self._puback: dict[int, ReasonCode] = {}
        self._disconnects = 0
        self._ready = False  # connected and subscribed
        self._closed = False

        client = new_client(self.client_id, tls, username, password)
        client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # floats work fine
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

        props: Properties | None = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        # connect_async + loop_start: the loop thread retries the first connect too.
        client.connect_async(host, port, keepalive=30, clean_start=not persistent, properties=props)
        client.loop_start()
        if connect_timeout is not None:
            try:
                self.wait_connected(connect_timeout)
            except BaseException:
                self.close()
                raise

    # -- paho callbacks (network thread) -------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._connack.append(reason_code)
            if reason_code.is_failure:
                self._cond.notify_all()
                return
            if not self.topics:
                self._ready = True
                self._cond.notify_all()
                return
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self._filters])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._suback.append(list(reason_codes))
            self._ready = True
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        t, payload, props = time.monotonic(), bytes(msg.payload), getattr(msg, "properties", None)
        received = [Received(topic=msg.topic, payload=payload, retain=bool(msg.retain), properties=props, t=t)]
        if self.unbatch and eventbatch.is_batch_topic(msg.topic):
            try:
                received = [Received(topic=topic, payload=body, retain=False, properties=props, t=t, batch=msg.topic)
                            for topic, body in eventbatch.explode(msg.topic, payload)]
            except ValueError:
                pass  # no batch: kept as it came
        with self._cond:
            if received and received[0].batch is not None:
                self.batches += 1
            self._messages.extend(received)
            self._cond.notify_all()
        if self._hook is not None:
            for r in received:
                self._hook(r)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._ready = False
            self._disconnects += 1
            self._cond.notify_all()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._puback[mid] = reason_code
            self._cond.notify_all()

    # -- state -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected and the subscriptions of this connection are acknowledged."""
        with self._lock:
            return self._ready

    @property
    def connack_reasons(self) -> list[ReasonCode]:
        """Reason codes of every CONNACK received so far (oldest first)."""
        with self._lock:
            return list(self._connack)

    @property
    def suback_reasons(self) -> list[list[ReasonCode]]:
        """Granted QoS / failure codes of every SUBACK received so far."""
        with self._lock:
            return [list(codes) for codes in self._suback]

    @property
    def disconnects(self) -> int:
        """How many times the connection was lost or refused."""
        with self._lock:
            return self._disconnects

    @property
    def messages(self) -> list[Received]:
        """A copy of all messages received so far."""
        with self._lock:
            return list(self._messages)

    def json(self, topic_filter: str | None = None) -> list[Any]:
        """JSON-decoded payloads of received messages whose topic matches the
        MQTT filter (``+``/``#`` wildcards); all messages if None.
        Raises ValueError if a matching payload is not JSON."""
        return [
            m.json()
            for m in self.messages
            if topic_filter is None or mqtt.topic_matches_sub(topic_filter, m.topic)
        ]

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._messages.clear()

    def summary(self, limit: int = 20) -> str:
        """Human-readable description of connection state and received messages."""
        with self._lock:
            msgs = list(self._messages)
            state = (
                f"client_id={self.client_id} {self.host}:{self.port} ready={self._ready} "
                f"connacks={[str(rc) for rc in self._connack]} disconnects={self._disconnects}"
            )
        lines = [state, f"{len(msgs)} message(s) received" + (":" if msgs else "")]
        if len(msgs) > limit:
            lines.append(f"  ... {len(msgs) - limit} earlier omitted")
        for m in msgs[-limit:]:
            body = m.payload[:200].decode(errors="replace")
            lines.append(f"  {m.topic}{' (retained)' if m.retain else ''}: {body}")
        return "\n".join(lines)

    # -- waiting -----------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 10.0,
    ) -> list[Received]:
        """Wait until ``predicate(messages)`` is true; return that message list.

        The predicate gets a copy of all messages received so far and is
        re-evaluated on every arrival. Raises AssertionError with a summary of
        what was received when ``timeout`` passes.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snapshot = list(self._messages)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        raise AssertionError(
            f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}\n"
            + self.summary()
        )

    def wait_for_topic(self, topic_filter: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages matching ``topic_filter`` arrived;
        return the matching ones."""

        def enough(msgs: list[Received]) -> bool:
            return sum(mqtt.topic_matches_sub(topic_filter, m.topic) for m in msgs) >= count

        enough.__name__ = f"{count} message(s) on {topic_filter!r}"
        msgs = self.wait_for(enough, timeout)
        return [m for m in msgs if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until connected and subscribed; AssertionError (with the last
        CONNACK reason, if any) after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._ready:
                return
        raise AssertionError(f"not connected within {timeout}s\n" + self.summary())

    # -- publishing --------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Payload = b"",
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float = 5.0,
    ) -> ReasonCode | None:
        """Publish and wait until it is acknowledged (PUBACK for QoS 1,
        PUBCOMP for QoS 2, written to the socket for QoS 0).

        ``payload`` may be bytes, str or a dict/list (sent as JSON). Returns the
        broker's reason code for QoS > 0 (None for QoS 0). Raises AssertionError
        if not connected or not acknowledged within ``timeout``.
        """
        self.wait_connected(timeout)
        info = self._client.publish(
            topic, encode_payload(payload), qos=qos, retain=retain, properties=properties
        )
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise AssertionError(f"publish to {topic!r} failed: {exc}\n{self.summary()}") from exc
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not acknowledged within {timeout}s")
        if qos == 0:
            return None
        with self._lock:
            return self._puback.pop(info.mid, None)

    # -- teardown ----------------------------------------------------------

    def close(self) -> None:
        """Disconnect (a persistent session stays on the broker) and stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Subscriber {self.client_id} {self.host}:{self.port} topics={self.topics}>"

