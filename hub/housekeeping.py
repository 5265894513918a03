"""Housekeeping, once a second: the store's WAL, its space and its replay window; store and link health.

* The WAL is checkpointed after :data:`CHECKPOINT_AFTER_WRITES` write
  transactions (or every 10 s when there were any; at once when space is
  short): a WAL that is checkpointed early is rewritten in place, so an
  alarm's fsync does not also grow the file.
* After a burst (:data:`TRIM_AFTER_EVENTS` events or more), once the
  forwarder has caught up and the store has been quiet for a round, the
  memory the burst used is given back (:mod:`hub.memory`).
* The state directory's space is watched (:meth:`~hub.outbox.Outbox.check_space`);
  delivered events older than the replay window are pruned every 10 minutes.
* A store that could not be opened at start (a full disk) is opened as soon as it can be.
* The store's and the link's health go to the :class:`~hub.health.HealthBoard`:
  a store that cannot commit, holds alarms or is short of space; a link that
  is refused its TLS or credentials, or has had no broker for a minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from hub.health import HealthBoard
from hub.link import MqttLink
from hub.outbox import Outbox, StoreError

log = structlog.get_logger("hub.housekeeping")

#: Checkpoint the outbox's WAL after this many write transactions (a few pages each: SQLite's own
#: default is 1000 pages), or every 10 s when there was any.
CHECKPOINT_AFTER_WRITES = 200
#: A burst of at least this many events is followed by giving its memory back, once it is over.
TRIM_AFTER_EVENTS = 2_000
#: Fewer events (a day's ordinary traffic) give their memory back too, at most this often, when the store is
#: quiet: a hub that runs for months keeps to its size after every busy hour, not only after a burst.
TRIM_EVERY_S = 60.0
#: The link counts as degraded after this long without a broker (TLS and credential errors at once).
LINK_DEGRADED_AFTER_S = 60.0


class Housekeeping:
    """The once-a-second round over the store and the link."""

    def __init__(
        self, outbox: Outbox, link: MqttLink, health: HealthBoard, *, idle: Callable[[], bool] | None = None
    ) -> None:
        """``idle``: whether the forwarder is caught up, with nothing in flight or in memory."""
        self.outbox = outbox
        self.link = link
        self.health = health
        self.idle = idle
        self._trimmed_at = 0  # outbox.appended when memory was last given back
        self._trimmed_when = time.monotonic()
        self._appended_last_round = 0
        #: monotonic time of the last round (the supervisor's sign of progress)
        self.round_at = time.monotonic()
        self.open_failures = 0
        self._offline_since: float | None = None

    async def run(self) -> None:
        """The rounds, for the daemon's lifetime (supervised)."""
        rounds = 0
        while True:
            await asyncio.sleep(1)
            rounds += 1
            self.round_at = time.monotonic()
            try:
                if not self.outbox.is_open:
                    await self.open_store()
                    continue
                short = await self.outbox.check_space() if rounds % 2 == 0 or self.outbox.space_short else False
                writes = self.outbox.writes_since_checkpoint
                if writes >= CHECKPOINT_AFTER_WRITES or (writes and (short or rounds % 10 == 0)):
                    await self.outbox.checkpoint()
                if rounds % 600 == 0:
                    pruned = await self.outbox.prune()
                    if pruned:
                        log.info("outbox_pruned", events=pruned)
                await self.after_burst()
            except Exception as exc:  # disk trouble is logged; the next round tries again
                log.error("housekeeping_failed", error=str(exc))
            finally:
                self.check_health()

    async def after_burst(self) -> None:
        """Give memory back once a burst is over (caught up, and nothing stored since the last round), and
        after ordinary traffic at most every :data:`TRIM_EVERY_S` (logged at debug: it is routine)."""
        appended = self.outbox.appended
        quiet = appended == self._appended_last_round
        self._appended_last_round = appended
        since = appended - self._trimmed_at
        now = time.monotonic()
        due = since >= TRIM_AFTER_EVENTS or (since > 0 and now - self._trimmed_when >= TRIM_EVERY_S)
        if quiet and due and self.idle is not None and self.idle():
            self._trimmed_at, self._trimmed_when = appended, now
            trimmed = await self.outbox.shrink_memory()
            (log.info if since >= TRIM_AFTER_EVENTS else log.debug)("memory_given_back", burst_events=since,
                                                                     malloc_trimmed=trimmed)

    def check_health(self) -> None:
        """Store and link health from what they know now (tasks report themselves)."""
        ob = self.outbox
        problem = None
        if not ob.is_open:
            problem = f"cannot open the store: {ob.last_error}"
        elif ob.held:
            problem = f"{len(ob.held)} alarm(s) held in memory: the disk refuses commits ({ob.last_error})"
        elif ob.space_short:
            problem = "state directory short of space: telemetry refused, alarms use the reserve"
        elif ob.last_error:
            problem = f"commit failed: {ob.last_error}"
        self.health.set("store", problem is None, problem)
        link = self.link
        if link.online.is_set():
            self._offline_since = None
            self.health.set("link", True)
            return
        now = time.monotonic()
        if self._offline_since is None:
            self._offline_since = now
        bad_setup = link.error_kind in ("tls", "auth")
        if bad_setup or now - self._offline_since >= LINK_DEGRADED_AFTER_S:
            self.health.set("link", False, f"{link.error_kind or 'offline'}: {link.last_error or 'no broker'}")

    async def open_store(self) -> bool:
        """Open the outbox now if it can be (at start, or late: it was refused on a full disk)."""
        try:
            await self.outbox.open()
        except StoreError as exc:
            if self.open_failures % 30 == 0:
                log.error("store_open_failed", error=str(exc), attempts=self.open_failures + 1)
            self.open_failures += 1
            return False
        if self.open_failures:
            log.warning("store_opened_late", attempts=self.open_failures + 1)
            self.outbox.retry_held()
        return True
