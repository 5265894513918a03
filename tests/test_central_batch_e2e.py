"""The reference central takes a hub's batches of events (contract 1.5, ``{prefix}/{hub}/events``) apart.

Against a real Mosquitto: each event of a batch is stored as one (de-duplicated by
id, its seq counted), a malformed element is logged and dropped without losing the
others, and a batch sent again (QoS 1 redelivery) adds nothing. The real hub's
batches reach the central in the end-to-end run of ``test_batch_e2e``.
"""

from __future__ import annotations

import json
from typing import Any

from hub import eventbatch
from hub.events import uuid7
from tests.support.central_db import rows, until
from tests.support.centrals import make_central  # noqa: F401  (the fixture)

BASE = "carehub/v1/test-hub"


def reading(seq: int) -> dict[str, Any]:
    return {"v": 1, "id": uuid7(), "hub": "test-hub", "seq": seq, "ts": "2026-01-01T00:00:00.000Z",
            "type": "sensor.reading", "priority": "low", "route": "care", "resident": "R-1",
            "source": {"device": "climate-1", "kind": "sensor", "room": "bedroom"}, "data": {"temperature": 21.5},
            "cause": None}


def test_each_event_of_a_batch_is_stored_as_one_and_a_bad_element_costs_only_itself(make_central, subscribe) -> None:
    central = make_central()
    pub = subscribe(topics=[])
    events = [reading(seq) for seq in (1, 2, 3)]
    batch = eventbatch.pack([json.dumps(e).encode() for e in events] + [b'{"id": "x", "type": "sensor.reading"}'])
    pub.publish(f"{BASE}/events", batch)
    until(lambda: rows(central.db, "SELECT COUNT(*) FROM events") == [(3,)], 10, "the batch's three events stored")
    assert sorted(r[0] for r in rows(central.db, "SELECT seq FROM events")) == [1, 2, 3]
    malformed = central.wait_log(lambda e: e.get("event") == "event_malformed")
    assert malformed["topic"] == f"{BASE}/events" and malformed["batched"] is True

    pub.publish(f"{BASE}/events", b"not a batch")
    again = [*events[1:], reading(4)]  # two sent again (QoS 1 redelivery, a replay) and a new one
    pub.publish(f"{BASE}/events", eventbatch.pack([json.dumps(e).encode() for e in again]))
    until(lambda: 4 in {r[0] for r in rows(central.db, "SELECT seq FROM events")}, 10, "the new event stored")
    assert rows(central.db, "SELECT COUNT(*) FROM events") == [(4,)], "the copies add nothing"
    assert len(central.events("event_malformed")) == 2, "the broken batch logged"
    assert rows(central.db, "SELECT COUNT(*) FROM gaps") == [(0,)]
    assert central.returncode is None
