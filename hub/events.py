"""The event: one versioned JSON object for everything the hub reports.

Every reading, alarm and state change becomes an :class:`Event`. Producers
(drivers, rules, the alarm tracker) build a :class:`Draft`; the outbox turns
it into an :class:`Event` by giving it the hub's next sequence number inside
the same SQLite transaction that stores it.

The JSON Schema in ``contract/event.schema.json`` is generated from these
structs (``python -m hub.contract --write``); a test fails when it drifts.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec

from hub.ids import rfc3339, uuid7
from hub.scaip import Scaip, codes_for

__all__ = [
    "CHECKIN_EVENT_TYPES", "EVENT_TYPES", "RULE_EVENT_TYPES", "SCHEMA_MINOR", "SCHEMA_VERSION", "Draft", "Event",
    "EventId", "EventType", "Priority", "Route", "Source", "Timestamp", "rfc3339", "uuid7",
]

#: Version of the event contract. Bumped only on a breaking change.
SCHEMA_VERSION = 1
#: Minor version of the contract: bumped on an additive change (a new type, a new optional field).
#: 1: ``scaip`` on every event, the data schema of each type. 2: config pushed by the central (``cmd/config``,
#: ``cmd/config-status``, ``config.*`` events). 3: the second path: ``fallback.sent``, ``fallback.failed``,
#: ``path.lost``, ``path.restored``; ``paths`` and ``fallback`` in the heartbeat and status. 4: the daily
#: check-in: ``checkin.done``, ``checkin.missed``, ``cmd/away``, ``cmd/ack`` of a checkin.missed (result ``ended``).
SCHEMA_MINOR = 4


class Priority(str, enum.Enum):
    """How urgent an event is; the outbox sends higher priorities first."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical up to 3 for low: the order pending events go out in."""
        return _RANK[self]

    @property
    def audited(self) -> bool:
        """Critical and high events get an info log line at each step (committed, delivered).

        Normal and low ones (telemetry: readings, battery, bed and door
        changes) only at debug: two JSON lines per reading would cost the
        hub more than forwarding the reading, and wear the SD card. Their
        counts are in the heartbeat and ``status``.
        """
        return _RANK[self] <= 1


_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class Route(str, enum.Enum):
    """Who should respond: nurses (helsetjenesteteam), care workers (omsorgsteam) or anyone."""

    NURSE = "nurse"
    CARE = "care"
    ANY = "any"


EventType = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
        description="Dotted event type, e.g. alarm.button; see the AsyncAPI document for the list.",
    ),
]
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        description="RFC 3339 UTC with milliseconds: when it happened.",
    ),
]
EventId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        description="UUIDv7, time-sortable; the same id on every retry and replay, so the central can de-duplicate.",
    ),
]


class Source(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The device (or the hub itself, or a rule) that the event is about."""

    device: Annotated[str, msgspec.Meta(description="Device id from the hub config, or 'hub' / 'rule:<name>'.")]
    kind: Annotated[str, msgspec.Meta(description="Device kind, e.g. alarm_button, pull_cord, hub.")]
    room: Annotated[str | None, msgspec.Meta(description="Room from the config, if any.")] = None


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """An event as its producer knows it, before the outbox numbers it."""

    type: str
    priority: Priority
    source: Source
    route: Route = Route.ANY
    data: dict[str, Any] = {}
    cause: str | None = None
    id: str = msgspec.field(default_factory=lambda: uuid7())
    ts: str = msgspec.field(default_factory=lambda: rfc3339())


class Event(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One event as published on ``{prefix}/{hub}/event/{type}``."""

    v: Annotated[int, msgspec.Meta(ge=1, description="Schema version of this event.")]
    id: EventId
    hub: Annotated[str, msgspec.Meta(description="Hub id from the config.")]
    seq: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description=(
                "Per-hub sequence number: strictly increasing across restarts, without gaps, so the central can "
                "find what it missed. 0 only on an alarm the hub could not store (its disk refused the commit): "
                "published from memory at once, and published again with the same id and its seq once stored. "
                "Leave 0 out of gap detection."
            ),
        ),
    ]
    ts: Timestamp
    type: EventType
    priority: Priority
    source: Source
    resident: Annotated[
        str, msgspec.Meta(description="Pseudonymous resident id from the config; never a name.")
    ]
    route: Route
    data: Annotated[dict[str, Any], msgspec.Meta(description="Type-specific fields.")] = {}
    cause: Annotated[
        EventId | None, msgspec.Meta(description="Id of the event that led to this one, if any.")
    ] = None
    scaip: Annotated[
        Scaip | None,
        msgspec.Meta(
            description=(
                "SCAIP codes (SS 91100 / TS 50134-9) of this event's type and its source's kind: null when "
                "neither has one, and on an event stored by a hub older than contract 1.1 and sent after the "
                "upgrade."
            )
        ),
    ] = None

    @classmethod
    def from_draft(cls, draft: Draft, *, hub: str, resident: str, seq: int) -> Event:
        """Number a draft: the outbox calls this inside its transaction. The SCAIP codes are added here."""
        return cls(
            v=SCHEMA_VERSION,
            id=draft.id,
            hub=hub,
            seq=seq,
            ts=draft.ts,
            type=draft.type,
            priority=draft.priority,
            source=draft.source,
            resident=resident,
            route=draft.route,
            data=draft.data,
            cause=draft.cause,
            scaip=codes_for(draft.type, draft.source.kind),
        )

    def to_json(self) -> bytes:
        """The wire form: one compact JSON object."""
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse and validate the wire form."""
        return _decoder.decode(raw)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


#: The event types of this version of the contract, with their default priority
#: and what they mean. The AsyncAPI document lists them; later drivers and rules add theirs.
EVENT_TYPES: dict[str, tuple[Priority, str]] = {
    "alarm.button": (
        Priority.CRITICAL,
        "A resident pressed an alarm button or pulled a cord. Pressed again while the device's alarm waits for "
        "its ack, it is a repeat (data.repeat true, cause = the first alarm) and joins that alarm's episode.",
    ),
    "alarm.cancelled": (
        Priority.CRITICAL,
        "An alarm episode was cancelled at the device: the button held (data.how hold; cause = the episode's "
        "first alarm) or a reset sent by the device, e.g. an ESPA cancel record (cause = the alarm it names). "
        "data.closes lists the episode's alarm ids; no reminders follow for any of them.",
    ),
    "alarm.test": (
        Priority.HIGH,
        "A test alarm sent by an installer or the central; needs an ack like any alarm. Further test alarms of "
        "the same device (or of the hub) while one is open join its episode; a test never joins a real alarm's.",
    ),
    "alarm.acknowledged": (
        Priority.NORMAL,
        "The central acknowledged an alarm episode; data.by says who. One cmd/ack of any of the episode's alarms "
        "(the first, a repeat) or reminders ends it all: the LED turns steady and every reminder stops. cause = "
        "the alarm acked (for a reminder, the episode's first alarm); data.closes = the episode's alarm ids "
        "(the first and up to 64 newest; data.alarms counts them all).",
    ),
    "alarm.unacknowledged": (
        Priority.CRITICAL,
        "No acknowledgement arrived within the ack timeout for the alarm episode whose first alarm is `cause`; "
        "repeated every unack_repeat_s until it is acked or cancelled. One reminder stream per episode however "
        "many alarms joined it (data.alarms counts them, data.reminder numbers the reminders).",
    ),
    "device.online": (Priority.NORMAL, "A device reports again."),
    "device.offline": (Priority.HIGH, "A device stopped reporting or could not be opened."),
    "device.battery_low": (Priority.NORMAL, "A device's battery is below its threshold."),
    "device.fault": (Priority.HIGH, "A device reports a fault (data.fault: jammed, empty, lid_open, ...)."),
    "bed.exit": (Priority.NORMAL, "The bed mat has read empty for its exit_after_s (no flapping when turning over)."),
    "bed.return": (Priority.NORMAL, "Back in bed after a bed.exit, held for return_after_s; data.away_s."),
    "medication.due": (Priority.NORMAL, "The dispenser offers a dose (data.dose_id, scheduled, compartment)."),
    "medication.taken": (Priority.NORMAL, "The dose was taken (data.late when after it was reported missed)."),
    "medication.missed": (
        Priority.HIGH,
        "A dose was missed: reported by the dispenser, or not taken within grace_s (data.reported_by).",
    ),
    "door.open": (Priority.NORMAL, "A door or window sensor reports open."),
    "door.close": (Priority.NORMAL, "A door or window sensor reports closed."),
    "motion.activity": (Priority.NORMAL, "A motion or occupancy sensor saw someone (at most once per activity_interval_s)."),
    "sensor.reading": (
        Priority.LOW,
        "Telemetry from a BLE sensor (data.values), sent when a value changes or every telemetry_interval_s.",
    ),
    "alarm.nursecall": (
        Priority.CRITICAL,
        "A call from the building's nurse-call system (ESPA 4.4.4); priority mapped from the call's priority. "
        "Calls of the same call address (data.call_address) while one is open join its episode.",
    ),
    "hub.started": (Priority.NORMAL, "The hub daemon started."),
    "hub.ble_degraded": (
        Priority.HIGH,
        "The BLE scanner stopped hearing configured devices (InProgress, adapter gone, silence); it is being rebuilt.",
    ),
    "hub.ble_recovered": (Priority.NORMAL, "Adverts flow again after hub.ble_degraded (data.outage_s, adapter)."),
    "hub.stopping": (Priority.NORMAL, "The hub daemon is stopping cleanly."),
    "hub.degraded": (
        Priority.CRITICAL,
        "A part of the hub is unhealthy (data.component: store, link, task:<name>; data.reason): it may not get "
        "every event through. Sent when it turns unhealthy or its reason changes (at most once a minute).",
    ),
    "hub.recovered": (Priority.NORMAL, "The component in data.component is well again (data.outage_s, data.was)."),
    "hub.config_reloaded": (
        Priority.NORMAL,
        "The hub applied a new config on SIGHUP (systemctl reload) without restarting: data.sha256 (the new "
        "file's; the retained status says it too), data.previous_sha256, data.changed (the tables and devices "
        "that changed). Open alarms and the outbox carry on.",
    ),
    "hub.config_refused": (
        Priority.HIGH,
        "The hub refused a new config on SIGHUP and runs on with the one it had (data.running_sha256): "
        "data.reason invalid (data.errors counts the problems, data.lines gives their line numbers; the "
        "messages and values stay in the hub's journal), unreadable, needs_restart (data.keys: hub.id, "
        "mqtt.prefix, store.dir, ... changed; restart the service to apply it) or attach_failed (a driver could "
        "not start with it, data.driver; it runs on as before); data.sha256 is the refused file's (null when "
        "unreadable).",
    ),
    "fallback.sent": (
        Priority.HIGH,
        "An SMS to an on-call number (data.to) through the modem (data.device): the alarm episode whose first "
        "alarm is `cause` waited fallback_after_s for an ack, or was open with the link down for link_down_after_s "
        "(data.reason). One per number and episode (data.reminder 0), then reminders (1, 2 ...). A reply OK from "
        "that number acknowledges the episode (alarm.acknowledged, data.by = the number).",
    ),
    "fallback.failed": (
        Priority.CRITICAL,
        "An SMS of the fallback could not be sent (data.error cms_error, timeout, unavailable, error; data.detail, "
        "e.g. +CMS ERROR: 500); tried again in data.retry_in_s, doubling. cause: the episode's first alarm.",
    ),
    "path.lost": (
        Priority.HIGH,
        "A second path went down: data.path gsm (data.reason no_sim, not_registered, weak_signal, not_answering, "
        "unplugged, io_error) or interface (down, no_carrier, missing). The MQTT link's state: status paths.mqtt.",
    ),
    "path.restored": (Priority.NORMAL, "A second path is up again (data.path, data.outage_s, data.was)."),
    "config.refused": (
        Priority.HIGH,
        "The hub refused a config pushed by the central (cmd/config) and runs on with the one it had "
        "(data.running_sha256): data.reason says why (bad_signature, stale_version, invalid with data.errors and "
        "data.lines, pinned, needs_restart, ...); the reply to the command has every FILE:LINE:COL line.",
    ),
    "config.applied": (
        Priority.NORMAL,
        "The hub applied a pushed config (data.version, data.sha256, data.changed) as a reload applies a file; it "
        "is on probation for data.probation_s: config.confirmed or config.rolled_back follows.",
    ),
    "config.confirmed": (
        Priority.NORMAL,
        "The pushed config passed its probation: the hub reached the central on it (its birth acknowledged, its "
        "command subscription granted) within probation_s. It is the last good config from now on.",
    ),
    "config.rolled_back": (
        Priority.HIGH,
        "The hub gave up a pushed config by itself and runs the last good one (data.to_version; null: its local "
        "file): data.reason unreachable (the central not reached within probation_s), restarted (the hub stopped "
        "before the probation passed) or unusable; data.detail says what happened. Sent once the link is back.",
    ),
    "device.flooding": (
        Priority.HIGH,
        "A device sends telemetry faster than its limit: the excess is dropped and counted (data.state started, "
        "limit_per_s), until it keeps within it for a while (data.state ended, data.dropped). Alarms are never limited.",
    ),
}


#: The event types the local rules (:mod:`hub.rules`) emit, part of :data:`EVENT_TYPES`. Supervision emits the
#: existing ``device.offline`` / ``device.online`` / ``device.battery_low`` (with ``data.rule = "supervision"``).
RULE_EVENT_TYPES: dict[str, tuple[Priority, str]] = {
    "rule.bed_not_returned": (
        Priority.HIGH,
        "Out of bed at night and not back: a bed.exit inside the night window with no bed.return within after_s; "
        "re-sent every realert_s while still out at night (data.realert counts them). cause: the bed.exit.",
    ),
    "rule.bed_exit": (
        Priority.HIGH,
        "A bed.exit inside the night window, reported at once for residents whose care plan asks for it. "
        "cause: the bed.exit.",
    ),
    "rule.door_night": (
        Priority.HIGH,
        "The door opened at night and the resident is not known to be inside: no motion or bed.return within "
        "inside_after_s after it closed (data.state closed), or it was held open for open_after_s (data.state open, "
        "re-sent every realert_s while open at night). cause: the door.open.",
    ),
    "rule.medication_missed": (
        Priority.HIGH,
        "A dose was missed: medication.missed, or medication.due with no medication.taken within grace_s; once "
        "per dose (data.dose_id, data.reported_by). cause: the medication.missed or medication.due.",
    ),
    "rule.inactivity": (
        Priority.NORMAL,
        "No activity (motion, bed, door, button, dose taken) for after_s inside the day window (data.quiet_s); "
        "re-sent every realert_s while quiet. cause: the last activity, if any.",
    ),
}

EVENT_TYPES.update(RULE_EVENT_TYPES)

#: The resident's daily check-in (:mod:`hub.rules.checkin`), part of :data:`EVENT_TYPES` too.
CHECKIN_EVENT_TYPES: dict[str, tuple[Priority, str]] = {
    "checkin.done": (Priority.LOW, "The resident checked in on purpose: a check-in button's press, or a BLE button's "
                     "configured gesture (data.gesture); never an alarm. data.window: the window it falls in; "
                     "data.missed: the checkin.missed it ends (null: none)."),
    "checkin.missed": (Priority.HIGH, "No check-in inside a window by its end (data.window, data.due_at), the "
                       "resident not away: a call, not an alarm. Re-sent every realert_s (cause: the first) until a "
                       "check-in, a cmd/ack of any of them, the resident away, or the next window."),
}
EVENT_TYPES.update(CHECKIN_EVENT_TYPES)
