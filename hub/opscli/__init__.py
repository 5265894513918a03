"""``carehub status``, ``tail``, ``test-alarm``, ``ack``, ``ble-forget``, ``replay``: the running hub,
through its local control socket (:mod:`hub.control`), network or not.

:func:`add_parsers` adds the sub-commands to ``carehub``'s parser; each sets
``func`` to its runner in :mod:`hub.opscli.ops`. Exit status, for all of
them: 0 ok, 1 the operation failed (for ``test-alarm``: no ack within the
timeout), 2 usage or config error, 3 the hub's socket cannot be reached.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

from hub.opscli import ops
from hub.opscli.common import add_target, exit_codes


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _seq(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a seq is 1 or more, not {text}")
    return value


def _event_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
        raise argparse.ArgumentTypeError(f"not an event id (a UUID in lower case, as carehub status shows): {text!r}")
    return text


def add_parsers(sub: Any) -> None:
    """Add the operations sub-commands to ``carehub``'s sub-parsers."""

    def parser(name: str, help_: str, description: str, ok: str, failed: str, *, timeout: float = 10.0,
               json_help: str = "print the hub's reply as JSON (for scripts)") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=textwrap.fill(description, 79),
                           epilog=exit_codes(ok, failed), formatter_class=argparse.RawDescriptionHelpFormatter)
        add_target(p)
        p.add_argument("--json", action="store_true", help=json_help)
        if timeout:
            p.add_argument("--timeout", type=_positive, default=timeout, metavar="S",
                           help=f"seconds to wait for the hub's reply (default {timeout:g})")
        return p

    p = parser(
        "status", "the running hub's status: link, outbox, every device, alarms, rules, what is degraded",
        "Ask the running hub, over its local control socket (works with the network down): the link to the "
        "broker, the outbox (events not yet delivered, the oldest one's age), every configured device heard or "
        "not (state, last seen, battery, RSSI or serial port), open alarms, the active rules, and every part "
        "that is degraded (in red).",
        "the hub answered", "the hub answered with an error",
        json_help="print the whole status document as JSON (for scripts)",
    )
    p.set_defaults(func=ops.status)

    p = parser(
        "tail", "follow the hub's events live, one line each",
        "Print every event the hub commits, as it commits it, until Ctrl-C. --type and --device narrow it "
        "(each may be given more than once). A client that cannot keep up is dropped by the hub; the hub "
        "itself never waits for it.",
        "stopped with Ctrl-C (exit 130)", "the hub dropped this client (too slow) or closed the connection",
        timeout=0, json_help="one JSON event a line, exactly as the central gets it",
    )
    p.add_argument("--type", "-t", action="append", metavar="T",
                   help="only events of this type; a glob: 'alarm.*', 'device.*' (repeatable)")
    p.add_argument("--device", "-d", action="append", metavar="D", help="only events of this device id (repeatable)")
    p.set_defaults(func=ops.tail)

    p = parser(
        "test-alarm", "raise alarm.test end to end and time each leg, up to the central's ack",
        "Raise alarm.test through the hub's real path (cmd/test-alarm's handler) and print each leg as it "
        "happens, with its time since the request: committed (stored, its seq), published (the broker's "
        "PUBACK), acknowledged (the central's ack). Without an ack within --timeout it says which leg never "
        "came. The alarm stays open on the hub until the central acknowledges it, as any alarm.",
        "the central acknowledged the test alarm", "no ack within the timeout, or the hub could not raise it",
        timeout=0, json_help="one JSON object per leg",
    )
    p.add_argument("--device", metavar="ID", help="raise it on this device (its LED and buzzer show it)")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                   help="seconds to wait for the central's ack (default 30)")
    p.add_argument("--note", metavar="TEXT", help="a note in the event's data (who tests, why)")
    p.set_defaults(func=ops.test_alarm)

    p = parser(
        "ack", "acknowledge an alarm, as the central's cmd/ack",
        "Acknowledge an open alarm (any alarm of its episode, or one of its reminders) as the central's "
        "cmd/ack does: the episode ends, the LED turns steady, the hub sends alarm.acknowledged.",
        "acknowledged (or acknowledged before)", "no open alarm with that id, or it was cancelled",
    )
    p.add_argument("event_id", type=_event_id, metavar="EVENT_ID",
                   help="the alarm's event id (carehub status lists open alarms)")
    p.add_argument("--by", metavar="NAME", help="who acknowledges (default: local:<your user name>)")
    p.set_defaults(func=ops.ack)

    p = parser(
        "ble-forget", "forget a BLE device's encryption counter, as the central's cmd/ble-forget",
        "Forget the last encryption counter of an encrypted BTHome device whose counter started again at a "
        "random value (a reflash): its next genuine advert is taken. A restart from zero needs no command.",
        "forgotten", "no such BLE device on this hub",
    )
    p.add_argument("device", metavar="DEVICE", help="the device id from the config")
    p.add_argument("--by", metavar="NAME", help="who asks (default: local:<your user name>)")
    p.set_defaults(func=ops.ble_forget)

    p = parser(
        "replay", "publish stored events again, as the central's cmd/replay",
        "Publish the stored events FROM_SEQ..TO_SEQ (TO_SEQ defaults to FROM_SEQ) again, with their ids and "
        "seqs, and say which of them are no longer stored. Needs the broker.",
        "published (missing ones listed)", "the range is refused or the link is down",
        timeout=60.0,
    )
    p.add_argument("from_seq", type=_seq, metavar="FROM_SEQ", help="first seq")
    p.add_argument("to_seq", type=_seq, nargs="?", metavar="TO_SEQ", help="last seq (default FROM_SEQ)")
    p.set_defaults(func=ops.replay)
