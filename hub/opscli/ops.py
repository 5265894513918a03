"""The operations commands: each one request on the control socket, its replies printed for a person
(or as JSON with ``--json``), and an exit code (:mod:`hub.opscli.common`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub.opscli.common import (EXIT_FAILED, EXIT_OK, connect, guarded, local_time, short)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def _fail(reply: dict[str, Any]) -> int:
    print(f"error: {reply.get('error', 'the hub said no')}", file=sys.stderr)
    return EXIT_FAILED


@guarded
def status(args: argparse.Namespace) -> int:
    """``carehub status``."""
    with connect(args, timeout=args.timeout) as client:
        doc = client.request({"op": "status"})
    if not doc.get("ok"):
        return _fail(doc)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    from rich.console import Console

    from hub.opscli.statusview import render

    render(doc, Console(highlight=False))
    return EXIT_OK


@guarded
def tail(args: argparse.Namespace) -> int:
    """``carehub tail``: until Ctrl-C, or until the hub goes or drops this client."""
    request: dict[str, Any] = {"op": "tail", "types": args.type or [], "devices": args.device or []}
    with connect(args) as client:
        first = client.request(request)
        if not first.get("ok"):
            return _fail(first)
        if not args.json:
            wanted = ", ".join(args.type or ["every type"]) + " from " + ", ".join(args.device or ["every device"])
            print(f"following {wanted} (Ctrl-C to stop)", file=sys.stderr)
        client.settimeout(None)
        for reply in client.replies():
            event = reply.get("event")
            if event is None:
                return _fail(reply)  # dropped (too slow)
            print(json.dumps(event, separators=(",", ":")) if args.json else event_line(event), flush=True)
    print("error: the hub closed the connection", file=sys.stderr)
    return EXIT_FAILED


def event_line(e: dict[str, Any]) -> str:
    """One event in one line a person reads: local time, seq, type, priority, device (room), data."""
    src = e.get("source", {})
    where = src.get("device", "?") + (f" ({src['room']})" if src.get("room") else "")
    data = " ".join(f"{k}={short(v, 40)}" for k, v in e.get("data", {}).items())
    cause = f" cause={e['cause'][:8]}…" if e.get("cause") else ""
    return (f"{local_time(e.get('ts'))}  #{e.get('seq')}  {e.get('type', '?'):<24} {e.get('priority', ''):<8} "
            f"{where}  {data}{cause}  id={e.get('id')}")


@guarded
def test_alarm(args: argparse.Namespace) -> int:
    """``carehub test-alarm``: each leg with its time; 0 on the central's ack, 1 on none."""
    request: dict[str, Any] = {"op": "test-alarm", "timeout_s": args.timeout}
    if args.device:
        request["device"] = args.device
    if args.note:
        request["note"] = args.note
    with connect(args, timeout=args.timeout + 10) as client:
        client.send(request)
        if not args.json:
            print(f"test alarm on {args.device or 'the hub'}, waiting up to {args.timeout:g} s for the central's ack")
        while True:
            leg = client.reply()
            if args.json:
                print(json.dumps(leg), flush=True)
            if "leg" in leg and not args.json:
                print(leg_line(leg), flush=True)
            if leg.get("done") or ("leg" not in leg and not leg.get("ok")):
                break
    if leg.get("ok"):
        if not args.json:
            print("ok: the central acknowledged the test alarm")
        return EXIT_OK
    return _fail(leg)


def leg_line(leg: dict[str, Any]) -> str:
    """One leg: name, time since the request, and what it says."""
    name = leg["leg"]
    if name == "committed":
        what = f"stored as seq {leg.get('seq')}, event {leg.get('event_id')}"
    elif name == "published":
        what = "PUBACK: the broker has it"
    elif name == "acknowledged":
        what = f"by {leg.get('by')} (alarm.acknowledged {leg.get('ack_event_id')})"
    elif name == "timeout":
        what = f"no {' and no '.join(leg.get('waiting_for', []))} within {leg.get('timeout_s', 0):g} s"
    elif name == "failed":
        what = str(leg.get("error"))
    else:
        what = ""
    return f"  {name:<13} {leg.get('t_ms', 0):>10.1f} ms  {what}".rstrip()


def _command(args: argparse.Namespace, request: dict[str, Any], say: Any) -> int:
    with connect(args, timeout=args.timeout) as client:
        reply = client.request(request)
    if args.json:
        _print_json(reply)
        return EXIT_OK if reply.get("ok") else EXIT_FAILED
    if not reply.get("ok"):
        return _fail(reply)
    print(say(reply))
    return EXIT_OK


@guarded
def ack(args: argparse.Namespace) -> int:
    """``carehub ack EVENT_ID``: the central's ``cmd/ack``."""
    request: dict[str, Any] = {"op": "ack", "event_id": args.event_id}
    if args.by:
        request["by"] = args.by
    return _command(args, request, lambda r: f"{r.get('result')}: alarm {r.get('alarm_id')} "
                                            f"(closes {len(r.get('closes', []))} alarm(s))")


@guarded
def ble_forget(args: argparse.Namespace) -> int:
    """``carehub ble-forget DEVICE``: the central's ``cmd/ble-forget``."""
    request: dict[str, Any] = {"op": "ble-forget", "device": args.device}
    if args.by:
        request["by"] = args.by
    return _command(args, request, lambda r: f"forgot {r.get('device')}'s encryption counter "
                                            f"(was {r.get('previous_counter')}); its next advert is taken")


@guarded
def replay(args: argparse.Namespace) -> int:
    """``carehub replay FROM_SEQ [TO_SEQ]``: the central's ``cmd/replay``."""
    to_seq = args.to_seq if args.to_seq is not None else args.from_seq
    request = {"op": "replay", "from_seq": args.from_seq, "to_seq": to_seq}

    def say(r: dict[str, Any]) -> str:
        text = f"published again: {r.get('sent')} event(s), seq {args.from_seq}..{to_seq}"
        if r.get("missing_count"):
            text += f"; not stored (evicted or never): {r['missing_count']}: {short(r.get('missing'), 60)}"
        return text

    return _command(args, request, say)
