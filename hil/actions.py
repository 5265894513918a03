"""Steps that act: the resident, the devices and the world around the hub, each one call on the rig.

Each handler takes the run's context, the step's lane and the step, and
returns a :class:`hil.runctx.Done`. Rig methods block until their action took
effect; those that return an instant (press, hold, release, serial, advertise)
give the step's mark its instant, the others are marked when the step began
(a ``broker_start`` mark is before the hub could reconnect, a ``hub_kill``
mark is the kill, not the restart that follows).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from hil import model as m
from hil.results import Outcome
from hil.runctx import Done, Lane, RunContext

Handler = Callable[[RunContext, Lane, Any], Done]


def _press(ctx: RunContext, lane: Lane, step: m.Press | m.Pull) -> Done:
    t = ctx.rig.press(step.device, step.hold_ms / 1000)
    return Done(detail=f"{step.device} for {step.hold_ms:g} ms", instants=[t])


def _hold(ctx: RunContext, lane: Lane, step: m.Hold) -> Done:
    return Done(detail=step.device, instants=[ctx.rig.hold(step.device)])


def _release(ctx: RunContext, lane: Lane, step: m.Release) -> Done:
    return Done(detail=step.device, instants=[ctx.rig.release(step.device)])


def _serial(ctx: RunContext, lane: Lane, step: m.Serial) -> Done:
    """``times`` frames, ``every_ms`` apart on a fixed schedule (a slow send does not stretch the burst)."""
    instants: list[float] = []
    start = time.monotonic()
    for i in range(step.times):
        if i and not ctx.sleep_until(start + i * step.every_ms / 1000):
            done = ctx.interrupted()
            done.detail = f"{done.detail} (after {i} of {step.times} frames)"
            done.instants = instants
            return done
        instants.append(ctx.rig.serial(step.device, step.send, step.args))
    what = f"{step.send} to {step.device}" + (f" x{step.times}" if step.times > 1 else "")
    return Done(detail=what, data={"frames": step.times}, instants=instants)


def _advertise(ctx: RunContext, lane: Lane, step: m.Advertise) -> Done:
    t = ctx.rig.advertise(step.device, step.values, step.replay)
    return Done(detail=f"{step.device} {'replay' if step.replay else step.values}", instants=[t])


def _wait(ctx: RunContext, lane: Lane, step: m.Wait) -> Done:
    ms = step.ms
    data: dict[str, Any] = {}
    if step.random_ms is not None:
        lo, hi = sorted(step.random_ms)
        ms = lane.rng.uniform(lo, hi)
        data["ms"] = round(ms, 3)
    if not ctx.sleep_until(time.monotonic() + ms / 1000):
        return ctx.interrupted()
    return Done(detail=f"{ms:.0f} ms", data=data)


def _push_config(ctx: RunContext, lane: Lane, step: m.PushConfig) -> Done:
    """The central's ``cmd/config``; the reply's ``result`` and ``errors`` as the step expects."""
    t = time.monotonic()
    reply = ctx.rig.push_config(step.version, step.set, step.broker == "unreachable")
    lines = "\n".join(str(e) for e in reply.get("errors", []))
    wrong = []
    if reply.get("result") != step.result:
        wrong.append(f"replied {reply.get('result')!r} ({reply.get('error', 'no error')}), expected {step.result!r}")
    missing = [p for p in step.errors if not re.search(p, lines, re.MULTILINE)]
    if missing:
        wrong.append("errors lack " + ", ".join(repr(p) for p in missing))
    what = f"v{step.version}" + (" to an unreachable broker" if step.broker == "unreachable" else "")
    if wrong:
        return Done(Outcome.FAIL, f"{what}: " + "; ".join(wrong), data={"reply": reply}, instants=[t])
    return Done(detail=f"{what}: {reply.get('result')}", data={"reply": reply}, instants=[t])


def _simple(call: Callable[[Any, Any], Any], describe: Callable[[Any], str] = lambda s: "") -> Handler:
    """A step that is one rig call returning nothing of note."""

    def handler(ctx: RunContext, lane: Lane, step: Any) -> Done:
        call(ctx.rig, step)
        return Done(detail=describe(step))

    return handler


#: The handler of every acting step, by its ``do``.
ACTIONS: dict[str, Handler] = {
    "press": _press,
    "pull": _press,
    "hold": _hold,
    "release": _release,
    "serial": _serial,
    "advertise": _advertise,
    "unplug": _simple(lambda r, s: r.unplug(s.device), lambda s: s.device),
    "replug": _simple(lambda r, s: r.replug(s.device), lambda s: s.device),
    "ble_fault": _simple(lambda r, s: r.ble_fault(s.kind, s.times, s.running), lambda s: s.kind),
    "clock_step": _simple(lambda r, s: r.clock_step(s.seconds), lambda s: f"{s.seconds:+g} s"),
    "broker_stop": _simple(lambda r, s: r.broker_stop()),
    "broker_start": _simple(lambda r, s: r.broker_start()),
    "net_cut": _simple(lambda r, s: r.net_cut()),
    "net_impair": _simple(
        lambda r, s: r.net_impair(s.delay_ms, s.jitter_ms, s.loss_pct),
        lambda s: f"delay {s.delay_ms:g}±{s.jitter_ms:g} ms, loss {s.loss_pct:g} %",
    ),
    "net_restore": _simple(lambda r, s: r.net_restore()),
    "hub_kill": _simple(lambda r, s: r.hub_kill(s.restart), lambda s: "restarted" if s.restart else "left down"),
    "hub_start": _simple(lambda r, s: r.hub_start()),
    "power_cut": _simple(lambda r, s: r.power_cut(s.restart), lambda s: "restarted" if s.restart else "left off"),
    "disk_fill": _simple(lambda r, s: r.disk_fill()),
    "disk_free": _simple(lambda r, s: r.disk_free()),
    "push_config": _push_config,
}

#: Steps that only look or wait: they do not move a lane's event window (:mod:`hil.runctx`).
PASSIVE = frozenset(
    {"wait", "join", "expect_event", "expect_no_event", "expect_feedback", "expect_sms", "expect_status",
     "check_central",
     "check_config", "repeat", "background"}
)
#: Steps after which the next acting step opens a new event window.
EXPECTATIONS = frozenset({"expect_event", "expect_no_event"})

WAIT: Handler = _wait
