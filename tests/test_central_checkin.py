"""A missed check-in at the central: a care call an operator acks, on a real Mosquitto.

The central is the engine in-process (as ``carehub central --web`` runs it) with ``--auto-ack``
on; the hub is a small fake on the broker that publishes the check-in rule's events as the
contract shows them (contract/examples/events/checkin.*.json) and answers ``cmd/ack`` as the hub
does for a missed check-in (alarm_id: the first missed id, closes: every id of the call). What an
operator checks: the call is listed as a "missed check-in" for the care team, its re-alert joins
it, the rig's auto-ack leaves it alone, an ack from the web console closes it through the hub's
reply, and a late check-in closes the next one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console

from central import config as central_config
from central.console import render
from central.engine import Engine
from central.mqtt import MqttOptions
from central.store import open_store
from central.view import Change
from hub.events import rfc3339, uuid7
from hub.link import Endpoint, Incoming, LinkSettings, MqttLink
from tests.support.centrals import FAST, next_change
from tests.support.fakecentral import http, serving

PREFIX = "carehub/v1"
HUB = "fake-hub"


class FakeHub:
    """Publishes events for ``HUB`` and answers ``cmd/ack``: a missed check-in's call by its ids, an alarm by its id."""

    def __init__(self, port: int) -> None:
        self.seq = 0
        self.calls: list[list[str]] = []  # each missed check-in's ids: the first, then its re-alerts
        self.acks: list[dict[str, Any]] = []
        self.link = MqttLink(LinkSettings(brokers=(Endpoint(host="127.0.0.1", port=port),), client_id="fake-hub",
                                          will=None, subscriptions=(f"{PREFIX}/{HUB}/cmd/ack",),
                                          backoff_initial_s=0.2, backoff_max_s=1.0), on_message=self._on_cmd)
        self.acked: set[str] = set()

    async def emit(self, type_: str, *, priority: str, device: str, kind: str, data: dict[str, Any],
                   cause: str | None = None) -> dict[str, Any]:
        self.seq += 1
        event = {"v": 1, "id": uuid7(), "hub": HUB, "seq": self.seq, "ts": rfc3339(), "type": type_,
                 "priority": priority, "source": {"device": device, "kind": kind, "room": None},
                 "resident": "R-7f3a9c", "route": "care", "data": data, "cause": cause}
        await self.link.publish(f"{PREFIX}/{HUB}/event/{type_}", json.dumps(event).encode(), qos=1)
        return event

    async def missed(self, first: dict[str, Any] | None = None) -> dict[str, Any]:
        """A ``checkin.missed``: a new call, or a re-alert of ``first``'s."""
        call = next((c for c in self.calls if first is not None and c[0] == first["id"]), None)
        event = await self.emit("checkin.missed", priority="high", device="rule:check_in", kind="rule",
                                cause=None if first is None else first["id"],
                                data={"window": "08:00-10:30", "due_at": rfc3339(), "opened_at": rfc3339(),
                                      "last_checkin_at": None, "realert": 0 if call is None else len(call)})
        if call is None:
            self.calls.append([event["id"]])
        else:
            call.append(event["id"])
        return event

    def _on_cmd(self, m: Incoming) -> None:
        body = json.loads(m.payload)
        self.acks.append(body)
        call = next((c for c in self.calls if body["event_id"] in c), None)
        if call is not None:
            result = "already_acknowledged" if call[0] in self.acked else "acknowledged"
            reply = {"ok": True, "result": result, "alarm_id": call[0], "closes": list(call)}
            self.acked.add(call[0])
        else:  # an alarm.button: acknowledged (the rig's auto-ack)
            reply = {"ok": True, "result": "acknowledged", "alarm_id": body["event_id"], "closes": [body["event_id"]]}
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = m.correlation_data
        asyncio.get_running_loop().create_task(
            self.link.publish(m.response_topic or "", json.dumps(reply).encode(), qos=1, properties=props))


async def _next(feed: Any, predicate: Callable[[Change], bool]) -> Change:
    return await next_change(feed, predicate, timeout=15.0)  # type: ignore[no-any-return]


def _call(event_id: str, state: str) -> Callable[[Change], bool]:
    return lambda c: c.kind == "alarm" and c.alarm is not None and c.alarm.event_id == event_id \
        and c.alarm.state == state


async def test_a_missed_check_in_is_a_care_call_acked_by_an_operator_not_by_auto_ack(broker, tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "central.db"), instance="op")
    engine = Engine(store=store, config=central_config.parse(FAST), instance="op", auto_ack=True,
                    mqtt=MqttOptions(brokers=(Endpoint(host="127.0.0.1", port=broker.port),), client_id="central-op",
                                     account="central-op"))
    hub = FakeHub(broker.port)
    tasks = [asyncio.create_task(engine.run()), asyncio.create_task(hub.link.run())]
    try:
        await asyncio.wait_for(engine.ready.wait(), 10)
        await asyncio.wait_for(hub.link.subscribed.wait(), 10)
        feed = engine.changes()

        first = await hub.missed()
        await _next(feed, _call(first["id"], "open"))
        # an alarm at the same time: the rig's auto-ack takes it, and leaves the missed check-in alone
        button = await hub.emit("alarm.button", priority="critical", device="button-1", kind="alarm_button", data={})
        await _next(feed, _call(button["id"], "acknowledged"))
        realert = await hub.missed(first)
        joined = await _next(feed, lambda c: c.kind == "alarm" and c.alarm is not None
                             and c.alarm.event_id == first["id"] and c.alarm.reminders == 1)
        assert joined.alarm is not None and joined.alarm.state == "open"

        snap = await engine.snapshot()
        assert [(a.event_id, a.type, a.label, a.priority, a.route, a.reminders) for a in snap.alarms] == [
            (first["id"], "checkin.missed", "missed check-in", "high", "care", 1)]
        assert [a.event_id for a in (await engine.snapshot(route="care")).alarms] == [first["id"]]
        assert (await engine.snapshot(route="nurse")).alarms == ()
        assert [b["event_id"] for b in hub.acks] == [button["id"]]  # auto-ack sent nothing for the check-in
        assert await store.acks(first["id"]) == []
        screen = Console(record=True, width=200)
        screen.print(render(snap))
        assert "missed check-in (1 reminders)" in screen.export_text()

        # the operator acks the re-alert from the web console: the hub's reply closes the whole call
        async with serving(engine) as base:
            status, _ = await http("GET", f"{base}/api/snapshot?route=care")
            assert status == 200
            status, out = await http("POST", f"{base}/api/alarms/{realert['id']}/ack", json={"by": "operator-7"})
            assert status == 200, out
            assert (out["ok"], out["result"], sorted(out["closes"])) == (
                True, "acknowledged", sorted([first["id"], realert["id"]]))
            closed = await _next(feed, _call(first["id"], "acknowledged"))
            assert closed.alarm is not None and closed.alarm.acked_by == "operator-7"
            status, snap_doc = await http("GET", f"{base}/api/snapshot")
            assert snap_doc["alarms"] == []
        assert hub.acks[-1] == {"event_id": realert["id"], "by": "operator-7"}

        # the next day's missed check-in: the resident checks in late, which closes it
        second = await hub.missed()
        await _next(feed, _call(second["id"], "open"))
        await hub.emit("checkin.done", priority="low", device="checkin-kitchen", kind="checkin_button",
                       data={"gesture": "press", "input": "gpio", "missed": second["id"], "window": None})
        await _next(feed, _call(second["id"], "checked_in"))
        assert (await engine.snapshot()).alarms == ()
        assert [b["event_id"] for b in hub.acks] == [button["id"], realert["id"]]  # never auto-acked
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hub.link.stop()
        await store.close()
