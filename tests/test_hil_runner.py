"""The runner at the unit level: scenarios run against a rig in memory (tests/support/fakerig.py).

What a scenario author relies on: marks feed measurements; a failed expectation
stops the scenario; a missing fixture skips it without touching the rig; a rig
that breaks is an error, not a failure; timeout_s holds; repeat, background,
ack, the central's checks and check_config do what the model says; --repeat
finds the flaky; --jobs keeps the order; the command line's exit codes.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
import tomllib
import types
from pathlib import Path

import pytest

from hil import model
from hil.fixtures import FIXTURES, RigError
from hil.results import Outcome, ScenarioResult
from hil.runner import run_scenario, run_set
from tests.support.fakerig import FakeRig, stand_in_evaluate


@pytest.fixture(autouse=True)
def measure_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The measurement helper's hil.measure when it is in the tree; a stand-in with its signature until then."""
    if importlib.util.find_spec("hil.measure") is None:
        monkeypatch.setitem(sys.modules, "hil.measure", types.SimpleNamespace(evaluate=stand_in_evaluate))


def scenario(text: str, name: str = "t", timeout_s: float = 20) -> model.Scenario:
    head = f'[scenario]\ntitle = "a test"\ntimeout_s = {timeout_s}\n'
    sc = model.decode(tomllib.loads(head + text))
    sc.name, sc.path = name, f"{name}.toml"
    return sc


def run(rig: FakeRig, text: str, tmp_path: Path, **kw: object) -> ScenarioResult:
    return run_scenario(rig, scenario(text, **kw), tmp_path, seed=7)  # type: ignore[arg-type]


def steps(result: ScenarioResult) -> dict[str, tuple[str, Outcome, str]]:
    return {s.index: (s.do, s.outcome, s.detail) for s in result.steps}


PRESS_EXPECT = """
[[step]]
do = "press"
device = "button-1"
hold_ms = 10
mark = "pressed"
[[step]]
do = "expect_event"
type = "alarm.*"
device = "button-1"
fields = {"data.gesture" = "press", priority = "critical"}
within_ms = 1000
mark = "arrived"
"""

MEASURE = """
[[measure]]
name = "press_to_event"
from = "pressed"
to = "arrived"
stat = "max"
limits.virtual = {max = 1000}
"""


def test_marks_feed_the_measurement_and_steps_are_timed(tmp_path: Path) -> None:
    rig = FakeRig(delay_s=0.05)
    r = run(rig, PRESS_EXPECT + MEASURE, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    [m] = r.measurements
    assert m.name == "press_to_event" and len(m.samples) == 1
    assert 45 <= m.value <= 500  # the fake delivers 50 ms after the edge
    s = steps(r)
    assert list(s) == ["setup", "1", "2", "teardown"]
    press, expect = r.steps[1], r.steps[2]
    assert expect.at_ms >= press.at_ms + press.duration_ms - 1
    assert expect.data["ids"] == ["ev-0001"]
    assert r.central["received"] == 1 and r.log_tail == ""  # no log tail on a pass
    assert [c[0] for c in rig.calls] == ["setup", "press", "teardown"]


def test_a_measurement_over_its_limit_fails_the_scenario(tmp_path: Path) -> None:
    r = run(FakeRig(delay_s=0.05), PRESS_EXPECT + MEASURE.replace("max = 1000", "max = 10"), tmp_path)
    assert r.outcome is Outcome.FAIL and "press_to_event fail" in r.reason


def test_a_failing_expectation_stops_the_scenario(tmp_path: Path) -> None:
    rig = FakeRig(drop=("button-1",))
    r = run(rig, PRESS_EXPECT.replace("within_ms = 1000", "within_ms = 300")
            + '[[step]]\ndo = "press"\ndevice = "button-2"\n[[step]]\ndo = "wait"\nms = 10\n', tmp_path)
    assert r.outcome is Outcome.FAIL
    s = steps(r)
    assert s["2"][1] is Outcome.FAIL and "0 of 1 alarm.* from button-1" in s["2"][2]
    assert s["3"] == ("press", Outcome.SKIP, "not run") and s["4"] == ("wait", Outcome.SKIP, "not run")
    assert ("press", "button-2") not in rig.calls and rig.calls[-1] == ("teardown",)
    assert r.reason.startswith("step 2 (expect_event) fail")
    assert r.log_tail == "fake hub log: the end" and "received" in r.central


def test_near_misses_are_named(tmp_path: Path) -> None:
    r = run(FakeRig(), PRESS_EXPECT.replace('"data.gesture" = "press"', '"data.gesture" = "hold"')
            .replace("within_ms = 1000", "within_ms = 200"), tmp_path)
    assert r.outcome is Outcome.FAIL and "data.gesture='press' (wanted 'hold')" in steps(r)["2"][2]


def test_a_missing_fixture_skips_without_touching_the_rig(tmp_path: Path) -> None:
    rig = FakeRig(fixtures=set(FIXTURES) - {"uart_loopback", "net_cut"})
    r = run(rig, '[[step]]\ndo = "serial"\ndevice = "bed"\nsend = "occupancy"\n[[step]]\ndo = "net_cut"\n', tmp_path)
    assert r.outcome is Outcome.SKIP and r.reason == "needs fixture net_cut, uart_loopback"
    assert rig.calls == [] and r.steps == []


def test_a_rig_error_is_an_error_and_the_rig_is_torn_down(tmp_path: Path) -> None:
    rig = FakeRig(raise_on={"hub_kill": RigError("no such process")})
    r = run(rig, '[[step]]\ndo = "hub_kill"\n[[step]]\ndo = "wait"\n', tmp_path)
    assert r.outcome is Outcome.ERROR
    assert steps(r)["1"][1:] == (Outcome.ERROR, "rig: no such process") and steps(r)["2"][2] == "not run"
    assert rig.calls[-1] == ("teardown",) and r.log_tail


def test_an_unexpected_exception_is_an_error_with_its_last_line(tmp_path: Path) -> None:
    rig = FakeRig(raise_on={"setup": ZeroDivisionError("division by zero")})
    r = run(rig, '[[step]]\ndo = "wait"\n', tmp_path)
    assert r.outcome is Outcome.ERROR and "ZeroDivisionError: division by zero" in r.reason
    assert r.reason == "setup error: ZeroDivisionError: division by zero" and steps(r)["1"][2] == "not run"
    assert rig.calls[-1] == ("teardown",)
    assert "Traceback" in r.steps[0].data["traceback"]


def test_timeout_s_stops_a_waiting_step(tmp_path: Path) -> None:
    t = time.monotonic()
    r = run(FakeRig(), '[[step]]\ndo = "expect_event"\ntype = "never.*"\nwithin_ms = 60000\n'
            '[[step]]\ndo = "wait"\n', tmp_path, timeout_s=0.5)
    assert time.monotonic() - t < 3
    assert r.outcome is Outcome.FAIL
    assert steps(r)["1"][1] is Outcome.FAIL and "timeout_s=0.5 reached" in steps(r)["1"][2]
    assert steps(r)["2"][2] == "not run"


def test_repeat_indexes_each_pass_and_marks_collect_one_instant_per_pass(tmp_path: Path) -> None:
    body = "\n".join(line if not line.startswith("[[step]]") else "[[step.steps]]" for line in PRESS_EXPECT.splitlines())
    text = '[[step]]\ndo = "repeat"\ntimes = 3\n' + body + MEASURE.replace('stat = "max"', 'stat = "p50"')
    text += '\n[[measure]]\nname = "arrivals"\nto = "arrived"\nstat = "count"\nunit = "count"\n'
    r = run(FakeRig(), text, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    assert [s.index for s in r.steps] == ["setup", "1", "1.1.1", "1.1.2", "1.2.1", "1.2.2", "1.3.1", "1.3.2",
                                          "teardown"]
    latency, count = r.measurements
    assert len(latency.samples) == 3 and count.value == 3
    assert len({tuple(s.data["ids"]) for s in r.steps if s.do == "expect_event"}) == 3  # each pass its own event


def test_a_failure_inside_repeat_names_the_pass(tmp_path: Path) -> None:
    rig = FakeRig(raise_on={"disk_fill": RigError("no space to fill")})
    text = '[[step]]\ndo = "repeat"\ntimes = 3\n[[step.steps]]\ndo = "wait"\n[[step.steps]]\ndo = "disk_fill"\n'
    r = run(rig, text, tmp_path)
    s = steps(r)
    assert r.outcome is Outcome.ERROR and s["1"][1] is Outcome.ERROR and "pass 1 of 3" in s["1"][2]
    assert "1.2.1" not in s


def test_background_runs_beside_the_steps_and_join_waits(tmp_path: Path) -> None:
    text = """
[[step]]
do = "background"
name = "burst"
[[step.steps]]
do = "repeat"
times = 4
[[step.steps.steps]]
do = "press"
device = "button-1"
hold_ms = 5
[[step.steps.steps]]
do = "wait"
ms = 30
[[step]]
do = "expect_event"
type = "alarm.button"
count = 4
within_ms = 3000
[[step]]
do = "join"
name = "burst"
"""
    r = run(FakeRig(), text, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    s = steps(r)
    assert s["1.1"][0] == "repeat" and s["1.1.4.2"][0] == "wait" and s["3"][0] == "join"
    press_at = [x.at_ms for x in r.steps if x.index.startswith("1.1.") and x.do == "press"]
    expect = next(x for x in r.steps if x.index == "2")
    assert expect.at_ms < press_at[-1]  # the expectation waited while the burst went on


def test_a_background_in_a_repeat_starts_again_once_joined_but_not_while_it_runs(tmp_path: Path) -> None:
    text = """
[[step]]
do = "repeat"
times = 3
[[step.steps]]
do = "background"
name = "presses"
[[step.steps.steps]]
do = "press"
device = "button-1"
hold_ms = 5
[[step.steps]]
do = "join"
name = "presses"
"""
    r = run(FakeRig(), text, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    assert [x.index for x in r.steps if x.do == "press"] == ["1.1.1.1", "1.2.1.1", "1.3.1.1"]
    unjoined = run(FakeRig(), text.replace('[[step.steps]]\ndo = "join"\nname = "presses"\n',
                                            '[[step.steps]]\ndo = "wait"\nms = 1\n').replace("hold_ms = 5", "hold_ms = 300"),
                   tmp_path)
    assert unjoined.outcome is Outcome.FAIL and "started again while it still runs" in unjoined.reason


def test_a_failing_background_fails_the_scenario(tmp_path: Path) -> None:
    rig = FakeRig(raise_on={"net_cut": RigError("no veth")})
    text = ('[[step]]\ndo = "background"\nname = "b"\n[[step.steps]]\ndo = "wait"\nms = 100\n[[step.steps]]\ndo = "net_cut"\n'
            '[[step]]\ndo = "wait"\nms = 5000\n[[step]]\ndo = "join"\nname = "b"\n')
    t = time.monotonic()
    r = run(rig, text, tmp_path)
    assert time.monotonic() - t < 2  # the main lane's wait stopped
    s = steps(r)
    assert r.outcome is Outcome.ERROR and s["1.2"][1] is Outcome.ERROR
    assert s["2"][1] is Outcome.SKIP and s["2"][2].startswith("stopped: step 1.2 (net_cut) error: rig: no veth")
    assert s["3"][2] == "not run"


def test_ack_acknowledges_every_event_of_the_mark(tmp_path: Path) -> None:
    rig = FakeRig()
    text = PRESS_EXPECT + """
[[step]]
do = "ack"
event = "arrived"
by = "op-7"
[[step]]
do = "expect_event"
type = "alarm.acknowledged"
within_ms = 1000
[[step]]
do = "expect_feedback"
device = "button-1"
state = "steady"
within_ms = 1000
"""
    r = run(rig, text, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    assert rig.central.acks == [("ev-0001", "op-7")]
    assert steps(r)["5"][2].startswith("button-1 led: steady")
    again = run(FakeRig(), text.replace('by = "op-7"', 'by = "op-7"\n[[step]]\ndo = "ack"\nevent = "arrived"'), tmp_path)
    assert steps(again)["4"][1] is Outcome.FAIL and "not acknowledged already" in steps(again)["4"][2]
    assert len(rig.central.acks) == 1, "the second ack sent nothing"


def test_ack_in_a_repeat_acknowledges_each_pass_s_own_alarm_once(tmp_path: Path) -> None:
    rig = FakeRig()
    text = """
[[step]]
do = "repeat"
times = 3
  [[step.steps]]
  do = "press"
  device = "button-1"
  [[step.steps]]
  do = "expect_event"
  type = "alarm.button"
  mark = "arrived"
  within_ms = 1000
  [[step.steps]]
  do = "ack"
  event = "arrived"
"""
    r = run(rig, text, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    assert [eid for eid, _ in rig.central.acks] == ["ev-0001", "ev-0003", "ev-0005"]


def test_expect_no_event_sees_what_arrived_since_the_last_act(tmp_path: Path) -> None:
    text = ('[[step]]\ndo = "serial"\ndevice = "bed"\nsend = "occupancy"\n'
            '[[step]]\ndo = "wait"\nms = 100\n[[step]]\ndo = "expect_no_event"\ntype = "sensor.*"\nfor_ms = 100\n')
    r = run(FakeRig(), text, tmp_path)
    assert r.outcome is Outcome.FAIL and "unexpected sensor.occupancy from ['bed']" in steps(r)["3"][2]
    ok = run(FakeRig(), text.replace('"sensor.*"', '"alarm.*"'), tmp_path)
    assert ok.outcome is Outcome.PASS, ok.reason


def test_an_event_counts_for_one_expectation_and_duplicates_once(tmp_path: Path) -> None:
    text = ('[[step]]\ndo = "press"\ndevice = "button-1"\n[[step]]\ndo = "press"\ndevice = "button-2"\n'
            '[[step]]\ndo = "expect_event"\ntype = "alarm.button"\n[[step]]\ndo = "expect_event"\ntype = "alarm.button"\n'
            '[[step]]\ndo = "expect_event"\ntype = "alarm.button"\nwithin_ms = 300\n')
    r = run(FakeRig(duplicate=True), text, tmp_path)
    s = steps(r)
    assert s["3"][1] is Outcome.PASS and s["4"][1] is Outcome.PASS
    assert s["5"][1] is Outcome.FAIL  # two presses, each redelivered: still only two alarms
    assert r.steps[3].data["ids"] != r.steps[4].data["ids"]


def test_nothing_lost(tmp_path: Path) -> None:
    text = ('[[step]]\ndo = "press"\ndevice = "button-1"\n[[step]]\ndo = "press"\ndevice = "button-2"\n'
            '[[step]]\ndo = "check_central"\nwithin_ms = 400\n')
    assert run(FakeRig(), text, tmp_path).outcome is Outcome.PASS
    lost = run(FakeRig(drop=("button-2",)), text, tmp_path)
    assert lost.outcome is Outcome.FAIL
    assert "1 alarms taken by the hub never arrived (ev-0002)" in steps(lost)["3"][2]
    rig = FakeRig()
    rig.central.problem_list = ["seq gap: 3..4 missing"]
    gaps = run(rig, text, tmp_path)
    assert gaps.outcome is Outcome.FAIL and "seq gap: 3..4 missing" in steps(gaps)["3"][2]


ALARMS_FIRST = """
[[step]]
do = "broker_stop"
[[step]]
do = "serial"
device = "bed"
send = "occupancy"
times = 3
[[step]]
do = "press"
device = "button-1"
[[step]]
do = "serial"
device = "bed"
send = "occupancy"
[[step]]
do = "broker_start"
mark = "up"
[[step]]
do = "check_central"
alarms_first_after = "up"
within_ms = 1000
"""


def test_alarms_first_after_a_mark(tmp_path: Path) -> None:
    r = run(FakeRig(order="priority"), ALARMS_FIRST, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    fifo = run(FakeRig(order="fifo"), ALARMS_FIRST, tmp_path)
    assert fifo.outcome is Outcome.FAIL
    assert "1 alarms overtaken: alarm.button seq 4" in steps(fifo)["6"][2]
    assert "sensor.occupancy seq 1" in steps(fifo)["6"][2]


def test_check_config_expectations(tmp_path: Path) -> None:
    refused = '[[step]]\ndo = "check_config"\nset = {"mqtt.port" = "x"}\nerrors = [\'hub\\.toml:\\d+:\\d+: mqtt\\.port\']\n'
    r = run(FakeRig(), refused, tmp_path)
    assert r.outcome is Outcome.PASS, r.reason
    assert steps(r)["1"][2] == "refused (exit 1)"
    wrong = run(FakeRig(), refused.replace("mqtt\\.port", "mqtt\\.host"), tmp_path)
    assert wrong.outcome is Outcome.FAIL and "output lacks" in steps(wrong)["1"][2]
    accepted = run(FakeRig(), '[[step]]\ndo = "check_config"\n', tmp_path)
    assert accepted.outcome is Outcome.FAIL and "accepted (exit 0), expected refused" in steps(accepted)["1"][2]
    assert run(FakeRig(), '[[step]]\ndo = "check_config"\nrefused = false\n', tmp_path).outcome is Outcome.PASS


def test_random_waits_are_seeded_and_recorded(tmp_path: Path) -> None:
    text = '[[step]]\ndo = "repeat"\ntimes = 3\n[[step.steps]]\ndo = "wait"\nrandom_ms = [1, 20]\n'
    draws = [[s.data["ms"] for s in run(FakeRig(), text, tmp_path).steps if s.do == "wait"] for _ in range(2)]
    assert draws[0] == draws[1] and len(set(draws[0])) == 3 and all(1 <= d <= 20 for d in draws[0])
    other = run_scenario(FakeRig(), scenario(text), tmp_path, seed=8)
    assert [s.data["ms"] for s in other.steps if s.do == "wait"] != draws[0] and other.seed == 8


def test_repeat_finds_the_flaky(tmp_path: Path) -> None:
    rig = FakeRig(drop_on_setup=3)  # the second pass (setups 3 and 4) loses button-1's alarm
    sets = [scenario(PRESS_EXPECT.replace("1000", "300"), "press"), scenario('[[step]]\ndo = "wait"\n', "idle")]
    runset = run_set(rig, sets, tmp_path, repeat=3, seed=1)
    assert [[s.outcome.value for s in run.scenarios] for run in runset.runs] == [
        ["pass", "pass"], ["fail", "pass"], ["pass", "pass"]]
    assert runset.flaky() == {"press": ["pass", "fail", "pass"]}
    assert [run.repeat for run in runset.runs] == [1, 2, 3]
    assert [run.rig_info["seed"] for run in runset.runs] == [1, 2, 3]
    assert runset.runs[0].hub_version == "0.1.0" and runset.runs[0].config_hash == "c0ffee"
    assert (tmp_path / "pass2" / "press").is_dir()


def test_jobs_run_at_once_on_their_own_rigs_and_results_keep_the_order(tmp_path: Path) -> None:
    rigs: list[FakeRig] = []

    def make() -> FakeRig:
        rigs.append(FakeRig())
        return rigs[-1]

    sets = [scenario('[[step]]\ndo = "wait"\nms = 600\n', "slow"), scenario('[[step]]\ndo = "wait"\nms = 50\n', "fast"),
            scenario('[[step]]\ndo = "wait"\nms = 300\n', "middle")]
    ended: list[str] = []
    runset = run_set(make, sets, tmp_path, jobs=2, on_result=lambda k, r: ended.append(r.name))
    assert [s.name for s in runset.runs[0].scenarios] == ["slow", "fast", "middle"]
    assert ended[0] == "fast" and len(rigs) == 3 and all(r.setups == 1 for r in rigs)
    slow, fast = (next(s for s in runset.runs[0].scenarios if s.name == n) for n in ("slow", "fast"))
    assert fast.started < slow.started + slow.duration_s and slow.started < fast.started + fast.duration_s  # at once
    with pytest.raises(ValueError, match="rig factory"):
        run_set(FakeRig(), sets, tmp_path, jobs=2)


def test_an_exclusive_scenario_runs_first_with_nothing_beside_it(tmp_path: Path) -> None:
    sets = [scenario('[[step]]\ndo = "wait"\nms = 300\n', "other"),
            scenario('[[step]]\ndo = "wait"\nms = 300\n', "latency"),
            scenario('[[step]]\ndo = "wait"\nms = 300\n', "third")]
    sets[1].scenario.exclusive = True
    runset = run_set(FakeRig, sets, tmp_path, jobs=3)
    got = {s.name: s for s in runset.runs[0].scenarios}
    assert [s.name for s in runset.runs[0].scenarios] == ["other", "latency", "third"]
    alone = got["latency"]
    for name in ("other", "third"):  # duration_s is rounded to the ms (and started is the wall clock): 1 ms slack
        assert got[name].started >= alone.started + alone.duration_s - 0.001, f"{name} ran beside the exclusive one"
    assert abs(got["other"].started - got["third"].started) < 0.25  # the rest still at once


# --- the command line ---------------------------------------------------------------------------


class _StandInScenarioError(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self._lines = lines

    def lines(self) -> list[str]:
        return self._lines


def _stand_in_load_scenarios(items: list[str], scenario_dir: Path) -> list[model.Scenario]:
    import re

    import msgspec

    out, issues, paths = [], [], []
    for item in items:
        if Path(item).is_dir():
            paths += sorted(Path(item).glob("*.toml"))
        elif "/" in item or item.endswith(".toml"):
            paths.append(Path(item))
        elif (Path(scenario_dir) / f"{item}.toml").is_file():
            paths.append(Path(scenario_dir) / f"{item}.toml")
        else:
            issues.append(f"{item}: no scenario called {item!r} in {scenario_dir}")
    for p in paths:
        try:
            sc = model.decode(tomllib.loads(Path(p).read_text()))
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r"line (\d+), column (\d+)", str(exc))
            issues.append(f"{p}:{at[1]}:{at[2]}: {exc}" if at else f"{p}: {exc}")
            continue
        except msgspec.ValidationError as exc:
            issues.append(f"{p}:1:1: {exc}")
            continue
        sc.name, sc.path = Path(p).stem, str(p)
        out.append(sc)
    if issues:
        raise _StandInScenarioError(issues)
    return out


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    """hil.cli.main, with the loader's hil.loader (a stand-in with its signature until it is in the tree);
    the process's logging left alone."""
    if importlib.util.find_spec("hil.loader") is None:
        monkeypatch.setitem(sys.modules, "hil.loader", types.SimpleNamespace(
            ScenarioError=_StandInScenarioError, load_scenarios=_stand_in_load_scenarios))
    monkeypatch.setattr("hub.logs.configure", lambda *a, **k: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the default workdirs go here
    (tmp_path / "tmp").mkdir()
    from hil.cli import main

    return main


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[scenario]\ntitle = "{name}"\n' + text)
    return path


def test_cli_exit_0_when_all_pass_and_the_temporary_workdir_goes(cli, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "press_ok", PRESS_EXPECT + MEASURE)
    assert cli(["run", str(path), "--seed", "5"], rig_factory=FakeRig) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "press_ok" in out and "press_to_event max" in out and "seed 5" in out
    assert "files kept" not in out and list((tmp_path / "tmp").iterdir()) == []
    assert cli(["run", str(path)], rig_factory=lambda: FakeRig(drop=("button-1",), delay_s=2)) == 1
    [kept] = (tmp_path / "tmp").iterdir()
    assert f"files kept in {kept}" in capsys.readouterr().out and (kept / "press_ok").is_dir()


def test_cli_exit_1_on_a_failure_keeps_the_workdir(cli, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "lost", PRESS_EXPECT.replace("1000", "200"))
    code = cli(["run", str(path), "--workdir", str(tmp_path / "wd")], rig_factory=lambda: FakeRig(drop=("button-1",)))
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "step 2 (expect_event) fail" in out
    assert f"files kept in {tmp_path / 'wd'}" in out and (tmp_path / "wd" / "lost").is_dir()


def test_cli_exit_3_when_the_rig_breaks(cli, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "broken", '[[step]]\ndo = "hub_kill"\n')
    assert cli(["run", str(path)], rig_factory=lambda: FakeRig(raise_on={"hub_kill": RigError("pid gone")})) == 3
    assert "ERROR" in capsys.readouterr().out


def test_cli_exit_2_on_a_bad_scenario_file_with_its_line(cli, tmp_path: Path, capsys) -> None:
    good = _write(tmp_path, "good", '[[step]]\ndo = "wait"\n')
    bad = _write(tmp_path, "bad", '[[step]]\ndo = "wait"\nms = = 3\n')
    rig = FakeRig()
    assert cli(["run", str(good), str(bad)], rig_factory=lambda: rig) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and rig.calls == []


def test_cli_exit_2_on_usage(cli, tmp_path: Path, capsys) -> None:
    assert cli(["run", "no_such_scenario"], rig_factory=FakeRig) == 2
    assert "no scenario called 'no_such_scenario'" in capsys.readouterr().err
    assert cli(["run", "--repeat", "0", str(_write(tmp_path, "x", '[[step]]\ndo = "wait"\n'))], rig_factory=FakeRig) == 2
    assert cli(["run", "--rig", str(tmp_path / "nope.toml"), str(tmp_path / "x.toml")]) == 2
    assert "nope.toml: no such rig file" in capsys.readouterr().err


def test_cli_repeat_reports_the_flaky(cli, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "press", PRESS_EXPECT.replace("1000", "200"))
    rig = FakeRig(drop_on_setup=2)
    assert cli(["run", str(path), "--repeat", "3"], rig_factory=lambda: rig) == 1
    assert "flaky: press: pass fail pass" in capsys.readouterr().out


def test_cli_dry_run_prints_the_plan_and_runs_nothing(cli, tmp_path: Path, capsys) -> None:
    runs = _write(tmp_path, "runs", '[[step]]\ndo = "wait"\n')
    skips = _write(tmp_path, "skips", '[[step]]\ndo = "serial"\ndevice = "bed"\nsend = "occupancy"\n')
    rig = FakeRig(fixtures=set(FIXTURES) - {"uart_loopback"})
    assert cli(["run", "--dry-run", str(runs), str(skips)], rig_factory=lambda: rig) == 0
    out = capsys.readouterr().out
    assert "runs      runs" in out and "skips     skip      needs fixture uart_loopback" in out
    assert "1 run, 1 skipped" in out and rig.calls == []


def test_cli_help_documents_the_exit_codes_and_carehub_delegates(capsys) -> None:
    from hub.cli import main as carehub

    assert carehub(["hil", "run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: carehub hil run") and "exit codes:" in out and "3  no failure, but the rig broke" in out


def test_the_daemon_and_the_carehub_command_do_not_import_hil() -> None:
    import subprocess

    code = ("import sys, hub.cli, hub.daemon; bad = sorted(m for m in sys.modules if m == 'hil' or "
            "m.startswith('hil.')); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --- the matching rules, on their own -------------------------------------------------------------


def test_matching_device_fields_and_order_rules() -> None:
    from types import SimpleNamespace as A

    from hil import matching

    offline = {"type": "device.offline", "source": {"device": "hub"}, "data": {"device": "bed", "n": 1, "on": True}}
    assert matching.matches(offline, "device.*", "bed", {"data.n": 1})
    assert not matching.matches(offline, "device.*", "door", {})
    assert matching.mismatches(offline, "device.*", None, {"data.on": 1}) == ["data.on=True (wanted 1)"]
    assert matching.mismatches(offline, "device.*", None, {"data.x": 1}) == ["data.x missing (wanted 1)"]

    def ev(i: int, type_: str, seq: int, ts: str) -> A:
        return A(t=float(i), event={"id": f"e{seq}", "type": type_, "seq": seq, "ts": ts, "priority": "normal"})

    # after t=0: telemetry seq 1 (older) arrives before the alarm seq 2 that waited: overtaken;
    # a reminder created after the mark (ts later than waited_since) may follow telemetry in flight
    arrivals = [ev(1, "sensor.bed", 1, "2026-01-01T00:00:00.000Z"), ev(2, "alarm.button", 2, "2026-01-01T00:00:00.500Z"),
                ev(3, "sensor.bed", 3, "2026-01-01T00:00:00.600Z"), ev(4, "alarm.unacknowledged", 4, "2026-01-01T00:00:09.000Z")]
    assert len(matching.alarms_overtaken(arrivals, 0.0)) == 2
    [only] = matching.alarms_overtaken(arrivals, 0.0, waited_since="2026-01-01T00:00:01.000Z")
    assert only.startswith("alarm.button seq 2") and "sensor.bed seq 1" in only
    # after t=1.5 the older telemetry had already arrived: the alarm that waited was not overtaken
    assert matching.alarms_overtaken(arrivals, 1.5, waited_since="2026-01-01T00:00:01.000Z") == []
    held = ev(5, "alarm.button", 0, "2026-01-01T00:00:00.100Z")  # seq 0: a held alarm, compared by ts
    assert len(matching.alarms_overtaken([arrivals[0], held], 0.0)) == 1


def test_expect_status_waits_for_the_state(tmp_path: Path) -> None:
    rig = FakeRig()
    rig.status = "offline"
    r = run(rig, '[[step]]\ndo = "expect_status"\nstate = "online"\nwithin_ms = 200\n', tmp_path)
    assert r.outcome is Outcome.FAIL and steps(r)["1"][2] == "status: offline after 200 ms, not online"
    rig = FakeRig()
    r = run(rig, '[[step]]\ndo = "broker_stop"\n[[step]]\ndo = "expect_status"\nstate = "online"\nmark = "up"\n', tmp_path)
    assert r.outcome is Outcome.PASS and r.steps[2].data["seen"] == [[0.0, "online"]]


def test_a_background_not_joined_is_waited_for_at_the_end(tmp_path: Path) -> None:
    text = ('[[step]]\ndo = "background"\nname = "late"\n[[step.steps]]\ndo = "wait"\nms = 200\n'
            '[[step.steps]]\ndo = "press"\ndevice = "button-3"\nhold_ms = 1\n')
    rig = FakeRig()
    r = run(rig, text, tmp_path)
    assert r.outcome is Outcome.PASS and steps(r)["1.2"][0] == "press"
    assert rig.calls.index(("press", "button-3")) < rig.calls.index(("teardown",))


def test_a_central_that_cannot_be_read_is_an_error_not_a_pass(tmp_path: Path) -> None:
    rig = FakeRig()

    def broken() -> list:
        raise RuntimeError("recorder gone")

    rig.central.arrivals = broken  # type: ignore[method-assign]
    r = run(rig, '[[step]]\ndo = "press"\ndevice = "button-1"\n', tmp_path)
    assert r.outcome is Outcome.ERROR and steps(r)["1"][1:] == (Outcome.ERROR, "RuntimeError: recorder gone")
    assert rig.calls[-1] == ("teardown",)
