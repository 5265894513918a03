"""The ``[rules]`` config section, and :func:`build_rules` from it.

::

    [rules]
    night = "22:00-07:00"      # local wall-clock time in [hub] timezone; may cross midnight
    day = "07:00-22:00"        # "00:00-24:00" is the whole day
    realert_s = 900            # default re-alert interval of every rule; 0 = no re-alerts

    [rules.bed_not_returned]   # on by default
    after_s = 1200
    # enabled, priority = "high", route = "care", realert_s, window (default: night)

    [rules.bed_exit]           # immediate rule.bed_exit: opt-in, per the care plan
    enabled = true

    [rules.door_night]
    inside_after_s = 180       # after the door closes, a sign inside within this clears it
    open_after_s = 180         # a door held open this long alerts
    inside_types = ["motion.activity", "bed.return"]  # what counts as a sign inside (the default)
    inside_devices = ["motion-hall", "bedmat"]   # optional; default: any device but a door

    [rules.medication_missed]
    grace_s = 1800
    route = "nurse"

    [rules.inactivity]
    after_s = 14400            # quiet time inside the day window

    [rules.supervision]
    intervals = { bed_mat = 3600, door = 86400 }  # merged over the defaults; 0 = not supervised
    battery_low_pct = 20
    battery_ok_pct = 30

    [rules.check_in]           # opt-in: the resident's own daily check-in (hub.rules.checkin_config)
    enabled = true
    windows = ["08:00-10:30"]

Every rule table has ``enabled``, ``priority`` and ``route``; those that
re-alert have ``realert_s`` (unset: ``[rules] realert_s``), those tied to a
window have ``window`` (unset: ``[rules] night`` or ``day``).

The structs are plain msgspec structs, like :mod:`hub.config`'s (frozen,
keyword-only, unknown keys refused), so the config loader's walker reports
errors with FILE:LINE:COL. What the structs cannot say (a window whose start
is its end, battery_ok_pct not above battery_low_pct) is in
:meth:`RulesConfig.check`.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec

from hub.events import Priority, Route
from hub.rules.base import Rules
from hub.rules.bed import BedExit, BedNotReturned
from hub.rules.checkin_config import CheckInConfig, build_check_in
from hub.rules.clock import WINDOW_HELP, WINDOW_PATTERN, Window, parse_window
from hub.rules.door import INSIDE_TYPES, DoorNight
from hub.rules.inactivity import DEFAULT_ACTIVITY, Inactivity
from hub.rules.medication import MedicationMissed
from hub.rules.supervision import DEFAULT_INTERVALS, Supervision

__all__ = [
    "WINDOW_HELP",
    "WINDOW_PATTERN",
    "BedExitConfig",
    "BedNotReturnedConfig",
    "CheckInConfig",
    "DoorNightConfig",
    "InactivityConfig",
    "MedicationMissedConfig",
    "RulesConfig",
    "SupervisionConfig",
    "build_rules",
    "resolve_intervals",
]

TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
DEVICE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

WindowText = Annotated[str, msgspec.Meta(pattern=WINDOW_PATTERN, description=WINDOW_HELP)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
RealertSeconds = Annotated[
    float, msgspec.Meta(ge=0, description="Re-alert interval while the condition lasts; 0 = no re-alerts.")
]
TypeName = Annotated[str, msgspec.Meta(pattern=TYPE_PATTERN)]
DeviceId = Annotated[str, msgspec.Meta(pattern=DEVICE_PATTERN)]
Interval = Annotated[float, msgspec.Meta(ge=0, description="Expected reporting interval in seconds; 0 = not supervised.")]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


Enabled = Annotated[bool, _doc("Whether the rule runs.")]
Prio = Annotated[Priority, _doc("Priority of the rule's alerts.")]
Routed = Annotated[Route, _doc("Who responds to the rule's alerts: nurse, care or any.")]
OwnRealert = Annotated[RealertSeconds | None, _doc("Re-alert interval while the condition lasts; 0 = none. "
                                                   "Unset: [rules] realert_s.")]
NightWindow = Annotated[WindowText | None, _doc("When the rule applies, local time 'HH:MM-HH:MM'. "
                                                "Unset: [rules] night.")]
DayWindow = Annotated[WindowText | None, _doc("When the rule applies, local time 'HH:MM-HH:MM'. "
                                              "Unset: [rules] day.")]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every rules table: keyword-only, frozen, unknown keys refused (as hub.config.sections.Section)."""


class BedNotReturnedConfig(_Section):
    """``[rules.bed_not_returned]``: out of bed at night and not back within ``after_s``."""

    enabled: Enabled = True
    after_s: Annotated[float, msgspec.Meta(gt=0, description="Alert when not back in bed this long after a bed.exit.")] = 1200.0
    window: NightWindow = None
    realert_s: OwnRealert = None
    priority: Prio = Priority.HIGH
    route: Routed = Route.CARE


class BedExitConfig(_Section):
    """``[rules.bed_exit]``: an immediate rule.bed_exit for each bed.exit in the window (opt-in)."""

    enabled: Enabled = False
    window: NightWindow = None
    priority: Prio = Priority.HIGH
    route: Routed = Route.CARE


class DoorNightConfig(_Section):
    """``[rules.door_night]``: the door opened at night, and the resident is not known to be inside."""

    enabled: Enabled = True
    inside_after_s: Annotated[
        float, msgspec.Meta(gt=0, description="After the door closes, a sign inside within this long means no alert.")
    ] = 180.0
    open_after_s: Annotated[float, msgspec.Meta(gt=0, description="A door held open this long at night alerts.")] = 180.0
    inside_types: Annotated[
        tuple[TypeName, ...], _doc("Event types that are a sign the resident is inside.")
    ] = INSIDE_TYPES
    inside_devices: Annotated[
        tuple[DeviceId, ...], _doc("Devices whose events count as a sign inside. Empty: any device but a door.")
    ] = ()
    window: NightWindow = None
    realert_s: OwnRealert = None
    priority: Prio = Priority.HIGH
    route: Routed = Route.CARE


class MedicationMissedConfig(_Section):
    """``[rules.medication_missed]``: medication.missed, or due and not taken within ``grace_s``."""

    enabled: Enabled = True
    grace_s: Annotated[float, msgspec.Meta(gt=0, description="A due dose not taken this long is missed.")] = 1800.0
    priority: Prio = Priority.HIGH
    route: Routed = Route.NURSE


class InactivityConfig(_Section):
    """``[rules.inactivity]``: no activity for ``after_s`` inside the day window."""

    enabled: Enabled = True
    after_s: Annotated[float, msgspec.Meta(gt=0, description="Quiet time inside the day window before an alert.")] = 14400.0
    activity: Annotated[tuple[TypeName, ...], _doc("Event types that count as activity.")] = DEFAULT_ACTIVITY
    window: DayWindow = None
    realert_s: OwnRealert = None
    priority: Prio = Priority.NORMAL
    route: Routed = Route.CARE


class SupervisionConfig(_Section):
    """``[rules.supervision]``: silent devices, their return, low batteries."""

    enabled: Enabled = True
    intervals: Annotated[
        dict[str, Interval],
        _doc("Device kind to its expected reporting interval in seconds, merged over the defaults; "
             "0 = not supervised. A device's own expected_interval_s wins."),
    ] = {}
    battery_low_pct: Annotated[Percent, msgspec.Meta(description="device.battery_low below this.")] = 20
    battery_ok_pct: Annotated[
        Percent, msgspec.Meta(description="A new battery_low only after the battery was back at or above this.")
    ] = 30
    priority: Prio = Priority.NORMAL
    route: Routed = Route.ANY


class RulesConfig(_Section):
    """``[rules]``: the local rules of the residence."""

    night: Annotated[WindowText, _doc("The night, local time 'HH:MM-HH:MM' in [hub] timezone; the night "
                                      "rules' default window.")] = "22:00-07:00"
    day: Annotated[WindowText, _doc("The day, local time 'HH:MM-HH:MM'; the inactivity rule's default "
                                    "window.")] = "07:00-22:00"
    realert_s: Annotated[RealertSeconds, _doc("Every rule's re-alert interval while its condition lasts, unless "
                                              "its own realert_s says otherwise; 0 = none.")] = 900.0
    bed_not_returned: Annotated[BedNotReturnedConfig, _doc("Out of bed at night and not back within after_s.")] = (
        BedNotReturnedConfig())
    bed_exit: Annotated[BedExitConfig, _doc("An alert at once on a night bed.exit (opt-in).")] = BedExitConfig()
    door_night: Annotated[DoorNightConfig, _doc("The door opened at night, the resident not known to be "
                                                "inside.")] = DoorNightConfig()
    medication_missed: Annotated[MedicationMissedConfig, _doc("A dose missed, or due and not taken within "
                                                              "grace_s.")] = MedicationMissedConfig()
    inactivity: Annotated[InactivityConfig, _doc("No activity for after_s in the day window.")] = InactivityConfig()
    supervision: Annotated[SupervisionConfig, _doc("Silent devices, their return, low batteries.")] = (
        SupervisionConfig())
    check_in: Annotated[CheckInConfig, _doc("The resident's own daily check-in: none in a window is "
                                             "checkin.missed (opt-in).")] = CheckInConfig()

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """What the types cannot say: ``(key path under [rules], message)`` for each problem."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        windows: list[tuple[tuple[str, ...], str | None]] = [(("night",), self.night), (("day",), self.day)]
        for name in ("bed_not_returned", "bed_exit", "door_night", "inactivity"):
            windows.append(((name, "window"), getattr(self, name).window))
        for path, text in windows:
            if text is None:
                continue
            try:
                parse_window(text)
            except ValueError as exc:
                problems.append((path, str(exc)))
        problems += [(("check_in", *path), msg) for path, msg in self.check_in.check()]
        sup = self.supervision
        if sup.battery_ok_pct <= sup.battery_low_pct:
            problems.append(
                (
                    ("supervision", "battery_ok_pct"),
                    f"must be greater than battery_low_pct ({sup.battery_low_pct}), not {sup.battery_ok_pct}: "
                    "it is the level that re-arms the low-battery warning",
                )
            )
        return problems

    def realert(self, own: float | None) -> float:
        """A rule's re-alert interval: its own, or the ``[rules]`` default."""
        return self.realert_s if own is None else own

    def window(self, own: str | None, default: str) -> Window:
        return parse_window(own if own is not None else default)


def resolve_intervals(
    cfg: SupervisionConfig, devices: dict[str, tuple[str, float | None]]
) -> dict[str, tuple[str, float | None]]:
    """device id -> (kind, interval or None): the device's own, else its kind's; 0 means not supervised."""
    per_kind = {**DEFAULT_INTERVALS, **cfg.intervals}
    out: dict[str, tuple[str, float | None]] = {}
    for device, (kind, own) in devices.items():
        interval = own if own is not None else per_kind.get(kind)
        out[device] = (kind, float(interval) if interval else None)
    return out


def build_rules(
    cfg: RulesConfig, *, tz: ZoneInfo, devices: dict[str, tuple[str, float | None]] | None = None
) -> Rules:
    """The enabled rules of ``cfg``, in the hub's time zone.

    ``devices``: every device of the residence, id -> (kind, its own
    ``expected_interval_s`` or None for its kind's default). Raises
    :class:`ValueError` for what :meth:`RulesConfig.check` reports.
    """
    problems = cfg.check()
    if problems:
        raise ValueError("; ".join(f"rules.{'.'.join(map(str, path))}: {msg}" for path, msg in problems))
    rules = []
    c = cfg.bed_not_returned
    if c.enabled:
        rules.append(
            BedNotReturned(
                window=cfg.window(c.window, cfg.night), tz=tz, after_s=c.after_s,
                realert_s=cfg.realert(c.realert_s), priority=c.priority, route=c.route,
            )
        )
    e = cfg.bed_exit
    if e.enabled:
        rules.append(BedExit(window=cfg.window(e.window, cfg.night), tz=tz, priority=e.priority, route=e.route))
    d = cfg.door_night
    if d.enabled:
        rules.append(
            DoorNight(
                window=cfg.window(d.window, cfg.night), tz=tz, inside_after_s=d.inside_after_s,
                open_after_s=d.open_after_s, inside_types=d.inside_types, inside_devices=d.inside_devices or None,
                realert_s=cfg.realert(d.realert_s), priority=d.priority, route=d.route,
            )
        )
    m = cfg.medication_missed
    if m.enabled:
        rules.append(MedicationMissed(grace_s=m.grace_s, priority=m.priority, route=m.route))
    i = cfg.inactivity
    if i.enabled:
        rules.append(
            Inactivity(
                window=cfg.window(i.window, cfg.day), tz=tz, after_s=i.after_s, activity=i.activity,
                realert_s=cfg.realert(i.realert_s), priority=i.priority, route=i.route,
            )
        )
    check_in = build_check_in(cfg.check_in, tz=tz, realert_s=cfg.realert_s, devices=devices or {})
    if check_in is not None:
        rules.append(check_in)
    s = cfg.supervision
    if s.enabled:
        rules.append(
            Supervision(
                resolve_intervals(s, devices or {}), battery_low_pct=s.battery_low_pct,
                battery_ok_pct=s.battery_ok_pct, priority=s.priority, route=s.route,
            )
        )
    return Rules(rules)
