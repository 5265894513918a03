"""The hub's own config tables: ``[hub]``, ``[mqtt]``, ``[store]``, ``[log]``, ``[sim]``, ``[alarm]``
and the core keys of every ``[[device]]``.

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

#: What each pattern means, in the words an installer reads in an error message. A driver's
#: struct says it with ``msgspec.Meta(pattern=..., extra={"help": ...})`` instead.
PATTERN_HELP = {
    NAME_PATTERN: "lower-case letters, digits, '-' and '_' (1 to 63, starting with a letter or digit, no spaces)",
    RESIDENT_PATTERN: "a pseudonymous resident id: 3 to 64 letters, digits, '-' and '_', no spaces (never a name)",
    PREFIX_PATTERN: "a topic prefix without '#' or '+' that neither starts nor ends with '/'",
    WINDOW_PATTERN: WINDOW_HELP,
}

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every config table: keyword-only, frozen, unknown keys refused."""


#: Every config struct is built with these flags (the drivers' too).
SECTION_FLAGS = {"kw_only": True, "forbid_unknown_fields": True, "frozen": True}


class HubSection(Section):
    """``[hub]``: who this hub is."""

    id: Annotated[Name, msgspec.Meta(description="Hub id; appears in every topic and event.")]
    resident: Annotated[
        str,
        msgspec.Meta(
            pattern=RESIDENT_PATTERN,
            description="Pseudonymous resident id (letters, digits, - and _): never a name.",
        ),
    ]
    timezone: str = "Europe/Oslo"


class Broker(Section):
    """``[[mqtt.broker]]``: one broker, tried in the order listed (failover)."""

    host: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883


class TlsSection(Section):
    """``[mqtt.tls]``: TLS towards the broker. ``cert`` and ``key`` for a client certificate."""

    ca: str
    cert: str | None = None
    key: str | None = None


class MqttSection(Section):
    """``[mqtt]``: the link to the alarm central's broker."""

    broker: Annotated[list[Broker], msgspec.Meta(min_length=1)]
    tls: TlsSection | None = None
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
    username: str | None = None
    password_file: str | None = None
    prefix: Annotated[str, msgspec.Meta(pattern=PREFIX_PATTERN)] = "carehub/v1"
    client_id: str | None = None
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    heartbeat_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 60.0
    connect_timeout_s: Seconds = 10.0
    backoff_initial_s: Seconds = 0.5
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    max_inflight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class StoreSection(Section):
    """``[store]``: where the durable outbox and rule state live."""

    dir: str
    max_events: Annotated[int, msgspec.Meta(ge=100)] = 200_000
    #: The store's bound in bytes of events (MiB), beside max_events: delivered first, then telemetry go.
    max_mb: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 256
    keep_delivered_s: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 3600.0
    #: Space kept for alarms (KiB): a reserve file given up when the disk is full. 0 turns it off.
    reserve_kb: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 1024


class LogSection(Section):
    """``[log]``: ``format = "auto"`` writes JSON lines unless stderr is a terminal."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class SimSection(Section):
    """``[sim]``: the control socket through which the demo and the test rig drive simulated devices."""

    socket: str = "sim.sock"


class AlarmSection(Section):
    """``[alarm]``: the application-level acknowledgement every alarm needs."""

    ack_timeout_s: Seconds = 60.0
    unack_repeat_s: Seconds = 60.0
    steady_s: Seconds = 900.0


class LimitsSection(Section):
    """``[limits]``: what one device may send; beyond, its telemetry is dropped and counted
    (``device.flooding``). Alarms are never limited."""

    telemetry_per_s: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    telemetry_burst: Annotated[float, msgspec.Meta(ge=1)] = 200.0


DeviceKind = Literal[
    "alarm_button", "pull_cord", "bed_mat", "medication_dispenser", "nurse_call", "door", "motion", "sensor"
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
}


class DeviceCore(Section):
    """The keys every ``[[device]]`` has, whatever driver reads it; the drivers' tables follow."""

    id: Name
    kind: DeviceKind
    room: str | None = None
    route: Route | None = None
    expected_interval_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class ConfigCore(Section):
    """The hub's own top-level tables, in file order; the drivers' ``[<key>]`` settings go after ``log``."""

    hub: HubSection
    mqtt: MqttSection
    store: StoreSection
    log: LogSection = LogSection()
    sim: SimSection = SimSection()
    alarm: AlarmSection = AlarmSection()
    limits: LimitsSection = LimitsSection()
    rules: RulesConfig = RulesConfig()
