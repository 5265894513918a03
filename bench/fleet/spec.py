"""What the fleet bench hands its worker processes and gets back from them, as msgspec structs (JSON lines).

:class:`Profile` is the load one simulated hub makes; :class:`WorkerSpec` is one worker's share of
the fleet; :class:`HubReport` and :class:`AlarmRecord` are what a worker reports once its hubs have
drained.
"""

from __future__ import annotations

import msgspec


class Profile(msgspec.Struct, kw_only=True, frozen=True):
    """The traffic of one simulated hub. The defaults compress a residence's day: the hub's own defaults
    are a heartbeat every 60 s, BLE telemetry at most every 900 s per sensor (or on a change) and an
    alarm a few times a day; here it is a heartbeat every 10 s, an event every 10 s and an alarm a minute."""

    heartbeat_s: float = 10.0
    #: mean seconds between telemetry events (sensor.reading, now and then motion.activity), exponential
    telemetry_s: float = 10.0
    #: mean seconds between alarm presses of one hub (exponential); a button whose alarm waits for its ack,
    #: or was acked less than ``repress_gap_s`` ago, is not pressed
    alarm_s: float = 60.0
    #: alarm buttons per hub (button-1 ...)
    buttons: int = 2
    repress_gap_s: float = 2.0
    #: share of the hubs that lose their connection once, for ``outage_s``, mid-run
    outage_fraction: float = 0.05
    outage_s: float = 5.0
    #: an outage starts only when none of the hub's alarms waits for its ack. An ack the central sends
    #: while the hub is away is dropped by the broker (the hub's session is clean); the central sends an
    #: unanswered auto-ack again every 10 s, which would put that retry pace into the latency figures.
    #: False cuts the network whenever its time comes (``--outage-anytime``).
    outage_waits_for_ack: bool = True
    #: QoS 1 events a hub has in flight at once (the hub's forwarder window); alarms go past it
    window: int = 20


class WorkerSpec(msgspec.Struct, kw_only=True, frozen=True):
    """One worker process: its hubs, the broker, how long to make traffic."""

    host: str
    port: int
    prefix: str
    hubs: list[str]
    #: the hubs (of ``hubs``) that take an outage
    outage_hubs: list[str]
    profile: Profile
    seconds: float
    seed: int
    #: seconds after the traffic stops to wait until every event is PUBACKed and every alarm acked
    drain_s: float = 30.0
    #: seconds to connect every hub (birth published)
    connect_s: float = 120.0


class AlarmRecord(msgspec.Struct, kw_only=True, array_like=True):
    """One press: when (Unix seconds at the sim hub), and how long until the central's ``cmd/ack`` came."""

    id: str
    hub: str
    press_wall: float
    #: press -> cmd/ack received at the hub, ms; None: no ack came
    e2e_ms: float | None
    #: pressed while the hub's link was down (its latency includes the outage)
    offline: bool


class HubReport(msgspec.Struct, kw_only=True):
    """One hub after the drain."""

    hub: str
    last_seq: int
    #: events PUBACKed (replays not counted), still pending or in flight
    delivered: int
    pending: int
    heartbeats: int
    replays: int
    replayed: int
    acks: int
    #: cmd/ack for an id this hub does not know, or for one acked already
    acks_odd: int
    outages: int
    connects: int


class WorkerReport(msgspec.Struct, kw_only=True):
    """What a worker says once its hubs drained (or the drain timed out)."""

    drained: bool
    hubs: list[HubReport]
    alarms: list[AlarmRecord]
    #: wall-clock seconds the traffic ran
    ran_s: float
