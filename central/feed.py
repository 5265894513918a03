"""The live feed: every :class:`~central.view.Change` to every subscriber, none of them able to hold up the engine.

Each subscriber has a bounded queue. A subscriber that falls behind (its queue full) loses
what is queued and gets one ``Change(kind="resync")`` instead: it should read the snapshot
again. Publishing never waits.

Changes reach the feed from two places: the store's journal (:class:`JournalReader`: alarms,
device problems, lost events and gap counters, made by any instance sharing the database,
this one included) and this instance's own supervision of the hubs (online, late, silent,
offline), which every instance does for itself from the status and heartbeats it receives.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from central.store import Store, StoreError
from central.store.reads import problem_view
from central.view import Change, HubView

log = structlog.get_logger("central.feed")

RESYNC = Change(kind="resync")


class Subscription:
    """One subscriber's changes, as an async iterator. Registered from the moment it is made (so a
    face may read the snapshot after subscribing and miss nothing); gone once dropped or closed."""

    def __init__(self, feed: Feed, size: int) -> None:
        self.queue: asyncio.Queue[Change] = asyncio.Queue(size)
        self.resyncs = 0
        self._feed = feed
        feed._subscribers.add(self)

    def put(self, change: Change) -> None:
        """Queue ``change``; when full, drop what is queued and queue a resync instead."""
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            self.resyncs += 1

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        return await self.queue.get()

    async def aclose(self) -> None:
        """Stop receiving."""
        self._feed._subscribers.discard(self)


class Feed:
    """Fan-out of changes to subscribers with bounded queues."""

    def __init__(self, *, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        #: weak: a subscription its face dropped (a closed browser tab) goes by itself
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()

    @property
    def subscribers(self) -> int:
        """How many are listening now."""
        return len(self._subscribers)

    def publish(self, change: Change) -> None:
        """Hand ``change`` to every subscriber; never waits."""
        for sub in list(self._subscribers):
            before = sub.resyncs
            sub.put(change)
            if sub.resyncs != before:
                log.warning("feed_subscriber_behind", queue=self.queue_size)

    def changes(self) -> AsyncIterator[Change]:
        """Every change from now on, as long as the caller iterates."""
        return Subscription(self, self.queue_size)


class JournalReader:
    """Reads the store's journal in order and publishes each entry as a change.

    Starts at the journal's end (the feed is "from now on"); polls every ``poll_s``, and at
    once when :meth:`kick` says this instance wrote something. ``hub_view(hub)`` gives the
    hub's view (the supervision's, with fresh counters), for a gap or a loss on it.
    """

    def __init__(self, store: Store, feed: Feed, hub_view: Callable[[str], Awaitable[HubView]], *,
                 poll_s: float) -> None:
        self.store = store
        self.feed = feed
        self.hub_view = hub_view
        self.poll_s = poll_s
        self.last: int | None = None
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Read the journal now (something was written)."""
        self._kick.set()

    async def start(self) -> None:
        """Take the journal's end as the starting point."""
        self.last = await self.store.journal_head()

    async def run(self) -> None:
        """Read and publish until cancelled; a store failure is logged and tried again."""
        if self.last is None:
            await self.start()
        while True:
            try:
                async with asyncio.timeout(self.poll_s):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            try:
                while await self.read_once():
                    pass
            except StoreError as exc:
                log.warning("journal_read_failed", error=str(exc))
                await asyncio.sleep(self.poll_s * 4)

    async def read_once(self) -> bool:
        """Publish the entries after the last one read; True when there may be more."""
        assert self.last is not None
        rows = await self.store.journal_since(self.last)
        if not rows:
            return False
        seen: set[tuple[str, str, str | None]] = set()
        for n, _instance, kind, hub, ref, detail in rows:
            key = (kind, hub, ref)
            if kind == "lost" or key not in seen:
                seen.add(key)
                change = await self._resolve(kind, hub, ref, detail)
                if change is not None:
                    self.feed.publish(change)
            self.last = int(n)
        return len(rows) >= 500

    async def _resolve(self, kind: str, hub: str, ref: str | None, detail: str | None) -> Change | None:
        extra = json.loads(detail) if detail else None
        if kind == "alarm" and ref:
            alarm = await self.store.alarm(ref)
            return None if alarm is None else Change(kind="alarm", alarm=alarm)
        if kind == "problem" and ref:
            _, device, name = json.loads(ref)
            problem = await self.store.problem(hub, device, name)
            return None if problem is None else Change(kind="problem", problem=problem)
        if kind == "problem_cleared" and extra:
            return Change(kind="problem_cleared", problem=problem_view(
                extra["hub"], extra["device"], extra["problem"], extra["kind"], extra.get("room"),
                extra.get("route") or "any", extra["since"], extra.get("detail")))
        if kind == "lost":
            return Change(kind="lost", detail=extra, hub=await self.hub_view(hub))
        if kind == "hub":
            return Change(kind="hub", hub=await self.hub_view(hub))
        return None
