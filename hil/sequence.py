"""Running a list of steps in order: one result per step, ``repeat``, ``background`` and ``join``.

A step's result carries its index (``"4"``; ``"4.2.1"``: step 4, pass 2, its
step 1; ``"5.3"``: step 3 of the background block at step 5). A step that
fails or errors stops its lane and the scenario: the lane's remaining steps are
recorded as not run (outcome ``skip``, detail ``not run``), the other lanes stop
at their next look. A ``RigError`` or any other exception in a step is an
``error`` with the exception's last line (the whole traceback in ``data``).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from typing import Any

import structlog

from hil import model as m
from hil.actions import ACTIONS, EXPECTATIONS, PASSIVE, WAIT
from hil.expect import EXPECTS
from hil.fixtures import RigError
from hil.results import Outcome, StepResult, worst
from hil.runctx import Background, Done, Lane, RunContext

log = structlog.get_logger("hil.runner")


def run_steps(ctx: RunContext, lane: Lane, steps: list[Any], prefix: str) -> bool:
    """Run ``steps`` in order on ``lane``; False when one did not pass (the rest recorded as not run)."""
    for i, step in enumerate(steps, 1):
        if ctx.stop.is_set():
            not_run(ctx, steps[i - 1:], prefix, i)
            return False
        if not run_step(ctx, lane, step, f"{prefix}{i}"):
            not_run(ctx, steps[i:], prefix, i + 1)
            return False
    return True


def not_run(ctx: RunContext, steps: list[Any], prefix: str, first: int) -> None:
    """Record ``steps`` (numbered from ``first``) as not run."""
    at = ctx.ms(time.monotonic())
    for k, step in enumerate(steps, first):
        ctx.record(StepResult(index=f"{prefix}{k}", do=m.step_kind(step), at_ms=at, duration_ms=0,
                              outcome=Outcome.SKIP, detail="not run"))


def run_step(ctx: RunContext, lane: Lane, step: Any, index: str) -> bool:
    """Run one step and record its result; True when it passed."""
    kind = m.step_kind(step)
    start = time.monotonic()
    result = StepResult(index=index, do=kind, at_ms=ctx.ms(start), duration_ms=0, outcome=Outcome.PASS)
    ctx.record(result)  # first, so a container's line comes before its children's
    try:
        if kind not in PASSIVE and lane.fresh:
            lane.horizon = len(ctx.rig.central.arrivals())
            lane.opened_by, lane.opened_at, lane.fresh = index, start, False
    except Exception as exc:  # the central could not be read: the rig broke
        done = crashed(ctx, index, exc)
    else:
        done = _execute(ctx, lane, step, index)
    end = time.monotonic()
    result.duration_ms = round((end - start) * 1000, 3)
    result.outcome, result.detail, result.data = done.outcome, done.detail, done.data
    if kind in EXPECTATIONS:
        lane.fresh = True
    if step.mark is not None and (done.instants or done.outcome is Outcome.PASS):
        ctx.add_mark(step.mark, done.instants or [start], done.ids)
    log.info("step_end", scenario=ctx.scenario.name, index=index, do=kind,
             outcome=done.outcome.value, ms=result.duration_ms, detail=done.detail)
    if done.outcome in (Outcome.FAIL, Outcome.ERROR):
        lane.failed = lane.failed or f"step {index} ({kind}) {done.outcome.value}: {done.detail}"
        ctx.halt(lane.failed)
        return False
    return done.outcome is Outcome.PASS


def _execute(ctx: RunContext, lane: Lane, step: Any, index: str) -> Done:
    try:
        if isinstance(step, m.Repeat):
            return _repeat(ctx, lane, step, index)
        if isinstance(step, m.Background):
            return _background(ctx, lane, step, index)
        if isinstance(step, m.Join):
            return _join(ctx, step)
        if isinstance(step, m.Wait):
            return WAIT(ctx, lane, step)
        kind = m.step_kind(step)
        handler = ACTIONS.get(kind) or EXPECTS.get(kind)
        if handler is None:
            return Done(Outcome.ERROR, f"the runner has no handler for {kind!r}")
        return handler(ctx, lane, step)
    except Exception as exc:  # a rig that broke, or a bug in a rig or the runner: the scenario errors
        return crashed(ctx, index, exc)


def crashed(ctx: RunContext, index: str, exc: Exception) -> Done:
    """An ``error``: ``rig: message`` for a :class:`RigError`, else the exception's last line;
    the whole traceback in ``data`` (and logged when it is not a RigError)."""
    if isinstance(exc, RigError):
        return Done(Outcome.ERROR, f"rig: {exc}", {"traceback": traceback.format_exc()})
    log.error("step_crashed", scenario=ctx.scenario.name, index=index, exc_info=exc)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return Done(Outcome.ERROR, last, {"traceback": traceback.format_exc()})


def _repeat(ctx: RunContext, lane: Lane, step: m.Repeat, index: str) -> Done:
    for p in range(1, step.times + 1):
        if not run_steps(ctx, lane, step.steps, f"{index}.{p}."):
            with ctx.lock:
                mine = [r.outcome for r in ctx.results if r.index.startswith(f"{index}.{p}.")]
            outcome = worst(mine)
            if outcome is Outcome.PASS:  # only stopped (by another lane or the clock)
                done = ctx.interrupted()
                done.detail += f" in pass {p} of {step.times}"
                return done
            return Done(outcome, f"pass {p} of {step.times}: {outcome.value}", {"passes": p - 1})
    return Done(detail=f"{step.times} passes", data={"passes": step.times})


def _background(ctx: RunContext, lane: Lane, step: m.Background, index: str) -> Done:
    running = ctx.backgrounds.get(step.name)
    if running is not None and running.thread.is_alive():  # once it ended (a join in a repeat), it may start again
        return Done(Outcome.FAIL, f"background {step.name!r} started again while it still runs")
    sub = Lane(prefix=f"{index}.", rng=random.Random(f"{ctx.seed}/{index}"))

    def body() -> None:
        try:
            run_steps(ctx, sub, step.steps, sub.prefix)
        except BaseException as exc:  # never leave a lane dead without a word
            sub.failed = f"background {step.name} crashed: {exc!r}"
            ctx.halt(sub.failed)

    thread = threading.Thread(target=body, name=f"hil-{ctx.scenario.name}-{step.name}", daemon=True)
    ctx.backgrounds[step.name] = Background(step.name, index, thread, sub)
    thread.start()
    return Done(detail=f"{step.name}: {len(step.steps)} steps started")


def _join(ctx: RunContext, step: m.Join) -> Done:
    bg = ctx.backgrounds.get(step.name)
    if bg is None:
        return Done(Outcome.FAIL, f"no background {step.name!r} was started")
    until = time.monotonic() + step.within_ms / 1000
    while bg.thread.is_alive():
        bg.thread.join(min(0.05, max(0.0, until - time.monotonic())))
        if time.monotonic() >= until and bg.thread.is_alive():
            return Done(Outcome.FAIL, f"{step.name} still running after {step.within_ms:g} ms")
        if ctx.stop.is_set() and bg.thread.is_alive():
            return ctx.interrupted()
    if bg.lane.failed:
        return Done(Outcome.FAIL, f"{step.name}: {bg.lane.failed}")
    return Done(detail=f"{step.name} done")


def join_all(ctx: RunContext, grace_s: float) -> list[str]:
    """Wait for every background still running: until the deadline while the scenario runs, at most
    ``grace_s`` once it was stopped. The names of those that did not end."""
    for bg in ctx.backgrounds.values():
        limit = ctx.deadline
        while bg.thread.is_alive() and time.monotonic() < limit:
            if ctx.stop.is_set():
                limit = min(limit, time.monotonic() + grace_s)
            bg.thread.join(min(0.05, max(0.0, limit - time.monotonic())))
    return [bg.name for bg in ctx.backgrounds.values() if bg.thread.is_alive()]
