"""The central's book of events: every arrival, de-duplication by id, seq gaps, and what is wrong.

:class:`Ledger` is plain bookkeeping with no MQTT and no locking (the test rig's recorder,
:class:`hil.central.CentralRecorder`, holds the lock); it does what the contract asks of a central.
The engine (:mod:`central.engine`) keeps its book in a database but judges an id seen again
with the same :func:`again`:

* de-duplicate by ``id``: the same id with the same body again is a harmless duplicate
  (QoS 1 redelivery, a replay); with a different body it is a problem (a *conflict*);
* an alarm held in memory arrives first with ``seq`` 0 and again, same id, with its seq once
  stored (bodies equal but for ``seq``): not a conflict, and 0 is left out of gap detection;
* find gaps by ``seq`` (per hub, strictly increasing across restarts, no gaps): the seqs missing
  between the lowest seen (or ``first_seq`` when given) and the highest. Events may arrive out
  of order (alarms first after an outage), so a gap may close while a backlog drains: read gaps
  at the end. A seq carried by two different ids is a problem too;
* check each event against the schema, its topic, and the priority its type allows; an event
  that came in a batch (``<base>/events``, contract 1.5: one element of it, unpacked by
  :func:`hub.eventbatch.unpack`) must be normal or low priority telemetry, never an alarm.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from msgspec import Struct

from central.policy import Validator, priority_problem
from hub import eventbatch


class Arrival(Struct, frozen=True):
    """One event as the central received it (see :class:`hil.fixtures.Arrival`)."""

    #: CLOCK_MONOTONIC seconds at receipt.
    t: float
    #: The event's JSON body.
    event: dict[str, Any]
    #: True when its ``id`` arrived before (a duplicate, a held alarm's stored copy, or a conflict).
    duplicate: bool
    topic: str


#: What an event whose id the central holds already is, against the body it holds (:func:`again`).
Again = Literal["duplicate", "held_stored", "held_late", "conflict"]


def again(held: Mapping[str, Any], event: Mapping[str, Any]) -> Again:
    """What ``event`` is when the central holds ``held`` under the same id.

    * ``duplicate``: the same body again (QoS 1 redelivery, a replay, a restart's resend);
    * ``held_stored``: ``held`` is an alarm the hub sent from memory (seq 0) and ``event`` is its stored copy,
      equal but for its seq: keep ``event`` (its seq counts for gap detection);
    * ``held_late``: the other way round, a late copy of the held one after the stored one: a duplicate;
    * ``conflict``: a different body under the same id; keep the first and say so.
    """
    if event == held:
        return "duplicate"
    one_held = (event.get("seq") == 0) != (held.get("seq") == 0)
    if one_held and {**event, "seq": 0} == {**held, "seq": 0}:
        return "held_late" if event.get("seq") == 0 else "held_stored"
    return "conflict"


def differing(held: Mapping[str, Any], event: Mapping[str, Any]) -> list[str]:
    """The top-level fields in which two bodies under one id differ, sorted."""
    return sorted(k for k in set(event) | set(held) if event.get(k) != held.get(k))


def _gaps(seen: list[int], lo: int) -> list[tuple[int, int]]:
    """The integers from ``lo`` to ``max(seen)`` not in sorted ``seen``, as inclusive ranges."""
    out: list[tuple[int, int]] = []
    expect = lo
    for n in seen:
        if n > expect:
            out.append((expect, n - 1))
        expect = max(expect, n + 1)
    return out


class Ledger:
    """Every event of one hub's ``event/#`` topics and of its batches (``events``), checked as it arrives."""

    def __init__(
        self,
        *,
        base: str,
        hub: str,
        allowed: Mapping[str, frozenset[str]],
        validator: Validator | None,
        known: frozenset[str] = frozenset(),
        first_seq: int | None = None,
    ) -> None:
        self.base = base
        self.hub = hub
        self.allowed = allowed
        self.validator = validator
        self.known = known
        self.first_seq = first_seq
        self.arrivals: list[Arrival] = []
        #: id -> the body the central holds for it (a held alarm's is replaced by its stored copy).
        self.bodies: dict[str, dict[str, Any]] = {}
        #: seq (> 0) -> the id that carried it first.
        self.seq_ids: dict[int, str] = {}
        self.duplicates = 0
        self.held_stored = 0
        self.conflicts = 0
        self.by_type: Counter[str] = Counter()
        self.unknown_types: Counter[str] = Counter()
        self._problems: list[str] = []

    # --- in -------------------------------------------------------------------------------

    def add(self, topic: str, payload: bytes, t: float) -> Arrival | None:
        """Record one event: a message from ``<base>/event/...``, or one element of a batch from ``<base>/events``
        (``topic`` the batch's, ``payload`` the element's); None (and a problem) when it is no event."""
        try:
            event = json.loads(payload)
        except ValueError as exc:
            self._problems.append(f"{topic}: payload is not JSON ({exc})")
            return None
        if not isinstance(event, dict):
            self._problems.append(f"{topic}: payload is not a JSON object")
            return None
        eid = event.get("id")
        label = f"{event.get('type')} {eid}"
        if self.validator is not None:
            self._problems += [f"{label}: {p}" for p in self.validator(event)]
        if topic == f"{self.base}/{eventbatch.BATCH_LEVEL}":
            if event.get("priority") not in ("normal", "low") or str(event.get("type")).startswith("alarm."):
                self._problems.append(f"{label}: came in a batch on {topic}, but only normal and low priority "
                                      f"telemetry may (priority {event.get('priority')})")
        elif topic != f"{self.base}/event/{event.get('type')}":
            self._problems.append(f"{label}: came on {topic}, not on {self.base}/event/{event.get('type')}")
        if event.get("hub") != self.hub:
            self._problems.append(f"{label}: hub {event.get('hub')!r} on hub {self.hub!r}'s topic")
        duplicate = isinstance(eid, str) and eid in self.bodies
        if duplicate:
            self._again(eid, event, label)
        else:
            if isinstance(eid, str):
                self.bodies[eid] = event
            self.by_type[str(event.get("type"))] += 1
            if event.get("type") not in self.known:
                self.unknown_types[str(event.get("type"))] += 1
            if (why := priority_problem(event, self.allowed)) is not None:
                self._problems.append(f"{label}: {why}")
        self._seq(event, label)
        arrival = Arrival(t=t, event=event, duplicate=duplicate, topic=topic)
        self.arrivals.append(arrival)
        return arrival

    def _again(self, eid: str, event: dict[str, Any], label: str) -> None:
        """An id seen before: a duplicate, a held alarm's stored copy, or a conflict."""
        held = self.bodies[eid]
        kind = again(held, event)
        if kind in ("duplicate", "held_late"):
            self.duplicates += 1  # held_late: a late copy of the held one; the stored one is here already
        elif kind == "held_stored":
            self.held_stored += 1
            self.bodies[eid] = event
        else:
            self.conflicts += 1
            self._problems.append(f"{label}: id seen again with a different body (fields {', '.join(differing(held, event))})")

    def _seq(self, event: dict[str, Any], label: str) -> None:
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
            return
        first = self.seq_ids.setdefault(seq, str(event.get("id")))
        if first != event.get("id"):
            self._problems.append(f"{label}: seq {seq} carried by two ids ({first} first)")

    def note(self, problem: str) -> None:
        """A problem found outside the events (a status or heartbeat that is not JSON, ...)."""
        self._problems.append(problem)

    # --- out ------------------------------------------------------------------------------

    def gaps(self) -> list[tuple[int, int]]:
        """Missing seqs as inclusive ranges, from ``first_seq`` (else the lowest seen) to the highest."""
        if not self.seq_ids:
            return []
        seen = sorted(self.seq_ids)
        return _gaps(seen, seen[0] if self.first_seq is None else self.first_seq)

    def problems(self) -> list[str]:
        """Everything found wrong so far, seq gaps first (as they stand now)."""
        gaps = [f"seq gap: {a}" + (f"..{b}" if b != a else "") + " missing" for a, b in self.gaps()]
        return gaps + list(self._problems)

    def summary(self) -> dict[str, Any]:
        """Counts: received = unique + duplicates + held_stored + conflicts."""
        seqs = self.seq_ids.keys()
        return {
            "received": len(self.arrivals),
            "unique": len(self.bodies),
            "duplicates": self.duplicates,
            "held_stored": self.held_stored,
            "conflicts": self.conflicts,
            "seq_first": min(seqs, default=None),
            "seq_last": max(seqs, default=None),
            "gaps": [[a, b] for a, b in self.gaps()],
            "by_type": dict(sorted(self.by_type.items())),
            "unknown_types": dict(sorted(self.unknown_types.items())),
            "problems": len(self.problems()),
        }
