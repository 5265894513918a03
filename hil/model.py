"""A scenario as data: what the rig does, what it expects, and what it measures.

A scenario file (``hil/scenarios/<name>.toml``) is one :class:`Scenario`:

* ``[scenario]``: its name (the file's stem), a title an acceptance officer reads,
  the fixtures it ``needs`` (a rig that lacks one skips it, with the reason), a
  time limit;
* ``[hub]``: changes to the rig's residence config for this scenario
  (``[hub.config.alarm] ack_timeout_s = 2``), deep-merged over the rig's own;
* ``[[step]]``: what happens, in order; each step is a table whose ``do`` names
  its kind (:data:`Step`), the other keys its fields. A step may ``mark`` the
  instant it took effect (a press: the edge; an expected event: its arrival at
  the central), so measurements can pair marks;
* ``[params]``: sizes the steps use as ``"$name"``, smaller under ``[params.quick]``
  (:mod:`hil.params`);
* ``[[measure]]``: a figure computed from marks (``from`` and ``to``, paired in
  order) with its limits per rig kind, declared before the run, as OpenHTF
  does; the outcome is pass, marginal (within ``marginal_pct`` of a limit) or fail.

Devices are named by the rig's device ids (``button-1``, ``cord-1``, ``bed``,
``dispenser``, ``espa``, ``ble-button``, ``ble-door``); a rig maps them
to its wiring (:mod:`hil.fixtures`).

The structs are msgspec, keyword-only, unknown keys refused: the loader
(:mod:`hil.loader`) turns every mistake into ``FILE:LINE:COL: key.path: what was expected``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

Name = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$", extra={"help": "lower-case letters, digits and _"})]
DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Ms = Annotated[float, Meta(ge=0, le=3_600_000)]


class _Step(Struct, kw_only=True, forbid_unknown_fields=True, tag_field="do"):
    #: Name this step's instant (list of instants when the step repeats) for measurements and acks.
    mark: Name | None = None


# --- the resident and the devices -------------------------------------------------------------


class Press(_Step, tag="press", kw_only=True):
    """Press a button (or pull a cord) and let go after ``hold_ms``. Mark: the edge."""

    device: DeviceId
    hold_ms: Ms = 50


class Hold(_Step, tag="hold", kw_only=True):
    """Press and keep the button down (a ``release`` step lets go). Mark: the edge."""

    device: DeviceId


class Release(_Step, tag="release", kw_only=True):
    """Let go of a button held by ``hold``."""

    device: DeviceId


class Pull(_Step, tag="pull", kw_only=True):
    """Pull a cord: a press of ``hold_ms`` on a pull-cord device."""

    device: DeviceId
    hold_ms: Ms = 50


class Serial(_Step, tag="serial", kw_only=True):
    """Send a frame from a serial device's emulator: ``send`` is the emulator's frame kind
    (``occupancy``, ``door``, ``dose_due``, ``call``, ...), ``args`` its fields.
    ``send = "corrupt"`` sends garbage (``args = {how = "noise"}``)."""

    device: DeviceId
    send: Annotated[str, Meta(pattern=r"^[a-z_]{1,32}$")]
    args: dict[str, Any] = field(default_factory=dict)
    #: Send it this many times, ``every_ms`` apart (a storm of garbage, a burst of readings).
    times: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    every_ms: Ms = 0


class Unplug(_Step, tag="unplug", kw_only=True):
    """Pull a serial device's cable out."""

    device: DeviceId


class Replug(_Step, tag="replug", kw_only=True):
    """Put a serial device's cable back in (a new tty behind the same name)."""

    device: DeviceId


class Advertise(_Step, tag="advertise", kw_only=True):
    """A BLE device advertises ``values`` (BTHome object names: ``button = "press"``,
    ``opening = 1``, ``battery = 80``), encrypted when the rig's device has a key.
    ``replay = true`` sends the last advert of the device again, byte for byte."""

    device: DeviceId
    values: dict[str, Any] = field(default_factory=dict)
    replay: bool = False


class BleFault(_Step, tag="ble_fault", kw_only=True):
    """Fault the BLE adapter: ``in_progress`` (BlueZ's org.bluez.Error.InProgress on the next
    ``times`` starts, ``running`` also fails the running scan), ``adapter_gone``, ``adapter_back``, ``silent``."""

    kind: Literal["in_progress", "adapter_gone", "adapter_back", "silent"]
    times: Annotated[int, Meta(ge=1, le=1000)] = 1
    running: bool = False


# --- the world around the hub -----------------------------------------------------------------


class Wait(_Step, tag="wait", kw_only=True):
    """Do nothing for ``ms`` (``random_ms = [lo, hi]``: a uniform draw, seeded per run)."""

    ms: Ms = 0
    random_ms: tuple[Ms, Ms] | None = None


class ClockStep(_Step, tag="clock_step", kw_only=True):
    """Step the hub's wall clock by ``seconds`` (an NTP step after a boot without RTC). Needs ``wall_clock``."""

    seconds: Annotated[float, Meta(ge=-86_400 * 366, le=86_400 * 366)]


class BrokerStop(_Step, tag="broker_stop", kw_only=True):
    """Stop the central's broker (clients see the connection refused)."""


class BrokerStart(_Step, tag="broker_start", kw_only=True):
    """Start the broker again, same port, same persistence."""


class NetCut(_Step, tag="net_cut", kw_only=True):
    """Cut the hub's network silently (no FIN, no RST), as an unplugged router does."""


class NetImpair(_Step, tag="net_impair", kw_only=True):
    """Add delay and loss on the hub's network (0 and 0 clear it)."""

    delay_ms: Ms = 0
    jitter_ms: Ms = 0
    loss_pct: Annotated[float, Meta(ge=0, le=100)] = 0


class NetRestore(_Step, tag="net_restore", kw_only=True):
    """Undo ``net_cut`` and ``net_impair``."""


class HubKill(_Step, tag="hub_kill", kw_only=True):
    """kill -9 the hub; with ``restart`` (default) start it again at once and wait until it is online."""

    restart: bool = True


class HubStart(_Step, tag="hub_start", kw_only=True):
    """Start the hub (after ``hub_kill`` with ``restart = false``, or ``power_cut``) and wait until online."""


class PowerCut(_Step, tag="power_cut", kw_only=True):
    """Cut the power: the hub frozen, the state directory's unsynced writes thrown away (as closely as
    the rig allows), the hub started again from what the disk kept when ``restart`` (default)."""

    restart: bool = True


class DiskFill(_Step, tag="disk_fill", kw_only=True):
    """Fill the state directory's filesystem to the last byte."""


class DiskFree(_Step, tag="disk_free", kw_only=True):
    """Give back what ``disk_fill`` took."""


class CheckConfig(_Step, tag="check_config", kw_only=True):
    """Run ``carehub check-config`` on the rig's config with ``set`` applied (dotted keys to values,
    ``"device[0].gpio.pin" = "x"``) or with ``text`` appended; expect it ``refused`` (exit non-zero)
    with every pattern of ``errors`` (regular expressions, e.g. ``'hub\\.toml:\\d+:\\d+: mqtt\\.port'``)
    in its output, or accepted."""

    set: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    refused: bool = True
    errors: list[str] = field(default_factory=list)


class PushConfig(_Step, tag="push_config", kw_only=True):
    """The central pushes the rig's config (``cmd/config``, signed with its key) as ``version``, with
    ``set`` applied as in ``check_config``; ``broker = "unreachable"`` points it at a port nothing
    listens on. Expect the reply's ``result`` (``applying``, or a refusal such as ``invalid``) and
    every pattern of ``errors`` in its error lines. Mark: the push."""

    version: Annotated[int, Meta(ge=1, le=2**53)]
    set: dict[str, Any] = field(default_factory=dict)
    broker: Literal["rig", "unreachable"] = "rig"
    result: Annotated[str, Meta(pattern=r"^[a-z_]{1,32}$")] = "applying"
    errors: list[str] = field(default_factory=list)


# --- what the central sees and does ------------------------------------------------------------


class ExpectEvent(_Step, tag="expect_event", kw_only=True):
    """Expect ``count`` events of ``type`` (fnmatch: ``alarm.*``) from ``device`` (optional) at the
    central within ``within_ms`` of this step, each having the ``fields`` given (dotted paths:
    ``"data.gesture" = "press"``, ``priority = "critical"``). Mark: each arrival."""

    type: str
    device: DeviceId | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    count: Annotated[int, Meta(ge=1, le=100_000)] = 1
    within_ms: Ms = 5000


class ExpectNoEvent(_Step, tag="expect_no_event", kw_only=True):
    """Expect no event of ``type`` (fnmatch; default: any) from ``device`` for ``for_ms``."""

    type: str = "*"
    device: DeviceId | None = None
    for_ms: Ms = 1000


class ExpectFeedback(_Step, tag="expect_feedback", kw_only=True):
    """Expect a device's LED (or buzzer) to show ``state`` within ``within_ms``:
    ``off``, ``fast_blink``, ``slow_blink``, ``steady``, ``fault``, or ``checkin`` (a check-in taken:
    two long glows, once). Needs ``led_readback``."""

    device: DeviceId
    output: Literal["led", "buzzer"] = "led"
    state: Literal["off", "fast_blink", "slow_blink", "steady", "fault", "checkin"]
    within_ms: Ms = 3000


class ExpectSms(_Step, tag="expect_sms", kw_only=True):
    """Expect the residence's modem to have been asked, in all since setup, for ``count`` SMS (AT+CMGS) to
    ``to`` within ``within_ms``; each one it sent there holds every word of ``contains``. Needs ``gsm_modem``.
    Mark: when the count was reached."""

    to: Annotated[str, Meta(pattern=r"^[+][1-9][0-9]{6,14}$")]
    device: DeviceId = "modem"
    count: Annotated[int, Meta(ge=0, le=1000)] = 1
    contains: list[str] = field(default_factory=list)
    within_ms: Ms = 10_000


class ExpectStatus(_Step, tag="expect_status", kw_only=True):
    """Expect the hub's retained status topic to say ``state`` (``online`` / ``offline``) within ``within_ms``."""

    state: Literal["online", "offline"]
    within_ms: Ms = 10_000


class Ack(_Step, tag="ack", kw_only=True):
    """The central acknowledges the alarm(s) marked ``event`` (every one, when the mark holds several)."""

    event: Name
    by: str = "hil-operator"


class CheckCentral(_Step, tag="check_central", kw_only=True):
    """What the central's recorder must have seen by now: no seq gap, no event lost (every alarm the
    rig raised and the hub took is there), ids unique after de-duplication, and, with
    ``alarms_first_after`` (a mark), every alarm delivered after that instant arriving before
    the older telemetry that waited with it."""

    no_seq_gaps: bool = True
    nothing_lost: bool = True
    alarms_first_after: Name | None = None
    within_ms: Ms = 30_000


class Repeat(_Step, tag="repeat", kw_only=True):
    """Run ``steps`` ``times`` times (marks inside collect one instant per pass)."""

    times: Annotated[int, Meta(ge=1, le=100_000)]
    steps: list[Step]


class Background(_Step, tag="background", kw_only=True):
    """Run ``steps`` in the background while the following steps run; ``join`` waits for it."""

    name: Name
    steps: list[Step]


class Join(_Step, tag="join", kw_only=True):
    """Wait for the background steps called ``name`` to end."""

    name: Name
    within_ms: Ms = 60_000


Step = Union[
    Press, Hold, Release, Pull, Serial, Unplug, Replug, Advertise, BleFault,
    Wait, ClockStep, BrokerStop, BrokerStart, NetCut, NetImpair, NetRestore,
    HubKill, HubStart, PowerCut, DiskFill, DiskFree, CheckConfig, PushConfig,
    ExpectEvent, ExpectNoEvent, ExpectFeedback, ExpectSms, ExpectStatus, Ack, CheckCentral,
    Repeat, Background, Join,
]  # fmt: skip


# --- measurements -------------------------------------------------------------------------------

Stat = Literal["p50", "p90", "p99", "max", "min", "mean", "count"]


class Limit(Struct, kw_only=True, forbid_unknown_fields=True):
    """Bounds on a figure; either may be absent. Marginal: within ``marginal_pct`` of a bound."""

    min: float | None = None
    max: float | None = None
    marginal_pct: Annotated[float, Meta(ge=0, le=100)] = 20


class Measure(Struct, kw_only=True, forbid_unknown_fields=True, rename={"from_": "from"}):
    """A figure of the run: ``stat`` of the intervals ``from`` → ``to`` (marks, paired in order), in ms;
    or ``stat = "count"`` of the mark ``to``. ``limits`` by rig kind (``virtual``, ``physical``);
    a rig kind without a limit records the figure with no outcome of its own."""

    name: Name
    from_: Name | None = None
    to: Name
    stat: Stat = "p99"
    unit: Literal["ms", "count"] = "ms"
    limits: dict[Literal["virtual", "physical"], Limit] = field(default_factory=dict)


class ScenarioHead(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[scenario]``: who it is for and what it needs."""

    title: str
    description: str = ""
    needs: list[str] = field(default_factory=list)
    timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 120
    #: Run alone even under ``--jobs N`` (its figures are latencies the other scenarios' load would skew).
    exclusive: bool = False
    #: Seed for random waits; the run's seed when absent (recorded either way).
    seed: int | None = None


class HubSetup(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[hub]``: the scenario's changes to the rig's residence config."""

    config: dict[str, Any] = field(default_factory=dict)
    #: Start the hub before the first step (``false``: the scenario starts it, or never does: bad_config).
    start: bool = True


class Scenario(Struct, kw_only=True, forbid_unknown_fields=True):
    """One scenario file. ``name`` and ``path`` are set by the loader from the file."""

    scenario: ScenarioHead
    hub: HubSetup = field(default_factory=HubSetup)
    step: list[Step]
    measure: list[Measure] = field(default_factory=list)
    name: str = ""
    path: str = ""
    #: The ``[params]`` values in effect (:mod:`hil.params`) and the profile that chose them.
    params: dict[str, Any] = field(default_factory=dict)
    profile: str = "full"


def step_kind(step: Any) -> str:
    """The ``do`` of a step."""
    return type(step).__struct_config__.tag  # type: ignore[no-any-return]


def walk_steps(steps: list[Any]) -> Any:
    """Every step, depth first (the steps inside ``repeat`` and ``background`` too)."""
    for s in steps:
        yield s
        if isinstance(s, (Repeat, Background)):
            yield from walk_steps(s.steps)


def decode(data: dict[str, Any]) -> Scenario:
    """A scenario from parsed TOML; raises ``msgspec.ValidationError`` (the loader adds positions)."""
    return msgspec.convert(data, Scenario)
