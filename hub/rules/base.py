"""The shape of a rule, and the engine that runs the configured ones.

A rule is a small pure object over the event stream: it is told about each
event (:meth:`Rule.on_event`) and about the passing of time
(:meth:`Rule.tick`), both with an explicit ``now`` (unix seconds, see
:mod:`hub.rules.clock`), and returns what the hub should emit as
:class:`RuleOutput` values. It never reads a clock, sleeps or does I/O.

Correct whenever called: every timer is a deadline compared with ``now``, so
a tick after a long gap (a busy loop, a restart) fires what became due in
between, once, and :meth:`Rule.on_event` first fires what was due before the
event (a bed return that arrives after the deadline does not hide the
missed deadline).

State survives a restart: :meth:`Rules.state` is a JSON-serialisable dict;
a new engine built from the same config and given it with
:meth:`Rules.restore` carries on (a bed exit at 02:00, a restart at 02:05,
and the alert still comes at 02:20). Save it whenever an :meth:`on_event`
or :meth:`tick` returned outputs (best in the transaction that stores them),
and now and then otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hub.events import Draft, Event, Priority, Route, Source, rfc3339

__all__ = ["Alerting", "RuleOutput", "Rule", "Rules", "STATE_VERSION", "iso", "shifted"]

#: Version of the saved state layout; a state of another version is not restored.
STATE_VERSION = 1


@dataclass(frozen=True)
class RuleOutput:
    """An event a rule wants the hub to emit.

    ``device`` is the device the event is about (its Source: kind, room), or
    None when it is about the rule itself (Source ``rule:<rule>``, kind ``rule``).
    ``cause`` is the id of the event that started the condition; re-alerts
    carry the same cause as the first alert.
    """

    type: str
    priority: Priority
    route: Route
    data: dict[str, Any] = field(default_factory=dict)
    cause: str | None = None
    device: str | None = None
    rule: str = ""
    #: The event's id when the rule must know it beforehand (to match a later ``cmd/ack``); None: a new one.
    id: str | None = None

    def to_draft(self, source: Source | None = None) -> Draft:
        """A :class:`Draft` for the outbox; ``source`` is the device's, or None for the rule's own."""
        if source is None:
            source = Source(device=f"rule:{self.rule}", kind="rule")
        draft = Draft(
            type=self.type, priority=self.priority, source=source, route=self.route, data=self.data, cause=self.cause
        )
        return draft if self.id is None else msgspec.structs.replace(draft, id=self.id)


def iso(t: float | None) -> str | None:
    """Unix seconds as the contract's RFC 3339 UTC text (None stays None)."""
    return None if t is None else rfc3339(t)


@dataclass
class Alerting:
    """A condition that alerts once, then re-alerts at most every ``realert_s`` while it lasts."""

    cause: str | None
    first_at: float | None = None
    last_at: float | None = None
    count: int = 0

    @property
    def alerted(self) -> bool:
        return self.count > 0

    def realert_due(self, now: float, realert_s: float) -> bool:
        """A re-alert is due: alerted before, re-alerts on, and ``realert_s`` since the last one."""
        return self.count > 0 and realert_s > 0 and self.last_at is not None and now - self.last_at >= realert_s

    def shift(self, step: float) -> None:
        """The wall clock was set by ``step`` seconds: move the instants with it."""
        self.first_at = shifted(self.first_at, step)
        self.last_at = shifted(self.last_at, step)

    def mark(self, now: float) -> int:
        """Record an alert sent at ``now``; returns how many re-alerts this one is (0 for the first)."""
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.count += 1
        return self.count - 1

    def dump(self) -> dict[str, Any]:
        return {"cause": self.cause, "first_at": self.first_at, "last_at": self.last_at, "count": self.count}

    @classmethod
    def load(cls, d: dict[str, Any]) -> Alerting:
        return cls(
            cause=_opt_str(d.get("cause")),
            first_at=_opt_float(d.get("first_at")),
            last_at=_opt_float(d.get("last_at")),
            count=int(d.get("count", 0)),
        )


def shifted(t: float | None, step: float) -> float | None:
    """An instant moved by a wall-clock step (None stays None)."""
    return None if t is None else t + step


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number, found {v!r}")
    return float(v)


def _req_float(v: Any) -> float:
    if v is None:
        raise ValueError("expected a number, found nothing")
    return _opt_float(v)  # type: ignore[return-value]


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"expected a string, found {v!r}")
    return v


class Rule(abc.ABC):
    """One local rule. Subclasses implement :meth:`handle`, :meth:`tick`, :meth:`state` and :meth:`restore`."""

    #: the rule's name: its config table under ``[rules]`` and its key in the saved state
    name: str = ""

    def __init__(self, *, priority: Priority, route: Route) -> None:
        self.priority = priority
        self.route = route

    def on_event(self, event: Event, now: float) -> list[RuleOutput]:
        """An event happened at ``now``: first what fell due before it, then what it causes."""
        return self.tick(now) + self.handle(event, now)

    @abc.abstractmethod
    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        """React to one event (timers already brought up to ``now``)."""

    @abc.abstractmethod
    def tick(self, now: float) -> list[RuleOutput]:
        """Fire what is due at ``now``; called every few seconds, and correct after any gap."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """What must survive a restart, JSON-serialisable."""

    def clock_stepped(self, step: float) -> None:
        """The wall clock was set by ``step`` seconds (NTP after a boot without a real-time clock).

        Move every instant the rule keeps by ``step``, so that its durations
        stay real elapsed time. A rule that keeps no instants has nothing to do.
        """

    @abc.abstractmethod
    def restore(self, state: dict[str, Any], now: float) -> None:
        """Carry on from :meth:`state` saved earlier. Raises (leaving the rule as it was) if it is unusable."""

    def output(
        self, type: str, data: dict[str, Any], *, cause: str | None = None, device: str | None = None
    ) -> RuleOutput:
        """An output with this rule's configured priority and route."""
        return RuleOutput(
            type=type, priority=self.priority, route=self.route, data=data, cause=cause, device=device, rule=self.name
        )


class Rules:
    """The configured rules of a residence, fed the event stream and the ticks.

    Events of type ``rule.*`` are not passed on (no rule reacts to a rule's
    alert, so no feedback loops); the ``device.*`` events that supervision
    emits carry ``data.rule = "supervision"`` and supervision ignores them.
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: list[Rule] = list(rules)
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes or "" in names:
            raise ValueError(f"every rule needs its own name; found {dupes or ['']!r} more than once or empty")

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        """The rule of that name, if configured."""
        return next((r for r in self.rules if r.name == name), None)

    def on_event(self, event: Event, now: float) -> list[RuleOutput]:
        """Feed one event (any type) to every rule; returns what to emit, in order."""
        if event.type.startswith("rule."):
            return self.tick(now)
        out: list[RuleOutput] = []
        for rule in self.rules:
            out += rule.on_event(event, now)
        return out

    def handle(self, event: Event, now: float) -> list[RuleOutput]:
        """Feed one event to every rule without ticking first (:meth:`on_events`' part); ``rule.*`` ones to none."""
        if event.type.startswith("rule."):
            return []
        out: list[RuleOutput] = []
        for rule in self.rules:
            out += rule.handle(event, now)
        return out

    def tick(self, now: float) -> list[RuleOutput]:
        """Let every rule fire what is due at ``now``."""
        out: list[RuleOutput] = []
        for rule in self.rules:
            out += rule.tick(now)
        return out

    def report(self, device: str, now: float, *, battery: int | float | None = None) -> list[RuleOutput]:
        """A device was heard from (any reading or advert, even one that makes no event).

        Supervision needs this: most readings (a bed mat's 60-second repeats, a
        BLE sensor's adverts) never become events. ``battery`` (percent) only
        for drivers that do not watch the battery themselves (the serial
        drivers do, and emit their own ``device.battery_low``).
        """
        out = self.tick(now)
        for rule in self.rules:
            report = getattr(rule, "report", None)
            if report is not None:
                out += report(device, now, battery=battery)
        return out

    def clock_stepped(self, step: float) -> None:
        """The wall clock was set by ``step`` seconds: every rule moves its instants with it."""
        for rule in self.rules:
            rule.clock_stepped(step)

    def state(self) -> dict[str, Any]:
        """Every rule's state, keyed by rule name, JSON-serialisable."""
        return {"v": STATE_VERSION, "rules": {r.name: r.state() for r in self.rules}}

    def restore(self, state: dict[str, Any], now: float) -> list[str]:
        """Carry on from a saved :meth:`state`; returns the names of rules whose saved state was unusable.

        Those rules (and rules with no saved state, e.g. newly enabled) start
        afresh; saved state of rules no longer configured is dropped.
        """
        if not isinstance(state, dict) or state.get("v") != STATE_VERSION or not isinstance(state.get("rules"), dict):
            return [r.name for r in self.rules]
        saved: dict[str, Any] = state["rules"]
        bad: list[str] = []
        for rule in self.rules:
            if rule.name not in saved:
                continue
            try:
                s = saved[rule.name]
                if not isinstance(s, dict):
                    raise ValueError(f"expected an object, found {type(s).__name__}")
                rule.restore(s, now)
            except Exception:  # noqa: BLE001 - a bad saved state must not keep the hub from starting
                bad.append(rule.name)
        return bad
