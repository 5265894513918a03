"""What the central holds an event to (the contract's JSON Schema, its list of types, and the
priorities the hub fixes), and which events are the calls an operator acks (:data:`CALL_TYPES`).

The schema and the type list are read from ``contract/`` (the files the hub generates), so the
recorder checks against the contract, not against the hub's code. JSON Schema validation needs
``jsonschema`` (a test dependency); without it :func:`load_validator` says why the check is off.

Priorities: most types take theirs from the residence's config (a rule's ``priority``, a BLE
notify mapping, an ESPA call's priority digit), so only the types whose priority the hub
fixes in its code are checked (:data:`FIXED_PRIORITIES`); a scenario may add or override
entries (``hil.central.CentralRecorder(priorities=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

CONTRACT = Path(__file__).resolve().parents[1] / "contract"

#: The alarm types: each opens (or joins) an episode the central must acknowledge.
ALARM_TYPES: frozenset[str] = frozenset({"alarm.button", "alarm.test", "alarm.nursecall"})

#: A missed daily check-in (:mod:`hub.rules.checkin`): a care call an operator acks like an alarm.
#: Its re-alerts (``cause``: the first one) join its call; a ``checkin.done`` naming it (``data.missed``)
#: closes it; ``--auto-ack`` leaves it alone (see :mod:`central.acks`).
CHECKIN_MISSED = "checkin.missed"
#: The resident's check-in: ``data.missed`` names the missed check-in it ends, if any.
CHECKIN_DONE = "checkin.done"

#: Every type that opens (or joins) a call an operator acks: the alarms and a missed check-in.
CALL_TYPES: frozenset[str] = ALARM_TYPES | {CHECKIN_MISSED}

#: What the faces call a type where its name is not plain enough (otherwise the type itself).
CALL_LABELS: dict[str, str] = {CHECKIN_MISSED: "missed check-in"}


def call_label(type_: str) -> str:
    """The words an operator reads for a call of ``type_`` (``missed check-in``; an alarm: its type)."""
    return CALL_LABELS.get(type_, type_)


#: Types that end an alarm episode, with the state they leave it in (``cause`` and ``data.closes`` name its alarms).
CLOSING_TYPES: dict[str, str] = {"alarm.acknowledged": "acknowledged", "alarm.cancelled": "cancelled"}

#: The reminder the hub sends while an episode waits for its ack (``cause``: the episode's first alarm).
REMINDER_TYPE = "alarm.unacknowledged"

#: Priorities in the order an operator takes them (open alarms are listed by this, then by age).
PRIORITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "normal": 2, "low": 3}


def episode_group(event: Mapping[str, Any]) -> str:
    """Which of a device's open episodes an alarm joins, as the hub groups them (:mod:`hub.alarms`):
    test alarms join the device's test episode, nurse calls the episode of their call address, every
    other alarm the device's one alarm episode. (A missed check-in is grouped by its ``cause``, not by
device: :mod:`central.store.apply`.)"""
    if event.get("type") == "alarm.test":
        return "test"
    if event.get("type") == CHECKIN_MISSED:
        return "checkin"
    if event.get("type") == "alarm.nursecall":
        data = event.get("data")
        return f"call:{data.get('call_address') if isinstance(data, dict) else None}"
    return "alarm"


#: Types whose priority the hub sets in code, whatever the config: the only ones allowed.
#: (alarm.nursecall is mapped from the ESPA call's priority digit by config, so it is not here.)
FIXED_PRIORITIES: dict[str, frozenset[str]] = {
    "alarm.button": frozenset({"critical"}),
    "alarm.cancelled": frozenset({"critical"}),
    "alarm.unacknowledged": frozenset({"critical"}),
    "alarm.test": frozenset({"high"}),
    "alarm.acknowledged": frozenset({"normal"}),
    "hub.degraded": frozenset({"critical"}),
    "hub.recovered": frozenset({"normal"}),
    "hub.started": frozenset({"normal"}),
    "hub.stopping": frozenset({"normal"}),
    "hub.ble_degraded": frozenset({"high"}),
    "hub.ble_recovered": frozenset({"normal"}),
    "device.flooding": frozenset({"high"}),
}

#: Validates one event; returns the problems found (empty: valid).
Validator = Callable[[dict[str, Any]], list[str]]


def priorities(overrides: Mapping[str, Collection[str]] | None = None) -> dict[str, frozenset[str]]:
    """:data:`FIXED_PRIORITIES` with ``overrides`` (type -> allowed priorities) merged over it."""
    out = dict(FIXED_PRIORITIES)
    for type_, allowed in (overrides or {}).items():
        out[type_] = frozenset(allowed)
    return out


def priority_problem(event: dict[str, Any], allowed: Mapping[str, frozenset[str]]) -> str | None:
    """Why ``event``'s priority does not fit its type, or None when it does (or is not checked)."""
    ok = allowed.get(str(event.get("type")))
    prio = event.get("priority")
    if ok is None or prio in ok:
        return None
    return f"priority {prio!r} does not fit {event.get('type')} (allowed: {', '.join(sorted(ok))})"


def known_types(contract: Path = CONTRACT) -> frozenset[str]:
    """The event types the AsyncAPI document lists for this version (later versions add more)."""
    doc = json.loads((contract / "asyncapi.json").read_text())
    return frozenset(doc["channels"]["event"]["parameters"]["type"]["enum"])


def load_validator(contract: Path = CONTRACT) -> tuple[Validator | None, str]:
    """A validator for ``contract/event.schema.json`` and a word on it for the summary.

    Returns ``(None, "skipped: ...")`` when ``jsonschema`` cannot be imported.
    """
    try:
        import jsonschema
    except ImportError as exc:
        return None, f"skipped: jsonschema not importable ({exc})"
    schema = json.loads((contract / "event.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = cls(schema)

    def validate(event: dict[str, Any]) -> list[str]:
        return [
            f"schema: {'/'.join(str(p) for p in err.absolute_path) or '(event)'}: {err.message}"
            for err in sorted(checker.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
        ]

    return validate, f"on ({schema.get('$id', 'event.schema.json')})"
