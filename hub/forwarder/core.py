"""The forwarder itself: the window, the pump, PUBACKs and the drain loop (see :mod:`hub.forwarder`)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from hub.events import Event
from hub.forwarder.batches import BatchesMixin
from hub.forwarder.held import HeldMixin
from hub.forwarder.rows import is_audited, is_telemetry
from hub.link import LinkError, MqttLink, PublishRefused
from hub.outbox import Outbox, Row, is_alarm

log = structlog.get_logger("hub.forwarder")

DeliveredHook = Callable[[Event], None]

#: Events read from the outbox per page (at least twice ``max_inflight``).
PAGE = 128


class Forwarder(HeldMixin, BatchesMixin):
    """Drains the outbox into the link, honouring priority and PUBACKs, with a bounded window in memory."""

    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        *,
        topic: Callable[[str], str],
        max_inflight: int = 50,
        refused_retry_s: float = 30.0,
        page: int | None = None,
        batch_topic: str | None = None,
        batch_max: int = 1,
        batch_bytes: int = 65536,
    ) -> None:
        """``topic`` maps an event type to the topic its events are published on; ``batch_topic`` is where
        batches of telemetry go, at most ``batch_max`` events (1: none) and ``batch_bytes`` of payload each."""
        self.outbox = outbox
        self.link = link
        self._topic_of = topic
        self._topics: dict[str, str] = {}
        self._batch_topic = batch_topic
        self.max_inflight = max_inflight
        self.batch_max = batch_max
        self.batch_bytes = batch_bytes
        self.refused_retry_s = refused_retry_s
        self._page_size = page
        self.delivered_total = 0
        self.on_delivered: list[DeliveredHook] = []
        self._inflight: dict[int, Row] = {}  # seq -> row of every event in flight, alone or in a batch
        self._messages = 0  # messages in flight (a batch is one): what max_inflight bounds
        self._refused: dict[int, float] = {}
        # acked lately: a page read whose snapshot predates the delivered mark must not send it again
        self._recent: deque[int] = deque(maxlen=1024)
        self._recent_set: set[int] = set()
        self._wake = asyncio.Event()
        #: events to send, a heap in sending order: (rank, seq, type, body or None, Event or None)
        self._window: list[Row] = []
        self._caught_up = False  # every pending event is in flight, refused (waiting) or in the window
        self._snap_last = 0  # the last seq the read that caught up could see: later ones reach us by submit()
        self._cursor: tuple[int, int] | None = None  # paging: the last (rank, seq) read; None: from the first
        self._gen = 0  # bumped whenever the cursor moves back or restarts: a read begun before is dropped
        self._reading = False
        self._stash: list[Row] = []  # fresh events committed while a read runs (paging), for the hand-over
        self._stash_lost = False
        self._held: dict[str, Event] = {}  # alarms the disk refused (seq 0), published from memory
        self._held_inflight: set[str] = set()
        self._deferring = False  # submit_many: the pump waits for the last of them
        self.send_errors = 0
        self.batches_delivered = 0
        self.pages_read = 0
        self.window_peak = 0
        self._last_ack = time.monotonic()

    # --- sizes ----------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Events per read of the outbox."""
        return self._page_size or max(PAGE, 2 * self.max_inflight)

    @property
    def window_max(self) -> int:
        """The most events kept in memory beside those in flight: two pages."""
        return 2 * self.page_size

    # --- fresh events ---------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """A newly committed event: publish now when caught up and the window has room.

        Otherwise it waits in the window, or (paging, not yet reached by the
        pages, or offline) only on disk. A critical event is sent at once
        whatever the mode, if the link is up. Never raises: a failure here (a
        bug) is logged and the window is read from the disk again, where the
        event is, so it is not left behind.
        """
        try:
            self._submit(event)
        except Exception:
            self._lost_track(1)

    def _lost_track(self, events: int) -> None:
        log.exception("forwarder_submit_failed", events=events, action="reading the window from the disk again")
        self.send_errors += 1
        self._deferring = False
        self._restart()

    def _submit(self, event: Event) -> None:
        if event.seq == 0:
            self._held[event.id] = event
            self._send_held(event)
            return
        rank, seq = event.priority.rank, event.seq
        body = self.outbox.take_body(seq)  # what the commit stored: published as it is, not encoded again
        if not self.link.online.is_set():
            if self._caught_up:
                self._restart()  # on disk: the pass after the reconnect reads it (the loop is woken for it)
            return
        row: Row = (rank, seq, event.type, body, event)
        if rank == 0:
            self._send(row)  # never behind the window, the pages or a disk read
            if seq in self._inflight:
                return
        if self._caught_up:
            if seq <= self._snap_last:
                return  # the read that caught up saw it: it is in the window, in flight or delivered
            self._push(row)
        elif self._cursor is not None and (rank, seq) <= self._cursor:
            self._push(row)  # the pages went past it (a higher priority): it waits here
        elif self._reading:
            if len(self._stash) < self.window_max:  # the read may not see it: kept for the hand-over
                self._stash.append(row)
            else:
                self._stash_lost = True
            return
        else:
            self._wake.set()  # on disk: the pages reach it
            return
        if not self._deferring:
            self._pump()

    def submit_many(self, events: list[Event]) -> None:
        """Several events committed together (one serial read): each as :meth:`submit` takes it, then one
        pump, so telemetry that came together leaves together (a batch) rather than the first alone."""
        self._deferring = True
        try:
            for event in events:
                self._submit(event)
            self._deferring = False
            self._pump()
        except Exception:
            self._lost_track(len(events))

    def _push(self, row: Row) -> None:
        heapq.heappush(self._window, row)
        if len(self._window) > self.window_max:
            self._trim()

    def _trim(self) -> None:
        """Too much in memory: keep the first half of the window, page the rest from the disk."""
        rows = sorted(self._window)
        keep = rows[: self.window_max // 2]
        self._window = keep  # a sorted list is a heap
        self._cursor = keep[-1][:2] if keep else self._cursor
        self._caught_up = False
        self._moved()

    def _restart(self) -> None:
        """Forget the window: every pending event is read from the disk again, from the first."""
        self._window = []
        self._cursor = None
        self._caught_up = False
        self._moved()

    def _moved(self) -> None:
        self._gen += 1
        self._stash.clear()
        self._stash_lost = False
        self._wake.set()

    # --- sending ----------------------------------------------------------------------------

    def _pump(self) -> None:
        """Fill the window of publishes in flight from the window in memory, in sending order: telemetry
        that waits together goes as one batch."""
        window = self._window
        batching = self._batch_topic is not None and self.batch_max > 1
        while window and self._messages < self.max_inflight and len(self._inflight) < self.window_max:
            if not self.link.online.is_set():
                self._restart()
                return
            row = heapq.heappop(window)
            if batching and window and is_telemetry(row) and is_telemetry(window[0]):
                self._send_batch(row)
            else:
                self._send(row)
        if not self._caught_up and len(window) <= self.window_max - self.page_size:
            self._wake.set()  # room for a page

    def _topic(self, event_type: str) -> str:
        topic = self._topics.get(event_type)
        if topic is None:
            topic = self._topics[event_type] = self._topic_of(event_type)
        return topic

    def _send(self, row: Row) -> None:
        seq = row[1]
        if seq in self._inflight or seq in self._recent_set:
            return
        body = row[3] if row[3] is not None else row[4].to_json()
        self._publish(row, self._topic(row[2]), body, row)

    def _publish(self, first: Row, topic: str, payload: bytes, token: Row | list[Row]) -> None:
        """One message in flight: ``token`` is its event's row, or the list of a batch's rows."""
        try:
            self.link.publish_tracked(topic, payload, self._acked, token)
        except Exception as exc:  # any failure of the send path is a link failure: never an emit's
            if not isinstance(exc, LinkError):
                self.send_errors += 1
                log.error("event_publish_failed", seq=first[1], type=first[2], error=f"{type(exc).__name__}: {exc}")
            log.info("event_publish_interrupted", seq=first[1], error=str(exc))
            self._restart()
            return
        if not self._inflight:
            self._last_ack = time.monotonic()  # the stall clock starts with the first event in flight
        self._messages += 1
        if type(token) is list:
            for row in token:
                self._inflight[row[1]] = row
        else:
            self._inflight[first[1]] = first

    def _acked(self, outcomes: list[tuple[Any, Any]]) -> None:
        """The broker answered (or the link dropped) for messages in flight: one call per loop turn. A
        batch's outcome is each of its events'."""
        now = time.monotonic()
        self._last_ack = now
        delivered: list[int] = []
        lost = False
        debug = log.is_enabled_for(logging.DEBUG)
        for token, outcome in outcomes:
            self._messages -= 1
            rows: list[Row] | tuple[Row] = token if type(token) is list else (token,)
            failed = isinstance(outcome, BaseException) or getattr(outcome, "is_failure", False)
            if not failed and len(rows) > 1:
                self.batches_delivered += 1
            for row in rows:
                seq = row[1]
                self._inflight.pop(seq, None)
                if failed:
                    if isinstance(outcome, BaseException):
                        lost = True
                        log.info("event_publish_interrupted", seq=seq, error=str(outcome))
                        continue
                    self._refused[seq] = now + self.refused_retry_s
                    self._wake.set()  # the loop's wait takes the retry's time from now on
                    log.error("event_refused_by_broker", seq=seq, type=row[2],
                              reason=str(PublishRefused(outcome).reason))
                    continue
                if len(self._recent) == self._recent.maxlen:
                    self._recent_set.discard(self._recent[0])
                self._recent.append(seq)
                self._recent_set.add(seq)
                delivered.append(seq)
                if is_audited(row):
                    self._delivered_audited(row)
                elif debug:  # telemetry: at debug only, and its id only when in hand (a page is not decoded)
                    log.debug("event_delivered", seq=seq, type=row[2],
                              event_id=row[4].id if row[4] is not None else None)
        self.delivered_total += len(delivered)
        self.outbox.mark_delivered_many(delivered)
        if lost:
            self._restart()
            return
        self._pump()

    def _delivered_audited(self, row: Row) -> None:
        """An alarm lane or high event has its PUBACK: logged at info; the alarm lane's hooks are told."""
        event: Event = row[4] if row[4] is not None else Event.from_json(row[3])
        log.info("event_delivered", event_id=event.id, seq=event.seq, type=event.type)
        if is_alarm(event.type, event.priority):
            self._run_hooks(event)

    def _run_hooks(self, event: Event) -> None:
        for hook in self.on_delivered:
            try:
                hook(event)
            except Exception:
                log.exception("delivered_hook_failed", event_id=event.id)

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """The drain loop; runs for the daemon's lifetime."""
        self._restart()
        while True:
            if not self.link.online.is_set():
                self._restart()
                await self.link.online.wait()
            for event in list(self._held.values()):  # from memory, after every reconnect
                self._send_held(event)
            self._wake.clear()  # before the pump: a fall back to paging inside it must wake us again
            self._pump()
            if not self._caught_up and len(self._window) <= self.window_max - self.page_size:
                try:
                    await self._read_page()
                except Exception:
                    log.exception("outbox_read_failed")
                    await asyncio.sleep(1.0)
                continue
            try:
                async with asyncio.timeout(self._refused_due()):
                    await self._wake.wait()
            except TimeoutError:  # a refused event is due again: it is only on disk
                self._refused = {s: t for s, t in self._refused.items() if t > time.monotonic()}
                self._restart()

    async def _read_page(self) -> None:
        """Read the next page after the cursor into the window; a short page means caught up."""
        gen, after, limit = self._gen, self._cursor, self.page_size
        self._stash.clear()
        self._stash_lost = False
        self._reading = True
        try:
            rows, snap_last = await self.outbox.page(after, limit)
        finally:
            self._reading = False
        self.pages_read += 1
        if gen != self._gen or not self.link.online.is_set():
            return  # the cursor moved meanwhile: read again from where it is now
        if rows:
            self._cursor = rows[-1][:2]
        now = time.monotonic()
        skip_acked = self.outbox.acked_unflushed
        window = self._window
        for row in rows:  # each after everything in the window: appending keeps the heap
            seq = row[1]
            if seq in self._inflight or seq in skip_acked or seq in self._recent_set:
                continue
            if seq in self._refused and self._refused[seq] > now:
                continue
            window.append(row)
        if len(rows) < limit and not self._stash_lost:
            # caught up as of the snapshot; what was committed after it reached submit() during the read
            self._caught_up = True
            self._snap_last = snap_last
            for row in self._stash:
                if row[1] > snap_last:
                    heapq.heappush(window, row)
            self._stash.clear()
            if len(window) > self.window_max:
                self._trim()
        self.window_peak = max(self.window_peak, len(window))

    def idle(self) -> bool:
        """Caught up, with nothing in flight and nothing waiting in memory."""
        return self._caught_up and not self._window and not self._inflight

    def progress(self) -> float:
        """Monotonic time of the last sign of progress, for the supervisor: now while there is nothing
        in flight or no link (waiting is not stalling), else the last PUBACK."""
        if not self._inflight or not self.link.online.is_set():
            return time.monotonic()
        return self._last_ack

    def _refused_due(self) -> float | None:
        """Seconds until the first refused event may be tried again (None: nothing refused)."""
        if not self._refused:
            return None
        return max(0.0, min(self._refused.values()) - time.monotonic())

    def status(self) -> dict[str, Any]:
        """For ``status`` and the heartbeat: ``queued`` is what the forwarder holds in memory beside what is
        in flight (at most ``window_max``, whatever the backlog on disk); ``paging`` while it reads the
        backlog from the outbox."""
        return {
            "inflight": len(self._inflight),
            "queued": len(self._window) + len(self._stash),
            "window_max": self.window_max,
            "window_peak": self.window_peak,
            "paging": not self._caught_up,
            "pages_read": self.pages_read,
            "delivered": self.delivered_total,
            "batches": self.batches_delivered,
            "refused": len(self._refused),
            "held": len(self._held),
            "send_errors": self.send_errors,
        }
