"""Local rules over the event stream: small, pure, separately testable units.

Each rule (:mod:`hub.rules.bed`, :mod:`~hub.rules.door`,
:mod:`~hub.rules.medication`, :mod:`~hub.rules.inactivity`, :mod:`~hub.rules.checkin`,
:mod:`~hub.rules.supervision`) is fed events and ticks with an explicit
``now`` and returns :class:`RuleOutput` values; :class:`Rules` runs the
configured ones (:func:`build_rules` from the ``[rules]`` table,
:mod:`hub.rules.config`) and saves and restores their state across restarts.
Time: :mod:`hub.rules.clock` (an injectable clock; wall-clock windows in the
hub's time zone, DST included).
"""

from __future__ import annotations

from hub.rules.base import Alerting, Rule, RuleOutput, Rules
from hub.rules.bed import BedExit, BedNotReturned
from hub.rules.checkin import CheckIn
from hub.rules.clock import Clock, FakeClock, SystemClock, Window, local_instant, parse_window
from hub.rules.config import RulesConfig, build_rules
from hub.rules.door import DoorNight
from hub.rules.inactivity import Inactivity
from hub.rules.medication import MedicationMissed
from hub.rules.supervision import Supervision

from hub.events import RULE_EVENT_TYPES  # noqa: E402  (the rules' event types live in the contract's registry)

__all__ = [
    "RULE_EVENT_TYPES",
    "Alerting",
    "BedExit",
    "BedNotReturned",
    "CheckIn",
    "Clock",
    "DoorNight",
    "FakeClock",
    "Inactivity",
    "MedicationMissed",
    "Rule",
    "RuleOutput",
    "Rules",
    "RulesConfig",
    "Supervision",
    "SystemClock",
    "Window",
    "build_rules",
    "local_instant",
    "parse_window",
]
