"""The scenario loader: a bad scenario file gets FILE:LINE:COL and the key, like a bad config.

Each test writes a scenario file and checks the exact lines an engineer would read
(``FILE:LINE:COL: key.path: message``), not just that loading failed.
"""

from __future__ import annotations

import textwrap
import typing
from pathlib import Path

import msgspec
import pytest

from hil import model
from hil.fixtures import FIXTURES
from hil.loader import LoadError, ScenarioError, load_scenario, load_scenarios, load_toml_struct

DATA = Path(__file__).parent / "hil_data"

HEAD = '[scenario]\ntitle = "t"\n\n'  # lines 1-3


def write(tmp_path: Path, body: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def errors(tmp_path: Path, body: str, name: str = "s.toml") -> list[str]:
    """The error lines for a scenario file, its path shortened to F."""
    path = write(tmp_path, body, name)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [line.replace(str(path), "F") for line in info.value.lines()]


# --- a valid file ---------------------------------------------------------------------------------


def test_a_valid_file_loads_with_its_name_and_path() -> None:
    path = DATA / "press_twice.toml"
    s = load_scenario(path)
    assert (s.name, s.path) == ("press_twice", str(path))
    assert s.scenario.needs == ["gpio_loopback"]
    assert s.hub.config == {"alarm": {"ack_timeout_s": 5}}
    assert [model.step_kind(st) for st in s.step] == ["expect_status", "repeat", "ack", "expect_feedback"]
    repeat = s.step[1]
    assert isinstance(repeat, model.Repeat) and repeat.times == 2
    assert [model.step_kind(st) for st in repeat.steps] == ["press", "expect_event", "wait"]
    assert repeat.steps[2] == model.Wait(random_ms=(100.0, 300.0))
    press_to_central, alarms = s.measure
    assert (press_to_central.from_, press_to_central.to, press_to_central.stat) == ("press", "alarm", "p99")
    assert press_to_central.limits["virtual"] == model.Limit(max=50)
    assert press_to_central.limits["physical"] == model.Limit(max=150, marginal_pct=10)
    assert (alarms.from_, alarms.stat, alarms.limits["virtual"].min) == (None, "count", 2)


# --- the structs --------------------------------------------------------------------------------------


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    assert errors(tmp_path, '[scenario]\ntitle = "unclosed\n\n[[step]]\ndo = "wait"\n') == [
        "F:2:18: toml: not valid TOML: unclosed string: the closing quote is missing on this line"
    ]


def test_unknown_key_is_refused_on_its_own_line_with_a_guess(tmp_path: Path) -> None:
    body = HEAD + '[[step]]\ndo = "press"\ndevice = "button-1"\n  hold_msec = 100\n'
    assert errors(tmp_path, body) == [
        "F:7:3: step[0].hold_msec: unknown key (did you mean 'hold_ms'?); expected one of: mark, device, hold_ms"
    ]


def test_unknown_top_level_table_and_name_written_in_the_file(tmp_path: Path) -> None:
    body = 'name = "x"\n' + HEAD + '[[step]]\ndo = "hub_start"\n\n[hubb]\nstart = false\n'
    assert errors(tmp_path, body) == [
        "F:1:1: name: set by the loader (the file's stem); remove this key",
        "F:8:1: hubb: unknown key (did you mean 'hub'?); expected one of: scenario, hub, step, measure, name, path, params, profile",
    ]


def test_wrong_type_says_what_was_expected_and_found(tmp_path: Path) -> None:
    body = HEAD + '[[step]]\ndo = "press"\ndevice = "button-1"\nhold_ms = "long"\n'
    assert errors(tmp_path, body) == ["F:7:1: step[0].hold_ms: expected a number, found a string 'long'"]


def test_out_of_bounds_and_pattern(tmp_path: Path) -> None:
    body = HEAD + '[[step]]\ndo = "wait"\nms = -5\nmark = "Press"\n'
    assert errors(tmp_path, body) == [
        "F:6:1: step[0].ms: expected a number >= 0.0, found an integer -5",
        "F:7:1: step[0].mark: expected lower-case letters, digits and _, found a string 'Press'",
    ]


def test_bad_enum_lists_the_choices(tmp_path: Path) -> None:
    body = HEAD + '[[step]]\ndo = "expect_feedback"\ndevice = "button-1"\nstate = "blinking"\n'
    assert errors(tmp_path, body) == [
        "F:7:1: step[0].state: expected one of 'off', 'fast_blink', 'slow_blink', 'steady', 'fault', 'checkin', "
        "found a string 'blinking'"
    ]


def test_unknown_do_lists_every_step_kind(tmp_path: Path) -> None:
    (line,) = errors(tmp_path, HEAD + '[[step]]\ndo = "prss"\ndevice = "button-1"\n')
    assert line.startswith("F:5:1: step[0].do: expected one of 'press', 'hold', ")
    assert line.endswith(", found a string 'prss' (did you mean 'press'?)")
    kinds = [t.__struct_config__.tag for t in typing.get_args(model.Step)]
    assert len(kinds) == 33 and all(f"'{k}'" in line for k in kinds)


def test_a_step_without_do(tmp_path: Path) -> None:
    (line,) = errors(tmp_path, HEAD + '[[step]]\ndevice = "button-1"\n')
    assert line.startswith("F:4:1: step[0]: missing required key 'do', one of 'press', ")


def test_nested_step_errors_inside_repeats_point_at_their_own_lines(tmp_path: Path) -> None:
    """The second repeat's steps count from 0 again: step[1].steps[0], not steps[2]."""
    body = HEAD + textwrap.dedent("""\
        [[step]]
        do = "repeat"
        times = 2
          [[step.steps]]
          do = "wait"
          ms = 1
          [[step.steps]]
          do = "wait"
          ms = 2

        [[step]]
        do = "repeat"
        times = 3
          [[step.steps]]
          do = "press"
          device = "button-1"
          hold_ms = true
        """)
    assert errors(tmp_path, body) == ["F:20:3: step[1].steps[0].hold_ms: expected a number, found a boolean true"]


def test_nested_steps_as_inline_tables_over_several_lines(tmp_path: Path) -> None:
    body = HEAD + textwrap.dedent("""\
        [[step]]
        do = "background"
        name = "burst"
        steps = [
          { do = "press", device = "button-1", mark = "p" },
          { do = "repeat", times = 2, steps = [{ do = "wait", ms = 1 }, { do = "wait", secs = 2 }] },
        ]
        """)
    assert errors(tmp_path, body) == [
        "F:9:80: step[0].steps[1].steps[1].secs: unknown key; expected one of: mark, ms, random_ms"
    ]


def test_limits_are_checked_by_rig_kind(tmp_path: Path) -> None:
    body = HEAD + textwrap.dedent("""\
        [[step]]
        do = "press"
        device = "button-1"
        mark = "p"

        [[measure]]
        name = "m"
        from = "p"
        to = "p"
        stat = "p95"
        limits.virtul = { max = 5 }
        limits.physical = { max = "fast" }
        """)
    assert errors(tmp_path, body) == [
        "F:13:1: measure[0].stat: expected one of 'p50', 'p90', 'p99', 'max', 'min', 'mean', 'count', "
        "found a string 'p95'",
        "F:14:1: measure[0].limits.virtul: unknown key (did you mean 'virtual'?); expected one of: virtual, physical",
        "F:15:21: measure[0].limits.physical.max: expected a number, found a string 'fast'",
    ]


# --- the checks across the file ---------------------------------------------------------------------

STEPS = HEAD + textwrap.dedent("""\
    [[step]]
    do = "press"
    device = "button-1"
    mark = "press"

    [[step]]
    do = "expect_event"
    type = "alarm.button"
    mark = "alarm"
    """)  # lines 4-12; marks: press, alarm


def test_measure_naming_an_unknown_mark(tmp_path: Path) -> None:
    body = STEPS + ('\n[[measure]]\nname = "m"\nfrom = "pres"\nto = "alarm"\n'
                    '\n[[measure]]\nname = "n"\nto = "ack"\nstat = "count"\n')
    assert errors(tmp_path, body) == [
        "F:16:1: measure[0].from: no step sets the mark 'pres' (did you mean 'press'?); marks set: 'alarm', 'press'",
        "F:21:1: measure[1].to: no step sets the mark 'ack'; marks set: 'alarm', 'press'",
    ]


def test_interval_measure_without_from(tmp_path: Path) -> None:
    body = STEPS + '\n[[measure]]\nname = "m"\nto = "alarm"\n'
    assert errors(tmp_path, body) == [
        "F:14:1: measure[0]: stat 'p99' is of intervals and needs 'from' (the mark they start at); "
        "only stat = 'count' goes without"
    ]


def test_ack_and_check_central_naming_unknown_marks(tmp_path: Path) -> None:
    body = STEPS + ('\n[[step]]\ndo = "ack"\nevent = "alrm"\n'
                    '\n[[step]]\ndo = "check_central"\nalarms_first_after = "down"\n')
    assert errors(tmp_path, body) == [
        "F:16:1: step[2].event: no step sets the mark 'alrm' (did you mean 'alarm'?); marks set: 'alarm', 'press'",
        "F:20:1: step[3].alarms_first_after: no step sets the mark 'down'; marks set: 'alarm', 'press'",
    ]


def test_join_naming_no_background_and_two_backgrounds_of_one_name(tmp_path: Path) -> None:
    body = HEAD + textwrap.dedent("""\
        [[step]]
        do = "background"
        name = "burst"
        steps = [{ do = "wait", ms = 1 }]

        [[step]]
        do = "background"
        name = "burst"
        steps = []

        [[step]]
        do = "join"
        name = "bursts"
        """)
    assert errors(tmp_path, body) == [
        "F:11:1: step[1].name: a background called 'burst' is already at step[0]; give each its own name",
        "F:16:1: step[2].name: no background step is called 'bursts' (backgrounds: 'burst')",
    ]


def test_a_mark_set_by_two_steps(tmp_path: Path) -> None:
    body = STEPS + ('\n[[step]]\ndo = "repeat"\ntimes = 2\n'
                    '  [[step.steps]]\n  do = "pull"\n  device = "cord-1"\n  mark = "press"\n')
    assert errors(tmp_path, body) == [
        "F:20:3: step[2].steps[0].mark: the mark 'press' is already set by step[0] (line 7); a mark names one "
        "step (inside a repeat it collects one instant per pass)"
    ]


def test_a_fixture_no_rig_knows(tmp_path: Path) -> None:
    body = '[scenario]\ntitle = "t"\nneeds = ["uart_loopback", "gpio_lopback"]\n\n[[step]]\ndo = "wait"\n'
    (line,) = errors(tmp_path, body)
    assert line.startswith("F:3:27: scenario.needs[1]: expected a fixture, one of 'ble_advertiser', ")
    assert line.endswith(", found 'gpio_lopback' (did you mean 'gpio_loopback'?)")
    assert all(f"'{f}'" in line for f in FIXTURES)


def test_wait_with_ms_and_random_ms_and_a_reversed_range(tmp_path: Path) -> None:
    body = HEAD + ('[[step]]\ndo = "wait"\nms = 5\nrandom_ms = [300, 100]\n'
                   '\n[[step]]\ndo = "wait"\nrandom_ms = [10, 20]\n')
    assert errors(tmp_path, body) == [
        "F:7:1: step[0].random_ms: expected [lo, hi] with lo <= hi, found [300, 100]",
        "F:7:1: step[0].random_ms: give either ms (a fixed wait) or random_ms (a random one), not both",
    ]


def test_a_limit_with_min_above_max(tmp_path: Path) -> None:
    body = STEPS + ('\n[[measure]]\nname = "m"\nfrom = "press"\nto = "alarm"\n'
                    '[measure.limits.virtual]\nmin = 60\nmax = 50\n')
    assert errors(tmp_path, body) == [
        "F:19:1: measure[0].limits.virtual.min: min 60 is above max 50; no value could pass"
    ]


def test_every_problem_of_a_file_in_one_pass_sorted_by_line(tmp_path: Path) -> None:
    """Struct mistakes and checks across the file together: fixing one never reveals another."""
    body = textwrap.dedent("""\
        [scenario]
        title = "t"
        needs = ["nope"]

        [[measure]]
        name = "m"
        from = "press"
        to = "alarm"

        [[step]]
        do = "press"
        devcie = "button-1"
        mark = "press"

        [[step]]
        do = "ack"
        event = "alarm"
        """)
    lines = errors(tmp_path, body)
    assert [line.split(": ")[0:2] for line in lines] == [
        ["F:3:10", "scenario.needs[0]"],
        ["F:8:1", "measure[0].to"],
        ["F:10:1", "step[0]"],  # missing device
        ["F:12:1", "step[0].devcie"],
        ["F:17:1", "step[1].event"],
    ]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.toml")
    (line,) = info.value.lines()
    assert line.startswith(f"{tmp_path / 'missing.toml'}: cannot read: ") and "No such file" in line
    assert str(info.value) == line


# --- several files ------------------------------------------------------------------------------------


def test_load_scenarios_by_name_path_and_directory(tmp_path: Path) -> None:
    valid = (DATA / "press_twice.toml").read_text()
    (tmp_path / "b.toml").write_text(valid)
    (tmp_path / "a.toml").write_text(valid)
    (tmp_path / "notes.txt").write_text("not a scenario")
    by_name = load_scenarios(["press_twice"], scenario_dir=DATA)
    assert [(s.name, s.path) for s in by_name] == [("press_twice", str(DATA / "press_twice.toml"))]
    in_dir = load_scenarios([tmp_path, "press_twice", tmp_path / "a.toml"], scenario_dir=DATA)
    assert [s.name for s in in_dir] == ["a", "b", "press_twice"]  # sorted; a.toml only once


def test_load_scenarios_collects_the_errors_of_every_file(tmp_path: Path) -> None:
    write(tmp_path, HEAD + '[[step]]\ndo = "jump"\n', "one.toml")
    write(tmp_path, HEAD + '[[step]]\ndo = "wait"\nms = "x"\n', "two.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenarios([tmp_path / "one.toml", "press_twise", tmp_path / "two.toml"], scenario_dir=DATA)
    lines = info.value.lines()
    assert len(lines) == 3
    assert lines[0] == ("press_twise: no scenario called 'press_twise' in "
                        f"{DATA} (did you mean 'press_twice'?); known: press_twice")
    assert lines[1].startswith(f"{tmp_path / 'one.toml'}:5:1: step[0].do: expected one of 'press', ")
    assert lines[2] == f"{tmp_path / 'two.toml'}:6:1: step[0].ms: expected a number, found a string 'x'"


# --- the generic part, as the rig file uses it -------------------------------------------------------


class _Pin(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    out: int
    inp: int


class _RigFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    fixtures: list[str]
    pins: dict[str, _Pin] = {}


class RigFileError(LoadError):
    pass


def test_load_toml_struct_for_another_struct_with_its_own_checks(tmp_path: Path) -> None:
    def check(doc: typing.Any, rig: _RigFile | None) -> None:
        for i, fx in enumerate((doc.data or {}).get("fixtures", [])):
            if fx not in FIXTURES:
                doc.report(("fixtures", i), f"unknown fixture {fx!r}")

    text = 'name = "pi-1"\nfixtures = ["gpio_loopback", "wires"]\n\n[pins.button-1]\nout = 17\nin = 27\n'
    path = write(tmp_path, text, "rig.toml")
    with pytest.raises(RigFileError) as info:
        load_toml_struct(path, _RigFile, check=check, error=RigFileError)
    assert [line.replace(str(path), "F") for line in info.value.lines()] == [
        "F:2:30: fixtures[1]: unknown fixture 'wires'",
        "F:4:1: pins.button-1: missing required key 'inp'",
        "F:6:1: pins.button-1.in: unknown key (did you mean 'inp'?); expected one of: out, inp",
    ]
    path.write_text('name = "pi-1"\nfixtures = ["gpio_loopback"]\npins.button-1 = { out = 17, inp = 27 }\n')
    rig = load_toml_struct(path, _RigFile, check=check, error=RigFileError)
    assert rig == _RigFile(name="pi-1", fixtures=["gpio_loopback"], pins={"button-1": _Pin(out=17, inp=27)})
