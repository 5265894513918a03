"""JUnit XML of a run, as Jenkins' JUnit plugin and GitLab's test reports read it.

One ``<testsuite name="hil.<rig>">`` per pass (``hil.<rig>.<k>`` when ``--repeat``
made several), with ``rig``, ``rig_kind``, ``hub_version``, ``config_hash`` as
properties; one ``<testcase classname="hil.<rig>" name="<scenario>">`` per
scenario. A fail carries ``<failure>`` (message: what failed; text: the failing
steps and measurements, then the hub's log tail), an error ``<error>``, a skip
``<skipped message="needs fixture ...">``. A marginal scenario passes and its
``<system-out>`` names the marginal measurement. Every testcase's ``<system-out>``
also has its seed, its steps and its measurements.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import structlog

from hil.report import counts, describe, strip_ansi
from hil.results import Outcome, RunRecord, RunSet, ScenarioResult

log = structlog.get_logger("hil.report.junit")

#: Characters XML 1.0 cannot carry (a log tail's colour codes); ElementTree would write them and break the file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: A message attribute is one line, this long at most; the element's text has the rest.
MESSAGE_MAX = 500


def clean(text: str) -> str:
    """``text`` without terminal colour codes, and what else XML 1.0 cannot hold replaced by ``?``."""
    return _NOT_XML.sub("?", strip_ansi(text))


def _one_line(text: str) -> str:
    line = " ".join(clean(text).split())
    return line if len(line) <= MESSAGE_MAX else line[: MESSAGE_MAX - 1] + "…"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def suite_name(run: RunRecord, index: int, passes: int) -> str:
    """``hil.<rig>``, or ``hil.<rig>.<k>`` (k from 1) when the run has several passes."""
    return f"hil.{run.rig}" if passes == 1 else f"hil.{run.rig}.{index + 1}"


def _bad_parts(s: ScenarioResult, outcome: Outcome) -> list[str]:
    steps = [f"step {st.index} {st.do}: {st.detail or st.outcome.value}" for st in s.steps if st.outcome is outcome]
    measures = [f"measurement {describe(m)}" for m in s.measurements if m.outcome is outcome]
    return steps + measures


def message(s: ScenarioResult) -> str:
    """Why a scenario failed or errored, on one line: its reason, else its failing steps and measurements."""
    parts = _bad_parts(s, s.outcome)
    if s.reason:
        return _one_line(s.reason)
    if not parts:
        return _one_line(f"{s.outcome.value} (no step or measurement says why)")
    more = f" (and {len(parts) - 1} more)" if len(parts) > 1 else ""
    return _one_line(parts[0] + more)


def _failure_text(s: ScenarioResult) -> str:
    lines = [*([s.reason] if s.reason else []), *_bad_parts(s, s.outcome)]
    if s.central:
        lines.append("central: " + ", ".join(f"{k}={v}" for k, v in sorted(s.central.items())))
    if s.log_tail:
        lines += ["", "hub log (tail):", s.log_tail.rstrip()]
    return clean("\n".join(lines))


def _system_out(s: ScenarioResult) -> str:
    lines = [f"scenario {s.name}: {s.title}", f"file {s.path}", f"seed {s.seed}"]
    lines += [f"marginal: {describe(m)}" for m in s.measurements if m.outcome is Outcome.MARGINAL]
    lines += [f"marginal: step {st.index} {st.do}: {st.detail}" for st in s.steps if st.outcome is Outcome.MARGINAL]
    for st in s.steps:
        detail = f" {st.detail}" if st.detail else ""
        timing = f"at {st.at_ms:.1f} ms took {st.duration_ms:.1f} ms"
        lines.append(f"[{st.outcome.value}] step {st.index} {st.do} {timing}{detail}")
    lines += [f"measurement {describe(m)}" for m in s.measurements]
    return clean("\n".join(lines))


def testcase(parent: ET.Element, run: RunRecord, s: ScenarioResult) -> ET.Element:
    """The ``<testcase>`` of one scenario under ``parent``."""
    case = ET.SubElement(
        parent,
        "testcase",
        classname=clean(f"hil.{run.rig}"),
        name=clean(s.name),
        time=_seconds(s.duration_s),
        file=clean(s.path),
    )
    if s.outcome is Outcome.SKIP:
        ET.SubElement(case, "skipped", message=_one_line(s.reason or "skipped"))
    elif s.outcome is Outcome.FAIL:
        ET.SubElement(case, "failure", message=message(s), type="fail").text = _failure_text(s)
    elif s.outcome is Outcome.ERROR:
        ET.SubElement(case, "error", message=message(s), type="rig error").text = _failure_text(s)
    if s.outcome is not Outcome.SKIP:
        ET.SubElement(case, "system-out").text = _system_out(s)
    return case


def testsuite(parent: ET.Element, run: RunRecord, index: int, passes: int) -> ET.Element:
    """The ``<testsuite>`` of one pass under ``parent``."""
    n = counts(run.scenarios)
    suite = ET.SubElement(
        parent,
        "testsuite",
        name=clean(suite_name(run, index, passes)),
        tests=str(len(run.scenarios)),
        failures=str(n[Outcome.FAIL]),
        errors=str(n[Outcome.ERROR]),
        skipped=str(n[Outcome.SKIP]),
        time=_seconds(run.duration_s),
        timestamp=dt.datetime.fromtimestamp(run.started, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=clean(run.host or "localhost"),
        id=str(index),
    )
    props = ET.SubElement(suite, "properties")
    facts = {
        "rig": run.rig,
        "rig_kind": run.rig_kind,
        "hub_version": run.hub_version,
        "config_hash": run.config_hash,
        "pass": f"{index + 1}/{passes}",
    }
    for name, value in facts.items():
        ET.SubElement(props, "property", name=name, value=clean(str(value)))
    for s in run.scenarios:
        testcase(suite, run, s)
    return suite


def tree(runset: RunSet) -> ET.ElementTree:
    """The JUnit document of ``runset``: ``<testsuites>`` with one suite per pass."""
    every = [s for run in runset.runs for s in run.scenarios]
    n = counts(every)
    root = ET.Element(
        "testsuites",
        name="hil",
        tests=str(len(every)),
        failures=str(n[Outcome.FAIL]),
        errors=str(n[Outcome.ERROR]),
        skipped=str(n[Outcome.SKIP]),
        time=_seconds(sum(run.duration_s for run in runset.runs)),
    )
    for i, run in enumerate(runset.runs):
        testsuite(root, run, i, len(runset.runs))
    doc = ET.ElementTree(root)
    ET.indent(doc)
    return doc


def write(runset: RunSet, path: str | Path) -> Path:
    """Write the JUnit XML of ``runset`` to ``path`` (parents created); the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tree(runset).write(out, encoding="utf-8", xml_declaration=True)
    log.info("hil_junit_written", path=str(out), runs=len(runset.runs))
    return out
