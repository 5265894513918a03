"""Gap filling: a seq gap still open after the reorder timeout is asked for with ``cmd/replay``.

Like a Sparkplug host asking for a rebirth when a seq is missing past its reorder timeout:
the events may only be late (a backlog drains alarms first), so a gap gets
``reorder_timeout_s`` to close by itself. Then one instance claims it in the store (atomic:
never two) and asks the hub for the seqs still missing, in chunks of at most
:data:`hub.commands.MAX_REPLAY`. The hub publishes them again, same ids and seqs (they come
in through the shared subscription, to whichever instance, and close the gap), and replies
with what it no longer has: those seqs are recorded as lost, LOUDLY (an ``events_lost`` error
line, a ``Change(kind="lost")`` on every instance's feed, counted on the hub's view).

A hub that does not answer, refuses (rate limited, busy) or is offline is asked again later;
a claim that brought nothing within ``replay_timeout_s`` is claimed again.

Gaps are found by the ingest (a seq above the highest seen) and by the heartbeats: a heartbeat
carries the hub's last seq, and when nothing is pending in its outbox every event up to it has
reached the broker, so what the central lacks of them is a gap too, at the tail, which no later
event would reveal. It matters with several instances: Mosquitto deals a shared subscription's
messages round robin to every member that has a session, connected or not, so an instance that
is down holds its share on the broker until it returns (or its session expires); the others
find those events missing and ask the hub for them again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from central.mqtt import CentralLink
from central.store import Store, StoreError
from central.store.gaps import Ranges, to_ranges
from drivers.helpers import TaskSet
from hub.commands import MAX_REPLAY
from hub.link import LinkError

log = structlog.get_logger("central.gapfill")


def chunks(lo: int, hi: int, size: int = MAX_REPLAY) -> list[tuple[int, int]]:
    """``lo..hi`` cut into ranges of at most ``size`` seqs."""
    return [(a, min(hi, a + size - 1)) for a in range(lo, hi + 1, size)]


class GapFiller:
    """Finds the gaps due, claims them and asks the hubs for them."""

    def __init__(self, store: Store, link: CentralLink, *, reorder_s: float, replay_timeout_s: float,
                 offline: Callable[[str], bool], written: Callable[[], None]) -> None:
        self.store = store
        self.link = link
        self.reorder_s = reorder_s
        self.replay_timeout_s = replay_timeout_s
        self.offline = offline
        self.written = written
        self.interval_s = max(0.1, min(1.0, reorder_s / 4))
        self._busy: set[tuple[str, int]] = set()
        self._tasks = TaskSet()

    async def run(self) -> None:
        """Look for due gaps every ``interval_s`` until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await self.sweep()
                except StoreError as exc:
                    log.warning("gapfill_store_failed", error=str(exc))
        finally:
            for task in self._tasks:
                task.cancel()

    async def sweep(self) -> None:
        """Claim and start filling every gap due now."""
        now = time.time()
        for hub, lo, hi in await self.store.due_gaps(now=now, reorder_s=self.reorder_s,
                                                     replay_timeout_s=self.replay_timeout_s):
            if (hub, lo) in self._busy or self.offline(hub):
                continue
            if await self.store.claim_gap(hub, lo, now=now, reorder_s=self.reorder_s,
                                          replay_timeout_s=self.replay_timeout_s):
                self._busy.add((hub, lo))
                self._tasks.spawn(self._fill(hub, lo, hi), name=f"replay-{hub}-{lo}")

    async def _fill(self, hub: str, lo: int, hi: int) -> None:
        try:
            await self.fill(hub, lo, hi)
        except StoreError as exc:
            log.warning("gapfill_store_failed", hub=hub, lo=lo, hi=hi, error=str(exc))
        finally:
            self._busy.discard((hub, lo))

    async def fill(self, hub: str, lo: int, hi: int) -> None:
        """Ask ``hub`` for what is still missing of the claimed gap ``lo..hi``; record what it lost."""
        missing = await self.store.missing(hub, lo, hi)
        log.warning("replay_requested", hub=hub, gap=[lo, hi], missing=[list(r) for r in missing[:20]],
                    count=sum(b - a + 1 for a, b in missing))
        for a, b in missing:
            for c0, c1 in chunks(a, b):
                try:
                    reply = await self.link.request(hub, "replay", {"from_seq": c0, "to_seq": c1},
                                                    self.replay_timeout_s)
                except (TimeoutError, LinkError) as exc:
                    await self._release(hub, lo, f"no reply to replay {c0}..{c1}: {exc or 'timeout'}")
                    return
                if not await self._take(hub, lo, c0, c1, reply):
                    return
        await self.store.settle_gap(hub, lo, time.time())
        self.written()

    async def _take(self, hub: str, lo: int, c0: int, c1: int, reply: dict) -> bool:
        """One replay's reply: record what the hub no longer has. False: stop here, ask again later."""
        if not reply.get("ok"):
            last = reply.get("last_seq")
            if isinstance(last, int) and c0 > last:  # the hub never had these (its seqs start again lower)
                await self._lost(hub, [(c0, c1)], f"the hub's last seq is {last}")
                return True
            await self._release(hub, lo, f"replay {c0}..{c1} refused: {reply.get('refused') or reply.get('error')}")
            return False
        listed = [s for s in reply.get("missing") or [] if isinstance(s, int) and c0 <= s <= c1]
        if listed:
            await self._lost(hub, to_ranges(listed), "the hub no longer has them")
        log.info("replay_done", hub=hub, from_seq=c0, to_seq=c1, sent=reply.get("sent"),
                 missing=reply.get("missing_count"))
        return True

    async def _lost(self, hub: str, ranges: Ranges, reason: str) -> None:
        new = await self.store.record_lost(hub, ranges, now=time.time(), reason=reason)
        if new:
            log.error("events_lost", hub=hub, seqs=[list(r) for r in new[:50]],
                      count=sum(b - a + 1 for a, b in new), reason=reason)
            self.written()

    async def _release(self, hub: str, lo: int, note: str) -> None:
        log.warning("replay_failed", hub=hub, gap_lo=lo, reason=note)
        await self.store.release_gap(hub, lo, now=time.time(), note=note)
