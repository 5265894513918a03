"""The hub's own config tables: ``[hub]``, ``[mqtt]``, ``[store]``, ``[log]``, ``[sim]``, ``[control]``,
``[alarm]`` and the core keys of every ``[[device]]``.

The drivers' tables (``[gpio]``, ``[device.serial]`` ...) are not here: each
driver declares them in its config module and :mod:`hub.config.model` joins
them to the cores below into :class:`~hub.config.Device` and
:class:`~hub.config.Config`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.events import Route
from hub.rules.config import WINDOW_HELP, WINDOW_PATTERN, RulesConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RESIDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
PREFIX_PATTERN = r"^[^#+/][^#+]*[^#+/]$|^[^#+/]$"
PHONE_PATTERN = r"^[+][1-9][0-9]{6,14}$"
INTERFACE_PATTERN = r"^[A-Za-z0-9_.:-]{1,15}$"

#: What each pattern means, in the words an installer reads in an error message. A driver's
#: struct says it with ``msgspec.Meta(pattern=..., extra={"help": ...})`` instead.
PATTERN_HELP = {
    NAME_PATTERN: "lower-case letters, digits, '-' and '_' (1 to 63, starting with a letter or digit, no spaces)",
    RESIDENT_PATTERN: "a pseudonymous resident id: 3 to 64 letters, digits, '-' and '_', no spaces (never a name)",
    PREFIX_PATTERN: "a topic prefix without '#' or '+' that neither starts nor ends with '/'",
    WINDOW_PATTERN: WINDOW_HELP,
    PHONE_PATTERN: "a phone number in E.164: '+', the country code and the number, digits only (+4791234567)",
    INTERFACE_PATTERN: "a network interface name as in /sys/class/net (wwan0, eth1): 1 to 15 letters, digits, "
                       "'-', '_', '.' or ':'",
}

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every config table: keyword-only, frozen, unknown keys refused."""


#: Every config struct is built with these flags (the drivers' too).
SECTION_FLAGS = {"kw_only": True, "forbid_unknown_fields": True, "frozen": True}


def doc(text: str, **constraints: object) -> msgspec.Meta:
    """A config key's ``msgspec.Meta``: its description in ``config/schema.json``, and its constraints."""
    return msgspec.Meta(description=text, **constraints)  # type: ignore[arg-type]


class HubSection(Section):
    """``[hub]``: who this hub is."""

    id: Annotated[
        Name,
        doc("Hub id; appears in every topic and event, and is the hub's MQTT username on the municipality's broker. "
            "Keep it stable once installed."),
    ]
    resident: Annotated[
        str,
        doc("Pseudonymous resident id from the care record system (letters, digits, - and _): never a name. "
            "It leaves the house in every event.", pattern=RESIDENT_PATTERN),
    ]
    timezone: Annotated[
        str, doc("IANA time zone of the residence; the rules' night and day windows are local time in it.")
    ] = "Europe/Oslo"


class Broker(Section):
    """``[[mqtt.broker]]``: one broker, tried in the order listed (failover)."""

    host: Annotated[str, doc("Broker host name or IP address. Off this machine it needs [mqtt.tls].", min_length=1)]
    port: Annotated[int, doc("Broker TCP port: 1883 plain MQTT, usually 8883 with TLS.", ge=1, le=65535)] = 1883


class TlsSection(Section):
    """``[mqtt.tls]``: TLS towards the broker. ``cert`` and ``key`` for a client certificate."""

    ca: Annotated[str, doc("PEM file of the CA(s) that signed the broker's certificate.")]
    cert: Annotated[
        str | None, doc("PEM client certificate (CN = the hub id) to log in with; needs key. Unset: no certificate.")
    ] = None
    key: Annotated[
        str | None,
        doc("PEM private key of cert, unencrypted; owned by root or the service user, mode 0600. Unset: none."),
    ] = None


class MqttSection(Section):
    """``[mqtt]``: the link to the alarm central's broker."""

    broker: Annotated[
        list[Broker], doc("The brokers, tried in the order listed: the first is the primary, the others failover.",
                          min_length=1)
    ]
    tls: Annotated[TlsSection | None, doc("TLS towards the brokers. Unset: plain MQTT (only to this machine, "
                                          "unless insecure = true).")] = None
    insecure: Annotated[
        bool,
        msgspec.Meta(
            description=(
                "Allow brokers off this machine without [mqtt.tls]: events, commands and credentials cross the "
                "network in clear text. check-config refuses such a broker unless this is true; the hub then "
                "logs mqtt_insecure at every start."
            )
        ),
    ] = False
    username: Annotated[
        str | None, doc("MQTT username (the hub id on the municipality's broker); needs password_file. "
                        "Unset: a client certificate or no login.")
    ] = None
    password_file: Annotated[
        str | None, doc("File whose first line is the MQTT password; owned by root or the service user, mode 0600.")
    ] = None
    prefix: Annotated[
        str, doc("Topic prefix: topics are <prefix>/<hub id>/...; no '#' or '+', no '/' at either end.",
                 pattern=PREFIX_PATTERN)
    ] = "carehub/v1"
    client_id: Annotated[
        str | None, doc("MQTT client id. Unset: the username, or the hub id without one (the broker's ACL "
                        "patterns rely on it).")
    ] = None
    keepalive_s: Annotated[int, doc("MQTT keepalive in seconds; the broker takes a hub silent for 1.5 times it as "
                                    "gone and publishes its last will (offline).", ge=5, le=3600)] = 30
    heartbeat_s: Annotated[float, doc("Seconds between heartbeats on <prefix>/<hub>/heartbeat.", ge=1, le=3600)] = 60.0
    connect_timeout_s: Annotated[float, doc("Seconds to wait for a broker to accept the connection (CONNACK) "
                                            "before the attempt counts as failed.", gt=0)] = 10.0
    backoff_initial_s: Annotated[float, doc("First wait in seconds before reconnecting; it grows (jittered) up to "
                                            "backoff_max_s.", gt=0)] = 0.5
    backoff_max_s: Annotated[float, doc("Longest wait in seconds between reconnect attempts.", gt=0, le=300)] = 30.0
    max_inflight: Annotated[int, doc("Messages published and not yet acknowledged (PUBACK) at a time: events, "
                                     "or batches of them (batch_max); alarms are sent past it.",
                                     ge=1, le=1000)] = 50
    batch_max: Annotated[int, doc("Most normal and low priority events sent together, as one message on "
                                  "<prefix>/<hub>/events (contract 1.5), when several wait (a burst, the drain after "
                                  "an outage); one waiting alone goes on event/<type> as ever, and alarms and high "
                                  "priority events never go in a batch. 1: no batches, for a central that does not "
                                  "read contract 1.5.", ge=1, le=1000)] = 100
    batch_bytes: Annotated[int, doc("Most bytes of one batch's payload (the events' JSON and 13 more); an event "
                                    "larger than this goes alone. At most 128 KiB: well under the broker's largest "
                                    "packet (max_packet_size, 256 KiB in config/broker/mosquitto.conf).",
                                    ge=1024, le=1 << 17)] = 65536


class StoreSection(Section):
    """``[store]``: where the durable outbox and rule state live."""

    dir: Annotated[str, doc("Directory of the outbox (events until the broker has them) and the rules' state; "
                            "created 0700 if missing. Must survive a reboot.")]
    max_events: Annotated[int, doc("At most this many events stored; beyond, delivered events go first, "
                                   "then the oldest telemetry. Alarms are never evicted.", ge=100)] = 200_000
    max_mb: Annotated[int, doc("At most this many MiB of events (and never more than half the filesystem); "
                               "evicted as for max_events.", ge=1, le=65536)] = 256
    keep_delivered_s: Annotated[float, doc("Seconds delivered events are kept, so the central can ask for a "
                                           "cmd/replay.", ge=0)] = 7 * 24 * 3600.0
    reserve_kb: Annotated[int, doc("KiB kept free for alarms: a reserve file given up when the disk is full. "
                                   "0 turns it off.", ge=0, le=1 << 20)] = 1024


class LogSection(Section):
    """``[log]``: ``format = "auto"`` writes JSON lines unless stderr is a terminal."""

    level: Annotated[Literal["debug", "info", "warning", "error"],
                     doc("Least level logged; routine telemetry is logged only at debug.")] = "info"
    format: Annotated[Literal["auto", "json", "console"],
                      doc("json: one JSON object a line (journald); console: for a person; auto: console on a "
                          "terminal, else json.")] = "auto"


class SimSection(Section):
    """``[sim]``: the control socket through which the demo and the test rig drive simulated devices."""

    socket: Annotated[str, doc("Path of the sim control socket (mode 0600) that simulated devices are driven "
                               "through (gpio factory or ble backend \"sim\"); relative to [store] dir.")] = "sim.sock"


class ControlSection(Section):
    """``[control]``: the local control socket of ``carehub status``, ``tail``, ``test-alarm``, ``ack``..."""

    socket: Annotated[str | None, doc("Path of the local control socket (mode 0660) that carehub status, tail, "
                                      "test-alarm, ack, ble-forget and replay talk to; relative to [store] dir. "
                                      "Unset: /run/carehub/control.sock when /run/carehub exists and the hub may "
                                      "write there (the unit's RuntimeDirectory), else control.sock in [store] "
                                      "dir.")] = None


class AlarmSection(Section):
    """``[alarm]``: the application-level acknowledgement every alarm needs."""

    ack_timeout_s: Annotated[float, doc("Seconds without the central's cmd/ack before alarm.unacknowledged.",
                                        gt=0)] = 60.0
    unack_repeat_s: Annotated[float, doc("Seconds between repeated alarm.unacknowledged until the ack comes.",
                                         gt=0)] = 60.0
    steady_s: Annotated[float, doc("Seconds the LED stays on after the ack (help is on its way).", gt=0)] = 900.0


class LimitsSection(Section):
    """``[limits]``: what one device may send; beyond, its telemetry is dropped and counted
    (``device.flooding``). Alarms are never limited."""

    telemetry_per_s: Annotated[float, doc("Telemetry events a second one device may send, on average.", gt=0)] = 20.0
    telemetry_burst: Annotated[float, doc("Telemetry events one device may send at once above the average.",
                                          ge=1)] = 200.0


class PushSection(Section):
    """``[push]``: configs pushed by the alarm central (``cmd/config``), signed with its key, held on probation.

    A pushed config may not change this table, nor the hub's identity, its
    credentials' files or its state directory (docs/config-push.md).
    """

    key: Annotated[
        str | None,
        doc("PEM file of the alarm central's Ed25519 public key: a pushed config (cmd/config) is taken only with a "
            "valid signature by it. Not a secret; a pushed config can never change it. Unset: every push is "
            "refused."),
    ] = None
    probation_s: Annotated[
        float,
        doc("Seconds a pushed config has to reach the central (its birth acknowledged by the broker and its "
            "command subscription granted); otherwise the hub rolls back to the last good config by itself. A "
            "restart before it passed rolls back too.", ge=5, le=3600),
    ] = 120.0
    history: Annotated[
        int, doc("Pushed configs remembered in the state directory (versions, SHA-256, outcome); the active and "
                 "the last good one are always kept.", ge=2, le=1000)
    ] = 20


class FallbackSection(Section):
    """``[fallback]``: when the central cannot be reached, SMS to the on-call phones, and the second paths watched.

    The SMS go out through the residence's modem (a ``[[device]]`` of kind ``modem``): an alarm episode not
    acknowledged within ``fallback_after_s``, or open while the MQTT link has been down for ``link_down_after_s``,
    gets one SMS to each on-call number of its route (nurse, care; any: both), then reminders every
    ``reminder_s``. A reply OK from one of those numbers acknowledges it as cmd/ack does.
    """

    nurse: Annotated[list[Annotated[str, msgspec.Meta(pattern=PHONE_PATTERN)]],
                     doc("On-call numbers of the nurses (helsetjenesteteam), E.164 (+4791234567): they get the SMS "
                         "of alarms routed nurse or any.")] = []
    care: Annotated[list[Annotated[str, msgspec.Meta(pattern=PHONE_PATTERN)]],
                    doc("On-call numbers of the care workers (omsorgsteam), E.164: they get the SMS of alarms routed "
                        "care or any.")] = []
    fallback_after_s: Annotated[float, doc("Seconds an alarm episode may wait for the central's ack before the SMS "
                                           "go out (whatever the link).", gt=0)] = 120.0
    link_down_after_s: Annotated[float, doc("Seconds the MQTT link may be down, with an alarm open, before the SMS "
                                            "go out.", gt=0)] = 60.0
    reminder_s: Annotated[float, doc("Seconds between reminder SMS while the episode stays open; 0: no "
                                     "reminders.", ge=0)] = 600.0
    max_reminders: Annotated[int, doc("At most this many reminder SMS per episode and number.", ge=0, le=100)] = 3
    retry_s: Annotated[float, doc("Seconds before an SMS that failed is tried again; doubles on each failure, up "
                                  "to reminder_s (or 600).", gt=0)] = 30.0
    residence: Annotated[Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None,
                         doc("How the SMS names the residence (an address or a house name, never a person's), up "
                             "to 40 characters. Unset: the hub id.")] = None
    test_alarms: Annotated[bool, doc("Send SMS for test alarms (alarm.test) too.")] = False
    interface: Annotated[Annotated[str, msgspec.Meta(pattern=INTERFACE_PATTERN)] | None,
                         doc("A second network interface to supervise (its operstate and carrier in "
                             "/sys/class/net), e.g. wwan0: path.lost when it goes down. Unset: none.")] = None
    interface_check_s: Annotated[float, doc("Seconds between checks of the interface.", gt=0, le=3600)] = 10.0


DeviceKind = Literal[
    "alarm_button", "pull_cord", "bed_mat", "medication_dispenser", "nurse_call", "door", "motion", "sensor", "modem",
    "checkin_button",
]

#: Who responds when the device config does not say: medication is for nurses.
DEFAULT_ROUTE: dict[str, Route] = {
    "alarm_button": Route.ANY,
    "pull_cord": Route.ANY,
    "bed_mat": Route.CARE,
    "medication_dispenser": Route.NURSE,
    "nurse_call": Route.ANY,
    "door": Route.CARE,
    "motion": Route.CARE,
    "sensor": Route.ANY,
    "modem": Route.ANY,
    "checkin_button": Route.CARE,
}


class DeviceCore(Section):
    """The keys every ``[[device]]`` has, whatever driver reads it; the drivers' tables follow."""

    id: Annotated[Name, doc("Device id, unique within the hub; in every event of the device (source.device).")]
    kind: Annotated[DeviceKind, doc("What the device is; decides which driver tables it may have and its "
                                    "default route.")]
    room: Annotated[str | None, doc("Room, shown to the alarm central (source.room): a room's name such as "
                                    "'bedroom', never a person's. Unset: none.")] = None
    route: Annotated[Route | None, doc("Who responds to its events: nurse, care or any. Unset: the kind's "
                                       "default (medication: nurse; bed, door, motion, check-in button: care; others: any).")] = None
    expected_interval_s: Annotated[
        Annotated[float, msgspec.Meta(gt=0)] | None,
        doc("Seconds within which the device is heard when well; longer silence is device.offline. "
            "Unset: its kind's interval in [rules.supervision]."),
    ] = None


class ConfigCore(Section):
    """The hub's own top-level tables, in file order; the drivers' ``[<key>]`` settings go after ``log``."""

    hub: Annotated[HubSection, doc("Who this hub is.")]
    mqtt: Annotated[MqttSection, doc("The link to the alarm central's broker.")]
    store: Annotated[StoreSection, doc("Where the durable outbox and the rules' state live.")]
    log: Annotated[LogSection, doc("What is logged, and how.")] = LogSection()
    sim: Annotated[SimSection, doc("The control socket of simulated devices (demo and tests).")] = SimSection()
    control: Annotated[ControlSection, doc("The local control socket: status, tail and commands without the "
                                           "network.")] = ControlSection()
    alarm: Annotated[AlarmSection, doc("The central's acknowledgement every alarm needs.")] = AlarmSection()
    limits: Annotated[LimitsSection, doc("What one device may send; beyond, its telemetry is dropped.")] = LimitsSection()
    rules: Annotated[RulesConfig, doc("The local rules: readings that become alarms.")] = RulesConfig()
    push: Annotated[PushSection, doc("Configs pushed by the alarm central: its key and the probation.")] = PushSection()
    fallback: Annotated[FallbackSection, doc("SMS to the on-call phones when the central cannot be reached; the "
                                             "second paths watched.")] = FallbackSection()
