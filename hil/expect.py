"""Steps that look: what the central received, the LED, the hub's status, the central's checks, check-config.

Which arrivals an expectation looks at is the lane's event window
(:mod:`hil.runctx`). Waiting steps look again every :data:`hil.runctx.POLL_S`
seconds (or as soon as the central says something arrived) and give up early
when the scenario is stopped.
"""

from __future__ import annotations

import re
import time
from typing import Any

from hil import matching
from hil import model as m
from hil.actions import Handler
from hil.results import Outcome
from hil.runctx import POLL_S, Done, Lane, RunContext


def _describe(type_: str, device: str | None, fields: dict[str, Any]) -> str:
    out = type_ + (f" from {device}" if device else "")
    if fields:
        out += " with " + ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return out


def _wait_arrival(ctx: RunContext, seen: int, until: float) -> None:
    """Block until the central has more than ``seen`` arrivals, ``until`` passes or a poll's time."""
    left = min(until - time.monotonic(), POLL_S)
    if left > 0:
        ctx.rig.central.wait(seen, left)


def _expect_event(ctx: RunContext, lane: Lane, step: m.ExpectEvent) -> Done:
    """``count`` unclaimed events matching, in the window, within ``within_ms`` of the step's start.

    ``data``: the events' ``ids`` and ``types``; ``window_from``, the step whose start opened the
    window; ``after_ms``, each arrival in ms after that step began (a press's alarm may arrive while
    the press is still held, before this step begins); ``at_ms``, each arrival in scenario time."""
    start = time.monotonic()
    until = start + step.within_ms / 1000
    got: list[Any] = []
    near: list[str] = []
    scanned = lane.horizon
    while True:
        arrivals = ctx.rig.central.arrivals()
        while scanned < len(arrivals) and len(got) < step.count:
            a = arrivals[scanned]
            scanned += 1
            why = matching.mismatches(a.event, step.type, step.device, step.fields)
            if not why:
                if ctx.claim(str(a.event.get("id"))):
                    got.append(a)
            elif not why[0].startswith("type ") and len(near) < 5:
                near.append("; ".join(why))
        if len(got) >= step.count:
            break
        if ctx.stop.is_set():
            done = ctx.interrupted()
            done.detail += f" ({len(got)} of {step.count} arrived)"
            return done
        if time.monotonic() >= until:
            break
        _wait_arrival(ctx, len(arrivals), until)
    opened = lane.opened_at or ctx.t0
    latencies = [round((a.t - opened) * 1000, 3) for a in got]
    ids = [str(a.event.get("id")) for a in got]
    data = {"ids": ids, "types": [a.event.get("type") for a in got], "window_from": lane.opened_by,
            "after_ms": latencies, "at_ms": [ctx.ms(a.t) for a in got]}
    what = _describe(step.type, step.device, step.fields)
    if len(got) < step.count:
        detail = f"{len(got)} of {step.count} {what} within {step.within_ms:g} ms"
        if near:
            data["near_misses"] = near
            detail += "; the same type arrived with " + " | ".join(near[:2])
        return Done(Outcome.FAIL, detail, data, instants=[a.t for a in got], ids=ids)
    tail = f", {max(latencies):.1f} ms after {lane.opened_by} began" if latencies else ""
    return Done(detail=f"{len(got)} {what}{tail}", data=data, instants=[a.t for a in got], ids=ids)


def _expect_no_event(ctx: RunContext, lane: Lane, step: m.ExpectNoEvent) -> Done:
    """No unclaimed matching event in the window from its opening until ``for_ms`` after the step's start."""
    until = time.monotonic() + step.for_ms / 1000
    scanned = lane.horizon
    while True:
        arrivals = ctx.rig.central.arrivals()
        for a in arrivals[scanned:]:
            eid = str(a.event.get("id"))
            if matching.matches(a.event, step.type, step.device, {}) and not ctx.is_claimed(eid):
                what = f"{a.event.get('type')} from {sorted(matching.device_of(a.event))}"
                return Done(Outcome.FAIL, f"unexpected {what} at {ctx.ms(a.t):.0f} ms",
                            {"id": eid, "type": a.event.get("type")}, instants=[a.t])
        scanned = len(arrivals)
        if time.monotonic() >= until:
            return Done(detail=f"none of {_describe(step.type, step.device, {})} for {step.for_ms:g} ms")
        if ctx.stop.is_set():
            return ctx.interrupted()
        _wait_arrival(ctx, scanned, until)


def _poll(ctx: RunContext, within_ms: float, read: Any, want: str) -> Done:
    """Read a state until it is ``want`` or ``within_ms`` passed; the states seen go in ``data``."""
    start = time.monotonic()
    until = start + within_ms / 1000
    seen: list[list[Any]] = []
    while True:
        state = read()
        now = time.monotonic()
        if not seen or seen[-1][1] != state:
            seen.append([round((now - start) * 1000, 1), state])
        if state == want:
            return Done(detail=f"{want} after {(now - start) * 1000:.0f} ms", data={"seen": seen}, instants=[now])
        if now >= until:
            return Done(Outcome.FAIL, f"{state} after {within_ms:g} ms, not {want}", {"seen": seen})
        if not ctx.sleep_until(min(until, now + POLL_S)):
            done = ctx.interrupted()
            done.data = {"seen": seen}
            return done


def _expect_feedback(ctx: RunContext, lane: Lane, step: m.ExpectFeedback) -> Done:
    done = _poll(ctx, step.within_ms, lambda: ctx.rig.feedback(step.device, step.output), step.state)
    done.detail = f"{step.device} {step.output}: {done.detail}"
    return done


def _expect_sms(ctx: RunContext, lane: Lane, step: m.ExpectSms) -> Done:
    def count() -> int:
        return sum(1 for n in ctx.rig.sms(step.device)["cmgs"] if n == step.to)

    done = _poll(ctx, step.within_ms, count, step.count)
    done.detail = f"SMS to {step.to}: {done.detail}"
    if done.outcome is Outcome.PASS and step.contains:
        texts = [s["text"] for s in ctx.rig.sms(step.device)["sent"] if s["to"] == step.to]
        lacking = [t for t in texts if not all(w in t for w in step.contains)]
        if lacking:
            return Done(Outcome.FAIL, f"SMS to {step.to} lacks {step.contains}: {lacking[0]!r}", done.data)
    return done


def _expect_status(ctx: RunContext, lane: Lane, step: m.ExpectStatus) -> Done:
    done = _poll(ctx, step.within_ms, ctx.rig.central.status, step.state)
    done.detail = f"status: {done.detail}"
    return done


def _ack(ctx: RunContext, lane: Lane, step: m.Ack) -> Done:
    """``cmd/ack`` for every event id recorded under the mark and not acknowledged yet in this scenario
    (in a repeat: this pass's); fails on a reply that is not ok, or when there is nothing new to acknowledge."""
    with ctx.lock:
        ids = [i for i in ctx.mark_ids.get(step.event, []) if i not in ctx.acked]
        ctx.acked.update(ids)
    if not ids:
        return Done(Outcome.FAIL, f"mark {step.event!r} holds no event that is not acknowledged already")
    replies = []
    bad = []
    for eid in ids:
        reply = ctx.rig.central.ack(eid, step.by)
        replies.append(reply)
        if not isinstance(reply, dict) or reply.get("ok") is not True or reply.get("error"):
            bad.append(f"{eid}: {reply.get('error', reply) if isinstance(reply, dict) else reply}")
    data = {"ids": ids, "replies": replies}
    if bad:
        return Done(Outcome.FAIL, f"ack refused: {'; '.join(bad[:3])}", data)
    return Done(detail=f"{len(ids)} acknowledged by {step.by}", data=data)


def _central_findings(ctx: RunContext, step: m.CheckCentral) -> tuple[list[str], list[str]]:
    problems = list(ctx.rig.central.problems()) if step.no_seq_gaps else []
    lost: list[str] = []
    if step.nothing_lost:
        arrived = {str(a.event.get("id")) for a in ctx.rig.central.arrivals()}
        lost = [i for i in ctx.rig.taken() if i not in arrived]
    return problems, lost


def _check_central(ctx: RunContext, lane: Lane, step: m.CheckCentral) -> Done:
    """``no_seq_gaps``: the recorder's :meth:`problems` empty (gaps, an id with two bodies, a bad
    priority); ``nothing_lost``: every id of :meth:`Rig.taken` among the arrivals; both waited for
    up to ``within_ms`` (the backlog may still be draining). Then ``alarms_first_after``: among the
    arrivals after the mark's first instant, no alarm that was created before that instant arrived
    after a non-alarm event created before it (:func:`hil.matching.alarms_overtaken`)."""
    until = time.monotonic() + step.within_ms / 1000
    while True:
        problems, lost = _central_findings(ctx, step)
        if not problems and not lost or time.monotonic() >= until:
            break
        if not ctx.sleep_until(min(until, time.monotonic() + 4 * POLL_S)):
            return ctx.interrupted()
    overtaken: list[str] = []
    if step.alarms_first_after is not None:
        with ctx.lock:
            instants = list(ctx.marks.get(step.alarms_first_after, []))
        if not instants:
            return Done(Outcome.FAIL, f"mark {step.alarms_first_after!r} has no instant")
        after = min(instants)
        overtaken = matching.alarms_overtaken(
            ctx.rig.central.arrivals(), after, matching.rfc3339(after + ctx.wall_offset)
        )
    data: dict[str, Any] = {"problems": problems, "lost": lost, "overtaken": overtaken,
                            "taken": len(ctx.rig.taken()) if step.nothing_lost else None}
    wrong = []
    if problems:
        wrong.append(f"central: {'; '.join(problems[:3])}")
    if lost:
        wrong.append(f"{len(lost)} alarms taken by the hub never arrived ({', '.join(lost[:3])})")
    if overtaken:
        wrong.append(f"{len(overtaken)} alarms overtaken: {overtaken[0]}")
    if wrong:
        return Done(Outcome.FAIL, " | ".join(wrong), data)
    return Done(detail=f"ok ({data['taken']} alarms taken, all arrived)" if step.nothing_lost else "ok", data=data)


def _check_config(ctx: RunContext, lane: Lane, step: m.CheckConfig) -> Done:
    code, output = ctx.rig.check_config(step.set, step.text)
    data = {"exit": code, "output": output[-4000:]}
    wrong = []
    if step.refused and code == 0:
        wrong.append("accepted (exit 0), expected refused")
    if not step.refused and code != 0:
        wrong.append(f"refused (exit {code}), expected accepted")
    missing = [p for p in step.errors if not re.search(p, output, re.MULTILINE)]
    if missing:
        wrong.append("output lacks " + ", ".join(repr(p) for p in missing))
    if wrong:
        last = " / ".join(line for line in output.strip().splitlines()[-3:])
        return Done(Outcome.FAIL, "; ".join(wrong) + (f"; output: {last}" if last else ""), data)
    return Done(detail=f"{'refused' if code else 'accepted'} (exit {code})", data=data)


#: The handler of every looking step, by its ``do``.
EXPECTS: dict[str, Handler] = {
    "expect_event": _expect_event,
    "expect_no_event": _expect_no_event,
    "expect_feedback": _expect_feedback,
    "expect_sms": _expect_sms,
    "expect_status": _expect_status,
    "ack": _ack,
    "check_central": _check_central,
    "check_config": _check_config,
}
