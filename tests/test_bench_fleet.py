"""The fleet bench (``python -m bench.fleet``) at a tiny size: it must lose nothing and see every alarm acked.

Not a speed test: the figures are the bench's business (``bench/fleet``), on a quiet machine.
Here: 20 simulated hubs in two processes for 8 s against a private Mosquitto and ``carehub central
--auto-ack``, one of them losing the network for 2 s; every seq of every hub is stored at the
central, every alarm is acked at the hub that pressed it and shown acknowledged at the central.
And the simulated hubs' events are events of the contract.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from bench.fleet.bench import measure
from bench.fleet.results import figures
from bench.fleet.simhub import SimHub
from bench.fleet.spec import Profile
from central.policy import load_validator

pytestmark = pytest.mark.slow

TINY = Profile(heartbeat_s=2.0, telemetry_s=1.0, alarm_s=4.0, outage_fraction=0.05, outage_s=2.0)


def test_a_tiny_fleet_loses_nothing_and_every_alarm_is_acked() -> None:
    fleet, solo = measure(20, processes=2, seconds=8, profile=TINY, baseline_s=2, quiet=True)
    central = fleet["central"]
    assert fleet["alarms"] >= 5, fleet
    assert fleet["alarms_not_acked"] == 0, fleet
    assert central["alarms_stored"] == central["alarms_acked"] == fleet["alarms"], central
    assert central["missing"] == 0 and central["lost"] == 0 and central["complete"], central
    assert fleet["events"] == central["expected"] > fleet["alarms"], fleet
    assert fleet["drained"] and fleet["loss"] == 0 and fleet["acks_odd"] == 0, fleet
    assert fleet["outage_hubs"] == 1 and fleet["reconnects"] >= 1, fleet
    assert fleet["heartbeats"] > 0 and fleet["e2e_ms"]["n"] > 0, fleet
    assert solo is not None and solo["alarms"] > 0 and solo["loss"] == 0, solo
    figs = figures(fleet, solo)
    loss = next(f for f in figs if f.name.startswith("fleet loss"))
    assert loss.ok is True and loss.value == 0
    assert all(f.ratio is not None for f in figs if f.baseline is not None)


def test_a_sim_hubs_events_are_events_of_the_contract() -> None:
    validate, why = load_validator()
    if validate is None:
        pytest.skip(why)
    hub = SimHub("fleet-00000", host="127.0.0.1", port=1, prefix="carehub/v1", profile=Profile())
    for n in range(10):
        hub.telemetry(n)
    alarm = hub.press("button-1")
    reply = hub._ack({"event_id": alarm, "by": "nurse-7"})
    assert reply == {"ok": True, "result": "acknowledged", "alarm_id": alarm, "closes": [alarm]}
    assert hub._ack({"event_id": alarm, "by": "nurse-7"})["result"] == "already_acknowledged"
    events = [json.loads(payload) for _, payload in hub.stored.values()]
    assert [e["seq"] for e in events] == list(range(1, 13))
    assert {e["type"] for e in events} == {"sensor.reading", "motion.activity", "alarm.button", "alarm.acknowledged"}
    for event in events:
        assert validate(event) == [], event
    acked = events[-1]
    assert acked["cause"] == alarm and acked["data"]["closes"] == [alarm]
    assert msgspec.json.decode(json.dumps(hub.birth()))["state"] == "online"
