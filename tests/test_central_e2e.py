"""The reference central (``carehub central``) against a real Mosquitto and real hub processes.

What an operator of a responssenter would check: an event the hub sends twice is one event;
a seq range the hub skipped is asked for and filled, and what the hub no longer has is
recorded as lost, loudly; a central killed in a burst misses nothing when it comes back; a
hub that dies or hangs is seen offline or silent; garbage on the broker is logged and
survived; a wrong config or an unreachable database stops it before it starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hil.harness.centralproc import CentralProcess
from hil.harness.hubproc import REPO, HubProcess
from hub.events import uuid7
from tests.support.central_db import rows, until
from tests.support.centrals import FAST, make_central  # noqa: F401  (the fixture)

BASE = "carehub/v1/test-hub"


def outbox(hub: HubProcess) -> contextlib.closing[sqlite3.Connection]:
    """The hub's own store, to make it forget or resend (the hub is stopped)."""
    return contextlib.closing(sqlite3.connect(hub.dir / "state" / "outbox.sqlite3", timeout=10))


def hub_change(state: str, after: int = 0) -> Any:
    return lambda c: c["kind"] == "hub" and c["hub"]["state"] == state


def nth_after(central: CentralProcess, start: int, predicate: Any, timeout: float = 15.0) -> tuple[int, dict]:
    """The first change after index ``start`` matching ``predicate``, and its index."""
    def found() -> tuple[int, dict] | None:
        return next(((i, c) for i, c in enumerate(central.changes()) if i >= start and predicate(c)), None)
    return until(found, timeout, "change")  # type: ignore[return-value]


def acked(central: CentralProcess) -> set[str]:
    """The alarms the central's feed showed acknowledged."""
    return {c["alarm"]["event_id"] for c in central.changes()
            if c["kind"] == "alarm" and c["alarm"]["state"] == "acknowledged"}


def test_events_a_killed_hub_sends_again_are_counted_once(make_hub, make_central) -> None:
    central = make_central(auto_ack=True)
    hub = make_hub()
    hub.start().wait_online()
    hub.press("button-1")
    hub.press("cord-1")
    until(lambda: len(acked(central)) == 2, 10, "two alarms acked")
    hub.kill()
    with outbox(hub) as db:  # as if the kill came before the hub noted the broker's PUBACKs: all pending again
        resent = db.execute("UPDATE events SET delivered = NULL").rowcount
        sent_ids = {r[0] for r in db.execute("SELECT id FROM events")}
        db.commit()
    hub.start().wait_online()
    until(lambda: rows(central.db, "SELECT duplicates FROM hubs")[0][0] >= resent, 15, "the resent events")

    stored = [r[0] for r in rows(central.db, "SELECT id FROM events")]
    assert sent_ids <= set(stored) and len(stored) == len(set(stored))
    alarms = rows(central.db, "SELECT state FROM alarms")
    assert alarms == [("acknowledged",), ("acknowledged",)]  # the resent alarms opened nothing
    assert rows(central.db, "SELECT COUNT(*), SUM(ok) FROM acks") == [(2, 2)]  # and were not acked again
    assert hub.state("button-1")["feedback"] == "off"  # nor reopened at the hub: nothing waits for an ack


def test_a_seq_range_the_hub_skipped_is_replayed_and_what_it_no_longer_has_is_lost(broker, make_hub,
                                                                                    make_central) -> None:
    central = make_central()
    # heartbeats often: Mosquitto 2.0 restores no shared subscription from its persistence file, so an event
    # the restarted hub sends before the central is back is dropped at the broker; the heartbeat's seq shows it
    hub = make_hub(heartbeat_s=1)
    hub.start().wait_online()
    until(lambda: rows(central.db, "SELECT seq_max FROM hubs WHERE seq_max IS NOT NULL"), 10, "hub.started")
    broker.stop()
    for device in ("button-1", "cord-1", "button-1", "cord-1"):
        hub.press(device)
    hub.stop()
    with outbox(hub) as db:  # the hub thinks it sent them, and has lost the first two of them
        pending = [r[0] for r in db.execute("SELECT seq FROM events WHERE delivered IS NULL ORDER BY seq")]
        db.execute("UPDATE events SET delivered = ? WHERE delivered IS NULL", (time.time(),))
        gone = pending[:2]
        db.execute("DELETE FROM events WHERE seq IN (?, ?)", gone)
        db.commit()
    assert len(pending) >= 5  # four presses and hub.stopping
    broker.start()
    hub.start().wait_online()

    lost = central.wait_change(lambda c: c["kind"] == "lost", timeout=20)
    assert lost["detail"]["seqs"] == [[gone[0], gone[1]]] and lost["detail"]["count"] == 2
    assert lost["hub"]["lost"] == 2
    [line] = central.events("events_lost")
    assert line["level"] == "error" and line["hub"] == "test-hub"
    until(lambda: rows(central.db, "SELECT state FROM gaps WHERE lo = ?", (gone[0],)) == [("lost",)], 15,
          "the gap closed")
    seqs = {r[0] for r in rows(central.db, "SELECT seq FROM events")}
    assert set(pending[2:]) <= seqs and not set(gone) & seqs
    assert central.events("replay_requested")


def test_a_central_killed_in_a_burst_gets_every_event_from_its_session(make_hub, make_central) -> None:
    # no replay within the test: what comes back must come from the broker's session for this instance
    central = make_central(config=FAST.replace("reorder_timeout_s = 0.5", "reorder_timeout_s = 600"))
    hub = make_hub()
    hub.start().wait_online()
    presses = threading.Thread(target=lambda: [(hub.press(("button-1", "cord-1")[i % 2]), time.sleep(0.03))
                                               for i in range(30)])
    presses.start()
    until(lambda: rows(central.db, "SELECT COUNT(*) FROM events")[0][0] >= 8, 10, "the burst under way")
    central.kill()
    presses.join(30)
    central.start()
    with outbox(hub) as db:
        sent = {r[0] for r in db.execute("SELECT seq FROM events")}
    assert len(sent) > 30
    until(lambda: sent <= {r[0] for r in rows(central.db, "SELECT seq FROM events")}, 20, "every event")
    assert rows(central.db, "SELECT COUNT(*) FROM gaps WHERE state <> 'filled'") == [(0,)]
    assert not central.events("replay_requested")


def test_a_hung_hub_goes_late_then_silent_and_a_dead_one_offline_by_its_last_will(make_hub, make_central) -> None:
    central = make_central(config=FAST + '[supervision]\ndefault = "test"\n[supervision.levels]\ntest = 3\n')
    hub = make_hub(heartbeat_s=1, keepalive_s=30)  # no last will for 45 s: only the heartbeats can tell
    hub.start().wait_online()
    until(lambda: len({c["hub"]["last_heartbeat"] for c in central.changes() if c["kind"] == "hub"}) >= 3, 10,
          "heartbeats")
    start = len(central.changes())
    assert hub.proc is not None
    os.kill(hub.proc.pid, signal.SIGSTOP)
    try:
        i, late = nth_after(central, start, hub_change("late"))
        _, silent = nth_after(central, i, hub_change("silent"))
        assert "no heartbeat" in silent["hub"]["reason"] and "level test: 3 s" in silent["hub"]["reason"]
        assert silent["hub"]["level_s"] == 3
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    i, _ = nth_after(central, start, hub_change("online"))
    hub.kill()
    _, offline = nth_after(central, i, hub_change("offline"))
    assert offline["hub"]["reason"] == "last will: connection lost"


def test_malformed_messages_are_logged_and_the_central_carries_on(make_hub, make_central, subscribe) -> None:
    central = make_central()
    pub = subscribe(topics=[])
    valid = {"v": 1, "id": uuid7(), "hub": "test-hub", "seq": 7, "ts": "2026-01-01T00:00:00.000Z",
             "type": "alarm.button", "priority": "critical", "route": "any", "resident": "R-1",
             "source": {"device": "button-1", "kind": "alarm_button", "room": None}, "data": {}, "cause": None}
    for payload in (b"not json", [1, 2], {"id": "x", "type": "alarm.button"}, {**valid, "hub": "other-hub"},
                    {**valid, "seq": -1}):
        pub.publish(f"{BASE}/event/alarm.button", payload)
    pub.publish(f"{BASE}/event/device.online", valid)  # the type is not the topic's
    pub.publish(f"{BASE}/status", b"\xff\xfe")
    pub.publish(f"{BASE}/heartbeat", b"[]", qos=0)
    # each alarm.button one comes twice (the shared subscription and every instance's own alarm subscription)
    until(lambda: len({e["reason"] for e in central.events("event_malformed")}) == 6, 10,
          "six malformed events logged")
    until(lambda: len(central.events("message_malformed")) == 2, 10, "a malformed status and heartbeat logged")
    assert rows(central.db, "SELECT COUNT(*) FROM events") == [(0,)]

    hub = make_hub()
    hub.start().wait_online()
    hub.press()
    central.wait_change(lambda c: c["kind"] == "alarm" and c["alarm"]["state"] == "open")
    assert central.returncode is None


def test_a_wrong_config_or_an_unreachable_database_stops_it_before_it_starts(tmp_path: Path, broker) -> None:
    bad = tmp_path / "central.toml"
    bad.write_text('[central]\nreorder_timeout_s = "soon"\n\n[hubs.hub-1]\nlevel = "often"\n')
    db = tmp_path / "central.db"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", "central", "--broker", f"127.0.0.1:{broker.port}",
                               "--instance", "t", *args], capture_output=True, text=True, timeout=60, cwd=REPO)

    r = run("--config", str(bad), "--db", str(db))
    assert r.returncode == 2, r.stderr
    assert f"{bad}:2:1: central.reorder_timeout_s: expected a number, found a string 'soon'" in r.stderr
    assert f"{bad}:5:1: hubs.hub-1.level: expected one of the levels (high, low, medium), found 'often'" in r.stderr
    assert not db.exists()
    r = run("--db", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert r.returncode == 3, r.stderr
    assert "store_failed" in r.stderr and "127.0.0.1" in r.stderr
