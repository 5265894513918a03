"""Acknowledging alarms: ``cmd/ack`` to the hub, the reply recorded, the episode closed.

An operator's ack (:meth:`Acker.ack`) and ``--auto-ack`` go the same way: the command with the
response topic ``{prefix}/{hub}/reply/{account}`` and correlation data, the hub's reply
(``acknowledged``, ``already_acknowledged``, ``cancelled``, ``ended``, ``unknown_event``) or why none
came, recorded in the store (``acks``), returned as :class:`~central.view.AckOutcome`. An ok
reply closes the alarms it names at once (the hub's ``alarm.acknowledged`` follows, and finds
them closed); every instance's feed shows it through the journal.

A missed check-in (``checkin.missed``) is acked the same way: the hub's reply (``acknowledged``,
``already_acknowledged``, or ``ended`` when it had ended already: a late check-in, away, the next
window) names the first missed id and every re-alert, and closes the call.

Auto-ack (for the rig and benchmarks) acks alarm types only (:data:`central.policy.ALARM_TYPES`):
never a missed check-in, which is a call for the care team to act on (ring the resident, visit),
not an alarm the rig confirms; its call stays open for an operator. New episodes only, once per
episode: the instance that stored the alarm marks it ``pending``; a claim in the store (one
conditional UPDATE) makes exactly one instance send it. A pending ack left by an instance that
stopped is claimed by another after a while (:data:`STALE_S`). An auto-ack the hub did not answer
(it was away: a hub's session is clean, so the broker drops a command sent while it is offline)
goes back to pending and is sent again every ``stale_s / 3`` until the hub answers or the episode
closes; one the hub refused (``unknown_event``) is left for an operator.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import structlog

from central.mqtt import CentralLink
from central.store import Store, StoreError
from central.view import AckOutcome
from drivers.helpers import TaskSet
from hub.link import LinkError

log = structlog.get_logger("central.acks")

#: An event id as the hub makes them, and a "by" the hub takes (hub.commands: Who, EventIdField).
EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WHO = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")

#: Seconds after which an auto-ack still pending or sending is another instance's to send.
STALE_S = 30.0
#: Auto-acks in flight at once.
CONCURRENT = 32


class Acker:
    """Sends acks and records them; runs the auto-acks when ``auto`` is on."""

    def __init__(self, store: Store, link: CentralLink, *, timeout_s: float, auto: bool, auto_by: str,
                 written: Callable[[], None], stale_s: float = STALE_S) -> None:
        self.store = store
        self.stale_s = stale_s
        self.link = link
        self.timeout_s = timeout_s
        self.auto = auto
        self.auto_by = auto_by
        self.written = written
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks = TaskSet()
        self._slots = asyncio.Semaphore(CONCURRENT)

    async def ack(self, event_id: str, by: str, *, auto: bool = False, hub: str | None = None) -> AckOutcome:
        """Send ``cmd/ack`` for ``event_id`` as ``by`` and wait for the reply (never raises for the hub's
        or the network's failings: the outcome says what went wrong)."""
        def failed(error: str) -> AckOutcome:
            return AckOutcome(ok=False, event_id=event_id, by=by, error=error)

        if not EVENT_ID.match(event_id):
            return failed("not an event id (a UUID in lower case)")
        if not WHO.match(by):
            return failed("by: 1 to 128 printable characters expected")
        try:
            hub = hub or await self.store.event_hub(event_id)
            if hub is None:
                return failed("unknown event: the central has not received it")
            ack_id = await self.store.ack_sent(event_id, hub, by, auto=auto, at=time.time())
        except StoreError as exc:
            return failed(f"central: store: {exc}")
        t0 = time.monotonic()
        reply, error = None, None
        try:
            reply = await self.link.request(hub, "ack", {"event_id": event_id, "by": by}, self.timeout_s)
        except TimeoutError:
            error = f"no reply from hub {hub} within {self.timeout_s:g} s"
        except LinkError as exc:
            error = f"not sent: {exc}"
        try:
            closed = await self.store.ack_done(ack_id, hub, reply=reply, error=error, at=time.time(), who=by,
                                               event_id=event_id)
        except StoreError as exc:
            log.error("ack_record_failed", event_id=event_id, error=str(exc))
            closed = []
        if closed:
            self.written()
        body = reply or {}
        closes = body.get("closes")
        outcome = AckOutcome(ok=bool(body.get("ok")), event_id=event_id, by=by, result=body.get("result"),
                             error=error or body.get("error"),
                             closes=tuple(str(c) for c in closes) if isinstance(closes, list) else ())
        log.info("ack_done", event_id=event_id, hub=hub, by=by, auto=auto, ok=outcome.ok, result=outcome.result,
                 error=outcome.error, ms=round((time.monotonic() - t0) * 1000, 1))
        return outcome

    def opened(self, event_id: str) -> None:
        """A new episode stored here: auto-ack it (when on)."""
        if self.auto:
            self._queue.put_nowait(event_id)

    async def run(self) -> None:
        """The auto-acker: claims and sends, and picks up what a stopped instance left pending."""
        if not self.auto:
            await asyncio.Event().wait()
        while True:
            ids: list[str] = []
            try:
                async with asyncio.timeout(self.stale_s / 3):
                    ids.append(await self._queue.get())
            except TimeoutError:
                pass
            while not self._queue.empty():
                ids.append(self._queue.get_nowait())
            try:
                claims = await self.store.claim_auto_acks(now=time.time(), ids=ids, stale_s=self.stale_s)
            except StoreError as exc:
                log.warning("auto_ack_claim_failed", error=str(exc))
                for event_id in ids:
                    self._queue.put_nowait(event_id)
                await asyncio.sleep(1.0)
                continue
            for event_id, hub in claims:
                await self._slots.acquire()
                self._tasks.spawn(self._auto(event_id, hub))

    async def _auto(self, event_id: str, hub: str) -> None:
        try:
            outcome = await self.ack(event_id, self.auto_by, auto=True, hub=hub)
            unanswered = not outcome.ok and outcome.result is None  # no reply: the hub away, or the link
            if unanswered:
                log.warning("auto_ack_retry", event_id=event_id, hub=hub, error=outcome.error,
                            retry_in_s=round(self.stale_s / 3, 1))
            await self.store.auto_ack_done(event_id, ok=outcome.ok, retry=unanswered)
        except StoreError as exc:
            log.error("auto_ack_record_failed", event_id=event_id, error=str(exc))
        finally:
            self._slots.release()
