"""The reports of a HIL run, read as their readers read them.

JUnit XML as Jenkins parses it (counts, messages, properties); the JSON record
read back (equal, every step's timing, seeds, the flaky summary); the HTML page
parsed (summary rows with outcome words, the flaky table, a timeline per
scenario, the latency plot with its limit, nothing fetched, everything escaped)
and, where Chromium is installed, rendered headless.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hil.model import Limit
from hil.report import html, junit, record, verdict
from hil.results import MeasurementResult as Measured
from hil.results import Outcome, RunRecord, RunSet, ScenarioResult, StepResult

P, M, F, S, E = Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL, Outcome.SKIP, Outcome.ERROR
T0 = 1_778_311_000.0
XSS = "Door at night <script>alert('x')</script> & co"


def step(
    index: str, do: str, at: float, took: float, outcome: Outcome = P, detail: str = "", **data: Any
) -> StepResult:
    """A step as the runner records it (floats where the result type says float)."""
    return StepResult(
        index=index, do=do, at_ms=float(at), duration_ms=float(took), outcome=outcome, detail=detail, data=data
    )


def ms(name: str, value: float, samples: list[float], limit_max: float, outcome: Outcome, detail: str = "") -> Measured:
    return Measured(
        name=name, stat="p99", unit="ms", value=value, samples=samples,
        limit=Limit(max=float(limit_max), marginal_pct=20.0), outcome=outcome, detail=detail,
    )  # fmt: skip


def scenario(
    name: str, outcome: Outcome, steps: list[StepResult], measures: Sequence[Measured] = (), **kw: Any
) -> ScenarioResult:
    return ScenarioResult(
        name=name, title=kw.pop("title", name.replace("_", " ").capitalize()), path=f"hil/scenarios/{name}.toml",
        outcome=outcome, started=T0, duration_s=float(kw.pop("duration_s", 3.2)), seed=kw.pop("seed", 4242),
        steps=steps, measurements=list(measures), **kw,
    )  # fmt: skip


def one_pass(serial_unplug: Outcome) -> list[ScenarioResult]:
    """Seven scenarios: pass, marginal, fail (a burst inside a repeat), skip, error, escaped title, and a flaky one."""
    burst = [step("1", "repeat", 0, 9000)]
    for k in range(1, 11):
        burst += [step(f"1.{k}.1", "hub_kill", k * 800, 420), step(f"1.{k}.2", "press", k * 800 + 420, 50)]
    lost = "2 alarms lost: 0190a1b2-0001, 0190a1b2-0002"
    burst.append(step("2", "check_central", 9000, 1200, F, lost))
    unplug_bad = serial_unplug is F
    return [
        scenario("press_ack", P, [
            step("1", "press", 0, 52, device="button-1"), step("2", "expect_event", 52, 14.5, mark="alarm"),
            step("3", "ack", 70, 8), step("4", "expect_feedback", 80, 610, device="button-1", state="steady"),
        ], [ms("press_to_event", 19.37, [8.0 + i * 0.55 for i in range(20)], 50, P)],
            central={"unique": 2, "received": 2, "gaps": 0}),
        scenario("hold_cancel", M, [step("1", "hold", 0, 10), step("2", "release", 2010, 5),
                                    step("3", "expect_event", 2015, 44, M, "44 ms of 50 ms")],
                 [ms("hold_to_cancel", 44.0, [30.0, 38.0, 44.0], 50, M, "within 20 % of the limit")]),
        scenario("kill9_burst", F, burst, [ms("restart_to_online", 2450.0, [900.0, 1500.0, 2450.0], 2000, F)],
                 log_tail="\x1b[31merror\x1b[0m event=link_lost\nstate=offline", duration_s=10.2),
        scenario("ble_encrypted_button", S, [], reason="needs fixture ble_advertiser", duration_s=0.0),
        scenario("power_cut", E, [step("1", "power_cut", 0, 300, E, "remount of the tmpfs failed: EBUSY")],
                 reason="rig error: power_cut: remount of the tmpfs failed: EBUSY"),
        scenario("door_night", P, [step("1", "serial", 0, 3), step("2", "expect_no_event", 3, 1000)], title=XSS),
        scenario("serial_unplug", serial_unplug, [
            step("1", "unplug", 0, 5), step("2", "expect_event", 5, 5000 if unplug_bad else 800, serial_unplug,
                                            "no device.offline within 5000 ms" if unplug_bad else ""),
        ]),
    ]  # fmt: skip


def run(scenarios: list[ScenarioResult], k: int = 1) -> RunRecord:
    return RunRecord(
        rig="virtual", rig_kind="virtual", hub_version="0.1.0", config_hash="ab" * 32, started=T0 + k * 60,
        duration_s=30.5, host="ci-runner", repeat=k, scenarios=scenarios, rig_info={"mosquitto": "2.0.11"},
    )  # fmt: skip


@pytest.fixture
def two() -> RunSet:
    """Two passes; serial_unplug passes in the first and fails in the second."""
    return RunSet(runs=[run(one_pass(P), 1), run(one_pass(F), 2)], command="python -m hil run --repeat 2 hil/scenarios")


@pytest.fixture
def single() -> RunSet:
    return RunSet(runs=[run(one_pass(P))], command="python -m hil run hil/scenarios")


# --- JUnit -------------------------------------------------------------------------------------------


def test_junit_counts_messages_and_properties(two: RunSet, tmp_path: Path) -> None:
    root = ET.parse(junit.write(two, tmp_path / "out" / "junit.xml")).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("14", "3", "2", "2")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["hil.virtual.1", "hil.virtual.2"]
    for suite, failures in zip(suites, ("1", "2"), strict=True):
        cases = suite.findall("testcase")
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
            "7", failures, "1", "1")  # fmt: skip
        # the counts agree with what the testcases carry
        assert str(sum(c.find("failure") is not None for c in cases)) == failures
        assert sum(c.find("error") is not None for c in cases) == 1
        assert {c.get("classname") for c in cases} == {"hil.virtual"}
        props = {p.get("name"): p.get("value") for p in suite.find("properties")}
        assert props["rig"] == "virtual" and props["hub_version"] == "0.1.0" and props["config_hash"] == "ab" * 32
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert cases["kill9_burst"].get("time") == "10.200"
    failure = cases["kill9_burst"].find("failure")
    assert "check_central" in failure.get("message") and "2 alarms lost" in failure.get("message")
    assert "restart_to_online p99 = 2450 ms (limit ≤ 2000 ms): fail" in failure.text
    assert "error event=link_lost" in failure.text and "\x1b" not in failure.text
    assert "EBUSY" in cases["power_cut"].find("error").get("message")
    assert cases["ble_encrypted_button"].find("skipped").get("message") == "needs fixture ble_advertiser"
    marginal = cases["hold_cancel"]
    assert [c.tag for c in marginal] == ["system-out"]
    assert "marginal: hold_to_cancel p99 = 44 ms (limit ≤ 50 ms): marginal" in marginal.find("system-out").text
    assert [c.tag for c in cases["press_ack"]] == ["system-out"]
    assert "seed 4242" in cases["press_ack"].find("system-out").text
    second = {c.get("name"): c for c in suites[1].findall("testcase")}
    assert "no device.offline within 5000 ms" in second["serial_unplug"].find("failure").get("message")


def test_junit_single_pass_suite_is_named_for_the_rig(single: RunSet, tmp_path: Path) -> None:
    root = ET.parse(junit.write(single, tmp_path / "junit.xml")).getroot()
    assert [s.get("name") for s in root.findall("testsuite")] == ["hil.virtual"]
    assert root.get("tests") == "7"


# --- the JSON record ---------------------------------------------------------------------------------


def test_record_round_trips_with_every_step_timed(two: RunSet, tmp_path: Path) -> None:
    path = record.write(two, tmp_path / "record.json")
    assert record.read(path) == two
    doc = json.loads(path.read_text())
    assert doc["verdict"] == "fail"
    assert doc["flaky"] == {"serial_unplug": ["pass", "fail"]}
    assert doc["runs"][0]["rig"] == "virtual" and doc["runs"][0]["config_hash"] == "ab" * 32
    assert doc["runs"][0]["hub_version"] == "0.1.0"
    for run_doc, run_obj in zip(doc["runs"], two.runs, strict=True):
        for s_doc, s_obj in zip(run_doc["scenarios"], run_obj.scenarios, strict=True):
            assert s_doc["seed"] == 4242
            assert [(st["index"], st["at_ms"], st["duration_ms"]) for st in s_doc["steps"]] == [
                (st.index, st.at_ms, st.duration_ms) for st in s_obj.steps
            ]
    m = doc["runs"][0]["scenarios"][0]["measurements"][0]
    assert m["samples"][:2] == [8.0, 8.55] and m["limit"]["max"] == 50


def test_record_is_stable_and_refuses_other_json(two: RunSet, tmp_path: Path) -> None:
    a = record.encode(two)
    assert a == record.encode(record.decode(a))
    central = json.loads(a)["runs"][0]["scenarios"][0]["central"]
    assert list(central) == ["gaps", "received", "unique"]  # dict keys sorted, whatever order they came in
    (tmp_path / "x.json").write_text('{"format": "something-else", "runs": []}')
    with pytest.raises(msgspec.ValidationError):
        record.read(tmp_path / "x.json")


# --- the HTML page -----------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, attrs, parent, [], []

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.attrs.get("class", "").split()):
                out.append(c)
            out += c.all(tag, cls)
        return out

    def by_id(self, id_: str) -> Node:
        (found,) = [n for n in self.all() if n.attrs.get("id") == id_]
        return found

    def text(self) -> str:
        return " ".join([*self.texts, *(c.text() for c in self.children)])


class Dom(HTMLParser):
    """The page as a tree of Nodes (html.parser, as a browser-less reader)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.root = self.cur = Node("#doc", {}, None)
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag: str) -> None:
        assert self.cur.tag == tag, f"</{tag}> closes <{self.cur.tag}>"
        self.cur = self.cur.parent

    def handle_data(self, data: str) -> None:
        self.cur.texts.append(data)


def test_html_summary_flakiness_timelines_and_plots(two: RunSet, tmp_path: Path) -> None:
    page = html.write(two, tmp_path / "report.html").read_text()
    dom = Dom(page).root
    assert "FAILED" in dom.by_id("verdict").text()
    assert "ab" * 32 in dom.all("header")[0].text() and "0.1.0" in dom.all("header")[0].text()
    rows = dom.by_id("summary-table").all("tbody")[0].all("tr")
    assert len(rows) == 7
    words = {r.attrs["id"]: r.text() for r in rows}
    assert "PASS" in words["row-press_ack"] and "press_to_event p99 = 19.4 ms" in words["row-press_ack"]
    assert "≤ 50 ms" in words["row-press_ack"] and "3.20 s" in words["row-press_ack"]
    assert "MARGINAL" in words["row-hold_cancel"]
    assert "FAIL" in words["row-kill9_burst"] and "≤ 2000 ms" in words["row-kill9_burst"]
    skipped = words["row-ble_encrypted_button"]
    assert "SKIPPED" in skipped and "needs fixture ble_advertiser" in skipped
    assert "ERROR" in words["row-power_cut"]
    assert "FAIL" in words["row-serial_unplug"] and "flaky" in words["row-serial_unplug"]
    flaky = {r.attrs["id"]: r.text() for r in dom.by_id("flaky-table").all("tbody")[0].all("tr")}
    assert len(flaky) == 7
    assert "FLAKY" in flaky["flaky-serial_unplug"]
    assert flaky["flaky-serial_unplug"].index("PASS") < flaky["flaky-serial_unplug"].index("FAIL")
    assert all("stable" in t for k, t in flaky.items() if k != "flaky-serial_unplug")
    # one timeline per scenario that ran, a bar per step, the failing step marked
    ran = [s for s in two.runs[0].scenarios if s.outcome is not S]
    for s in ran:
        (svg,) = dom.by_id(f"s-{s.name}").all("svg", "timeline")
        assert len(svg.all("rect", "step")) == len(s.steps)
    assert not dom.by_id("s-ble_encrypted_button").all("svg")
    assert "Not run: needs fixture ble_advertiser" in dom.by_id("s-ble_encrypted_button").text()
    burst = dom.by_id("s-kill9_burst")
    assert len(burst.all("rect", "fail")) == 1 and "2 alarms lost" in burst.all("table", "failed-steps")[0].text()
    # the latency plot: every sample on the curve, the limit as a labelled line
    (plot,) = dom.by_id("s-press_ack").all("svg", "latency")
    assert len(plot.all("polyline")[0].attrs["points"].split()) == 20
    assert plot.all("line", "limit") and "limit 50 ms" in plot.all("text", "limit-label")[0].text()
    (slow,) = burst.all("svg", "latency")
    limit_y = float(slow.all("line", "limit")[0].attrs["y1"])
    worst_y = min(float(c.attrs["cy"]) for c in slow.all("circle"))
    assert worst_y < limit_y  # the 2450 ms sample is drawn above the 2000 ms limit
    # with one pass, no flakiness table
    one = Dom(html.render(RunSet(runs=two.runs[:1]))).root
    assert not [n for n in one.all() if n.attrs.get("id") == "flaky-table"]


def test_html_escapes_and_fetches_nothing(two: RunSet) -> None:
    page = html.render(two)
    dom = Dom(page).root
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not dom.all("script") and not dom.all("link") and not dom.all("img") and not dom.all("iframe")
    assert XSS in dom.by_id("row-door_night").text()  # shown as text, as written
    for node in dom.all():
        assert "src" not in node.attrs
        assert node.attrs.get("href", "#").startswith("#")
    assert "url(" not in page and "@import" not in page and "\x1b" not in page


def test_verdict_prefers_fail_over_rig_error(two: RunSet) -> None:
    assert verdict(two) is F
    only_error = RunSet(runs=[run([s for s in one_pass(P) if s.outcome is not F])])
    assert verdict(only_error) is E
    assert verdict(RunSet(runs=[run([s for s in one_pass(P) if s.outcome is S])])) is S


# --- rendered in a browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_renders_in_headless_chromium(two: RunSet, tmp_path: Path) -> None:
    page = html.write(two, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=60)
    assert 'id="summary-table"' in dom.stdout and "kill9_burst" in dom.stdout and "MARGINAL" in dom.stdout


def test_odd_results_still_render(tmp_path: Path) -> None:
    """No limit, no value, one sample, a count with a lower bound, a fail that says nothing, nothing run."""
    odd = [
        Measured(name="first_event", stat="max", unit="ms", value=None, samples=[12.0]),
        Measured(name="events", stat="count", unit="count", value=3.0, samples=[],
                 limit=Limit(min=5.0), outcome=F),  # fmt: skip
    ]
    s = scenario("dose_missed", F, [step("1", "wait", 0, 0)], odd)
    rs = RunSet(runs=[run([s])])
    dom = Dom(html.render(rs)).root
    table = dom.by_id("s-dose_missed").all("table", "measurements")[0].text()
    assert "n/a" in table and "no limit" in table and "≥ 5" in table
    (plot,) = dom.by_id("s-dose_missed").all("svg", "latency")  # the ms one; a count has no latency plot
    assert not plot.all("line", "limit")
    case = ET.parse(junit.write(rs, tmp_path / "j.xml")).getroot().find("testsuite/testcase")
    assert "events count = 3 (limit ≥ 5): fail" in case.find("failure").get("message")
    assert record.read(record.write(rs, tmp_path / "r.json")) == rs
    empty = RunSet(runs=[])
    assert "NOT RUN" in Dom(html.render(empty)).root.by_id("verdict").text()
    assert ET.parse(junit.write(empty, tmp_path / "e.xml")).getroot().get("tests") == "0"
