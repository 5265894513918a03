"""The hub's other documents, as structs: the retained status, the heartbeat, and the replies to commands.

They describe what :mod:`hub.status`, :mod:`hub.command_runner`,
:mod:`hub.commandgate` and the drivers' commands send; the AsyncAPI document's
schemas are generated from them, and ``tests/test_contract_e2e.py`` checks
what a real hub sends against those schemas (and that the ack results are
:class:`hub.alarms.AckResult`'s). Like the event data, every object is open
to keys a later minor version adds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from hub.contractdoc.configdocs import ConfigPushReply, ConfigRefusedReply, ConfigStatusReply
from hub.eventdata.base import UNSET, EventId, Seconds, Sha256, Timestamp, Unset
from hub.events import Route


class _Doc(msgspec.Struct, kw_only=True, frozen=True):
    pass


# --- status (retained) ------------------------------------------------------------------


class StatusDevice(_Doc):
    """A configured device, as the birth lists it."""

    id: Annotated[str, msgspec.Meta(description="Device id (source.device in its events).")]
    kind: Annotated[str, msgspec.Meta(description="Device kind (source.kind).")]
    room: Annotated[str | None, msgspec.Meta(description="Room from the config.")]
    route: Route


class StatusOnline(_Doc):
    """The birth: published retained on every connect and reconnect."""

    state: Literal["online"]
    hub: Annotated[str, msgspec.Meta(description="Hub id.")]
    version: Annotated[str, msgspec.Meta(description="The hub's software version.")]
    started: Annotated[Timestamp, msgspec.Meta(description="When the hub daemon started.")]
    config_sha256: Annotated[Sha256, msgspec.Meta(description="SHA-256 of the config it runs (changes on a reload).")]
    devices: Annotated[list[StatusDevice], msgspec.Meta(description="Every configured device.")]


class StatusOffline(_Doc):
    """Offline: the last will the broker publishes when the connection is lost, or the hub's own on a clean stop."""

    state: Literal["offline"]
    hub: Annotated[str, msgspec.Meta(description="Hub id.")]
    reason: Annotated[
        Literal["connection lost", "stopped"],
        msgspec.Meta(description="connection lost: the last will (the broker lost the hub); stopped: a clean stop."),
    ]


# --- heartbeat and status reply ------------------------------------------------------------


class OutboxStatus(_Doc):
    """The hub's store of events."""

    pending: Annotated[int, msgspec.Meta(ge=0, description="Events stored, not yet at the broker.")]
    pending_alarms: Annotated[int, msgspec.Meta(ge=0, description="Of those, alarms.")]
    stored: Annotated[int, msgspec.Meta(ge=0, description="Events in the store (delivered ones are kept a while).")]
    last_seq: Annotated[int, msgspec.Meta(ge=0, description="The last seq allocated.")]
    oldest_pending_ts: Annotated[Timestamp | None, msgspec.Meta(description="ts of the oldest pending event.")]
    evicted: Annotated[int, msgspec.Meta(ge=0, description="Undelivered telemetry evicted to stay within [store] max_mb.")]
    bytes: Annotated[int, msgspec.Meta(ge=0, description="Bytes of stored events (bounded by [store] max_mb).")]
    held: Annotated[int, msgspec.Meta(ge=0, description="Alarms the disk refused, held in memory and sent with seq 0.")]
    refused_full: Annotated[int, msgspec.Meta(ge=0, description="Telemetry refused while the disk was short of space.")]


class LinkStatus(_Doc):
    """The MQTT connection."""

    state: Literal["connecting", "online", "backoff", "stopped"]
    broker: Annotated[str | None, msgspec.Meta(description="host:port of the broker it is (or was last) connected to.")]
    connects: Annotated[int, msgspec.Meta(ge=0, description="Successful connections since the hub started.")]
    last_error: Annotated[str | None, msgspec.Meta(description="The last connection error.")]
    error_kind: Annotated[str | None, msgspec.Meta(description="Its kind: tls, auth, network or protocol.")]
    failures: Annotated[int, msgspec.Meta(ge=0, description="Failed attempts since the last success.")]


class ForwarderStatus(_Doc):
    """The publisher of stored events."""

    inflight: Annotated[int, msgspec.Meta(ge=0, description="Published, waiting for the broker's PUBACK.")]
    queued: Annotated[int, msgspec.Meta(ge=0, description="Waiting to be published.")]
    delivered: Annotated[int, msgspec.Meta(ge=0, description="Delivered since the hub started.")]
    refused: Annotated[int, msgspec.Meta(ge=0, description="Refused by the broker (a PUBACK with an error).")]
    held: Annotated[int, msgspec.Meta(ge=0, description="Held alarms (seq 0) being sent.")]
    send_errors: Annotated[int, msgspec.Meta(ge=0, description="Publishes that failed (the event is tried again).")]


class OpenAlarm(_Doc):
    """An open alarm episode."""

    event_id: Annotated[EventId, msgspec.Meta(description="The episode's first alarm.")]
    device: Annotated[str, msgspec.Meta(description="Its device.")]
    type: Annotated[str, msgspec.Meta(description="The first alarm's type.")]
    state: Annotated[
        Literal["sent", "delivered"],
        msgspec.Meta(description="sent: an alarm of it is not at the broker yet; delivered: all are."),
    ]
    alarms: Annotated[int, msgspec.Meta(ge=1, description="Alarms in the episode, the first included.")]
    latest: Annotated[EventId, msgspec.Meta(description="Its newest alarm.")]
    held: Annotated[int, msgspec.Meta(ge=0, description="Of its alarms, those held in memory (seq 0).")]
    reminders: Annotated[int, msgspec.Meta(ge=0, description="alarm.unacknowledged reminders sent for it.")]


class Problem(_Doc):
    """An unhealthy component."""

    reason: str
    for_s: Seconds


class HealthStatus(_Doc):
    """The hub's own health; each change is also an event (hub.degraded / hub.recovered)."""

    state: Literal["ok", "degraded"]
    problems: Annotated[
        dict[str, Problem], msgspec.Meta(description="Component (store, link, task:<name>) -> its problem.")
    ]


class TaskStatus(_Doc):
    """A supervised task."""

    state: Annotated[str, msgspec.Meta(description="running, restarting, failed or stopped.")]
    restarts: Annotated[int, msgspec.Meta(ge=0)]
    last_error: str | Unset = UNSET
    stalled_s: Annotated[Seconds, msgspec.Meta(description="Seconds without progress, when stalled.")] | Unset = UNSET


class CommandCounters(_Doc):
    """Commands from the central."""

    handled: Annotated[int, msgspec.Meta(ge=0)]
    refused: Annotated[
        dict[str, int],
        msgspec.Meta(description="By reason: invalid, too_large, rate_limited, busy, response_topic, correlation_data."),
    ]
    queued: Annotated[int, msgspec.Meta(ge=0)]


class PathStatus(_Doc):
    """One path out of the residence."""

    state: Annotated[Literal["up", "down", "unknown"], msgspec.Meta(description="unknown: not checked yet.")]
    since: Annotated[Timestamp, msgspec.Meta(description="When it entered this state (or the hub started).")]
    reason: Annotated[
        str | None,
        msgspec.Meta(description="Why it is down: mqtt disconnected, not_connected_yet; gsm no_sim, not_registered, "
                                 "weak_signal, not_answering, unplugged, io_error; interface down, no_carrier, "
                                 "missing. null when up."),
    ]
    lost: Annotated[int, msgspec.Meta(ge=0, description="Times it went down since the hub started.")]
    detail: Annotated[
        dict[str, Any],
        msgspec.Meta(description="What was read: gsm sim, registration (+CREG stat: 1 home, 5 roaming), signal "
                                 "(+CSQ rssi 0-31, 99 unknown), device; interface interface, operstate, carrier."),
    ]


class FallbackEpisode(_Doc):
    """An alarm episode whose SMS fallback started."""

    event_id: Annotated[EventId, msgspec.Meta(description="The episode's first alarm.")]
    reason: Annotated[Literal["unacknowledged", "link_down"], msgspec.Meta(description="Why it started.")]
    sent: Annotated[int, msgspec.Meta(ge=0, description="SMS sent for it, reminders included.")]
    numbers: Annotated[int, msgspec.Meta(ge=0, description="On-call numbers it goes to.")]


class FallbackStatus(_Doc):
    """The SMS fallback ([fallback])."""

    armed: Annotated[bool, msgspec.Meta(description="A modem and on-call numbers: SMS would go out.")]
    text_paths: Annotated[list[str], msgspec.Meta(description="The modems (device ids).")]
    counters: Annotated[
        dict[str, int],
        msgspec.Meta(description="sent, failed; replies: acknowledged, ack_refused, not_understood, unknown_sender, "
                                 "ok_nothing_open."),
    ]
    episodes: list[FallbackEpisode]


class Heartbeat(_Doc):
    """The heartbeat, every [mqtt] heartbeat_s while connected; cmd/status answers with the same document."""

    hub: Annotated[str, msgspec.Meta(description="Hub id.")]
    ts: Annotated[Timestamp, msgspec.Meta(description="When it was made.")]
    version: Annotated[str, msgspec.Meta(description="The hub's software version.")]
    uptime_s: Annotated[Seconds, msgspec.Meta(description="Seconds since the hub daemon started.")]
    seq: Annotated[
        int,
        msgspec.Meta(ge=0, description="Last seq allocated; compare with the last seq received to spot a gap early."),
    ]
    outbox: OutboxStatus
    link: LinkStatus
    forwarder: ForwarderStatus
    devices: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(description="Every configured device by id, heard or not: kind, state as its driver sees it "
                                 "(ok, offline; a BLE device not heard since the hub started: 'never heard'), "
                                 "last_seen (null: not since the hub started), the driver's counters; a BLE "
                                 "advertiser adds rssi and battery, a serial device its port, a device over its "
                                 "telemetry limit telemetry {flooding, dropped}. 'ble': the BLE scanner itself."),
    ]
    open_alarms: list[OpenAlarm]
    health: HealthStatus
    tasks: Annotated[dict[str, TaskStatus], msgspec.Meta(description="Supervised tasks by name.")]
    commands: CommandCounters
    alarm_counters: Annotated[
        dict[str, int], msgspec.Meta(description="cancel_unmatched: resets from a device that named no open alarm.")
    ]
    paths: Annotated[
        dict[str, PathStatus],
        msgspec.Meta(description="Each path out of the residence: mqtt (the link to the central) always; gsm (the "
                                 "modem) once it was checked; interface when [fallback] interface names one."),
    ]
    fallback: FallbackStatus


class StatusReply(Heartbeat):
    """Reply to cmd/status: the heartbeat document, with ok."""

    ok: Literal[True]


# --- replies --------------------------------------------------------------------------------


class AckReply(_Doc):
    """Reply to cmd/ack of an alarm (or reminder) the hub knows, or of a checkin.missed (first or re-alert)."""

    ok: Literal[True]
    result: Annotated[
        Literal["acknowledged", "already_acknowledged", "cancelled", "ended"],
        msgspec.Meta(description="acknowledged: this ack ended the episode (a missed check-in: its re-alerts "
                                 "stop); already_acknowledged: an earlier ack had (nothing changed); cancelled: it "
                                 "was cancelled at the device before; ended: a missed check-in that had ended "
                                 "already (a late check-in, the resident away, the next window)."),
    ]
    alarm_id: Annotated[
        EventId, msgspec.Meta(description="The alarm acked: the id named, or for a reminder (a re-alert) its "
                                          "episode's first.")
    ]
    closes: Annotated[list[EventId], msgspec.Meta(description="The episode's alarm ids (a missed check-in: its "
                                                              "checkin.missed ids).")]


class AckUnknownReply(_Doc):
    """Reply to cmd/ack of an id that is no open or recently closed alarm of this hub."""

    ok: Literal[False]
    result: Literal["unknown_event"]
    error: str


class TestAlarmReply(_Doc):
    """Reply to cmd/test-alarm: the alarm.test is stored and on its way."""

    ok: Literal[True]
    event_id: Annotated[EventId, msgspec.Meta(description="The alarm.test's id: ack it like any alarm.")]
    seq: Annotated[int, msgspec.Meta(ge=0, description="Its seq (0: held in memory, the disk refused it).")]


class ReplayReply(_Doc):
    """Reply to cmd/replay: the stored events of the range were published again (same ids and seqs)."""

    ok: Literal[True]
    sent: Annotated[int, msgspec.Meta(ge=0, description="Events published again.")]
    missing: Annotated[
        list[int], msgspec.Meta(description="Seqs of the range the hub does not have (evicted, or not yet allocated); "
                                            "the first 1000.")
    ]
    missing_count: Annotated[int, msgspec.Meta(ge=0, description="How many seqs are missing in all.")]


class BleForgetReply(_Doc):
    """Reply to cmd/ble-forget: the device's encryption counter is forgotten."""

    ok: Literal[True]
    device: str
    previous_counter: Annotated[int | None, msgspec.Meta(description="The counter forgotten (null: none known).")]


class AwayPeriod(_Doc, rename={"from_": "from"}):
    """An absence set by cmd/away, as the hub keeps it (UTC)."""

    from_: Annotated[Timestamp, msgspec.Meta(description="When it starts.")]
    until: Annotated[Timestamp, msgspec.Meta(description="When it ends.")]
    reason: Annotated[str | None, msgspec.Meta(description="Why, as the central said (null: not said).")]
    by: Annotated[str | None, msgspec.Meta(description="Who set it.")]


class AwayReply(_Doc):
    """Reply to cmd/away: the absence the hub now keeps for the check-in rule (kept across restarts)."""

    ok: Literal[True]
    away: Annotated[
        AwayPeriod | None,
        msgspec.Meta(description="The absence set by cmd/away now kept; null: none (ended by cancel or an until "
                                 "not after now)."),
    ]
    previous: Annotated[AwayPeriod | None, msgspec.Meta(description="The one it replaced or ended (null: none).")]
    away_now: Annotated[
        bool, msgspec.Meta(description="true: the resident counts as away now (this absence or one in the config).")
    ]
    absence: Annotated[
        Literal["command", "config"] | None,
        msgspec.Meta(description="Which absence covers now: command (cmd/away) or config ([[rules.check_in.absence]]); "
                                 "null: none."),
    ]


class ErrorReply(_Doc):
    """A command refused or failed: nothing was done."""

    ok: Literal[False]
    error: Annotated[str, msgspec.Meta(description="Why, for a person.")]
    refused: Annotated[
        Literal["invalid", "too_large", "rate_limited", "busy"],
        msgspec.Meta(description="Refused at the gate, before it ran: invalid (a bad payload), too_large (over "
                                 "4 KiB; cmd/config 64 KiB), rate_limited (over the command's rate), busy (the queue is full)."),
    ] | Unset = UNSET
    last_seq: Annotated[int, msgspec.Meta(ge=0, description="cmd/replay past the end: the hub's last seq.")] | Unset = UNSET
    sent: Annotated[
        int, msgspec.Meta(ge=0, description="cmd/replay cut short (the link dropped): events sent before.")
    ] | Unset = UNSET


#: Command name -> the structs of its replies (the success first; ErrorReply for every command).
REPLIES: dict[str, tuple[type[_Doc], ...]] = {
    "ack": (AckReply, AckUnknownReply),
    "test-alarm": (TestAlarmReply,),
    "status": (StatusReply,),
    "replay": (ReplayReply,),
    "ble-forget": (BleForgetReply,),
    "away": (AwayReply,),
    "config": (ConfigPushReply, ConfigRefusedReply),
    "config-status": (ConfigStatusReply,),
}

#: Every document struct, for the schema components.
DOCUMENTS: tuple[type[_Doc], ...] = (
    StatusOnline, StatusOffline, Heartbeat, StatusReply, AckReply, AckUnknownReply, TestAlarmReply, ReplayReply,
    BleForgetReply, ConfigPushReply, ConfigRefusedReply, ConfigStatusReply, AwayPeriod, AwayReply, ErrorReply,
)
