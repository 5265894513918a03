"""Event batches (contract 1.5) as a consumer reads them: :mod:`hub.eventbatch`, and the central's book of them."""

from __future__ import annotations

import json

import pytest

from central.ledger import Ledger
from hub import eventbatch
from hub.contractdoc import examples

BASE = "carehub/v1/omsorgsbolig-12"


def bodies() -> list[bytes]:
    return [json.dumps(e, separators=(",", ":")).encode() for e in examples.batch()["events"]]


def test_a_batch_gives_back_each_event_exactly_as_it_was_packed() -> None:
    packed = eventbatch.pack(bodies())
    assert json.loads(packed) == examples.batch()
    items = eventbatch.unpack(packed)
    assert [i.body for i in items] == bodies()
    assert [i.event for i in items] == examples.batch()["events"]


def test_another_layout_of_the_same_batch_is_read_too() -> None:
    """Spaces, and a key a later minor version may add: the events are the same."""
    spaced = json.dumps({"events": examples.batch()["events"]}, indent=2).encode()
    more = json.dumps({"events": examples.batch()["events"], "later": 1}).encode()
    for payload in (spaced, more):
        assert [i.event for i in eventbatch.unpack(payload)] == examples.batch()["events"]
        assert [json.loads(i.body) for i in eventbatch.unpack(payload)] == examples.batch()["events"]
    assert eventbatch.unpack(b'{"events": []}') == []


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b'{"event": []}', b'{"events": {}}',
                                     b'{"events": [1, 2]}', b'{"events": [{"id": "a"}', b"\xff\xfe"])
def test_what_is_no_batch_raises_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        eventbatch.unpack(payload)


def test_explode_gives_each_event_its_own_topic_and_leaves_a_single_event_alone() -> None:
    parts = eventbatch.explode(f"{BASE}/events", eventbatch.pack(bodies()))
    assert parts == [(f"{BASE}/event/{e['type']}", b) for e, b in zip(examples.batch()["events"], bodies())]
    assert eventbatch.explode(f"{BASE}/event/door.open", b"{}") == [(f"{BASE}/event/door.open", b"{}")]
    assert eventbatch.batch_filter("carehub/v1/+/event/#") == "carehub/v1/+/events"
    assert eventbatch.batch_filter(f"{BASE}/event/+") == f"{BASE}/events"
    assert eventbatch.batch_filter(f"{BASE}/event/alarm.button") is None
    assert eventbatch.batch_filter("#") is None


def test_the_central_book_counts_a_batchs_events_and_flags_an_alarm_that_came_batched() -> None:
    ledger = Ledger(base=BASE, hub="omsorgsbolig-12", allowed={}, validator=None)
    for item in eventbatch.unpack(eventbatch.pack(bodies())):
        ledger.add(f"{BASE}/events", item.body, 0.0)
    assert ledger.problems() == []
    assert sum(ledger.by_type.values()) == len(examples.batch()["events"])
    alarm = examples.by_type()["alarm.button"]
    ledger.add(f"{BASE}/events", json.dumps(alarm).encode(), 0.0)
    assert any("came in a batch" in p and "critical" in p for p in ledger.problems()), ledger.problems()
