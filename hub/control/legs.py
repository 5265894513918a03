"""``test-alarm`` over the socket: the real ``cmd/test-alarm``, and each leg of its way with its time.

The legs, as the hub sees them: *requested* (t = 0), *committed* (stored,
with its seq; the same :class:`~hub.command_runner.CommandRunner` handler as
the central's ``cmd/test-alarm``), *published* (the broker's PUBACK: the
forwarder's delivered hook), *acknowledged* (the central's ``cmd/ack``: the
``alarm.acknowledged`` that closes it), or *timeout* naming what never came.
:class:`LegWatch` hears the delivered and acknowledged events only while a
test alarm waits, and keeps only ``alarm.test`` ones: bounded by the waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hub.events import Event

TEST_TYPE = "alarm.test"

Run = Callable[[Any], Awaitable[dict[str, Any]]]


class _Wait:
    """What one waiting test alarm has heard: ids delivered, ids acknowledged (with who and when)."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}
        self.acked: dict[str, tuple[float, str, str]] = {}  # alarm id -> (t, by, ack event id)
        self.changed = asyncio.Event()


class LegWatch:
    """Feeds the waiting test alarms from the forwarder (PUBACK) and the emitter (acknowledged)."""

    def __init__(self) -> None:
        self._waits: set[_Wait] = set()

    def delivered(self, event: Event) -> None:
        """The forwarder's ``on_delivered`` hook."""
        if not self._waits or event.type != TEST_TYPE:
            return
        now = time.monotonic()
        for w in self._waits:
            w.delivered.setdefault(event.id, now)
            w.changed.set()

    def committed(self, event: Event) -> None:
        """The emitter's tap: an ``alarm.acknowledged`` of a test alarm."""
        if not self._waits or event.type != "alarm.acknowledged" or event.data.get("alarm_type") != TEST_TYPE:
            return
        now = time.monotonic()
        ids = [i for i in event.data.get("closes", []) if isinstance(i, str)]
        if event.cause:
            ids.append(event.cause)
        by = str(event.data.get("by", ""))
        for w in self._waits:
            for i in ids:
                w.acked.setdefault(i, (now, by, event.id))
            w.changed.set()

    async def legs(self, run: Run, cmd: Any, timeout_s: float) -> AsyncIterator[dict[str, Any]]:
        """Raise the test alarm with ``run`` (the command runner's) and yield each leg as it happens;
        the last has ``done``."""
        t0 = time.monotonic()

        def ms(t: float) -> float:
            return round((t - t0) * 1000, 1)

        wait = _Wait()
        self._waits.add(wait)  # before the command: a PUBACK may come before the handler returns
        try:
            yield {"leg": "requested", "t_ms": 0.0, "device": cmd.device}
            reply = await run(cmd)
            if not reply.get("ok"):
                yield {"leg": "failed", "t_ms": ms(time.monotonic()), "error": reply.get("error")}
                yield {"done": True, "ok": False, "error": reply.get("error")}
                return
            event_id = reply["event_id"]
            yield {"leg": "committed", "t_ms": ms(time.monotonic()), "event_id": event_id, "seq": reply.get("seq")}
            published = acked = None
            deadline = t0 + timeout_s
            while acked is None:
                if published is None and event_id in wait.delivered:
                    published = wait.delivered[event_id]
                    yield {"leg": "published", "t_ms": ms(published), "event_id": event_id}
                if event_id in wait.acked:
                    acked = wait.acked[event_id]
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait.changed.clear()
                try:
                    await asyncio.wait_for(wait.changed.wait(), left)
                except TimeoutError:
                    pass
            if acked is None:
                missing = ["PUBACK", "ack"] if published is None else ["ack"]
                yield {"leg": "timeout", "t_ms": ms(time.monotonic()), "event_id": event_id,
                       "waiting_for": missing, "timeout_s": timeout_s}
                yield {"done": True, "ok": False, "event_id": event_id,
                       "error": f"no {' and no '.join(missing)} within {timeout_s:g} s"}
                return
            t_ack, by, ack_id = acked
            if published is None and event_id in wait.delivered:  # the PUBACK came with the ack
                yield {"leg": "published", "t_ms": ms(wait.delivered[event_id]), "event_id": event_id}
            yield {"leg": "acknowledged", "t_ms": ms(t_ack), "event_id": event_id, "by": by, "ack_event_id": ack_id}
            yield {"done": True, "ok": True, "event_id": event_id}
        finally:
            self._waits.discard(wait)
