"""Scenario parameters: the quick profile trims sizes, never the checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

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


def scenario(text: str, profile: str | None) -> Scenario:
    data, used = substitute(tomllib.loads(text), profile)
    return msgspec.convert({**data, "params": used}, Scenario)


def test_full_and_quick_sizes_with_the_same_steps_and_limits_following_them() -> None:
    full, quick = scenario(TEXT, None), scenario(TEXT, "quick")
    assert isinstance(full.step[0], Repeat) and full.step[0].times == 50
    assert isinstance(quick.step[0], Repeat) and quick.step[0].times == 5
    assert full.measure[0].limits["virtual"].min == 50 and quick.measure[0].limits["virtual"].min == 5
    assert [type(s) for s in full.step] == [type(s) for s in quick.step]
    assert quick.params == {"kills": 5}


def test_an_unknown_reference_names_its_key_path() -> None:
    with pytest.raises(ParamError) as e:
        substitute(tomllib.loads(TEXT.replace('"$kills"\n  [[step', '"$kils"\n  [[step')), None)
    assert e.value.path == ("step", 0, "times") and "kils" in e.value.message and "kills" in e.value.message


def test_a_quick_value_for_a_parameter_the_full_set_lacks_is_refused() -> None:
    with pytest.raises(ParamError) as e:
        substitute(tomllib.loads(TEXT.replace("[params.quick]\nkills = 5", "[params.quick]\npresses = 5")), "quick")
    assert e.value.path == ("params", "quick", "presses")


def test_every_acceptance_scenario_decodes_in_both_profiles() -> None:
    files = sorted((Path(__file__).parents[1] / "hil" / "scenarios").glob("*.toml"))
    assert len(files) == 16
    for f in files:
        for profile in (None, "quick"):
            s = scenario(f.read_text(), profile)
            assert s.step, f
