"""A backlog far larger than memory, through a real outbox: paged from disk, bounded in memory, overtaken by alarms.

The forwarder runs against a real :class:`~hub.outbox.Outbox` (SQLite in
``tmp_path``) and a stand-in link that records every publish and answers
with PUBACKs when the test says so, a loop turn later, as the real link does.
What a user would check: every pending event goes out once, in order; the
count the forwarder keeps in memory (``status()["queued"]``) never passes
its bound, however long the backlog; an alarm, and a higher priority,
committed while thousands of events wait go out ahead of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.events import Draft, Event, Priority, Source
from hub.forwarder import Forwarder
from hub.link import LinkDown
from hub.outbox import Outbox

MAT = Source(device="bedmat-1", kind="bed_mat", room="bedroom")
BUTTON = Source(device="button-1", kind="alarm_button", room="bedroom")
BACKLOG = 20_000


class Link:
    """Records publishes as ``(seq, type)``; PUBACKs for all that wait when :meth:`ack` is called (or at once,
    ``auto``), handed to the forwarder's sink on the next loop turn."""

    def __init__(self, *, auto: bool) -> None:
        self.online = asyncio.Event()
        self.online.set()
        self.auto = auto
        self.sent: list[tuple[int, str]] = []
        self._waiting: list[tuple[Any, Any]] = []
        self._scheduled = False
        self.on_batch: Any = None  # called before each batch of PUBACKs is handed over

    def publish_tracked(self, topic: str, payload: bytes, sink: Any, token: Any) -> None:
        if not self.online.is_set():
            raise LinkDown("offline")
        ev = json.loads(payload)
        assert topic == f"t/{ev['type']}"
        self.sent.append((ev["seq"], ev["type"]))
        self._waiting.append((sink, token))
        if self.auto and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.ack)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1) -> Any:
        raise AssertionError("only held alarms take publish_nowait")

    def ack(self, n: int | None = None) -> None:
        """PUBACK the first ``n`` waiting publishes (all of them: None)."""
        self._scheduled = False
        n = len(self._waiting) if n is None else n
        batch, self._waiting = self._waiting[:n], self._waiting[n:]
        if self.on_batch is not None:
            self.on_batch()
        if batch:
            batch[0][0]([(token, 0) for _, token in batch])


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite3", hub="h", resident="r")
    await ob.open()
    yield ob
    await ob.close()


def reading(pct: int = 19) -> Draft:
    return Draft(type="device.battery_low", priority=Priority.NORMAL, source=MAT,
                 data={"battery_pct": pct, "threshold_pct": 20})


async def fill(ob: Outbox, n: int) -> None:
    """``n`` telemetry events committed, a thousand a transaction."""
    for start in range(0, n, 1000):
        results = await ob.append_many([reading() for _ in range(min(1000, n - start))])
        assert not any(isinstance(r, Exception) for r in results)


async def until(cond: Any, what: str, timeout_s: float = 120.0) -> None:
    """Run the loop until ``cond()``; a deadline with slack (page reads run in the outbox's thread, so the
    loop turns they take depend on the machine's load, not on the forwarder)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0)


async def test_a_backlog_far_larger_than_the_window_goes_out_once_in_order_with_memory_bounded(outbox: Outbox) -> None:
    await fill(outbox, BACKLOG)
    link = Link(auto=True)
    fwd = Forwarder(outbox, link, topic=lambda t: f"t/{t}", max_inflight=50)  # type: ignore[arg-type]
    queued: list[int] = []
    link.on_batch = lambda: queued.append(fwd.status()["queued"])
    task = asyncio.create_task(fwd.run())
    try:
        await until(lambda: fwd.delivered_total == BACKLOG, "every event delivered")
        await outbox.flush_delivered()
        assert [seq for seq, _ in link.sent] == list(range(1, BACKLOG + 1)), "each once, in seq order"
        assert max(queued) <= fwd.window_max < BACKLOG // 10, "memory holds a window, never the backlog"
        assert fwd.status()["pages_read"] >= BACKLOG // fwd.page_size, "the backlog came from the disk"
        assert (await outbox.stats()).pending == 0
    finally:
        task.cancel()


async def test_an_alarm_and_a_high_event_committed_during_the_backlog_go_out_ahead_of_it(outbox: Outbox) -> None:
    await fill(outbox, BACKLOG)
    link = Link(auto=False)
    fwd = Forwarder(outbox, link, topic=lambda t: f"t/{t}", max_inflight=10)  # type: ignore[arg-type]
    task = asyncio.create_task(fwd.run())
    try:
        await until(lambda: len(link.sent) == 10, "the first window in flight")
        while fwd.status()["pages_read"] < 4:  # well into the backlog, paging from the disk
            link.ack()
            await until(lambda: len(link._waiting) == 10, "the window refilled")
        assert fwd.status()["paging"]
        waiting = BACKLOG - fwd.delivered_total  # not acked yet: in flight (10), in the window or on disk
        assert waiting > BACKLOG - 2000

        alarm: Event = await outbox.append(Draft(type="alarm.button", priority=Priority.CRITICAL, source=BUTTON))
        fwd.submit(alarm)
        assert link.sent[-1] == (alarm.seq, "alarm.button"), "on the wire at once, past the full window"

        high: Event = await outbox.append(Draft(type="device.offline", priority=Priority.HIGH, source=MAT,
                                                data={"reason": "test"}))
        fwd.submit(high)
        assert (high.seq, "device.offline") not in link.sent, "the window is full: it waits, in memory"
        sent_at = len(link.sent)
        link.ack()
        await until(lambda: len(link.sent) > sent_at, "the next publish")
        assert link.sent[sent_at] == (high.seq, "device.offline"), "the high event before the rest of the backlog"

        link.auto = True
        link.ack()
        await until(lambda: fwd.delivered_total == BACKLOG + 2, "every event delivered")
        seqs = [seq for seq, _ in link.sent]
        assert sorted(seqs) == list(range(1, BACKLOG + 3)), "each exactly once"
        normal_after = [s for s in seqs[seqs.index(alarm.seq):] if s < alarm.seq]
        assert len(normal_after) == waiting - 10, "all the backlog but what was in flight went after the alarm"
    finally:
        task.cancel()
