"""The central on the broker: the hub's own MQTT link (:mod:`hub.link`, paho on the asyncio loop,
no network thread) set up the way a central needs it.

* events through the MQTT 5 shared subscriptions ``$share/central/{prefix}/+/event/+`` and
  ``$share/central/{prefix}/+/events`` (batches of telemetry, contract 1.5): the broker gives
  each message to one instance of the group, so several instances split the load;
* the call types (:data:`central.policy.CALL_TYPES`: the alarms and ``checkin.missed``)
  subscribed by every instance as well, not shared: a broker may deal a shared message to an
  instance that is away (Mosquitto 2.0 queues it in that instance's persistent session), and a
  call an operator must answer must not wait for it to return or for gap detection; each
  instance gets every call at once, the store de-duplicates by id and the auto-ack is claimed in
  the store, so it is still handled once. A missed check-in is a call too (rare: a few a day per
  residence, so the copies cost nothing); what closes a call (an ack, a ``checkin.done``) comes
  through the shared subscription only: a late close leaves a call shown a little longer, never hidden;
* the retained ``status`` and the ``heartbeat`` subscribed by every instance, not shared (the
  broker sends no retained messages on a shared subscription, and each instance supervises
  every hub itself);
* replies to this instance's commands on ``{prefix}/+/reply/{account}`` (the shipped broker ACL
  lets a hub answer under its own prefix only);
* a persistent session: a stable client id, clean start off and a session expiry, so a central
  that was away gets what it missed from the broker; messages are acknowledged (PUBACK) only
  once they are stored (:meth:`CentralLink.ack`), so one killed before that gets them again;
* no last will: a central's absence is nobody's alarm on this broker.

:meth:`CentralLink.request` sends a command with a response topic and correlation data and
waits for the hub's reply.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.policy import CALL_TYPES
from hub import eventbatch
from hub.link import Endpoint, Incoming, LinkSettings, MqttLink, TlsSettings

log = structlog.get_logger("central.mqtt")

#: The shared subscription's group: every instance of one central joins it.
SHARE_GROUP = "central"


@dataclass(frozen=True, kw_only=True)
class MqttOptions:
    """Where the broker is and who this instance is on it."""

    brokers: tuple[Endpoint, ...]
    prefix: str = "carehub/v1"
    #: Stable per instance: the broker keeps the session under it.
    client_id: str
    #: The topic segment replies come back under: the MQTT username, or the client id without one.
    account: str
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 86400
    #: The shared subscription's group: instances in one group split the events between them.
    share_group: str = SHARE_GROUP


def subscriptions(prefix: str, account: str, group: str = SHARE_GROUP) -> tuple[str, ...]:
    """The topics an instance subscribes to (see the module docstring)."""
    alarms = tuple(f"{prefix}/+/event/{t}" for t in sorted(CALL_TYPES))
    return (f"$share/{group}/{prefix}/+/event/+", f"$share/{group}/{prefix}/+/{eventbatch.BATCH_LEVEL}", *alarms,
            f"{prefix}/+/status", f"{prefix}/+/heartbeat", f"{prefix}/+/reply/{account}")


class CentralLink:
    """The central's MQTT connection: messages to ``on_message`` (on the loop), commands with replies."""

    def __init__(self, options: MqttOptions, on_message: Callable[[Incoming], None]) -> None:
        self.options = options
        self.on_message = on_message
        self.reply_suffix = f"/reply/{options.account}"
        self.link = MqttLink(
            LinkSettings(
                brokers=options.brokers,
                client_id=options.client_id,
                will=None,
                subscriptions=subscriptions(options.prefix, options.account, options.share_group),
                tls=options.tls,
                username=options.username,
                password=options.password,
                keepalive_s=options.keepalive_s,
                session_expiry_s=options.session_expiry_s,
                manual_ack=True,
                backoff_initial_s=0.2,
                backoff_max_s=5.0,
            ),
            on_message=self._deliver,
        )
        self._pending: dict[bytes, asyncio.Future[dict[str, Any]]] = {}

    async def run(self) -> None:
        """Connect and stay connected until cancelled (or :meth:`stop`)."""
        await self.link.run()

    async def stop(self) -> None:
        """Leave the broker cleanly; the session stays there for this client id."""
        await self.link.stop()

    @property
    def subscribed(self) -> asyncio.Event:
        """Set while connected with every subscription granted."""
        return self.link.subscribed

    def ack(self, incoming: Incoming) -> None:
        """Tell the broker a message is handled (stored, or judged malformed)."""
        self.link.ack(incoming)

    def _deliver(self, incoming: Incoming) -> None:
        if incoming.topic.endswith(self.reply_suffix):
            self.link.ack(incoming)
            fut = self._pending.get(incoming.correlation_data or b"")
            if fut is None or fut.done():
                return  # a reply for a request given up on, or another instance's on the same account
            try:
                body = json.loads(incoming.payload)
            except (ValueError, UnicodeDecodeError):
                body = None
            fut.set_result(body if isinstance(body, dict) else
                           {"ok": False, "error": "central: the reply is not a JSON object"})
            return
        self.on_message(incoming)

    async def request(self, hub: str, command: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send ``cmd/{command}`` to ``hub`` and wait for its reply (the JSON object).

        Raises :class:`TimeoutError` when no reply comes in time and
        :class:`hub.link.LinkError` when it cannot be sent (not connected).
        """
        prefix = self.options.prefix
        corr = secrets.token_bytes(16)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{prefix}/{hub}{self.reply_suffix}"
        props.CorrelationData = corr
        props.ContentType = "application/json"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[corr] = fut
        try:
            async with asyncio.timeout(timeout_s):
                await self.link.publish(f"{prefix}/{hub}/cmd/{command}", json.dumps(body).encode(), qos=1,
                                        properties=props)
                return await fut
        finally:
            self._pending.pop(corr, None)
