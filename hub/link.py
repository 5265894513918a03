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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivers.helpers import backoff_delays
from drivers.helpers import TaskSet

log = structlog.get_logger("hub.link")


class LinkError(Exception):
    """Base of the link's errors."""


class LinkDown(LinkError):
    """The message could not be handed to the broker: there is no connection, or it was lost."""


class PublishRefused(LinkError):
    """The broker answered a publish with a failure reason code."""

    def __init__(self, reason: ReasonCode | int):
        self.reason = reason
        super().__init__(f"broker refused publish: {reason}")


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

#: QoS 1 publishes paho may have in flight beyond the forwarder's window: alarms sent past a
#: full window, command replies, the birth and heartbeats never queue inside paho behind telemetry.
INFLIGHT_HEADROOM = 64


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


class ConnectRefused(LinkError):
    """The broker answered CONNECT with a failure (bad credentials, not authorised, ...)."""

    def __init__(self, reason: ReasonCode | int):
        self.reason = reason
        super().__init__(f"CONNACK refused: {reason}")


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
        )
        self.client.suppress_exceptions = True
        self.client.connect_timeout = s.connect_timeout_s
        self.client.max_inflight_messages_set(s.max_inflight + INFLIGHT_HEADROOM)
        self.client.max_queued_messages_set(0)
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
        self.connack: asyncio.Future[ReasonCode] = self.loop.create_future()
        self.closed: asyncio.Future[str] = self.loop.create_future()
        self.pubacks: dict[int, asyncio.Future[ReasonCode]] = {}
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
        if fut is not None and not fut.done():
            fut.set_result(rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        incoming = Incoming(
            topic=msg.topic,
            payload=bytes(msg.payload),
            properties=props,
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation_data=getattr(props, "CorrelationData", None) if props else None,
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
        props.SessionExpiryInterval = 0
        await self.loop.run_in_executor(
            None,
            lambda: self.client.connect(
                self.endpoint.host, self.endpoint.port, keepalive=s.keepalive_s, clean_start=True, properties=props
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
        if qos == 0:
            return None
        fut: asyncio.Future[ReasonCode] = self.loop.create_future()
        self.pubacks[info.mid] = fut
        return fut

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


class BadTopic(LinkError):
    """A topic the hub cannot publish to (empty, wildcards, NUL, too long); the connection is fine."""


def check_topic(topic: str) -> None:
    """Raise :class:`BadTopic` unless ``topic`` is a valid MQTT topic name to publish to."""
    if not topic or "+" in topic or "#" in topic or "\0" in topic or len(topic.encode()) > 65535:
        raise BadTopic(f"not a topic name to publish to: {topic[:80]!r}")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Done callback for a future nobody awaits: take its exception, so asyncio does not print it."""
    if not fut.cancelled():
        fut.exception()


class MqttLink:
    """The hub's one MQTT connection, kept up for the daemon's lifetime.

    Use as an async context manager around the daemon's work, or call
    :meth:`run` in a task and :meth:`stop` at the end.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        on_connected: OnConnected | None = None,
        on_message: OnMessage | None = None,
    ) -> None:
        self.settings = settings
        self.on_connected = on_connected
        self.on_message = on_message
        self.state = LinkState.CONNECTING
        self.broker: Endpoint | None = None
        self.online = asyncio.Event()
        self.connects = 0
        self.last_error: str | None = None
        #: tls, auth, network or protocol while connecting fails; None once connected
        self.error_kind: str | None = None
        #: connect attempts failed in a row
        self.failures = 0
        #: monotonic time of the link loop's last step (the supervisor's sign of progress)
        self.last_progress = 0.0
        self._conn: _Connection | None = None
        self._stopping = False
        self._tasks = TaskSet()
        self._runner: asyncio.Task[None] | None = None
        self._offline_waiters: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> MqttLink:
        self._runner = asyncio.create_task(self.run(), name="mqtt-link")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def status(self) -> dict[str, Any]:
        """The link's state for heartbeats and ``status``."""
        return {
            "state": self.state.value,
            "broker": f"{self.broker.host}:{self.broker.port}" if self.broker else None,
            "connects": self.connects,
            "last_error": self.last_error,
            "error_kind": self.error_kind,
            "failures": self.failures,
        }

    async def run(self) -> None:
        """Connect, stay connected, reconnect with backoff and failover, until :meth:`stop`.

        If this task dies (cancelled, or a bug), the connection it held is
        dropped with it, so a supervisor can simply call :meth:`run` again.
        """
        try:
            await self._run()
        finally:
            conn, self._conn = self._conn, None
            self.online.clear()
            if conn is not None:
                conn.close()
            if not self._stopping:
                self.state = LinkState.BACKOFF

    async def _run(self) -> None:
        s = self.settings
        delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
        index, failures_here = 0, 0
        while not self._stopping:
            self.last_progress = time.monotonic()
            endpoint = s.brokers[index]
            self.state = LinkState.CONNECTING
            conn: _Connection | None = None
            try:
                conn = _Connection(self, endpoint)  # a bad CA or key fails here: retried like any failure
                rc = await conn.open()
                if rc.is_failure:
                    raise ConnectRefused(rc)
            except Exception as exc:
                if conn is not None:
                    conn.close()
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.error_kind = classify_error(exc)
                self.failures += 1
                failures_here += 1
                log.warning("mqtt_connect_failed", broker=f"{endpoint.host}:{endpoint.port}", error=self.last_error,
                            kind=self.error_kind, failures=self.failures)
                if failures_here >= s.attempts_per_broker and len(s.brokers) > 1:
                    index, failures_here = (index + 1) % len(s.brokers), 0
                    log.info("mqtt_failover", next_broker=f"{s.brokers[index].host}:{s.brokers[index].port}")
                self.state = LinkState.BACKOFF
                await self._sleep(next(delays))
                continue
            failures_here = 0
            self.failures = 0
            self.error_kind = None
            delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
            self._conn, self.broker = conn, endpoint
            self.connects += 1
            self.state = LinkState.ONLINE
            log.info("mqtt_connected", broker=f"{endpoint.host}:{endpoint.port}", connects=self.connects)
            for topic in s.subscriptions:
                conn.client.subscribe(topic, qos=1)
            self.online.set()
            if self.on_connected is not None:
                self._tasks.spawn(self._call_on_connected())
            reason = await conn.closed
            self.online.clear()
            self._conn = None
            if self._stopping:
                break
            self.last_error = reason
            log.warning("mqtt_disconnected", broker=f"{endpoint.host}:{endpoint.port}", reason=reason)
            self.state = LinkState.BACKOFF
            await self._sleep(next(delays))
        self.state = LinkState.STOPPED

    async def _call_on_connected(self) -> None:
        try:
            assert self.on_connected is not None
            await self.on_connected()
        except LinkError as exc:
            log.warning("mqtt_on_connected_interrupted", error=str(exc))
        except Exception:
            log.exception("mqtt_on_connected_failed")

    async def _sleep(self, seconds: float) -> None:
        self.last_progress = time.monotonic() + seconds  # a backoff is progress too: it ends in an attempt
        fut = asyncio.get_running_loop().create_future()
        self._offline_waiters.append(fut)
        try:
            async with asyncio.timeout(seconds):
                await fut
        except TimeoutError:
            pass
        finally:
            self._offline_waiters.remove(fut)

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Properties | None = None
    ) -> asyncio.Future[ReasonCode] | None:
        """Hand a message to the socket now; returns the PUBACK future (None for QoS 0).

        Raises :class:`LinkDown` when offline. Await the result with :meth:`wait_puback`.
        """
        conn = self._conn
        if conn is None:
            raise LinkDown("not connected")
        return conn.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    @staticmethod
    async def wait_puback(fut: asyncio.Future[ReasonCode] | None, timeout: float | None = None) -> None:
        """Wait for a PUBACK future from :meth:`publish_nowait`; raises :class:`PublishRefused` on failure."""
        if fut is None:
            return
        async with asyncio.timeout(timeout):
            rc = await fut
        if isinstance(rc, ReasonCode) and rc.is_failure:
            raise PublishRefused(rc)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float | None = None,
    ) -> None:
        """Publish; for QoS 1 return once the broker's PUBACK says it has the message.

        Raises :class:`LinkDown` when offline or when the connection drops
        before the PUBACK, and :class:`PublishRefused` on a failure reason code.
        """
        fut = self.publish_nowait(topic, payload, qos=qos, retain=retain, properties=properties)
        await self.wait_puback(fut, timeout)

    async def reply(self, request: Incoming, body: dict[str, Any]) -> None:
        """Answer a command on its MQTT 5 response topic with its correlation data."""
        if not request.response_topic:
            return
        props = Properties(PacketTypes.PUBLISH)
        if request.correlation_data is not None:
            props.CorrelationData = request.correlation_data
        props.ContentType = "application/json"
        try:
            await self.publish(request.response_topic, json.dumps(body).encode(), qos=1, properties=props, timeout=10)
        except (LinkError, TimeoutError) as exc:
            log.warning("mqtt_reply_failed", topic=request.response_topic, error=str(exc))

    def _deliver(self, incoming: Incoming) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(incoming)
        except Exception as exc:  # a bad message must never take the link down
            log.exception("mqtt_message_handler_failed", topic=incoming.topic, error=str(exc))

    def reply_nowait(self, request: Incoming, body: dict[str, Any]) -> bool:
        """Answer a command without waiting for the PUBACK (refusals under a flood); True if sent."""
        if not request.response_topic:
            return False
        props = Properties(PacketTypes.PUBLISH)
        if request.correlation_data is not None:
            props.CorrelationData = request.correlation_data
        props.ContentType = "application/json"
        try:
            fut = self.publish_nowait(request.response_topic, json.dumps(body).encode(), qos=1, properties=props)
        except LinkError:
            return False
        if fut is not None:
            fut.add_done_callback(_retrieve)
        return True

    async def stop(self, *, final: tuple[str, bytes] | None = None, timeout: float = 5.0) -> None:
        """Stop: optionally publish ``final`` (topic, payload; retained) first, then disconnect cleanly.

        A clean disconnect does not trigger the last will, so ``final`` is how
        the daemon says it went offline on purpose.
        """
        self._stopping = True
        conn = self._conn
        if conn is not None and final is not None:
            try:
                await self.publish(final[0], final[1], qos=1, retain=True, timeout=timeout)
            except (LinkError, TimeoutError) as exc:
                log.warning("mqtt_final_publish_failed", error=str(exc))
        if conn is not None:
            await conn.aclose()
        for fut in self._offline_waiters:
            if not fut.done():
                fut.set_result(None)
        if self._runner is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._runner
            except TimeoutError:
                self._runner.cancel()
        for task in self._tasks:
            task.cancel()
        self.state = LinkState.STOPPED
