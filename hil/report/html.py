"""One self-contained HTML page an acceptance officer reads: no script, no fetch, inline CSS and SVG.

From the top: the verdict in big letters with the rig, the hub's version, the
config's hash and the date; what each outcome means; a summary table (one row
per scenario: outcome as a word and a colour, duration, its key measurement
against its limit); for ``--repeat`` a table of each scenario's outcome pass by
pass; then each scenario: its timeline, what went wrong, its measurements and
their latency plots, every step, the hub's log tail. With several passes each
scenario shows its worst attempt and says which.

The page is built as an ElementTree and serialised with ``method="html"``,
so every text from the run (titles, details, log lines) is escaped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import structlog

from hil.report import (
    WORDS,
    attempts,
    counts,
    fmt_duration,
    fmt_limit,
    fmt_number,
    fmt_time,
    key_measurement,
    representative,
    scenario_names,
    strip_ansi,
    verdict,
)
from hil.report.plot import el, latency, timeline
from hil.results import Outcome, RunRecord, RunSet, StepResult

log = structlog.get_logger("hil.report.html")

#: The sign beside each outcome's word (with the colour, never instead of the word).
SIGNS: dict[Outcome, str] = {
    Outcome.PASS: "✔", Outcome.MARGINAL: "▲", Outcome.FAIL: "✘", Outcome.ERROR: "⚠", Outcome.SKIP: "–",
}  # fmt: skip
#: The big word of the whole run's verdict, and what it means.
HEADLINES: dict[Outcome, tuple[str, str]] = {
    Outcome.PASS: ("PASSED", "Every scenario that ran met all its requirements and limits."),
    Outcome.MARGINAL: ("PASSED", "Every scenario that ran met its requirements; some figures came close to a limit."),
    Outcome.FAIL: ("FAILED", "At least one scenario did not meet its requirements: see the scenarios marked FAIL."),
    Outcome.ERROR: ("INCOMPLETE", "The test rig itself broke in at least one scenario, so there is no verdict on it."),
    Outcome.SKIP: ("NOT RUN", "No scenario ran: the rig lacks the equipment they need."),
}
MEANINGS: dict[Outcome, str] = {
    Outcome.PASS: "the hub did what the scenario requires, within every limit.",
    Outcome.MARGINAL: "within every limit, but close to one (within its margin): counts as a pass.",
    Outcome.FAIL: "the hub did not do what the scenario requires, or a figure broke its limit.",
    Outcome.ERROR: "the test rig broke (not the hub): no verdict on this scenario.",
    Outcome.SKIP: "not run: the rig lacks a piece of equipment the scenario needs.",
}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: A scenario's full step list stops here; the JSON record has them all.
MAX_STEP_ROWS = 1000

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#fff;color:#1f2328;font:15px/1.45 system-ui,'DejaVu Sans',sans-serif}
main{max-width:1100px;margin:0 auto;padding:0 24px 48px}
header{padding:24px;margin:0 -24px 24px;border-bottom:6px solid var(--c);background:var(--bg)}
.kicker{margin:0;color:#57606a;text-transform:uppercase;letter-spacing:.06em;font-size:13px}
h1{margin:4px 0 8px;font-size:26px}
.verdict{font-size:56px;font-weight:800;letter-spacing:.04em;color:var(--c);line-height:1.1;margin:8px 0}
.says{font-size:17px;margin:4px 0 16px}
h2{margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #d0d7de;font-size:21px}
h3{margin:0 0 6px;font-size:18px}
h4{margin:18px 0 6px;font-size:15px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:6px 9px;border-bottom:1px solid #d8dee4}
th{background:#f6f8fa;font-size:13px;color:#424a53}
table.facts{width:auto}
table.facts th{background:none;padding-left:0;width:9em}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
code,.mono,pre{font-family:'DejaVu Sans Mono',ui-monospace,monospace;font-size:13px}
.badge{display:inline-block;padding:1px 9px;border-radius:12px;font-weight:700;font-size:13px;white-space:nowrap;
 color:var(--c);background:var(--bg);border:1px solid var(--c)}
.pass{--c:#1a7f37;--bg:#dafbe1}.marginal{--c:#7d4e00;--bg:#fff3c4}.fail{--c:#cf222e;--bg:#ffebe9}
.error{--c:#8250df;--bg:#fbefff}.skip{--c:#57606a;--bg:#f6f8fa}
header.pass,header.marginal,header.fail,header.error,header.skip{color:#1f2328}
.scenario{margin:22px 0;padding:16px 18px;border:1px solid #d0d7de;border-left:6px solid var(--c);border-radius:6px;
 background:#fff;break-inside:avoid-page}
.meta{color:#57606a;margin:2px 0 8px;font-size:13px}
.reason{font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{width:460px;max-width:100%}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}dl.legend dd{margin:0}
details{margin:8px 0}summary{cursor:pointer;color:#0969da}
pre{white-space:pre-wrap;background:#f6f8fa;padding:10px;border-radius:6px;max-height:30em;overflow:auto}
tr.flaky td:first-child{font-weight:700}
tbody tr.fail td,tbody tr.error td{background:var(--bg)}
footer{margin-top:40px;color:#57606a;font-size:13px}
"""


def text(value: str) -> str:
    """Run text fit for the page: terminal colour codes and control characters removed."""
    return _CONTROL.sub("", strip_ansi(value))


def badge(parent: ET.Element, outcome: Outcome, note: str = "") -> ET.Element:
    """The outcome as sign, word and colour: ``✘ FAIL``."""
    return el(parent, "span", f"{SIGNS[outcome]} {WORDS[outcome]}{note}", class_=f"badge {outcome.value}")


def _table(parent: ET.Element, head: list[str], **attrs: object) -> ET.Element:
    table = el(parent, "table", **attrs)
    tr = el(el(table, "thead"), "tr")
    for h in head:
        el(tr, "th", h)
    return el(table, "tbody")


def _cells(tbody: ET.Element, values: list[str | tuple[str, str]], **attrs: object) -> ET.Element:
    """A row; a value ``(text, css class)`` gets that class on its cell."""
    tr = el(tbody, "tr", **attrs)
    for v in values:
        content, cls = v if isinstance(v, tuple) else (v, "")
        el(tr, "td", text(content), **({"class_": cls} if cls else {}))
    return tr


def header(body: ET.Element, runset: RunSet) -> None:
    """The verdict and the facts of the run."""
    outcome = verdict(runset)
    first: RunRecord | None = runset.runs[0] if runset.runs else None
    head = el(body, "header", class_=outcome.value)
    el(head, "p", "carehub · hardware-in-the-loop acceptance test", class_="kicker")
    el(head, "h1", "Acceptance test report")
    word, says = HEADLINES[outcome]
    el(head, "div", f"{SIGNS[outcome]} {word}", class_="verdict", id="verdict")
    names = scenario_names(runset)
    n = counts([representative(attempts(runset, name))[1] for name in names])
    tally = ", ".join(f"{n[o]} {WORDS[o].lower()}" for o in Outcome if n[o])
    over = f" over {len(runset.runs)} passes (each scenario's worst)" if len(runset.runs) > 1 else ""
    el(head, "p", f"{says} {len(names)} scenarios{over}: {tally or 'none'}.", class_="says")
    flaky = runset.flaky()
    if flaky:
        el(head, "p", f"Flaky: {len(flaky)} scenario(s) changed outcome between passes: {', '.join(flaky)}.",
           class_="says")  # fmt: skip
    facts: list[tuple[str, str]] = []
    if first is not None:
        facts += [
            ("Rig", f"{first.rig} ({first.rig_kind} rig)"),
            ("Hub version", first.hub_version or "unknown"),
            ("Config hash", first.config_hash or "unknown"),
            ("Date", fmt_time(first.started)),
            ("Host", first.host or "unknown"),
            ("Duration", fmt_duration(sum(r.duration_s for r in runset.runs))),
            ("Passes", str(len(runset.runs))),
        ]
    if runset.command:
        facts.append(("Command", runset.command))
    _fact_table(head, facts)
    if first is not None and first.rig_info:  # the rig's own facts, for whoever checks the bench: folded
        det = el(head, "details")
        el(det, "summary", "Rig details (kernel, fixtures, how each fault is made, seed)")
        shown = {"rig", "kind", "hub_version", "config_sha256"}
        _fact_table(det, [(str(k).replace("_", " ").capitalize(), _short(v))
                          for k, v in sorted(first.rig_info.items()) if k not in shown])


def _fact_table(parent: ET.Element, facts: list[tuple[str, str]]) -> None:
    tbody = el(el(parent, "table", class_="facts"), "tbody")
    for k, v in facts:
        tr = el(tbody, "tr")
        el(tr, "th", k)
        mono = {"class_": "mono"} if k in ("Config hash", "Command", "Hub version") else {}
        el(tr, "td", text(v), **mono)


def _short(value: object, most: int = 300) -> str:
    out = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return out if len(out) <= most else out[: most - 1] + "…"


def legend(main: ET.Element) -> None:
    """What each outcome word means, in plain words."""
    sec = el(main, "section", id="legend")
    el(sec, "h2", "What the outcomes mean")
    dl = el(sec, "dl", class_="legend")
    for o in Outcome:
        badge(el(dl, "dt"), o)
        el(dl, "dd", MEANINGS[o])


def summary(main: ET.Element, runset: RunSet) -> None:
    """One row per scenario: its outcome (worst over the passes), duration, key measurement and limit."""
    sec = el(main, "section", id="summary")
    el(sec, "h2", "Summary")
    flaky = runset.flaky()
    head = ["Scenario", "What it checks", "Outcome", "Duration", "Key measurement", "Limit"]
    tbody = _table(sec, head, id="summary-table")
    for name in scenario_names(runset):
        _, s = representative(attempts(runset, name))
        tr = el(tbody, "tr", class_=f"row {s.outcome.value}", id=f"row-{name}")
        el(el(tr, "td"), "a", name, href=f"#s-{name}", class_="mono")
        el(tr, "td", text(s.title))
        cell = el(tr, "td")
        badge(cell, s.outcome)
        if name in flaky:
            el(cell, "div", "flaky: " + ", ".join(flaky[name]), class_="meta")
        el(tr, "td", fmt_duration(s.duration_s) if s.outcome is not Outcome.SKIP else "–", class_="num")
        m = key_measurement(s)
        if s.outcome is Outcome.SKIP:
            el(tr, "td", text(s.reason or "skipped"))
            el(tr, "td", "")
        elif m is None:
            el(tr, "td", "no measurement")
            el(tr, "td", "")
        else:
            el(tr, "td", f"{m.name} {m.stat} = {fmt_number(m.value, m.unit)}")
            el(tr, "td", fmt_limit(m.limit, m.unit), class_="num")


def flakiness(main: ET.Element, runset: RunSet) -> None:
    """For several passes: each scenario's outcome pass by pass, the flaky ones first."""
    if len(runset.runs) < 2:
        return
    sec = el(main, "section", id="flakiness")
    el(sec, "h2", f"Repeated {len(runset.runs)} times: was anything flaky?")
    flaky = runset.flaky()
    el(sec, "p", f"{len(flaky)} of {len(scenario_names(runset))} scenarios changed outcome between passes."
       if flaky else "No: every scenario had the same outcome in every pass.")  # fmt: skip
    head = ["Scenario", "Stable?"] + [f"Pass {i + 1}" for i in range(len(runset.runs))]
    tbody = _table(sec, head, id="flaky-table")
    names = sorted(scenario_names(runset), key=lambda n: n not in flaky)
    for name in names:
        tr = el(tbody, "tr", class_="flaky" if name in flaky else "stable", id=f"flaky-{name}")
        el(tr, "td", name, class_="mono")
        el(tr, "td", "FLAKY" if name in flaky else "stable")
        for r in attempts(runset, name):
            if r is None:
                el(tr, "td", "not run")
            else:
                badge(el(tr, "td"), r.outcome)


def _step_row(tbody: ET.Element, st: StepResult) -> None:
    tr = _cells(
        tbody,
        [st.index, st.do, (f"{st.at_ms / 1000:.3f} s", "num"), (fmt_number(st.duration_ms, "ms"), "num")],
        class_=st.outcome.value,
    )
    badge(el(tr, "td"), st.outcome)
    detail = st.detail + (f" · {_short(st.data)}" if st.data else "")
    el(tr, "td", text(detail))


def scenario(main: ET.Element, runset: RunSet, name: str) -> None:
    """A scenario's section: meta, timeline, what went wrong, measurements, plots, steps, log."""
    results = attempts(runset, name)
    index, s = representative(results)
    sec = el(main, "section", class_=f"scenario {s.outcome.value}", id=f"s-{name}")
    h3 = el(sec, "h3")
    badge(h3, s.outcome)
    el(h3, "span", f"  {name}", class_="mono")
    el(h3, "span", f" — {text(s.title)}")
    meta = [f"file {s.path}"]
    if s.outcome is not Outcome.SKIP:
        meta += [f"seed {s.seed}", f"started {fmt_time(s.started)}", f"took {fmt_duration(s.duration_s)}"]
    if name in runset.flaky():
        meta.append(f"flaky: shown is pass {index + 1} of {len(runset.runs)}, the worst")
    el(sec, "p", text(" · ".join(meta)), class_="meta")
    if s.reason:
        el(sec, "p", text(("Not run: " if s.outcome is Outcome.SKIP else "Why: ") + s.reason), class_="reason")
    if s.outcome is Outcome.SKIP:
        return
    if s.steps:
        el(sec, "h4", "Timeline")
        sec.append(timeline(s))
    bad = [st for st in s.steps if st.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.MARGINAL)]
    if bad:
        el(sec, "h4", "Steps that failed or came close")
        tbody = _table(sec, ["Step", "Does", "At", "Took", "Outcome", "Detail"], class_="failed-steps")
        for st in bad:
            _step_row(tbody, st)
    if s.measurements:
        el(sec, "h4", "Measurements")
        head = ["Name", "Statistic", "Value", "Limit", "Outcome", "Samples", "Note"]
        tbody = _table(sec, head, class_="measurements")
        for m in s.measurements:
            value, limit = (fmt_number(m.value, m.unit), "num"), (fmt_limit(m.limit, m.unit), "num")
            tr = _cells(tbody, [m.name, m.stat, value, limit])
            badge(el(tr, "td"), m.outcome)
            el(tr, "td", str(len(m.samples)), class_="num")
            el(tr, "td", text(m.detail))
        plots = [p for p in (latency(m) for m in s.measurements) if p is not None]
        if plots:
            el(sec, "h4", "Latency: every sample, sorted, against the limit")
            box = el(sec, "div", class_="plots")
            for p in plots:
                box.append(p)
    if s.central:
        el(sec, "p", "Alarm central saw: " + _short(s.central, 600), class_="meta")
    if s.steps:
        det = el(sec, "details")
        el(det, "summary", f"All {len(s.steps)} steps")
        tbody = _table(det, ["Step", "Does", "At", "Took", "Outcome", "Detail"], class_="steps")
        for st in s.steps[:MAX_STEP_ROWS]:
            _step_row(tbody, st)
        if len(s.steps) > MAX_STEP_ROWS:
            el(det, "p", f"… and {len(s.steps) - MAX_STEP_ROWS} more in the JSON record.", class_="meta")
    if s.log_tail:
        det = el(sec, "details")
        el(det, "summary", "The hub's log (last lines)")
        el(det, "pre", text(s.log_tail))


def page(runset: RunSet) -> ET.Element:
    """The whole report as an ``<html>`` element."""
    root = el(None, "html", lang="en")
    head = el(root, "head")
    el(head, "meta", charset="utf-8")
    el(head, "meta", name="viewport", content="width=device-width, initial-scale=1")
    rig = runset.runs[0].rig if runset.runs else "no rig"
    el(head, "title", f"carehub acceptance test: {WORDS[verdict(runset)]} on {rig}")
    el(head, "style", CSS)
    body = el(root, "body")
    main = el(body, "main")
    header(main, runset)
    summary(main, runset)
    flakiness(main, runset)
    legend(main)
    sec = el(main, "section", id="scenarios")
    el(sec, "h2", "Scenarios")
    for name in scenario_names(runset):
        scenario(sec, runset, name)
    el(main, "footer", "Written by carehub's hil runner. The run's JSON record holds every step, sample and seed.")
    return root


def render(runset: RunSet) -> str:
    """The report's HTML text."""
    return "<!DOCTYPE html>\n" + ET.tostring(page(runset), encoding="unicode", method="html") + "\n"


def write(runset: RunSet, path: str | Path) -> Path:
    """Write the HTML report of ``runset`` to ``path`` (parents created); the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = render(runset)
    out.write_text(data, encoding="utf-8")
    log.info("hil_html_written", path=str(out), runs=len(runset.runs), bytes=len(data))
    return out
