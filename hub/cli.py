"""The ``carehub`` command line.

``carehub run --config FILE``            run the daemon
``carehub check-config FILE``            0 valid, 1 invalid, 2 unreadable
``carehub sim OP ...``                   drive a running hub's simulated devices and serial emulators
``carehub demo``                         a simulated residence and a pretend alarm central
``carehub scan --config FILE --seconds N``  list the BLE devices heard (for installers)
``carehub emulate PROTOCOL --link PATH --control SOCK``  play a serial device on a pty
``carehub hil run [SCENARIO...]``        hardware-in-the-loop acceptance runs (``python -m hil run``)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from hub import __version__


def _load(path: str, refusal: str) -> tuple[Any, int]:
    """Load a config, printing every issue; returns (loaded or None, exit code if refused)."""
    from hub import config

    try:
        return config.load(path), 0
    except config.ConfigUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    except config.ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        n = len(exc.issues)
        print(f"{path}: {n} error{'s' if n != 1 else ''}; {refusal}", file=sys.stderr)
        return None, 1


def _check_config(args: argparse.Namespace) -> int:
    loaded, code = _load(args.file, "the hub would refuse to start")
    if loaded is None:
        return code
    cfg = loaded.config
    print(f"{args.file}: valid (hub {cfg.hub.id}, {len(cfg.devices)} devices, sha256 {loaded.sha256[:12]})")
    return 0


def _run(args: argparse.Namespace) -> int:
    loaded, code = _load(args.config, "invalid config, not starting")
    if loaded is None:
        return code
    from hub.daemon import run_daemon

    return run_daemon(loaded)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        from hub.demo import run_demo
    except KeyboardInterrupt:  # Ctrl-C while importing, before the demo's own handler is in place
        print("demo stopped (Ctrl-C)", file=sys.stderr)
        return 130
    return run_demo(Path(args.config), keep_running=args.keep_running)


def _scan(args: argparse.Namespace) -> int:
    from hub.scan import run_scan

    return run_scan(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; one sub-command per task."""
    parser = argparse.ArgumentParser(prog="carehub", description="Device hub for municipal home care.")
    parser.add_argument("--version", action="version", version=f"carehub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the hub daemon")
    p.add_argument("--config", "-c", required=True, help="residence config (TOML)")
    p.set_defaults(func=_run)

    p = sub.add_parser("check-config", help="validate a config file; exit 0 valid, 1 invalid, 2 unreadable")
    p.add_argument("file")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("demo", help="run the hub on a simulated residence with a pretend alarm central")
    p.add_argument("--config", "-c", default="config/examples/demo.toml")
    p.add_argument("--keep-running", action="store_true", help="leave the hub running after the scripted part")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "scan",
        help="list the BLE devices heard, with their BTHome and key status (for installers)",
        description="Scan with the config's [ble] backend for N seconds and list the devices heard: "
        "address, name, RSSI, BTHome or not, encrypted or not, whether the configured bindkey decrypts it, "
        "the configured device, and the latest values. Exit 0; 2 if the config is invalid or unreadable "
        "or the scan cannot start.",
    )
    p.add_argument("--config", "-c", required=True, help="residence config (TOML)")
    p.add_argument("--seconds", "-s", type=float, default=10.0, help="how long to scan (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list of devices) instead of a table")
    p.add_argument("--all", action="store_true", help="show every device heard, not only BTHome and configured ones")
    p.add_argument(
        "--sim-socket",
        default=None,
        metavar="PATH",
        help='with [ble] backend = "sim": the sim control socket to open (default: a private one, '
        "announced on stderr; never the hub's [sim] socket)",
    )
    p.set_defaults(func=_scan)

    sub.add_parser("emulate", help="play a serial device (bedmat, dispenser, espa444) on a pty or a real port")
    sub.add_parser("hil", help="hardware-in-the-loop acceptance runs on a virtual or physical rig "
                   "(carehub hil run --help)")

    sub.add_parser("sim", help="drive a running hub's simulated devices (buttons, BLE adverts and radio, GATT) "
                   "and serial emulators by device name (carehub sim --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``carehub`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulate"]:  # its own argument parser
        from drivers.serial.emulator import main as emulator_main

        return emulator_main(argv[1:])
    if argv[:1] == ["sim"]:  # its own argument parser
        from hub.simcli import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["hil"]:  # its own argument parser; the test rig is never imported otherwise
        from hil.cli import main as hil_main

        return hil_main(argv[1:], prog="carehub hil")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
