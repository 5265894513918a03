"""The ``carehub`` command line.

``carehub run --config FILE``            run the daemon
``carehub config show [--config FILE]``  the config as the hub reads it, secrets masked (--json)
``carehub provision [--non-interactive ...]``  a new hub's config and credentials, then check-config
``carehub check-config FILE [--json]``   0 valid, 1 invalid, 2 unreadable
``carehub sim OP ...``                   drive a running hub's simulated devices and serial emulators
``carehub demo``                         a simulated residence and the reference alarm central
``carehub scan --config FILE --seconds N``  list the BLE devices heard (for installers)
``carehub emulate PROTOCOL --link PATH --control SOCK``  play a serial device on a pty
``carehub emulate modem --link PATH --control SOCK``     play a GSM modem (AT commands, SMS) on a pty
``carehub hil run [SCENARIO...]``        hardware-in-the-loop acceptance runs (``python -m hil run``)
``carehub central --broker HOST:PORT ...``  the reference alarm central (``carehub central --help``)
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
    from hub.checkconfig import run_check_config

    return run_check_config(args.file, args.json)


def _config_show(args: argparse.Namespace) -> int:
    from hub.configshow import run_config_show

    return run_config_show(args.config, args.json)


def _configpush_tool(what: str, args: argparse.Namespace) -> int:
    from hub.configpush import tool

    if what == "keygen":
        return tool.keygen(args.out)
    return tool.sign_file(args.key, args.hub, args.version, args.file, by=args.by, reference=args.reference)


def _provision(args: argparse.Namespace) -> int:
    from hub.provision import run_provision

    return run_provision(args)


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

    p = sub.add_parser(
        "check-config",
        help="validate a config file; exit 0 valid, 1 invalid, 2 unreadable",
        description="Check a config as the hub would read it: every error at once, sorted by line, each "
        "FILE:LINE:COL: key.path: message (on stderr); then warnings, which do not make it invalid (a serial "
        "port not plugged in yet). Exit codes: 0 valid (warnings or not), 1 invalid, 2 unreadable.",
    )
    p.add_argument("file", help="the config (TOML), e.g. /etc/carehub/hub.toml")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document {file, valid, errors: [{line, col, key, message}], warnings} "
                   "on stdout instead; same exit codes")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("config", help="show the config as the hub reads it; the central's push key and signature "
                       "(carehub config show|keygen|sign --help)")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    p = config_sub.add_parser(
        "show",
        help="the resolved config, secrets masked",
        description="Print the config as the hub reads it: defaults filled in, driver tables included, relative "
        "paths made absolute; secrets masked (a bindkey as **** and its last 4 hex digits; a password file by its "
        "path, never read). TOML, or one JSON document with --json. Exit codes: 0 shown, 1 invalid config, "
        "2 unreadable.",
    )
    p.add_argument("--config", "-c", default="/etc/carehub/hub.toml", help="the config (default /etc/carehub/hub.toml)")
    p.add_argument("--json", action="store_true", help="one JSON document (unset keys as null) instead of TOML")
    p.set_defaults(func=_config_show)
    p = config_sub.add_parser("keygen", help="the central's push key pair (Ed25519) for cmd/config",
                              description="Write central-push.key (0600; the central keeps it) and central-push.pub "
                              "(each hub's [push] key) in --out. Exit 0 written, 2 a file exists.")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write (default: here)")
    p.set_defaults(func=lambda a: _configpush_tool("keygen", a))
    p = config_sub.add_parser("sign", help="the signed cmd/config payload for a config file (the central's side)",
                              description="Print the cmd/config JSON payload for FILE as --version for --hub, "
                              "signed with the central's push key (docs/config-push.md). Exit 0, 2 unreadable.")
    p.add_argument("file", help="the whole config to push (TOML)")
    p.add_argument("--key", required=True, metavar="FILE", help="the central's push key (central-push.key)")
    p.add_argument("--hub", required=True, help="the hub id it is for")
    p.add_argument("--version", required=True, type=int, help="above every version the hub applied")
    p.add_argument("--by", default="central", help="who pushes it (in config.applied)")
    p.add_argument("--reference", action="store_true",
                   help="leave the text out: publish FILE retained on {prefix}/{hub}/config/<version> first")
    p.set_defaults(func=lambda a: _configpush_tool("sign", a))

    p = sub.add_parser(
        "provision",
        help="a new hub: its id, config and credentials (key + CSR, or a password file), then check-config",
        description="Write hub.toml from a template and the answers, and the hub's credentials: an EC P-256 key "
        "and a certificate request (CN = the hub id) with --auth cert, a random password file with --auth "
        "password; secrets mode 0600, owned by the service user carehub when it exists. Asks for what the flags "
        "leave out (with defaults), or, with --non-interactive, needs --resident and --broker. Never overwrites a "
        "file without --force. Then checks the result as check-config does and prints the next steps. Exit codes: "
        "0 written and valid; 3 written, valid except the signed certificate or the central's CA still to "
        "install; 1 written but invalid; 2 nothing written (a refused answer, an existing file).",
    )
    p.add_argument("--hub-id", help="the hub id (default: hub- and 8 random characters)")
    p.add_argument("--resident", help="pseudonymous resident id from the care record system (never a name)")
    p.add_argument("--broker", action="append", metavar="HOST[:PORT]",
                   help="the central's broker; again for failover (port default: 8883 cert, 8884 password)")
    p.add_argument("--auth", choices=["cert", "password"], help="log in with a client certificate or a password "
                   "(default cert)")
    p.add_argument("--ca", metavar="FILE", help="the central's CA certificate (PEM), copied beside the config")
    p.add_argument("--template", choices=["residence", "ble", "minimal"],
                   help="config/examples/<template>.toml to start from (default residence)")
    p.add_argument("--out", metavar="DIR", help="where to write (default /etc/carehub)")
    p.add_argument("--state-dir", default="/var/lib/carehub", help="[store] dir (default /var/lib/carehub)")
    p.add_argument("--non-interactive", action="store_true", help="ask nothing: flags and defaults only")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    p.add_argument("--json", action="store_true", help="print one JSON document (files, check result, next steps)")
    p.set_defaults(func=_provision)

    p = sub.add_parser("demo", help="run the hub on a simulated residence with the reference alarm central and its web console")
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

    sub.add_parser("emulate", help="play a serial device (bedmat, dispenser, espa444) or a GSM modem (modem) on a "
                   "pty or a real port")
    sub.add_parser("hil", help="hardware-in-the-loop acceptance runs on a virtual or physical rig "
                   "(carehub hil run --help)")

    sub.add_parser("central", help="the reference alarm central: de-duplicates, fills gaps, supervises hubs, "
                   "acknowledges alarms; a web console (carehub central --help)")

    sub.add_parser("sim", help="drive a running hub's simulated devices (buttons, BLE adverts and radio, GATT) "
                   "and serial emulators by device name (carehub sim --help)")

    from hub.opscli import add_parsers as add_ops_parsers  # status, tail, test-alarm, ack, ble-forget, replay

    add_ops_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``carehub`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["emulate", "modem"]:  # its own argument parser
        from drivers.modem.emulator import main as modem_main

        return modem_main(argv[2:])
    if argv[:1] == ["emulate"]:  # its own argument parser
        from drivers.serial.emulator import main as emulator_main

        return emulator_main(argv[1:])
    if argv[:1] == ["sim"]:  # its own argument parser
        from hub.simcli import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["hil"]:  # its own argument parser; the test rig is never imported otherwise
        from hil.cli import main as hil_main

        return hil_main(argv[1:], prog="carehub hil")
    if argv[:1] == ["central"]:  # its own argument parser; the hub never imports the central otherwise
        from central.cli import main as central_main

        return central_main(argv[1:], prog="carehub central")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
