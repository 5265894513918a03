"""``python -m hil run ...`` (also ``carehub hil run ...``): run acceptance scenarios on a rig.

Exit codes: 0 every scenario passed (marginal and skipped included); 1 at
least one failed; 2 a bad scenario file, rig file or command line (nothing
ran); 3 none failed but the rig broke (an error), or the rig could not be made.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from hil import rigsel
from hil.fixtures import Rig, RigError
from hil.model import Scenario
from hil.results import Outcome, RunSet

OK, FAILED, BAD_INPUT, RIG_ERROR = 0, 1, 2, 3
#: Where the acceptance set lives; a bare name on the command line is a file here.
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

EPILOG = """\
scenarios:
  Each SCENARIO is a name (press_ack: hil/scenarios/press_ack.toml), a .toml file
  or a directory of them; none: the whole acceptance set in hil/scenarios/.
  A scenario needing a fixture the rig lacks is skipped, with the reason.

exit codes:
  0  every scenario passed (marginal and skipped ones included)
  1  at least one scenario failed: the hub did not do what it expects
  2  a bad scenario file, rig file or command line (FILE:LINE:COL on stderr); nothing ran
  3  no failure, but the rig broke (a scenario errored) or could not be made

examples:
  python -m hil run                                   the acceptance set on the virtual rig
  python -m hil run press_ack hold_cancel --repeat 5  what is flaky?
  python -m hil run --rig rigs/pi-7.toml --dry-run    what a Pi rig would run and skip
  python -m hil run --junit out/hil.xml --record out/hil.json --html out/hil.html
"""


def build_parser(prog: str = "python -m hil") -> argparse.ArgumentParser:
    """The argument parser: one sub-command, ``run``."""
    parser = argparse.ArgumentParser(prog=prog, description="Hardware-in-the-loop acceptance runs for carehub.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "run", help="run scenarios on a rig and report", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run acceptance scenarios on a rig: set the hub up, drive each step, check what the\n"
        "alarm central received, compute the declared measurements against their limits, report.",
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="names, .toml files or directories (default: all)")
    p.add_argument("--rig", default="virtual", metavar="virtual|RIGFILE",
                   help="'virtual' (default: Mosquitto, the hub as a subprocess, simulated devices) or a "
                   "physical rig's file (hil/README.md)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--record", type=Path, metavar="FILE", help="write the JSON record here (every step, every figure)")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the self-contained HTML report here")
    p.add_argument("--repeat", type=_positive, default=1, metavar="N", help="run the set N times and report what "
                   "was flaky (default 1)")
    p.add_argument("--jobs", type=_positive, default=1, metavar="N", help="run N scenarios at once, each on a rig of "
                   "its own (virtual rig only; default 1)")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="seed of the random waits (default: drawn, "
                   "printed and recorded); pass k uses N+k-1")
    p.add_argument("--dry-run", action="store_true", help="check the rig file against the scenarios and print "
                   "what would run and what would be skipped; run nothing")
    p.add_argument("--workdir", type=Path, metavar="DIR", help="keep each scenario's files (configs, logs, "
                   "state) under DIR (default: a temporary directory, removed after a clean run)")
    p.add_argument("--quick", action="store_true", help="the scenarios' [params.quick] sizes: shorter outages, fewer "
                   "kills and presses, the same checks and limits (what the test suite runs)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step (structlog, on stderr)")
    return parser


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def load(items: Sequence[str], profile: str | None = None) -> list[Scenario]:
    """The scenarios the command line names (none: the acceptance set), through the loader, which
    resolves names and directories and raises ``hil.loader.ScenarioError`` with every bad line;
    ``profile`` (``quick``) picks the scenarios' smaller sizes."""
    from hil.loader import load_scenarios

    return list(load_scenarios(list(items) or [str(SCENARIOS_DIR)], SCENARIOS_DIR, profile=profile))


def exit_code(runset: RunSet) -> int:
    """1 when any scenario failed, else 3 when any errored, else 0."""
    outcomes = {s.outcome for run in runset.runs for s in run.scenarios}
    if Outcome.FAIL in outcomes:
        return FAILED
    if Outcome.ERROR in outcomes:
        return RIG_ERROR
    return OK


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m hil",
         rig_factory: Callable[[], Rig] | None = None) -> int:
    """Entry point; ``rig_factory`` replaces ``--rig`` (tests drive a rig of their own through it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error 2
        return int(exc.code or 0)
    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)
    from hub.logs import configure

    configure("info" if args.verbose else "warning", "console")
    from hil.loader import ScenarioError

    try:
        scenarios = load(args.scenarios, "quick" if args.quick else None)
        choice = (rigsel.RigChoice(label="custom", make=rig_factory, parallel=True) if rig_factory is not None
                  else rigsel.choose(args.rig))
    except (ScenarioError, rigsel.BadInput) as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return BAD_INPUT
    if args.dry_run:
        return _dry_run(out, err, choice, scenarios)
    jobs = args.jobs
    if jobs > 1 and not choice.parallel:
        err.print(f"--jobs {jobs}: a physical rig runs one scenario at a time; running with --jobs 1")
        jobs = 1
    return _run(args, argv, prog, out, err, choice, scenarios, jobs)


def _dry_run(out: Console, err: Console, choice: rigsel.RigChoice, scenarios: list[Scenario]) -> int:
    """Print the plan; 0 when the rig is fit for it (skips are fine), 2 when the rig file has problems."""
    try:
        text, fit = rigsel.dry_run(choice, scenarios)
    except RigError as exc:
        err.print(f"rig error: {exc}")
        return RIG_ERROR
    out.print(text, markup=False, highlight=False, soft_wrap=True)
    return OK if fit else BAD_INPUT


def _run(args: argparse.Namespace, argv: list[str], prog: str, out: Console, err: Console,
         choice: rigsel.RigChoice, scenarios: list[Scenario], jobs: int) -> int:
    import random

    from hil.console import Progress, summary
    from hil.runner import run_set

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hil-"))
    out.print(f"hil: {len(scenarios)} scenarios on {choice.label}, seed {seed}"
              + (f", {args.repeat} passes" if args.repeat > 1 else "") + (f", {jobs} at once" if jobs > 1 else ""))
    command = shlex.join([*prog.split(), *argv])
    try:
        runset = run_set(choice.make if jobs > 1 else choice.make(), scenarios, workdir, repeat=args.repeat,
                         seed=seed, jobs=jobs, on_result=Progress(out, len(scenarios), args.repeat), command=command)
    except RigError as exc:
        err.print(f"rig error: {exc}")
        err.print(f"files kept in {workdir}")
        return RIG_ERROR
    except KeyboardInterrupt:
        err.print(f"interrupted; files kept in {workdir}")
        return 130
    summary(out, runset)
    code = exit_code(runset)
    written = _reports(args, runset)
    code = code if code != OK else written
    if args.workdir is None and code == OK:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        out.print(f"files kept in {workdir}")
    return code


def _reports(args: argparse.Namespace, runset: RunSet) -> int:
    """Write the reports asked for; 2 when one could not be written (the others still are)."""
    from importlib import import_module

    code = 0
    for kind in ("junit", "record", "html"):
        path: Path | None = getattr(args, kind)
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            import_module(f"hil.report.{kind}").write(runset, path)
        except OSError as exc:
            print(f"error: cannot write the {kind} report {path}: {exc}", file=sys.stderr)
            code = BAD_INPUT
        else:
            print(f"{kind}: {path}")
    return code
