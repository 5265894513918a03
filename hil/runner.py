"""Run scenarios on a rig: :func:`run_scenario` for one, :func:`run_set` for a set, once or ``repeat`` times.

One scenario, as :func:`run_scenario` runs it:

1. a fixture the rig lacks: ``skip``, reason ``needs fixture X, Y``; the rig is not touched;
2. ``rig.setup`` (a result line ``setup``), then the steps in order (:mod:`hil.sequence`),
   each recorded with its index, start (ms from the scenario's start), duration,
   outcome, detail and data; marks collect the instants steps took effect;
3. the whole is bounded by ``timeout_s`` from the start of setup: a watchdog stops
   the steps still waiting, the step it cut short fails (``stopped: timeout_s=...``);
4. the measurements (:func:`hil.measure.evaluate` over the marks, for the rig's kind);
5. the central's summary always, the hub's log tail on ``fail`` and ``error``;
6. ``rig.teardown``, whatever happened (a result line ``teardown``).

The outcome is the worst of the steps' and the measurements' (error over fail over
marginal over pass); the reason names the step that failed or errored, and the
measurements that were marginal or failed.

What each step does: :mod:`hil.actions` (acting: one rig call each; a mark gets
the instant the rig returns for press, hold, release, serial and advertise, the
step's start for the others), :mod:`hil.expect` (looking: which arrivals an
expectation sees is the lane's event window, :mod:`hil.runctx`; the central's
checks), :mod:`hil.sequence` (order, indexes, repeat, background, join, errors).
"""

from __future__ import annotations

import random
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from hil.fixtures import Rig, RigError, missing
from hil.model import Scenario
from hil.results import MeasurementResult, Outcome, RunRecord, RunSet, ScenarioResult, StepResult, worst
from hil.runctx import Lane, RunContext
from hil.sequence import join_all, not_run, run_steps

log = structlog.get_logger("hil.runner")

#: After ``timeout_s``, how long a step stuck inside a rig call is given to return before teardown goes ahead.
STUCK_GRACE_S = 10.0
#: How long background blocks get to notice a stop.
BACKGROUND_GRACE_S = 5.0

RigFactory = Callable[[], Rig]
#: Called as each scenario ends: the pass (1-based) and its result.
OnResult = Callable[[int, ScenarioResult], None]


def run_scenario(rig: Rig, scenario: Scenario, workdir: Path, seed: int) -> ScenarioResult:
    """Run one scenario on ``rig`` (files under ``workdir``); ``seed`` when the scenario names none."""
    return _execute(rig, scenario, workdir, seed, threading.Event())[0]


def _error_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _rig_call(ctx: RunContext, index: str, call: Callable[[], Any]) -> StepResult:
    """Run setup or teardown as a result line of its own; a failure is an ``error``."""
    start = time.monotonic()
    line = StepResult(index=index, do=index, at_ms=ctx.ms(start), duration_ms=0, outcome=Outcome.PASS)
    try:
        call()
    except Exception as exc:  # RigError or a bug in the rig: the rig broke, not the hub
        line.outcome = Outcome.ERROR
        line.detail = ("rig: " if isinstance(exc, RigError) else "") + _error_line(exc)
        line.data = {"traceback": traceback.format_exc()}
        log.warning("rig_call_failed", scenario=ctx.scenario.name, call=index, error=line.detail)
    line.duration_ms = round((time.monotonic() - start) * 1000, 3)
    ctx.record(line)
    return line


def _execute(rig: Rig, scenario: Scenario, workdir: Path, seed: int,
             cancel: threading.Event) -> tuple[ScenarioResult, dict[str, Any]]:
    """Run one scenario; its result and the rig's ``info()`` (empty when it was skipped or setup failed)."""
    seed = scenario.scenario.seed if scenario.scenario.seed is not None else seed
    result = ScenarioResult(name=scenario.name, title=scenario.scenario.title, path=scenario.path,
                            outcome=Outcome.PASS, started=time.time(), seed=seed)
    lacking = missing(scenario, rig.fixtures)
    if lacking:
        result.outcome = Outcome.SKIP
        result.reason = f"needs fixture {', '.join(lacking)}"
        log.info("scenario_skipped", scenario=scenario.name, rig=rig.name, missing=lacking)
        return result, {}
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(rig, scenario, seed, time.monotonic())
    info: dict[str, Any] = {}
    set_up = threading.Event()  # the rig is ready and the steps may run

    def setup() -> None:
        rig.setup(scenario, workdir)
        info.update(rig.info())
        set_up.set()

    def steps() -> None:
        if _rig_call(ctx, "setup", setup).outcome is not Outcome.PASS:
            ctx.halt("setup failed")
            not_run(ctx, scenario.step, "", 1)
            return
        run_steps(ctx, Lane(prefix="", rng=random.Random(seed)), scenario.step, "")
        stuck = join_all(ctx, BACKGROUND_GRACE_S)
        if stuck:
            log.warning("background_stuck", scenario=scenario.name, names=stuck)

    def body() -> None:
        try:
            steps()
        except Exception as exc:  # a bug in the runner itself: never a silent pass
            ctx.halt("the runner crashed")
            line = StepResult(index="runner", do="runner", at_ms=ctx.ms(time.monotonic()), duration_ms=0,
                              outcome=Outcome.ERROR, detail=_error_line(exc), data={"traceback": traceback.format_exc()})
            ctx.record(line)
            log.error("runner_crashed", scenario=scenario.name, exc_info=exc)

    log.info("scenario_start", scenario=scenario.name, rig=rig.name, seed=seed)
    watchdog = threading.Timer(scenario.scenario.timeout_s, ctx.halt,
                               args=(f"timeout_s={scenario.scenario.timeout_s:g} reached",), kwargs={"timeout": True})
    watchdog.daemon = True
    worker = threading.Thread(target=body, name=f"hil-{scenario.name}", daemon=True)
    watchdog.start()
    worker.start()
    stuck_in_rig = False
    interrupted: BaseException | None = None
    try:
        while worker.is_alive():
            worker.join(0.1)
            if cancel.is_set():
                ctx.halt("the run was interrupted")
            if ctx.stop.is_set() and time.monotonic() > ctx.deadline + STUCK_GRACE_S:
                stuck_in_rig = worker.is_alive()
                break
    except BaseException as exc:  # Ctrl-C: stop the steps, still tear down, then re-raise
        interrupted = exc
        ctx.halt("the run was interrupted")
        worker.join(STUCK_GRACE_S)
    finally:
        watchdog.cancel()
    if set_up.is_set():
        result.measurements = _measure(ctx)
    _judge(ctx, result, stuck_in_rig)
    _gather(ctx, result)
    _rig_call(ctx, "teardown", rig.teardown)
    _judge(ctx, result, stuck_in_rig)
    if result.outcome in (Outcome.FAIL, Outcome.ERROR) and not result.log_tail:
        _gather(ctx, result)  # only the teardown failed: the log as it is now
    log.info("scenario_end", scenario=scenario.name, outcome=result.outcome.value, s=result.duration_s,
             reason=result.reason)
    if interrupted is not None:
        raise interrupted
    return result, info


def _measure(ctx: RunContext) -> list[MeasurementResult]:
    """Every declared measurement over the marks, for the rig's kind."""
    from hil import measure  # the measurement helper's module; imported when first needed

    with ctx.lock:
        marks = {k: list(v) for k, v in ctx.marks.items()}
    out = []
    for declared in ctx.scenario.measure:
        try:
            out.append(measure.evaluate(declared, marks, ctx.rig.kind))
        except Exception as exc:  # a measurement that cannot be computed is the runner's error, not a pass
            out.append(MeasurementResult(name=declared.name, stat=declared.stat, unit=declared.unit, value=None,
                                         outcome=Outcome.ERROR, detail=_error_line(exc)))
    return out


def _judge(ctx: RunContext, result: ScenarioResult, stuck_in_rig: bool) -> None:
    """The outcome and reason from the steps, the measurements and the clock; the steps in time order."""
    with ctx.lock:
        steps = sorted(ctx.results, key=lambda r: r.at_ms)  # stable: a container before its children
    result.steps = steps
    result.duration_s = round(time.monotonic() - ctx.t0, 3)
    parts = [s.outcome for s in steps if s.outcome is not Outcome.SKIP]
    parts += [m.outcome for m in result.measurements if m.outcome is not Outcome.SKIP]
    if ctx.timed_out or stuck_in_rig:
        parts.append(Outcome.FAIL)
    result.outcome = worst(parts)
    reasons = []
    if stuck_in_rig:
        reasons.append(f"a step was still inside the rig {STUCK_GRACE_S:g} s after timeout_s; torn down regardless")
    for s in steps:
        if s.outcome in (Outcome.FAIL, Outcome.ERROR):
            where = s.do if s.index == s.do else f"step {s.index} ({s.do})"  # setup, teardown
            reasons.append(f"{where} {s.outcome.value}: {s.detail}")
    if ctx.timed_out and not any(s.outcome is Outcome.FAIL for s in steps):
        reasons.append(ctx.stop_reason)
    for m in result.measurements:
        if m.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.MARGINAL):
            value = "no value" if m.value is None else f"{m.value:g} {m.unit}"
            reasons.append(f"{m.name} {m.outcome.value}: {m.detail or value}")
    result.reason = "; ".join(reasons)


def _gather(ctx: RunContext, result: ScenarioResult) -> None:
    """The central's counts, always; the hub's log tail when the scenario failed or errored."""
    try:
        result.central = dict(ctx.rig.central.summary())
    except Exception as exc:  # the record says why it has no counts
        result.central = {"error": _error_line(exc)}
    if result.outcome in (Outcome.FAIL, Outcome.ERROR):
        try:
            result.log_tail = ctx.rig.log_tail()
        except Exception as exc:
            result.log_tail = f"(no log: {_error_line(exc)})"


# --- a set of scenarios ---------------------------------------------------------------------------


def _is_factory(rig: Any) -> bool:
    """A class or a callable without ``setup`` makes rigs; anything else is one."""
    return isinstance(rig, type) or (callable(rig) and not hasattr(rig, "setup"))


def _first(info: dict[str, Any], *keys: str) -> str:
    for k in keys:
        if info.get(k):
            return str(info[k])
    return ""


def run_set(
    rig: Rig | RigFactory,
    scenarios: list[Scenario],
    workdir: Path,
    repeat: int = 1,
    seed: int | None = None,
    jobs: int = 1,
    on_result: OnResult | None = None,
    command: str = "",
) -> RunSet:
    """Run ``scenarios`` ``repeat`` times; one :class:`RunRecord` per pass, results in scenario order.

    ``rig`` is a rig, or a factory of rigs (a class or a function). ``jobs > 1``
    runs that many scenarios at once, each on a rig of its own from the factory
    (a rig instance cannot be shared: ``ValueError``); those marked ``exclusive`` run
    first, one at a time, with nothing beside them. Pass ``k`` (1-based) runs
    with the seed ``seed + k - 1`` (a random seed when None), so a repeat draws
    new random waits and the record can replay any pass; a scenario's own seed wins.
    Files go under ``workdir/<name>`` (``workdir/pass<k>/<name>`` when repeating).
    """
    if repeat < 1 or jobs < 1:
        raise ValueError("repeat and jobs must be at least 1")
    factory = rig if _is_factory(rig) else None
    if jobs > 1 and factory is None:
        raise ValueError("jobs > 1 needs a rig factory: one rig per scenario")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    shared: Rig | None = None if jobs > 1 else (rig if factory is None else factory())  # type: ignore[assignment]
    cancel = threading.Event()
    lock = threading.Lock()
    runs: list[RunRecord] = []
    for k in range(1, repeat + 1):
        pass_seed = seed + k - 1
        base = workdir if repeat == 1 else workdir / f"pass{k}"
        facts: dict[str, Any] = {}
        hashes: dict[str, str] = {}
        started, t0 = time.time(), time.monotonic()

        def one(sc: Scenario, k: int = k, pass_seed: int = pass_seed, base: Path = base,
                facts: dict[str, Any] = facts, hashes: dict[str, str] = hashes) -> ScenarioResult:
            try:
                r = shared if shared is not None else factory()  # type: ignore[misc]
            except Exception as exc:  # the rig could not even be made: this scenario errors
                res = ScenarioResult(name=sc.name, title=sc.scenario.title, path=sc.path, outcome=Outcome.ERROR,
                                     reason=f"rig: {_error_line(exc)}", started=time.time(), seed=pass_seed)
            else:
                res, info = _execute(r, sc, base / sc.name, pass_seed, cancel)
                with lock:
                    facts.setdefault("rig", r.name)
                    facts.setdefault("kind", r.kind)
                    if info:
                        facts.setdefault("info", info)
                        hashes[sc.name] = _first(info, "config_hash", "config_sha256", "sha256")
            if on_result is not None:
                with lock:
                    on_result(k, res)
            return res

        if jobs == 1:
            results = [one(sc) for sc in scenarios]
        else:
            # a scenario that measures latency runs alone, first, so the others' load is not in its figures
            alone = {sc.name: one(sc) for sc in scenarios if sc.scenario.exclusive}
            pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hil-job")
            try:
                futures = {sc.name: pool.submit(one, sc) for sc in scenarios if sc.name not in alone}
                results = [alone[sc.name] if sc.name in alone else futures[sc.name].result() for sc in scenarios]
            except BaseException:
                cancel.set()  # the scenarios running stop and tear down; those not started never start
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown()
        info = facts.get("info", {})
        runs.append(RunRecord(
            rig=str(facts.get("rig", getattr(shared, "name", ""))),
            rig_kind=str(facts.get("kind", getattr(shared, "kind", ""))),
            hub_version=_first(info, "hub_version", "version"),
            config_hash=_first(info, "config_hash", "config_sha256", "sha256"),
            started=started, duration_s=round(time.monotonic() - t0, 3), host=socket.gethostname(),
            repeat=k, scenarios=results,
            rig_info={**info, "seed": pass_seed, "jobs": jobs, "config_hash_by_scenario": hashes},
        ))
        log.info("pass_end", run=k, of=repeat, outcomes=[r.outcome.value for r in results])
    return RunSet(runs=runs, command=command)
