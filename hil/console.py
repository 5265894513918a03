"""What ``hil run`` prints: a line per scenario as it ends, then a summary table and what was flaky."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hil.results import MeasurementResult, Outcome, RunSet, ScenarioResult

STYLE = {
    Outcome.PASS: "bold green",
    Outcome.MARGINAL: "bold yellow",
    Outcome.FAIL: "bold red",
    Outcome.ERROR: "bold magenta",
    Outcome.SKIP: "dim",
}


def key_measurement(result: ScenarioResult) -> MeasurementResult | None:
    """The figure to show on a scenario's line: the worst-judged one with a limit, else the first with a value."""
    judged = [m for m in result.measurements if m.limit is not None and m.value is not None]
    order = [Outcome.ERROR, Outcome.FAIL, Outcome.MARGINAL, Outcome.PASS]
    judged.sort(key=lambda m: order.index(m.outcome) if m.outcome in order else len(order))
    if judged:
        return judged[0]
    return next((m for m in result.measurements if m.value is not None), None)


def describe(m: MeasurementResult | None) -> str:
    """``press_to_event p99 12.3 ms (max 50)``; empty for none."""
    if m is None:
        return ""
    value = "—" if m.value is None else f"{m.value:.1f}" if m.unit == "ms" else f"{m.value:g}"
    text = f"{m.name} {m.stat} {value} {m.unit}".rstrip()
    if m.limit is not None:
        bounds = [f"min {m.limit.min:g}" if m.limit.min is not None else "",
                  f"max {m.limit.max:g}" if m.limit.max is not None else ""]
        text += f" ({', '.join(b for b in bounds if b)})"
    return text


def outcome_text(outcome: Outcome) -> Text:
    """The outcome word, in upper case and its colour."""
    return Text(outcome.value.upper(), style=STYLE.get(outcome, ""))


class Progress:
    """Prints one line per scenario as it ends."""

    def __init__(self, console: Console, total: int, repeat: int) -> None:
        self.console = console
        self.total = total
        self.repeat = repeat
        self.done = 0

    def __call__(self, run: int, result: ScenarioResult) -> None:
        """``on_result`` for :func:`hil.runner.run_set`."""
        self.done += 1
        line = Text()
        if self.repeat > 1:
            line.append(f"[pass {run}/{self.repeat}] ", style="dim")
        line.append_text(outcome_text(result.outcome))
        line.append(" " * (9 - len(result.outcome.value)))
        line.append(f"{result.name:<24} ", style="bold")
        line.append(f"{result.duration_s:7.1f} s  ")
        line.append(describe(key_measurement(result)))
        if result.reason and result.outcome is not Outcome.PASS:
            line.append(f"  {result.reason}", style=STYLE.get(result.outcome, ""))
        self.console.print(line, highlight=False, soft_wrap=True)


def summary(console: Console, runset: RunSet) -> None:
    """The table at the end: one row per scenario; with several passes, the outcome of each and the flaky ones."""
    runs = runset.runs
    if not runs:
        return
    table = Table(title=f"hil run on {runs[0].rig} ({runs[0].rig_kind})", title_justify="left")
    table.add_column("scenario", style="bold")
    if len(runs) == 1:
        table.add_column("outcome")
        table.add_column("time", justify="right")
        table.add_column("key measurement")
        table.add_column("reason", overflow="fold")
        for r in runs[0].scenarios:
            table.add_row(r.name, outcome_text(r.outcome), f"{r.duration_s:.1f} s", describe(key_measurement(r)),
                          r.reason)
    else:
        flaky = runset.flaky()
        table.add_column("outcomes, pass by pass")
        table.add_column("mean time", justify="right")
        table.add_column("flaky")
        for i, first in enumerate(runs[0].scenarios):
            each = [run.scenarios[i] for run in runs if i < len(run.scenarios)]
            words = Text(" ").join(outcome_text(s.outcome) for s in each)
            mean = sum(s.duration_s for s in each) / len(each)
            table.add_row(first.name, words, f"{mean:.1f} s",
                          Text("FLAKY", style="bold yellow") if first.name in flaky else "")
    console.print(table)
    counts: dict[str, int] = {}
    for run in runs:
        for s in run.scenarios:
            counts[s.outcome.value] = counts.get(s.outcome.value, 0) + 1
    console.print(", ".join(f"{n} {o}" for o, n in sorted(counts.items())), highlight=False)
    if len(runs) > 1:
        flaky = runset.flaky()
        if flaky:
            for name, outcomes in flaky.items():
                console.print(f"flaky: {name}: {' '.join(outcomes)}", style="yellow", highlight=False)
        else:
            console.print(f"nothing flaky over {len(runs)} passes", highlight=False)
