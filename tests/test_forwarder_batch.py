"""The forwarder's batches of telemetry (contract 1.5), in process: what waits together goes as one message.

The outbox is the stand-in of ``test_forwarder``; the link here records each
message (its topic and the seqs in it) and lets the test answer each with a
PUBACK, a refusal or a lost connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from hub import eventbatch
from hub.events import Event, Priority
from hub.forwarder import Forwarder
from hub.link import LinkDown
from tests.support.until import until
from tests.test_forwarder import Store, ev, settle

BATCH = "t/events"


class Link:
    """Records each message as (topic, seqs); :meth:`answer` gives the outcome of messages by their first seq."""

    def __init__(self) -> None:
        self.online = asyncio.Event()
        self.online.set()
        self.messages: list[tuple[str, list[int]]] = []
        self.payloads: list[bytes] = []
        self.pubacks: dict[int, tuple[Any, Any]] = {}  # first seq -> (sink, token)

    def publish_tracked(self, topic: str, payload: bytes, sink: Any, token: Any) -> None:
        if not self.online.is_set():
            raise LinkDown("offline")
        if topic == BATCH:
            seqs = [item.event["seq"] for item in eventbatch.unpack(payload)]
        else:
            seqs = [Event.from_json(payload).seq]
        self.messages.append((topic, seqs))
        self.payloads.append(payload)
        self.pubacks[seqs[0]] = (sink, token)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1) -> asyncio.Future[object]:
        raise AssertionError("only held alarms (seq 0) take publish_nowait")

    def answer(self, firsts: Iterable[int] | None, outcome: Any) -> None:
        loop = asyncio.get_running_loop()
        for first in list(self.pubacks if firsts is None else firsts):
            sink, token = self.pubacks.pop(first)
            loop.call_soon(sink, [(token, outcome)])

    def ack(self, firsts: Iterable[int] | None = None) -> None:
        self.answer(firsts, 0)

    def drop(self) -> None:
        self.online.clear()
        self.answer(None, LinkDown("gone"))

    def sent(self) -> list[int]:
        return [s for _, seqs in self.messages for s in seqs]

    def batches(self) -> list[list[int]]:
        return [seqs for topic, seqs in self.messages if topic == BATCH]


async def started(store: Store, link: Link, **kw: Any) -> tuple[Forwarder, asyncio.Task[None]]:
    kw.setdefault("batch_max", 100)
    fwd = Forwarder(store, link, topic=lambda t: f"t/event/{t}", batch_topic=BATCH, **kw)  # type: ignore[arg-type]
    task = asyncio.create_task(fwd.run())
    await settle()
    return fwd, task


async def drain(link: Link, fwd: Forwarder, turns: int = 100) -> None:
    for _ in range(turns):
        link.ack()
        await settle()
        if fwd.idle() and not link.pubacks:
            return


async def test_an_idle_hub_sends_each_event_alone_on_its_type_topic() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=2)
    for seq in (1, 2, 3):
        fwd.submit(store.commit(ev(seq)))
        link.ack()
        await settle()
    assert link.messages == [(f"t/event/{ev(1).type}", [1]), (f"t/event/{ev(1).type}", [2]),
                             (f"t/event/{ev(1).type}", [3])]
    assert store.delivered == {1, 2, 3}
    task.cancel()


async def test_a_burst_goes_out_in_batches_once_the_window_is_full_each_event_once_and_in_order() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=2)
    for seq in range(1, 201):
        fwd.submit(store.commit(ev(seq)))
    assert link.messages[:2] == [(f"t/event/{ev(1).type}", [1]), (f"t/event/{ev(1).type}", [2])], \
        "the first ones go alone at once: no waiting for company"
    assert fwd.status()["inflight"] == 2
    await drain(link, fwd)
    assert link.sent() == list(range(1, 201)), "each event exactly once, in seq order"
    assert link.batches() == [list(range(3, 103)), list(range(103, 201))], "what waited went in batches of 100"
    assert store.delivered == set(range(1, 201))
    assert fwd.status()["delivered"] == 200 and fwd.status()["batches"] == len(link.batches())
    task.cancel()


async def test_a_batch_carries_the_events_as_stored_in_the_contracts_shape() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1)
    events = [store.commit(ev(seq)) for seq in (1, 2, 3)]
    for e in events:
        fwd.submit(e)
    link.ack()
    await settle()
    assert link.payloads[1] == b'{"events":[' + events[1].to_json() + b"," + events[2].to_json() + b"]}"
    task.cancel()


async def test_alarms_and_high_events_are_never_batched_and_go_first() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1)
    fwd.submit(store.commit(ev(1)))  # in flight
    for seq in range(2, 10):
        fwd.submit(store.commit(ev(seq)))
    fwd.submit(store.commit(ev(10, Priority.HIGH)))
    fwd.submit(store.commit(ev(11, Priority.HIGH)))
    fwd.submit(store.commit(ev(12, Priority.CRITICAL)))  # past max_inflight, at once
    assert link.messages[1] == (f"t/event/{ev(12, Priority.CRITICAL).type}", [12])
    await drain(link, fwd)
    assert [seqs for _, seqs in link.messages] == [[1], [12], [10], [11], list(range(2, 10))]
    task.cancel()


async def test_an_alarm_type_below_high_priority_is_not_batched_either() -> None:
    """The alarm lane is every alarm.* type (alarm.acknowledged is normal): never in a batch."""
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1)
    fwd.submit(store.commit(ev(1)))
    acknowledged = msgspec.structs.replace(ev(4), type="alarm.acknowledged")
    assert acknowledged.priority is Priority.NORMAL
    for e in (ev(2), ev(3), acknowledged, ev(5), ev(6)):
        fwd.submit(store.commit(e))
    await drain(link, fwd)
    assert [seqs for _, seqs in link.messages] == [[1], [2, 3], [4], [5, 6]]
    task.cancel()


async def test_batch_max_bounds_the_events_of_a_batch() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1, batch_max=7)
    for seq in range(1, 31):
        fwd.submit(store.commit(ev(seq)))
    await drain(link, fwd)
    assert link.sent() == list(range(1, 31))
    assert [seqs for _, seqs in link.messages] == [[1], *[list(range(s, s + 7)) for s in (2, 9, 16, 23)], [30]]
    task.cancel()


async def test_batch_bytes_bounds_the_payload_and_a_larger_event_goes_alone() -> None:
    store, link = Store(), Link()
    size = len(ev(1).to_json())  # the same for seqs 1 to 9
    limit = eventbatch.OVERHEAD + 3 * size + 2  # three events and their two commas fit, not four
    fwd, task = await started(store, link, max_inflight=1, batch_bytes=limit)
    for seq in range(1, 10):
        fwd.submit(store.commit(ev(seq)))
    await drain(link, fwd)
    assert [seqs for _, seqs in link.messages] == [[1], [2, 3, 4], [5, 6, 7], [8, 9]]
    assert max(len(p) for p in link.payloads) == limit

    store2, link2 = Store(), Link()
    fwd2, task2 = await started(store2, link2, max_inflight=1, batch_bytes=size)  # not even two fit
    for seq in range(1, 5):
        fwd2.submit(store2.commit(ev(seq)))
    await drain(link2, fwd2)
    assert link2.sent() == [1, 2, 3, 4] and link2.batches() == [], "each alone"
    task.cancel()
    task2.cancel()


async def test_a_lost_connection_sends_every_event_of_the_batch_again_after_the_reconnect() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1)
    for seq in range(1, 21):
        fwd.submit(store.commit(ev(seq)))
    link.ack()
    await settle()
    assert link.batches() == [list(range(2, 21))]
    link.drop()  # the batch loses its PUBACK
    await settle()
    assert fwd.status()["inflight"] == 0
    assert store.delivered == {1}
    link.online.set()
    before = len(link.messages)
    await drain(link, fwd)
    assert sorted(s for _, seqs in link.messages[before:] for s in seqs) == list(range(2, 21)), "each again, once"
    assert store.delivered == set(range(1, 21))
    task.cancel()


async def test_a_refused_batch_is_tried_again_later_with_every_event_of_it() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=1, refused_retry_s=0.2)
    for seq in range(1, 6):
        fwd.submit(store.commit(ev(seq)))
    link.ack()
    await settle()
    assert link.batches() == [[2, 3, 4, 5]]
    link.answer([2], ReasonCode(PacketTypes.PUBACK, "Not authorized"))
    await settle()
    assert fwd.status()["refused"] == 4 and fwd.status()["inflight"] == 0
    assert store.delivered == {1}
    await until(lambda: bool(link.pubacks), timeout=3, what="the refused events sent again")  # after 0.2 s
    assert link.batches()[1:] == [[2, 3, 4, 5]], "again as one batch, read back from the disk"
    link.ack()
    await settle()
    assert store.delivered == set(range(1, 6))
    task.cancel()


async def test_batch_max_1_is_one_message_per_event_as_before() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=2, batch_max=1)
    for seq in range(1, 41):
        fwd.submit(store.commit(ev(seq)))
    await drain(link, fwd)
    assert link.batches() == []
    assert [seqs for _, seqs in link.messages] == [[s] for s in range(1, 41)]
    task.cancel()


async def test_a_batch_is_one_message_in_flight() -> None:
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=2)
    for seq in range(1, 301):
        fwd.submit(store.commit(ev(seq)))
    link.ack()
    await settle()
    assert len(link.pubacks) == 2, "two messages in flight, whatever they carry"
    assert fwd.status()["inflight"] == sum(len(seqs) for _, seqs in link.messages[2:4])
    task.cancel()


async def test_the_drain_of_a_backlog_from_the_disk_goes_in_batches() -> None:
    store, link = Store(), Link()
    for seq in range(1, 1001):
        store.commit(ev(seq))
    fwd, task = await started(store, link, max_inflight=4, page=64)
    await drain(link, fwd, turns=200)
    assert link.sent() == list(range(1, 1001))
    assert len(link.messages) < 60, "a backlog drains a batch per PUBACK, not an event"
    assert store.delivered == set(range(1, 1001))
    task.cancel()


async def test_events_in_flight_stay_within_the_window_whatever_the_batches() -> None:
    """50 messages of 100 events would hold 5,000 bodies in memory: a burst never has more than
    ``window_max`` events in flight, and still goes out whole, in batches."""
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=50, batch_max=100)
    most = 0
    for seq in range(1, 3001):
        fwd.submit(store.commit(ev(seq)))
    for _ in range(200):
        most = max(most, fwd.status()["inflight"])
        link.ack()
        await settle()
        if fwd.idle() and not link.pubacks:
            break
    assert most <= fwd.window_max
    assert link.sent() == list(range(1, 3001)), "each event exactly once, in seq order"
    assert sum(len(b) for b in link.batches()) > 3000 // 2, "most went in batches"
    task.cancel()


async def test_events_committed_together_leave_together_not_the_first_alone() -> None:
    """One serial read's events, handed over with submit_many while slots are free, go as one batch;
    one by one, the first would take a free slot alone."""
    store, link = Store(), Link()
    fwd, task = await started(store, link, max_inflight=50)
    fwd.submit_many([store.commit(ev(seq)) for seq in range(1, 31)])
    assert link.batches() == [list(range(1, 31))] and len(link.messages) == 1
    fwd.submit_many([store.commit(ev(31))])
    assert link.messages[-1] == (f"t/event/{ev(31).type}", [31]), "one alone still goes on its type's topic"
    await drain(link, fwd)
    assert store.delivered == set(range(1, 32))
    task.cancel()
