"""What the demo's central hears: each message printed as the engine takes it in, and waited for.

:class:`Wiretap` is the demo's tap on :class:`central.engine.Engine` (:meth:`~central.engine.Engine.tap`).
The engine calls it on its own thread (the central's asyncio loop) with each status, heartbeat and
stored event; the demo's main thread waits here for what the script needs. Only events of this
run count: everything up to this run's ``hub.started`` (:attr:`Wiretap.floor`) is what the hub
re-sent from an earlier run, and is labelled so.

The central gets each alarm twice (on the shared subscription, and on the alarm subscription every
instance has of its own) and stores it once: a second copy of an event shown already is counted
(:attr:`Wiretap.again`), not printed again. A duplicate of an event this run has not shown (the
hub re-sending what an earlier run stored) is printed, labelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.demo.common import console

if TYPE_CHECKING:
    from central.engine import Heard

#: How an event's fate in the central's store is shown (a new one is not labelled).
OUTCOME_TAGS = {"duplicate": "duplicate: stored before", "held_stored": "the held alarm's stored copy",
                "conflict": "conflict: same id, other body"}


def epoch(ts: Any) -> float | None:
    """An event's RFC 3339 ``ts`` in Unix seconds (None when it is not one)."""
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Wiretap:
    """The messages of one hub the central took in, printed and kept for the script to wait on."""

    def __init__(self, hub_id: str, *, launched: float) -> None:
        self.hub_id = hub_id
        self.launched = launched  # wall clock just before this run's hub was started
        self.events: list[dict[str, Any]] = []
        self.statuses: list[tuple[dict[str, Any], bool]] = []  # (body, live)
        self.floor: int | None = None
        #: copies of events shown already (the store de-duplicated them)
        self.again = 0
        self._shown: set[str] = set()
        #: the alarm's time from the press to the central's store, once the central has it
        self.press_ms: float | None = None
        self.cond = threading.Condition()
        #: raises when waiting is pointless (the hub exited, the central failed); set by the central
        self.check: Callable[[str], None] = lambda what: None
        self._press: tuple[str, float] | None = None

    def pressed(self, device: str) -> None:
        """The resident is about to press ``device``: the next event from it is timed from now."""
        with self.cond:
            self._press, self.press_ms = (device, time.time()), None

    def __call__(self, heard: Heard) -> None:
        """The engine's tap: on the central's loop, never blocking it longer than a print."""
        if heard.hub != self.hub_id:
            return  # a shared broker may carry other hubs: the demo shows its own
        with self.cond:
            if heard.kind == "status":
                live = not heard.retained
                self.statuses.append((heard.body, live))
                label = "[green]live[/green]" if live else "[dim]previous run (retained)[/dim]"
                console.print(f"  [dim]central ←[/dim] [green]status[/green] {heard.body.get('state')}  {label}")
            elif heard.kind == "event":
                self._event(heard)
            self.cond.notify_all()

    def _event(self, heard: Heard) -> None:
        body = heard.body
        t = epoch(body.get("ts"))
        earlier = t is not None and t < self.launched
        if self.floor is None and body.get("type") == "hub.started" and not earlier:
            self.floor = int(body["seq"])
        self.events.append(body)
        device = body.get("source", {}).get("device")
        kind = heard.outcome.kind if heard.outcome is not None else "new"
        if kind == "duplicate" and body.get("id") in self._shown:
            self.again += 1
            return
        self._shown.add(str(body.get("id")))
        after = ""
        if self._press is not None and self._press[0] == device and kind == "new" and not earlier:
            self.press_ms = 1000 * (heard.at - self._press[1])
            self._press = None
            after = f"  [bold]{self.press_ms:.1f} ms after the press[/bold]"
        colour = {"critical": "bold red", "high": "yellow"}.get(body.get("priority", ""), "cyan")
        cause = f" cause={str(body['cause'])[:13]}…" if body.get("cause") else ""
        tags = [OUTCOME_TAGS[kind]] if kind in OUTCOME_TAGS else []
        if earlier:
            tags.append("earlier run")
        tag = f"  [dim]({'; '.join(tags)})[/dim]" if tags else ""
        console.print(
            f"  [dim]central ←[/dim] [{colour}]{body.get('type', '?'):<20}[/{colour}] seq={body.get('seq', '?'):<4} "
            f"id={str(body.get('id'))[:13]}… device={device} route={body.get('route')}{cause}{after}{tag}"
        )

    def wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait for ``ready()`` (called under the lock) to return something; fail at once when :attr:`check` says so."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = ready()
                if found:
                    return found
                self.check(what)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout}s")
                self.cond.wait(min(remaining, 0.25))

    def wait_started(self, timeout: float = 20.0) -> dict[str, Any]:
        """This run's ``hub.started`` (not one the hub re-sends from an earlier run)."""

        def ready() -> dict[str, Any] | None:
            if self.floor is None:
                return None
            return next(e for e in self.events if e.get("type") == "hub.started" and e.get("seq") == self.floor)

        return self.wait(ready, timeout, "hub.started event")

    def wait_event(
        self, type_: str, *, device: str | None = None, cause: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The latest event of this run of ``type_`` (from ``device``, caused by ``cause``)."""

        def ready() -> dict[str, Any] | None:
            found = [
                e
                for e in self.events
                if e.get("type") == type_
                and self.floor is not None
                and int(e.get("seq", 0)) > self.floor
                and (device is None or e.get("source", {}).get("device") == device)
                and (cause is None or e.get("cause") == cause)
            ]
            return found[-1] if found else None

        return self.wait(ready, timeout, f"{type_} event")

    def wait_status(self, state: str, timeout: float = 20.0) -> None:
        """A live status (``online``: the hub's birth; ``offline``: its clean stop), not a retained one."""
        self.wait(lambda: any(live and b.get("state") == state for b, live in self.statuses), timeout,
                  f"live {state} status")
