"""The state of one scenario while it runs: marks, claimed events, step results, the stop flag.

A :class:`RunContext` is shared by the scenario's lanes: the main sequence of
steps and each ``background`` block, which runs in a thread of its own with a
:class:`Lane` (its index prefix, its random draws, its event window).

The event window (``Lane.horizon``): an ``expect_event`` or ``expect_no_event``
step looks at the central's arrivals from the start of the first step that
acted on the world (anything but ``wait``, ``join``, ``repeat``, ``background``,
the ``expect_*`` steps, ``check_central`` and ``check_config``) after this
lane's previous ``expect_event`` or ``expect_no_event``; before any acting
step, at every arrival since setup. So ``press A; press B; expect A; expect B``
sees both alarms even when they arrived while the presses were still held, and
``ack e; expect alarm.acknowledged`` looks only from the ack on. An event
matched by an ``expect_event`` is *claimed* (by id, across lanes): no later
expectation counts it again, ``expect_no_event`` ignores it, and a redelivered
duplicate (same id) never counts twice. ``expect_no_event`` fails on an
unclaimed match anywhere from the window's opening to ``for_ms`` after its own start.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hil.fixtures import Rig
from hil.model import Scenario
from hil.results import Outcome, StepResult

#: How often a waiting step looks again (seconds); also the longest it takes to notice a stop.
POLL_S = 0.05


@dataclass
class Done:
    """What a step handler returns."""

    outcome: Outcome = Outcome.PASS
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    #: The instants the step took effect (its mark gets them); empty: when the step began.
    instants: list[float] = field(default_factory=list)
    #: Event ids behind the instants (``expect_event``), kept per mark for ``ack``.
    ids: list[str] = field(default_factory=list)


@dataclass
class Lane:
    """One thread of steps: the main sequence or a ``background`` block."""

    prefix: str
    rng: random.Random
    #: Index into the central's arrivals where this lane's expectations start looking.
    horizon: int = 0
    #: The step that opened the window, and when (monotonic; 0: the scenario's start).
    opened_by: str = "setup"
    opened_at: float = 0.0
    #: True until a step acts on the world after the lane's last expectation (then it moves ``horizon``).
    fresh: bool = True
    failed: str = ""


@dataclass
class Background:
    """A ``background`` block started by name: its thread and its lane."""

    name: str
    index: str
    thread: threading.Thread
    lane: Lane


class RunContext:
    """Everything the scenario's steps share while it runs."""

    def __init__(self, rig: Rig, scenario: Scenario, seed: int, t0: float) -> None:
        self.rig = rig
        self.scenario = scenario
        self.seed = seed
        #: CLOCK_MONOTONIC seconds at the scenario's start (``at_ms`` counts from here).
        self.t0 = t0
        self.deadline = t0 + scenario.scenario.timeout_s
        #: Unix seconds minus monotonic seconds, to put a monotonic instant on the hub's wall clock.
        self.wall_offset = time.time() - time.monotonic()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.stop_reason = ""
        self.timed_out = False
        self.marks: dict[str, list[float]] = {}
        self.mark_ids: dict[str, list[str]] = {}
        #: Ids the central has acknowledged in this scenario (an ``ack`` step acknowledges each once).
        self.acked: set[str] = set()
        self.claimed: set[str] = set()
        self.results: list[StepResult] = []
        self.backgrounds: dict[str, Background] = {}

    # --- time ---------------------------------------------------------------------------------

    def ms(self, t: float) -> float:
        """Milliseconds from the scenario's start to the monotonic instant ``t``."""
        return round((t - self.t0) * 1000, 3)

    def sleep_until(self, t: float) -> bool:
        """Wait until the monotonic instant ``t``; False when the scenario was stopped first."""
        while True:
            left = t - time.monotonic()
            if left <= 0:
                return not self.stop.is_set()
            if self.stop.wait(min(left, POLL_S)):
                return False

    # --- stopping -----------------------------------------------------------------------------

    def halt(self, reason: str, *, timeout: bool = False) -> None:
        """Stop every lane at its next look (the first reason wins)."""
        with self.lock:
            if not self.stop.is_set():
                self.stop_reason = reason
                self.timed_out = timeout
                self.stop.set()

    def interrupted(self) -> Done:
        """The result of a step the stop cut short: a failure when the scenario ran out of time."""
        if self.timed_out:
            return Done(Outcome.FAIL, f"stopped: {self.stop_reason}")
        return Done(Outcome.SKIP, f"stopped: {self.stop_reason}")

    # --- records ------------------------------------------------------------------------------

    def record(self, result: StepResult) -> None:
        """Keep one step's result (from any lane)."""
        with self.lock:
            self.results.append(result)

    def add_mark(self, name: str, instants: list[float], ids: list[str]) -> None:
        """Append instants (and event ids) to the mark ``name``."""
        with self.lock:
            self.marks.setdefault(name, []).extend(instants)
            if ids:
                self.mark_ids.setdefault(name, []).extend(ids)

    def claim(self, event_id: str) -> bool:
        """Take an event for one expectation; False when another already took it."""
        with self.lock:
            if event_id in self.claimed:
                return False
            self.claimed.add(event_id)
            return True

    def is_claimed(self, event_id: str) -> bool:
        """Has an expectation already taken this event?"""
        with self.lock:
            return event_id in self.claimed
