"""A CentralView for the faces' tests: state the test sets, changes it pushes, acks it scripts."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from central.view import AckOutcome, AlarmView, Change, DeviceProblem, HubView, Snapshot
from hil.harness.mosquitto import free_port

_RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}


def iso(seconds_ago: float = 0.0) -> str:
    """RFC 3339 UTC, ``seconds_ago`` before now."""
    t = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alarm(event_id: str, *, hub: str = "hub-a", route: str = "nurse", priority: str = "critical",
          room: str | None = "bedroom", age_s: float = 5.0, **kw: Any) -> AlarmView:
    """An open alarm.button on ``hub``, ``age_s`` old."""
    fields: dict[str, Any] = dict(
        event_id=event_id, hub=hub, type="alarm.button", priority=priority, route=route, device="button-1",
        kind="alarm_button", room=room, resident="R-0001", ts=iso(age_s), received=iso(age_s), state="open",
    )
    fields.update(kw)
    return AlarmView(**fields)


def hub(name: str, state: str = "online", *, heartbeat_age_s: float = 20.0, **kw: Any) -> HubView:
    """A hub as the central supervises it."""
    return HubView(hub=name, state=state, last_heartbeat=iso(heartbeat_age_s), last_status=iso(3600),  # type: ignore[arg-type]
                   level_s=180.0, seq_last=42, **kw)


def route_matches(route: str, wanted: str | None) -> bool:
    """The console's filter: a team sees its own alarms and those for anyone."""
    return wanted is None or route in (wanted, "any")


class FakeCentral:
    """Implements :class:`central.view.CentralView` over plain dicts, on the test's loop."""

    def __init__(self) -> None:
        self.alarms: dict[str, AlarmView] = {}
        self.hubs: dict[str, HubView] = {}
        self.problems: dict[tuple[str, str, str], DeviceProblem] = {}
        self.acks: list[tuple[str, str]] = []
        #: what ack() answers: "acknowledged", a refusal result ("unknown_event"), None (no reply) or an exception.
        self.ack_reply: str | None | BaseException = "acknowledged"
        self.ack_delay_s = 0.0
        #: when set, snapshot() raises it; fail_feed() makes every change iterator raise.
        self.snapshot_error: BaseException | None = None
        self._subs: set[asyncio.Queue[Change]] = set()

    def reset(self) -> None:
        """Empty state and the default ack behaviour (subscribers stay)."""
        self.alarms.clear()
        self.hubs.clear()
        self.problems.clear()
        self.acks.clear()
        self.ack_reply = "acknowledged"
        self.ack_delay_s = 0.0
        self.snapshot_error = None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def push(self, change: Change) -> None:
        for q in list(self._subs):
            try:
                q.put_nowait(change)
            except asyncio.QueueFull:
                q.get_nowait()
                q.put_nowait(Change(kind="resync"))

    def add_alarm(self, a: AlarmView) -> None:
        self.alarms[a.event_id] = a
        self.push(Change(kind="alarm", alarm=a))

    def close_alarm(self, event_id: str, by: str) -> None:
        a = msgspec.structs.replace(self.alarms.pop(event_id), state="acknowledged", acked_by=by, acked_at=iso())
        self.push(Change(kind="alarm", alarm=a))

    def set_hub(self, h: HubView) -> None:
        self.hubs[h.hub] = h
        self.push(Change(kind="hub", hub=h))

    def add_problem(self, p: DeviceProblem) -> None:
        self.problems[(p.hub, p.device, p.problem)] = p
        self.push(Change(kind="problem", problem=p))

    def clear_problem(self, hub: str, device: str, problem: str) -> None:
        p = self.problems.pop((hub, device, problem))
        self.push(Change(kind="problem_cleared", problem=p))

    def resync(self) -> None:
        self.push(Change(kind="resync"))

    def fail_feed(self) -> None:
        """Every subscriber's iterator raises (the engine's feed broke)."""
        self.push(Change(kind="lost", detail={"fail": True}))

    async def snapshot(self, *, route: str | None = None) -> Snapshot:
        if self.snapshot_error is not None:
            raise self.snapshot_error
        alarms = sorted((a for a in self.alarms.values() if route_matches(a.route, route)),
                        key=lambda a: (_RANK[a.priority], a.ts))
        problems = [p for p in self.problems.values() if route_matches(p.route or "any", route)]
        return Snapshot(alarms=tuple(alarms), hubs=tuple(sorted(self.hubs.values(), key=lambda h: h.hub)),
                        problems=tuple(problems), at=iso())

    async def ack(self, event_id: str, by: str) -> AckOutcome:
        self.acks.append((event_id, by))
        if self.ack_delay_s:
            await asyncio.sleep(self.ack_delay_s)
        reply = self.ack_reply
        if isinstance(reply, BaseException):
            raise reply
        if reply is None:
            return AckOutcome(ok=False, event_id=event_id, by=by, error="no reply from the hub within 10 s")
        if reply not in ("acknowledged", "already_acknowledged") or event_id not in self.alarms:
            return AckOutcome(ok=False, event_id=event_id, by=by, result="unknown_event",
                              error=f"the hub does not know the event {event_id}")
        self.close_alarm(event_id, by)
        return AckOutcome(ok=True, event_id=event_id, by=by, result=reply, closes=(event_id,))

    async def changes(self) -> AsyncIterator[Change]:
        q: asyncio.Queue[Change] = asyncio.Queue(maxsize=64)
        self._subs.add(q)
        try:
            while True:
                change = await q.get()
                if change.detail == {"fail": True}:
                    raise RuntimeError("the feed broke")
                yield change
        finally:
            self._subs.discard(q)


@contextlib.asynccontextmanager
async def serving(view: Any, *, port: int = 0, keepalive_s: float = 15.0) -> AsyncIterator[str]:
    """The web console for ``view`` on a free port, for the ``async with`` block; yields its base URL."""
    from central.web import serve

    port = port or free_port()
    started = asyncio.Event()
    task = asyncio.ensure_future(serve(view, "127.0.0.1", port, started=started, keepalive_s=keepalive_s))
    done, _ = await asyncio.wait({task, asyncio.ensure_future(started.wait())}, timeout=10,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert started.is_set(), "the web console did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def http(method: str, url: str, *, json: Any = None, form: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request with the standard library (in a thread): the status and the decoded JSON body."""

    def call() -> tuple[int, Any]:
        data = None
        hdrs = dict(headers or {})
        if json is not None:
            data, hdrs["content-type"] = msgspec.json.encode(json), "application/json"
        elif form is not None:
            data, hdrs["content-type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, msgspec.json.decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, msgspec.json.decode(err.read())

    return await asyncio.to_thread(call)
