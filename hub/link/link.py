"""The MQTT link's retry and failover loop, and the publish and reply calls the hub makes.

:class:`MqttLink` owns the connection for the daemon's lifetime: it connects
to the brokers in failover order with jittered exponential backoff, calls
``on_connected`` after every CONNACK, subscribes to the command topics, and
hands each message on to ``on_message`` on the loop. A failure to connect of
any kind is logged, kept in :attr:`MqttLink.last_error` with its kind and
tried again: the link task never dies of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivers.helpers import TaskSet, backoff_delays
from hub.link.connection import AckSink, _Connection
from hub.link.errors import ConnectRefused, LinkDown, LinkError, PublishRefused, classify_error
from hub.link.settings import Endpoint, Incoming, LinkSettings, LinkState, OnConnected, OnMessage

log = structlog.get_logger("hub.link")


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
        #: Set once the broker granted every subscription of the current connection (SUBACK).
        self.subscribed = asyncio.Event()
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
        self._generation = 0  # counts :meth:`reconfigure` calls

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
            self.subscribed.clear()
            if conn is not None:
                conn.close()
            if not self._stopping:
                self.state = LinkState.BACKOFF

    async def _run(self) -> None:
        s = self.settings
        generation = self._generation
        delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
        index, failures_here = 0, 0
        while not self._stopping:
            if generation != self._generation:  # new settings: start over with them, at the first broker
                s, generation = self.settings, self._generation
                delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
                index, failures_here = 0, 0
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
                if generation == self._generation:
                    await self._sleep(next(delays))
                continue
            if generation != self._generation:  # reconfigured while this attempt ran: not with the old settings
                await conn.aclose()
                continue
            failures_here = 0
            self.failures = 0
            self.error_kind = None
            delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
            self._conn, self.broker = conn, endpoint
            self.connects += 1
            self.state = LinkState.ONLINE
            log.info("mqtt_connected", broker=f"{endpoint.host}:{endpoint.port}", connects=self.connects)
            self.subscribed.clear()
            for topic in s.subscriptions:
                _, mid = conn.client.subscribe(topic, qos=1)
                if mid is not None:
                    conn.subacks[mid] = topic
            if not conn.subacks:
                self.subscribed.set()
            self.online.set()
            if self.on_connected is not None:
                self._tasks.spawn(self._call_on_connected())
            reason = await conn.closed
            self.online.clear()
            self.subscribed.clear()
            self._conn = None
            if self._stopping:
                break
            self.last_error = reason
            log.warning("mqtt_disconnected", broker=f"{endpoint.host}:{endpoint.port}", reason=reason)
            self.state = LinkState.BACKOFF
            if generation == self._generation:  # reconfigured: connect again at once, with the new settings
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

    async def reconfigure(self, settings: LinkSettings) -> None:
        """Use ``settings`` from now on (a config reload): leave the broker cleanly and connect again.

        The DISCONNECT is sent and written first, so the broker fires no last
        will; QoS 1 publishes still waiting for their PUBACK fail with
        :class:`LinkDown` and are sent again by their owners once connected
        (the outbox keeps every event until its PUBACK). The birth goes out
        again through ``on_connected``. A backoff in progress is cut short.
        """
        self.settings = settings
        self._generation += 1
        log.info("mqtt_reconfigured", brokers=[f"{b.host}:{b.port}" for b in settings.brokers],
                 client_id=settings.client_id)
        conn = self._conn
        if conn is not None:
            await conn.aclose()
        for fut in self._offline_waiters:
            if not fut.done():
                fut.set_result(None)

    def subscribe_now(self, topic: str) -> None:
        """Subscribe on the current connection (QoS 1) until :meth:`unsubscribe_now`: a retained message
        fetched once. Not renewed on a reconnect. Raises :class:`LinkDown` when offline."""
        conn = self._conn
        if conn is None:
            raise LinkDown("not connected")
        conn.client.subscribe(topic, qos=1)

    def unsubscribe_now(self, topic: str) -> None:
        """Undo :meth:`subscribe_now` (nothing when offline: a new connection has no such subscription)."""
        conn = self._conn
        if conn is not None:
            conn.client.unsubscribe(topic)

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

    def publish_tracked(self, topic: str, payload: bytes, sink: AckSink, token: Any) -> None:
        """A QoS 1 publish handed to the socket now, its outcome told to ``sink`` as ``(token, outcome)``
        together with the others of the same loop turn (the PUBACK's reason code, or :class:`LinkDown`
        when the connection drops first). No future per message: the forwarder's way.

        Raises :class:`LinkDown` when offline.
        """
        conn = self._conn
        if conn is None:
            raise LinkDown("not connected")
        conn.publish_tracked(topic, payload, sink, token)

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

    def _subacked(self, topic: str, refused: list[ReasonCode], *, done: bool) -> None:
        """A SUBACK came (on the loop, from the connection): a refusal is logged; the last one sets :attr:`subscribed`."""
        if refused:
            log.error("mqtt_subscribe_refused", topic=topic, reason=str(refused[0]))
        if done:
            self.subscribed.set()

    def ack(self, incoming: Incoming) -> None:
        """With ``manual_ack``: tell the broker ``incoming`` (QoS 1) is handled, so it is not sent again.

        A message that came on an earlier connection is not acknowledged: the
        broker sends it again on the resumed session, and its handler must
        take it as the duplicate it is.
        """
        conn = self._conn
        if incoming.qos == 0 or conn is None or incoming.origin is not conn:
            return
        conn.ack(incoming.mid, incoming.qos)

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
