"""The ``[rules]`` config: defaults, TOML decoding, what check() refuses, and build_rules()."""

from __future__ import annotations

import tomllib
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from hub.events import Priority, Route
from hub.rules import BedNotReturned, DoorNight, Inactivity, MedicationMissed, RulesConfig, Supervision, build_rules
from hub.rules.config import WINDOW_HELP, WINDOW_PATTERN, resolve_intervals
from hub.rules.supervision import DEFAULT_INTERVALS

TZ = ZoneInfo("Europe/Oslo")


def rules_from(toml: str) -> RulesConfig:
    return msgspec.convert(tomllib.loads(toml).get("rules", {}), RulesConfig)


def test_defaults() -> None:
    cfg = RulesConfig()
    assert (cfg.night, cfg.day, cfg.realert_s) == ("22:00-07:00", "07:00-22:00", 900.0)
    assert cfg.check() == []
    rules = build_rules(cfg, tz=TZ, devices={})
    assert [r.name for r in rules] == ["bed_not_returned", "door_night", "medication_missed", "inactivity", "supervision"]
    bed = rules.get("bed_not_returned")
    assert isinstance(bed, BedNotReturned)
    assert (bed.after_s, bed.realert_s, bed.priority, bed.route, str(bed.window)) == (
        1200.0, 900.0, Priority.HIGH, Route.CARE, "22:00-07:00",
    )
    door = rules.get("door_night")
    assert isinstance(door, DoorNight)
    assert (door.inside_after_s, door.open_after_s, door.priority, door.route) == (180.0, 180.0, Priority.HIGH, Route.CARE)
    assert door.inside_devices is None and door.inside_types == {"motion.activity", "bed.return"}
    med = rules.get("medication_missed")
    assert isinstance(med, MedicationMissed)
    assert (med.grace_s, med.priority, med.route) == (1800.0, Priority.HIGH, Route.NURSE)
    ina = rules.get("inactivity")
    assert isinstance(ina, Inactivity)
    assert (ina.after_s, ina.priority, ina.route, str(ina.window)) == (14400.0, Priority.NORMAL, Route.CARE, "07:00-22:00")
    sup = rules.get("supervision")
    assert isinstance(sup, Supervision)
    assert (sup.priority, sup.route, sup.battery_low_pct, sup.battery_ok_pct) == (Priority.NORMAL, Route.ANY, 20, 30)


def test_a_full_rules_table() -> None:
    cfg = rules_from(
        """
        [rules]
        night = "21:30-06:30"
        day = "08:00-20:00"
        realert_s = 600

        [rules.bed_not_returned]
        after_s = 900
        priority = "critical"
        realert_s = 300

        [rules.bed_exit]
        enabled = true
        window = "00:00-24:00"

        [rules.door_night]
        inside_after_s = 240
        open_after_s = 60
        inside_devices = ["motion-hall", "bedmat"]
        route = "any"

        [rules.medication_missed]
        grace_s = 2700
        route = "care"

        [rules.inactivity]
        enabled = false

        [rules.supervision]
        intervals = { door = 7200, bed_mat = 0 }
        battery_low_pct = 15
        battery_ok_pct = 25
        """
    )
    assert cfg.check() == []
    rules = build_rules(cfg, tz=TZ, devices={"bedmat": ("bed_mat", None), "door-front": ("door", None)})
    assert [r.name for r in rules] == ["bed_not_returned", "bed_exit", "door_night", "medication_missed", "supervision"]
    bed = rules.get("bed_not_returned")
    assert isinstance(bed, BedNotReturned)
    assert (bed.after_s, bed.realert_s, bed.priority, str(bed.window)) == (900.0, 300.0, Priority.CRITICAL, "21:30-06:30")
    assert str(rules.get("bed_exit").window) == "00:00-24:00"  # type: ignore[union-attr]
    door = rules.get("door_night")
    assert isinstance(door, DoorNight)
    assert (door.inside_after_s, door.open_after_s, door.realert_s, door.route) == (240.0, 60.0, 600.0, Route.ANY)
    assert door.inside_devices == {"motion-hall", "bedmat"}
    med = rules.get("medication_missed")
    assert isinstance(med, MedicationMissed)
    assert (med.grace_s, med.route) == (2700.0, Route.CARE)
    sup = rules.get("supervision")
    assert isinstance(sup, Supervision)
    assert sup.status("bedmat")["expected_interval_s"] is None  # type: ignore[index]  # 0: not supervised
    assert sup.status("door-front")["expected_interval_s"] == 7200.0  # type: ignore[index]


def test_intervals_merge_over_the_defaults_and_a_device_overrides_its_kind() -> None:
    sup = rules_from("[rules.supervision]\nintervals = { door = 600 }").supervision
    devices = {
        "bedmat": ("bed_mat", None),
        "door-front": ("door", None),
        "door-back": ("door", 120),
        "motion-hall": ("motion", 0),
        "button": ("alarm_button", None),
        "thing": ("new_kind", None),
    }
    assert resolve_intervals(sup, devices) == {
        "bedmat": ("bed_mat", DEFAULT_INTERVALS["bed_mat"]),
        "door-front": ("door", 600.0),
        "door-back": ("door", 120.0),
        "motion-hall": ("motion", None),
        "button": ("alarm_button", None),
        "thing": ("new_kind", None),
    }


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        ('[rules]\nnigth = "22:00-07:00"', "nigth"),  # a typo is refused, not ignored
        ('[rules]\nnight = "22-07"', "night"),
        ('[rules]\nnight = "25:00-07:00"', "night"),
        ('[rules]\nday = "07:00-24:30"', "day"),
        ("[rules]\nrealert_s = -1", "realert_s"),
        ("[rules.bed_not_returned]\nafter_s = 0", "after_s"),
        ('[rules.bed_not_returned]\npriority = "urgent"', "priority"),
        ('[rules.medication_missed]\nroute = "doctor"', "route"),
        ("[rules.medication_missed]\nrealert_s = 60", "realert_s"),  # no re-alerts for a missed dose
        ("[rules.supervision]\nbattery_low_pct = 120", "battery_low_pct"),
        ("[rules.supervision]\nintervals = { door = -5 }", "intervals"),
        ('[rules.door_night]\ninside_devices = ["Hall Sensor"]', "inside_devices"),
        ("[rules.bed_exit]\nenabled = 1", "enabled"),
    ],
)
def test_bad_values_are_refused(toml: str, where: str) -> None:
    with pytest.raises(msgspec.ValidationError) as exc:
        rules_from(toml)
    assert where in str(exc.value)


def test_check_reports_what_the_types_cannot_say() -> None:
    cfg = rules_from(
        """
        [rules]
        night = "07:00-07:00"
        [rules.inactivity]
        window = "09:00-09:00"
        [rules.supervision]
        battery_low_pct = 30
        battery_ok_pct = 30
        """
    )
    problems = dict(cfg.check())
    assert set(problems) == {("night",), ("inactivity", "window"), ("supervision", "battery_ok_pct")}
    assert "an empty window; write '00:00-24:00' for the whole day" in problems[("night",)]
    assert "must be greater than battery_low_pct (30), not 30" in problems[("supervision", "battery_ok_pct")]
    with pytest.raises(ValueError, match=r"rules\.night: .*empty window"):
        build_rules(cfg, tz=TZ, devices={})


def test_the_hub_config_walker_reports_rules_errors_with_line_and_column() -> None:
    """The loader's struct walker (hub.config) handles these plain structs: every issue, with its position."""
    from hub.config import _check_value
    from hub.tomlpos import format_path, key_positions, locate

    text = '[hub]\nid = "x"\n\n[rules]\nnight = "22-07"\n\n[rules.door_night]\ninside_afer_s = 60\n'
    positions = key_positions(text)
    issues: list[str] = []

    def report(path: tuple[str | int, ...], message: str) -> None:
        line, col = locate(positions, path)
        issues.append(f"cfg.toml:{line}:{col}: {format_path(path)}: {message}")

    _check_value(tomllib.loads(text)["rules"], RulesConfig, ("rules",), report)
    assert len(issues) == 2
    assert issues[0].startswith("cfg.toml:5:1: rules.night: ") and "found a string '22-07'" in issues[0]
    assert issues[1].startswith("cfg.toml:8:1: rules.door_night.inside_afer_s: unknown key (did you mean 'inside_after_s'?)")


def test_window_pattern_agrees_with_parse_window() -> None:
    import re

    from hub.rules.clock import parse_window

    for h in range(25):
        for m in (0, 30, 59, 60):
            for text in (f"{h:02d}:{m:02d}-07:00", f"22:00-{h:02d}:{m:02d}"):
                try:
                    parse_window(text)
                    ok = True
                except ValueError:
                    ok = False
                if text[:5] == text[6:]:
                    continue  # the empty window: the pattern lets it through, check() refuses it
                assert bool(re.match(WINDOW_PATTERN, text)) is ok, text
    assert "HH:MM-HH:MM" in WINDOW_HELP


def test_schema_of_the_rules_table() -> None:
    schema = msgspec.json.schema(RulesConfig)
    props = schema["$defs"]["RulesConfig"]["properties"]
    assert props["night"]["pattern"] == WINDOW_PATTERN
    assert set(props) == {
        "night", "day", "realert_s", "bed_not_returned", "bed_exit", "door_night", "medication_missed",
        "inactivity", "supervision", "check_in",
    }


def test_built_rules_work_in_the_configured_time_zone() -> None:
    """The same 23:00 UTC is night in Oslo (00:00) but not in New York (18:00)."""
    t = datetime(2026, 1, 15, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    oslo = build_rules(RulesConfig(), tz=TZ, devices={}).get("bed_not_returned")
    ny = build_rules(RulesConfig(), tz=ZoneInfo("America/New_York"), devices={}).get("bed_not_returned")
    assert oslo.window.contains(t, oslo.tz)  # type: ignore[union-attr]
    assert not ny.window.contains(t, ny.tz)  # type: ignore[union-attr]
