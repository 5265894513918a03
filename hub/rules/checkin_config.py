"""``[rules.check_in]``: the resident's daily check-in (:mod:`hub.rules.checkin`), and building it.

::

    [rules.check_in]
    enabled = true
    windows = ["08:00-10:30"]        # local time in [hub] timezone; one check-in expected in each
    devices = ["button-living"]      # BLE alarm buttons whose own gestures below are a check-in
    gestures = ["double_press"]      # of those buttons: double_press, triple_press, long_press
    # realert_s (unset: [rules] realert_s), priority = "high", route = "care"

    [[rules.check_in.absence]]       # planned absences: no call for a window they overlap
    from = "2026-12-20"              # local date (the whole day) or date and time "2026-12-20T14:00"
    until = "2027-01-03"             # a date: through the end of that day
    reason = "holiday"

Every device of kind ``checkin_button`` is a check-in button whatever this
table says (its press is never an alarm). The alarm buttons named in
``devices`` keep their press an alarm, at once; only the ``gestures`` named
are a check-in (never ``press``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

from hub.events import Priority, Route
from hub.rules.away import LOCAL_PATTERN, Absence, parse_local
from hub.rules.checkin import CheckIn
from hub.rules.clock import WINDOW_HELP, WINDOW_PATTERN, parse_window

__all__ = ["AbsenceConfig", "CheckInConfig", "build_check_in", "check_in_devices"]

LOCAL_HELP = "a local date 'YYYY-MM-DD' or date and time 'YYYY-MM-DDTHH:MM'"
LocalTime = Annotated[str, msgspec.Meta(pattern=LOCAL_PATTERN, extra={"help": LOCAL_HELP})]
WindowText = Annotated[str, msgspec.Meta(pattern=WINDOW_PATTERN, description=WINDOW_HELP)]
DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Gesture = Literal["double_press", "triple_press", "long_press"]
#: Device kinds a check-in may come from.
CHECKIN_KINDS = ("checkin_button", "alarm_button")


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of the check-in tables: keyword-only, frozen, unknown keys refused (as hub.config.sections.Section)."""


class AbsenceConfig(_Section, rename={"from_": "from"}):
    """``[[rules.check_in.absence]]``: the resident is away (a holiday, a hospital stay): no check-in call."""

    from_: Annotated[LocalTime, msgspec.Meta(description="First day away (from 00:00), or the local date and "
                                                         "time it starts: '2026-12-20' or '2026-12-20T14:00'.")]
    until: Annotated[LocalTime, msgspec.Meta(description="Last day away (through 24:00), or the local date and "
                                                         "time it ends: '2027-01-03' or '2027-01-03T12:00'.")]
    reason: Annotated[
        Annotated[str, msgspec.Meta(max_length=128)] | None,
        msgspec.Meta(description="Why, for people: 'holiday', 'hospital'. Never a diagnosis. Unset: none."),
    ] = None


class CheckInConfig(_Section):
    """``[rules.check_in]``: the resident checks in once in each daily window; none is ``checkin.missed``."""

    enabled: Annotated[bool, msgspec.Meta(description="Whether the rule runs (opt-in, per the care plan).")] = False
    windows: Annotated[
        tuple[WindowText, ...],
        msgspec.Meta(description="Daily windows, local time 'HH:MM-HH:MM' in [hub] timezone; no check-in inside "
                                 "one by its end is checkin.missed. Needed when enabled."),
    ] = ()
    devices: Annotated[
        tuple[DeviceId, ...],
        msgspec.Meta(description="BLE alarm buttons whose own gestures (below) are a check-in; their press stays "
                                 "an alarm. Devices of kind checkin_button count whatever this says."),
    ] = ()
    gestures: Annotated[
        tuple[Gesture, ...],
        msgspec.Meta(description="Which gestures of those buttons are a check-in, as BTHome reports them: "
                                 "double_press, triple_press, long_press (a long_press then no longer cancels)."),
    ] = ("double_press",)
    absences: Annotated[
        tuple[AbsenceConfig, ...],
        msgspec.Meta(description="Planned absences, one [[rules.check_in.absence]] table each: a window they "
                                 "overlap raises no call."),
    ] = msgspec.field(default=(), name="absence")
    realert_s: Annotated[
        Annotated[float, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(description="Re-alert interval of checkin.missed until a check-in, an ack or the next window; "
                                 "0 = none. Unset: [rules] realert_s."),
    ] = None
    priority: Annotated[Priority, msgspec.Meta(description="Priority of checkin.missed.")] = Priority.HIGH
    route: Annotated[Route, msgspec.Meta(description="Who responds to checkin.missed and gets checkin.done: "
                                                     "nurse, care or any.")] = Route.CARE

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """What the types cannot say: ``(key path under [rules.check_in], message)`` for each problem."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.enabled and not self.windows:
            problems.append((("windows",), "expected at least one window such as '08:00-10:30' when enabled"))
        for i, text in enumerate(self.windows):
            try:
                parse_window(text)
            except ValueError as exc:
                problems.append((("windows", i), str(exc)))
        for i, a in enumerate(self.absences):
            start = end = None
            for key, text in (("from", a.from_), ("until", a.until)):
                try:
                    parse_local(text, ZoneInfo("UTC"), end=key == "until")
                except ValueError as exc:
                    problems.append((("absence", i, key), str(exc)))
            try:
                start, end = _naive(a.from_, end=False), _naive(a.until, end=True)
            except ValueError:
                continue
            if end <= start:
                problems.append((("absence", i, "until"), f"expected a time after from ({a.from_}), found {a.until!r}"))
        return problems


def _naive(text: str, *, end: bool) -> datetime:
    """A config date or date-time as a naive local datetime (a date alone: its start, or with ``end`` the next day's)."""
    t = datetime.fromisoformat(text)
    return t + timedelta(days=1) if end and "T" not in text else t


def check_in_devices(cfg: CheckInConfig, devices: dict[str, tuple[str, bool]]) -> list[tuple[tuple[str | int, ...], str]]:
    """Each of ``cfg.devices`` is a BLE button of this residence. ``devices``: id -> (kind, heard over BTHome)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, dev in enumerate(cfg.devices):
        if dev not in devices:
            have = ", ".join(sorted(d for d, (k, _) in devices.items() if k in CHECKIN_KINDS)) or "none"
            problems.append((("devices", i), f"expected a button of this residence, found {dev!r} (buttons: {have})"))
            continue
        kind, bthome = devices[dev]
        if kind not in CHECKIN_KINDS:
            problems.append((("devices", i), f"expected an alarm_button or checkin_button, found {dev!r} of kind {kind!r}"))
        elif kind == "alarm_button" and not bthome:
            problems.append((("devices", i), f"{dev!r} reports no gestures of its own (only a BTHome button does): its "
                                             "press is always an alarm; make a separate device of kind checkin_button"))
    return problems


def build_check_in(
    cfg: CheckInConfig, *, tz: ZoneInfo, realert_s: float, devices: dict[str, tuple[str, float | None]]
) -> CheckIn | None:
    """The check-in rule of ``cfg`` (None when not enabled); ``devices``: id -> (kind, interval)."""
    if not cfg.enabled:
        return None
    absences = [
        Absence(start=parse_local(a.from_, tz, end=False), end=parse_local(a.until, tz, end=True), reason=a.reason)
        for a in cfg.absences
    ]
    return CheckIn(
        windows=[parse_window(w) for w in cfg.windows], tz=tz,
        buttons=[d for d, (kind, _) in devices.items() if kind == "checkin_button"],
        devices=cfg.devices, gestures=cfg.gestures, absences=absences,
        realert_s=cfg.realert_s if cfg.realert_s is not None else realert_s, priority=cfg.priority, route=cfg.route,
    )
