"""``carehub sim``: drive a running hub's simulated devices, and serial emulators, from a shell.

Everything the demo, the tests and the test rig do to simulated hardware,
by device name from the config, with no socat and no raw JSON: GPIO buttons
(press, release, click, hold, state), BTHome adverts encoded and encrypted as
the configured device would send them (:mod:`hub.simcli.advert`), the BLE
radio's faults, GATT peripherals, and the serial emulators' control sockets
(a frame, unplug, replug, state). One short line per request, or the reply
as JSON with ``--json``. Exit codes: :mod:`hub.simcli.target` (0 done, 2 the
request is wrong, 3 nobody to ask).

``carehub sim SOCKET OP ...`` (the socket first) still works.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from hub.simcli.ops import OPS
from hub.simcli.parser import build_parser, legacy
from hub.simcli.target import EXIT_OK, SimCliError, Target

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *, prog: str = "carehub sim") -> int:
    """Run one ``carehub sim`` command; the exit code."""
    parser = build_parser()
    parser.prog = prog
    args = parser.parse_args(legacy(list(sys.argv[1:] if argv is None else argv)))
    target = Target(getattr(args, "config", None), getattr(args, "socket", None), getattr(args, "timeout", 10.0))
    try:
        request, reply, line = OPS[args.op](target, args)
    except SimCliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(reply, indent=2, sort_keys=True) if getattr(args, "json", False) else line)
    return EXIT_OK
