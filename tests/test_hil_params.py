"""Scenario parameters: the quick profile trims sizes, never the checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hil.loader import ScenarioError, load_scenario, load_scenarios
from hil.model import Repeat, Scenario
from hil.params import ParamError, substitute

TEXT = """
[scenario]
title = "t"

[params]
kills = 50
[params.quick]
kills = 5

[[step]]
do = "repeat"
times = "$kills"
  [[step.steps]]
  do = "hub_kill"
  mark = "kill"

[[measure]]
name = "kills"
to = "kill"
stat = "count"
unit = "count"
limits.virtual = { min = "$kills" }
"""


def scenario(text: str, profile: str | None, tmp_path: Path) -> Scenario:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_scenario(path, profile)


def test_full_and_quick_sizes_with_the_same_steps_and_limits_following_them(tmp_path: Path) -> None:
    full, quick = scenario(TEXT, None, tmp_path), scenario(TEXT, "quick", tmp_path)
    assert isinstance(full.step[0], Repeat) and full.step[0].times == 50
    assert isinstance(quick.step[0], Repeat) and quick.step[0].times == 5
    assert full.measure[0].limits["virtual"].min == 50 and quick.measure[0].limits["virtual"].min == 5
    assert [type(s) for s in full.step] == [type(s) for s in quick.step]
    assert quick.params == {"kills": 5} and quick.profile == "quick" and full.profile == "full"


def test_an_unknown_reference_names_its_key_path() -> None:
    with pytest.raises(ParamError) as e:
        substitute(tomllib.loads(TEXT.replace('"$kills"\n  [[step', '"$kils"\n  [[step')), None)
    assert e.value.path == ("step", 0, "times") and "kils" in e.value.message and "kills" in e.value.message


def test_a_quick_value_for_a_parameter_the_full_set_lacks_is_refused() -> None:
    with pytest.raises(ParamError) as e:
        substitute(tomllib.loads(TEXT.replace("[params.quick]\nkills = 5", "[params.quick]\npresses = 5")), "quick")
    assert e.value.path == ("params", "quick", "presses")


def test_the_loader_gives_file_line_and_key_of_an_unknown_parameter(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TEXT.replace('"$kills"\n  [[step', '"$kils"\n  [[step'))
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert e.value.lines() == [f"{path}:12:1: step[0].times: no parameter 'kils' in [params] (have: kills)"]


def test_every_acceptance_scenario_loads_in_both_profiles() -> None:
    names = ["bad_config", "ble_encrypted_button", "ble_scanner_recovery", "bed_exit_night", "broker_down", "check_in",
             "config_rollback", "disk_full", "door_night", "dose_missed", "fallback_sms", "hold_cancel", "kill9_burst",
             "network_partition", "nursecall", "power_cut", "press_ack", "serial_unplug", "unacknowledged"]
    files = sorted(p.stem for p in (Path(__file__).parents[1] / "hil" / "scenarios").glob("*.toml"))
    assert files == sorted(names), "the acceptance set, named exactly as the issue names it"
    for profile in (None, "quick"):
        assert [s.name for s in load_scenarios(names, profile=profile)] == names
