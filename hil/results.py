"""What a run found: outcomes, each step's timing, measurements, and the record of the whole run.

The JSON record (:func:`hil.report.record.write`), the JUnit XML and the HTML
report are all views of a :class:`RunSet`.
"""

from __future__ import annotations

import enum
from typing import Any

from msgspec import Struct, field

from hil.model import Limit


class Outcome(str, enum.Enum):
    """A step's, a measurement's or a scenario's verdict."""

    PASS = "pass"
    #: Within the limits, but within ``marginal_pct`` of one: passes, and says so.
    MARGINAL = "marginal"
    FAIL = "fail"
    #: The rig lacks a fixture the scenario needs (``reason`` names it).
    SKIP = "skip"
    #: The rig itself broke (a fixture failed), not the hub: neither pass nor fail.
    ERROR = "error"


def worst(outcomes: list[Outcome]) -> Outcome:
    """The scenario's outcome from its parts: error over fail over marginal over pass."""
    for o in (Outcome.ERROR, Outcome.FAIL, Outcome.MARGINAL):
        if o in outcomes:
            return o
    return Outcome.PASS


class StepResult(Struct, kw_only=True):
    """One step as it ran. ``index`` is its place (``"4"``, ``"4.2.1"``: step 4, pass 2, its step 1)."""

    index: str
    do: str
    #: ms from the scenario's start to the step's start, and how long it took.
    at_ms: float
    duration_ms: float
    outcome: Outcome
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class MeasurementResult(Struct, kw_only=True):
    """A declared measurement, computed: its figure, the samples behind it, the limit that applied."""

    name: str
    stat: str
    unit: str
    value: float | None
    samples: list[float] = field(default_factory=list)
    limit: Limit | None = None
    outcome: Outcome = Outcome.PASS
    detail: str = ""


class ScenarioResult(Struct, kw_only=True):
    """One scenario on one rig, once."""

    name: str
    title: str
    path: str
    outcome: Outcome
    reason: str = ""
    #: Wall-clock start (Unix seconds) and length.
    started: float = 0.0
    duration_s: float = 0.0
    seed: int = 0
    steps: list[StepResult] = field(default_factory=list)
    measurements: list[MeasurementResult] = field(default_factory=list)
    #: The central recorder's counts (received, unique, duplicates, gaps, by type).
    central: dict[str, Any] = field(default_factory=dict)
    #: The hub's log tail when the scenario failed or errored.
    log_tail: str = ""


class RunRecord(Struct, kw_only=True):
    """One pass over the scenario set (``--repeat N`` makes N)."""

    rig: str
    rig_kind: str
    hub_version: str
    config_hash: str
    started: float
    duration_s: float
    host: str
    repeat: int = 1
    scenarios: list[ScenarioResult] = field(default_factory=list)
    rig_info: dict[str, Any] = field(default_factory=dict)


class RunSet(Struct, kw_only=True):
    """Every pass of one ``hil run``."""

    runs: list[RunRecord]
    command: str = ""

    def flaky(self) -> dict[str, list[str]]:
        """Scenarios whose outcome differed between passes: name to the outcomes, pass by pass."""
        seen: dict[str, list[str]] = {}
        for run in self.runs:
            for s in run.scenarios:
                seen.setdefault(s.name, []).append(s.outcome.value)
        return {n: o for n, o in seen.items() if len(set(o)) > 1}
