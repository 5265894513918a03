"""The central as a municipality runs it: instances sharing the work, the shipped broker, an operator's ack.

* two ``carehub central`` instances on one MQTT 5 shared subscription and one database
  (SQLite, and PostgreSQL where one answers) split the events, ack each alarm exactly once
  between them, and both show every ack;
* an instance logs in as the shipped broker config wants (TLS, a password, the ACL) and acks
  the alarms of a hub with a certificate and one with a password;
* the engine in-process, as the web console uses it (:class:`central.view.CentralView`): the
  snapshot, the route filter, an operator's ack that turns the hub's LED steady.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from central import config as central_config
from central.engine import Engine
from central.mqtt import MqttOptions
from central.policy import CALL_TYPES
from central.store import open_store
from central.view import Change
from hil.harness.centralproc import CentralProcess
from hub.events import uuid7
from hub.link import Endpoint
from tests.support.central_db import db_url, rows, until  # noqa: F401  (db_url: the fixture)
from tests.support.centrals import FAST, make_central, next_change  # noqa: F401  (the fixture)
from tests.test_broker_acl import CENTRAL, PASSWORDS, Site, _real_hub, site  # noqa: F401  (site: the fixture)


def acked(central: CentralProcess) -> set[str]:
    """The alarms the instance's feed showed acknowledged."""
    return {c["alarm"]["event_id"] for c in central.changes()
            if c["kind"] == "alarm" and c["alarm"]["state"] == "acknowledged"}


def test_two_instances_split_the_events_ack_each_alarm_once_and_both_see_every_ack(db_url: str, make_hub,
                                                                                   make_central) -> None:
    c1 = make_central("c1", db=db_url, auto_ack=True)
    c2 = make_central("c2", db=db_url, auto_ack=True)
    hub = make_hub()
    hub.start().wait_online()
    presses = 6
    for i in range(presses):
        hub.press(("button-1", "cord-1")[i % 2])
        until(lambda n=i + 1: rows(db_url, "SELECT COUNT(*) FROM acks WHERE replied IS NOT NULL")[0][0] == n,
              10, f"alarm {i + 1} acked")

    alarms = {r[0] for r in rows(db_url, "SELECT event_id FROM alarms")}
    assert len(alarms) == presses
    acks = rows(db_url, "SELECT event_id, auto, ok FROM acks")
    assert sorted(a[0] for a in acks) == sorted(alarms)  # exactly one ack per alarm, between the two
    assert all(a[1] and a[2] for a in acks)
    for central in (c1, c2):  # each shows every ack, whichever instance made it
        until(lambda c=central: acked(c) == alarms, 10, f"{central.instance} shows every ack")
    assert hub.state("cord-1")["feedback"] == "steady"

    # An alarm reaches every instance on its own subscription too, and whichever stores it first keeps
    # it: who stored the calls says nothing about the split. Every other event comes through the shared
    # subscription only, to one instance. Mosquitto deals them in turn, so hub.started and the six
    # acknowledgements (each after its alarm) can all fall to one instance; hub.stopping, after the last
    # acknowledgement, falls to the other.
    assert hub.stop() == 0
    until(lambda: rows(db_url, "SELECT instance FROM events WHERE type = 'hub.stopping'"), 10, "hub.stopping stored")
    stored_by = {r[1] for r in rows(db_url, "SELECT type, instance FROM events") if r[0] not in CALL_TYPES}
    assert stored_by == {"c1", "c2"}  # the shared subscription split the events


def test_events_the_broker_keeps_for_a_stopped_instance_reach_the_other_by_replay(tmp_path: Path, make_hub,
                                                                                    make_central) -> None:
    # Mosquitto deals a shared subscription's messages round robin to every member with a session, connected
    # or not: a stopped instance's share waits on the broker. Alarms reach the other at once all the same
    # (every instance subscribes to the alarm types itself); the rest it asks the hub for again: a gap
    # shows it, or, for the last events, the heartbeat's seq (nothing pending at the hub).
    db = str(tmp_path / "shared.db")
    quick = FAST.replace("replay_timeout_s = 5", "replay_timeout_s = 1")
    c1 = make_central("c1", db=db, config=quick)
    c2 = make_central("c2", db=db, config=quick)
    hub = make_hub(heartbeat_s=1)
    hub.start().wait_online()
    until(lambda: rows(db, "SELECT seq_max FROM hubs WHERE seq_max IS NOT NULL"), 10, "hub.started")
    assert c2.stop() == 0  # its session stays on the broker, and takes its turn
    for device in ("button-1", "cord-1", "button-1"):
        hub.press(device)
    with contextlib.closing(sqlite3.connect(hub.dir / "state" / "outbox.sqlite3")) as outbox:
        sent = {r[0] for r in outbox.execute("SELECT seq FROM events")}
    until(lambda: sent <= {r[0] for r in rows(db, "SELECT seq FROM events")}, 30, "every event in the store")
    opened = {c["alarm"]["device"] for c in c1.changes() if c["kind"] == "alarm"}
    assert opened == {"button-1", "cord-1"}
    # the alarms came at once, not by replay: none of their seqs was ever missing
    alarm_seqs = {r[0] for r in rows(db, "SELECT seq FROM events WHERE type = 'alarm.button'")}
    asked = {s for e in c1.events("replay_requested") for lo, hi in e["missing"] for s in range(lo, hi + 1)}
    assert len(alarm_seqs) == 3 and not alarm_seqs & asked, (alarm_seqs, asked)
    # three alarms, each stored once, in two episodes (button-1's second press joins its first)
    assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT episode) FROM alarms") == [(3, 2)]


def test_the_central_logs_in_as_the_shipped_broker_config_wants_and_acks_through_its_acl(site: Site,
                                                                                          tmp_path: Path) -> None:
    password = tmp_path / "central.pass"
    password.write_text(PASSWORDS[CENTRAL] + "\n")
    os.chmod(password, 0o600)
    central = CentralProcess(tmp_path / "central", port=site.password_port, instance="main", auto_ack=True,
                             config=FAST, args=["--tls-ca", str(site.pki.ca), "--username", CENTRAL,
                                                "--password-file", str(password)])
    hubs = {h: _real_hub(site, tmp_path / h, h) for h in ("hub-a", "hub-b")}
    try:
        central.start()
        for h in hubs.values():
            h.start().wait_online()
            h.press()
        until(lambda: len(acked(central)) == 2, 15, "both hubs' alarms acked")
        assert {c["alarm"]["hub"] for c in central.changes() if c["kind"] == "alarm"} == {"hub-a", "hub-b"}
        for h in hubs.values():
            assert h.state()["feedback"] == "steady"
        assert not central.events("mqtt_subscribe_refused")
    finally:
        for h in hubs.values():
            h.stop()
        if central.stop() != 0:
            print(central.tail(60))


async def _next(feed: Any, predicate: Callable[[Change], bool]) -> Change:
    return await next_change(feed, predicate, timeout=10.0)  # type: ignore[no-any-return]


async def test_an_operator_acks_through_the_view_and_the_led_turns_steady(broker, make_hub, tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "central.db"), instance="op")
    engine = Engine(store=store, config=central_config.parse(FAST), instance="op",
                    mqtt=MqttOptions(brokers=(Endpoint(host="127.0.0.1", port=broker.port),), client_id="central-op",
                                     account="central-op"))
    runner = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(engine.ready.wait(), 10)
        feed = engine.changes()
        hub = make_hub()
        await asyncio.to_thread(lambda: hub.start().wait_online())
        await asyncio.to_thread(hub.press, "button-1")
        button = await _next(feed, lambda c: c.kind == "alarm" and c.alarm is not None and c.alarm.state == "open")
        await asyncio.to_thread(hub.press, "cord-1")
        await _next(feed, lambda c: c.kind == "alarm" and c.alarm is not None and c.alarm.device == "cord-1")

        snap = await engine.snapshot()
        assert [(a.device, a.room, a.route, a.priority, a.hub) for a in snap.alarms] == [
            ("button-1", "bedroom", "any", "critical", "test-hub"), ("cord-1", "bathroom", "care", "critical",
                                                                     "test-hub")]
        assert [(h.hub, h.state) for h in snap.hubs] == [("test-hub", "online")]
        assert [a.device for a in (await engine.snapshot(route="nurse")).alarms] == ["button-1"]  # "any" too
        assert [a.device for a in (await engine.snapshot(route="care")).alarms] == ["button-1", "cord-1"]

        assert button.alarm is not None
        out = await engine.ack(button.alarm.event_id, "operator-7")
        assert (out.ok, out.result, out.closes) == (True, "acknowledged", (button.alarm.event_id,))
        closed = await _next(feed, lambda c: c.kind == "alarm" and c.alarm is not None
                             and c.alarm.state == "acknowledged")
        assert closed.alarm is not None and closed.alarm.acked_by == "operator-7"
        assert (await asyncio.to_thread(hub.state, "button-1"))["feedback"] == "steady"
        assert [a.device for a in (await engine.snapshot()).alarms] == ["cord-1"]

        again = await engine.ack(button.alarm.event_id, "operator-8")
        assert (again.ok, again.result) == (True, "already_acknowledged")
        unknown = await engine.ack(uuid7(), "operator-7")
        assert not unknown.ok and "unknown event" in (unknown.error or "")
        acks = await store.acks(button.alarm.event_id)
        assert [(a["who"], a["result"]) for a in acks] == [("operator-7", "acknowledged"),
                                                           ("operator-8", "already_acknowledged")]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()
