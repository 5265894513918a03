"""One paho client and socket, driven from the asyncio loop: no network thread.

paho's socket is registered with the loop (``add_reader`` / ``add_writer``)
and ``loop_misc`` runs from a task, the way aiomqtt does it. Only the
blocking TCP connect and TLS handshake run in a worker thread, once per
connection attempt; the socket is handed to the loop after that. A
connection is discarded when it drops; :class:`~hub.link.link.MqttLink`
makes a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.link.errors import LinkDown, check_topic
from hub.link.settings import Endpoint, Incoming

if TYPE_CHECKING:
    from hub.link.link import MqttLink

log = structlog.get_logger("hub.link")

#: QoS 1 publishes paho may have in flight beyond the forwarder's window: alarms sent past a
#: full window, command replies, the birth and heartbeats never queue inside paho behind telemetry.
INFLIGHT_HEADROOM = 64

#: Told, on the loop, of the outcomes of tracked publishes (:meth:`_Connection.publish_tracked`) in one
#: call per loop turn: ``(token, outcome)`` pairs, the outcome the PUBACK's reason code or the
#: :class:`~hub.link.errors.LinkDown` that lost it.
AckSink = Callable[[list[tuple[Any, Any]]], None]


class _Connection:
    """One paho client and socket, registered with the loop. Discarded on disconnect."""

    def __init__(self, link: MqttLink, endpoint: Endpoint) -> None:
        self.link = link
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        s = link.settings
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=s.manual_ack,
        )
        self.client.suppress_exceptions = True
        self.client.connect_timeout = s.connect_timeout_s
        self.client.max_inflight_messages_set(s.max_inflight + INFLIGHT_HEADROOM)
        self.client.max_queued_messages_set(0)
        if s.will is not None:
            self.client.will_set(s.will.topic, s.will.payload, qos=s.will.qos, retain=s.will.retain)
        if s.username is not None:
            self.client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.tls.ca)
            if s.tls.cert:
                ctx.load_cert_chain(s.tls.cert, s.tls.key)
            self.client.tls_set_context(ctx)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.connack: asyncio.Future[ReasonCode] = self.loop.create_future()
        self.closed: asyncio.Future[str] = self.loop.create_future()
        self.pubacks: dict[int, asyncio.Future[ReasonCode]] = {}
        #: tracked QoS 1 publishes (the forwarder's): message id -> (sink, token); no future each
        self.tracked: dict[int, tuple[AckSink, Any]] = {}
        self._acks: list[tuple[AckSink, Any, Any]] = []  # outcomes not handed to their sinks yet
        #: SUBSCRIBE packet ids still waiting for their SUBACK, with their topics.
        self.subacks: dict[int, str] = {}
        self.sock: Any = None
        self._writing_now = False
        self.misc_task: asyncio.Task[None] | None = None

    # paho callbacks (all on the loop thread once connected)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if not self.connack.done():
            self.connack.set_result(rc)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._teardown(f"disconnected: {rc}")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        fut = self.pubacks.pop(mid, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(rc)
            return
        tracked = self.tracked.pop(mid, None)
        if tracked is not None:
            self._ack_later(tracked[0], tracked[1], rc)

    def _ack_later(self, sink: AckSink, token: Any, outcome: Any) -> None:
        """Queue an outcome for its sink: every outcome of this loop turn in one call, on the next turn (never
        inside paho's callback, which holds its non-reentrant lock: a sink publishes the next message)."""
        if not self._acks:
            self.loop.call_soon(self._hand_acks)
        self._acks.append((sink, token, outcome))

    def _hand_acks(self) -> None:
        acks, self._acks = self._acks, []
        sink = acks[0][0]
        if all(a[0] == sink for a in acks):  # one sink (the forwarder): no grouping
            groups = {sink: [(token, outcome) for _, token, outcome in acks]}
        else:
            groups = {}
            for s, token, outcome in acks:
                groups.setdefault(s, []).append((token, outcome))
        for s, batch in groups.items():
            try:
                s(batch)
            except Exception:
                log.exception("puback_sink_failed", outcomes=len(batch))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
        topic = self.subacks.pop(mid, None)
        if topic is not None:
            self.link._subacked(topic, [rc for rc in codes if rc.is_failure], done=not self.subacks)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        incoming = Incoming(
            topic=msg.topic,
            payload=bytes(msg.payload),
            properties=props,
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation_data=getattr(props, "CorrelationData", None) if props else None,
            mid=msg.mid,
            qos=msg.qos,
            retain=bool(msg.retain),
            origin=self,
        )
        # Not from inside paho's callback: it holds paho's non-reentrant callback lock, and a reply
        # published from there that meets a dead socket makes paho call on_disconnect under the same
        # lock on the same thread, which deadlocks the loop (seen with the broker stopping mid-flood).
        self.loop.call_soon(self.link._deliver, incoming)

    # socket plumbing
    def _readable(self) -> None:
        self.client.loop_read()
        sock = self.sock
        while sock is not None and isinstance(sock, ssl.SSLSocket) and self.client.socket() is sock and sock.pending():
            self.client.loop_read()
        if self.client.socket() is None:
            self._teardown("socket closed")

    def _writable(self) -> None:
        self.client.loop_write()

    def _register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._writing_now:
            return  # publish() writes at once; the loop only needs to watch what a full socket leaves over
        self.loop.add_writer(sock, self._writable)

    def _unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    def _socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.link.last_progress = time.monotonic()
            if self.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                self._teardown("keepalive or socket error")
                return

    def _teardown(self, reason: str) -> None:
        if self.sock is not None:
            try:
                self.loop.remove_reader(self.sock)
                self.loop.remove_writer(self.sock)
            except (ValueError, OSError):
                pass
        for fut in self.pubacks.values():
            if not fut.done():
                fut.set_exception(LinkDown(reason))
        self.pubacks.clear()
        if self.tracked:
            lost = LinkDown(reason)
            for sink, token in self.tracked.values():
                self._ack_later(sink, token, lost)
            self.tracked.clear()
        if not self.connack.done():
            self.connack.set_exception(LinkDown(reason))
            # taken here: open() awaits it only once the TCP connect worked, and a failed one never
            # does, so asyncio would print "Future exception was never retrieved" on stderr
            self.connack.exception()
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.misc_task is not None and self.misc_task is not asyncio.current_task():
            self.misc_task.cancel()

    async def open(self) -> ReasonCode:
        """TCP (+TLS) connect in a worker thread, then hand the socket to the loop and await CONNACK."""
        s = self.link.settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        clean = s.session_expiry_s == 0
        await self.loop.run_in_executor(
            None,
            lambda: self.client.connect(
                self.endpoint.host, self.endpoint.port, keepalive=s.keepalive_s, clean_start=clean, properties=props
            ),
        )
        self.sock = self.client.socket()
        if self.sock is None:
            raise LinkDown("no socket after connect")
        # paho leaves Nagle on: an alarm must not wait up to 40 ms for the ACK of the previous packet
        with contextlib.suppress(OSError, AttributeError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_socket_register_write = self._register_write
        self.client.on_socket_unregister_write = self._unregister_write
        self.client.on_socket_close = self._socket_close
        self.loop.add_reader(self.sock, self._readable)
        if self.client.want_write():
            self.loop.add_writer(self.sock, self._writable)
        self.misc_task = asyncio.create_task(self._misc())
        async with asyncio.timeout(s.connect_timeout_s):
            return await self.connack

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, properties: Properties | None
    ) -> asyncio.Future[ReasonCode] | None:
        mid = self._publish(topic, payload, qos, retain, properties)
        if qos == 0:
            return None
        fut: asyncio.Future[ReasonCode] = self.loop.create_future()
        if self.closed.done():  # paho's write met a dead socket and tore the connection down meanwhile
            fut.set_exception(LinkDown(f"connection closed: {self.closed.result()}"))
            fut.add_done_callback(lambda f: f.exception())
        else:
            self.pubacks[mid] = fut
        return fut

    def publish_tracked(self, topic: str, payload: bytes, sink: AckSink, token: Any) -> None:
        """A QoS 1 publish whose outcome goes to ``sink`` with ``token``, batched per loop turn, instead of a
        future: the forwarder's telemetry, thousands a second, costs no future and no callback each."""
        mid = self._publish(topic, payload, 1, False, None)
        if self.closed.done():  # paho's write met a dead socket and tore the connection down meanwhile
            self._ack_later(sink, token, LinkDown(f"connection closed: {self.closed.result()}"))
        else:
            self.tracked[mid] = (sink, token)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None) -> int:
        """Hand a message to paho and the socket now; its message id. Raises :class:`LinkDown`."""
        if self.closed.done():
            raise LinkDown(f"connection closed: {self.closed.result()}")
        check_topic(topic)  # before paho: its ValueError must not be taken for a dead socket
        self._writing_now = True
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise LinkDown(f"publish failed: {mqtt.error_string(info.rc)}")
            if self.client.want_write():
                self.client.loop_write()  # an alarm goes on the wire now, not on the next loop turn
                if self.client.want_write() and self.sock is not None:
                    self.loop.add_writer(self.sock, self._writable)  # the socket was full: finish later
        except LinkDown:
            raise
        except Exception as exc:  # a socket gone under paho (fd -1), a closed SSL object: the link is down
            self._teardown(f"publish failed: {type(exc).__name__}: {exc}")
            raise LinkDown(f"publish failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._writing_now = False
        return info.mid

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a QoS 1 message received on this connection (``manual_ack``); a no-op once closed."""
        if self.closed.done():
            return
        try:
            self.client.ack(mid, qos)  # queued; paho asks the loop to watch the socket for writing
        except Exception as exc:  # a socket gone under paho: the broker sends it again on the next session
            self._teardown(f"ack failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Drop the connection now (a failed attempt)."""
        try:
            self.client.disconnect()
        except Exception:  # already gone
            pass
        self._teardown("closed by hub")

    async def aclose(self, timeout: float = 2.0) -> None:
        """Send DISCONNECT and wait until it is written, so the broker does not fire the last will."""
        if self.closed.done():
            return
        try:
            self.client.disconnect()
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.closed)
        except (TimeoutError, Exception):
            pass
        self._teardown("closed by hub")
