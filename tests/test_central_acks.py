"""An auto-ack the hub did not answer is sent again; one the hub refused is left for an operator.

A hub connects with a clean session, so the broker drops a ``cmd/ack`` sent while the hub is away
(seen in the fleet benchmark: alarms left open after a hub's outage). The link here is a stand-in
that answers as a hub away, then back, would; the store is the real one (SQLite, PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from central.acks import Acker
from central.store import open_store
from tests.support.central_db import db_url  # noqa: F401  (the fixture)
from tests.test_central_store import alarm, take


class HubAwayThenBack:
    """``request`` as the central's link does it: no reply for the first ``away`` asks, then the hub's."""

    def __init__(self, away: int, reply: dict[str, Any] | None = None) -> None:
        self.away = away
        self.reply = reply
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def request(self, hub: str, command: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.asked.append((hub, command, body))
        if len(self.asked) <= self.away:
            raise TimeoutError
        return self.reply or {"ok": True, "result": "acknowledged", "alarm_id": body["event_id"],
                              "closes": [body["event_id"]]}


async def _run_acker(db_url: str, link: HubAwayThenBack, wait_for: Any, within_s: float = 10) -> tuple[Any, Any]:
    store = await open_store(db_url, instance="a")
    try:
        first = alarm(1)
        await take(store, first, auto_ack=True)
        acker = Acker(store, link, timeout_s=0.1, auto=True, auto_by="auto-ack a",  # type: ignore[arg-type]
                      written=lambda: None, stale_s=0.3)
        task = asyncio.create_task(acker.run())
        acker.opened(first["id"])
        deadline = time.monotonic() + within_s
        while not await wait_for(store, first["id"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return first, await store.alarm(first["id"])
    finally:
        await store.close()


async def test_an_auto_ack_the_hub_did_not_answer_is_sent_again_until_it_does(db_url: str) -> None:
    link = HubAwayThenBack(away=2)

    async def closed(store: Any, event_id: str) -> bool:
        view = await store.alarm(event_id)
        return view is not None and view.state == "acknowledged"

    first, view = await _run_acker(db_url, link, closed)
    assert view.state == "acknowledged" and view.acked_by == "auto-ack a"
    assert [b["event_id"] for _, c, b in link.asked] == [first["id"]] * 3  # twice unanswered, then acked


async def test_an_auto_ack_the_hub_refused_is_left_for_an_operator(db_url: str) -> None:
    link = HubAwayThenBack(away=0, reply={"ok": False, "result": "unknown_event", "error": "no open alarm"})

    async def asked_more(store: Any, event_id: str) -> bool:
        return len(link.asked) > 1

    # a retry would come within 0.1 s (stale_s / 3) of the claim going stale (0.3 s): 2 s is ample
    _, view = await _run_acker(db_url, link, asked_more, within_s=2)
    assert view.state == "open"
    assert len(link.asked) == 1
