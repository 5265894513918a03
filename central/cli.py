"""``carehub central``: run one instance of the reference alarm central.

Arguments are checked and the config file read before anything starts; then the store is
opened and migrated, the engine connects, and the faces asked for run beside it (``--web``,
``--console``, ``--json``) until SIGTERM or Ctrl-C, which stop it cleanly.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_HELP = """exit codes:
  0  stopped cleanly (SIGTERM, SIGINT)
  1  failed while running (a part of the central broke; the log says which)
  2  bad arguments or config file (nothing was started; each mistake as FILE:LINE:COL: key: message)
  3  the database could not be opened or migrated
"""

DESCRIPTION = """The reference alarm central: consumes the hubs' MQTT 5 contract, de-duplicates events by id,
tracks each hub's seqs and asks for gaps with cmd/replay (what a hub no longer has is recorded as lost),
supervises hubs from their status, last will and heartbeats, and acknowledges alarms with cmd/ack, by an
operator (--web, --console) or by itself (--auto-ack). Several instances share the work: they join one MQTT 5
shared subscription ($share/central/PREFIX/+/event/+, and PREFIX/+/events: batches of telemetry, each
event taken as if alone) and share one database (--db): each alarm is handled by
one of them, and every instance's console shows what any of them did (through the database's journal). Give
each instance its own --instance (its MQTT client id and persistent session). Logs go to stderr (JSON lines
when stderr is not a terminal)."""

INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PREFIX = re.compile(r"^[^#+/][^#+]*[^#+/]$|^[^#+/]$")


def _hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port or "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, found {text!r}")
    return host.strip("[]"), int(port)


def build_parser(prog: str = "carehub central") -> argparse.ArgumentParser:
    """The argument parser of ``carehub central``."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXIT_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", action="append", type=_hostport, required=True, metavar="HOST:PORT",
                   help="the MQTT broker; again for failover")
    p.add_argument("--tls-ca", metavar="FILE", help="CA certificate(s) (PEM) to verify the broker: TLS on")
    p.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM), with --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="the client certificate's private key (PEM, unencrypted)")
    p.add_argument("--username", help="MQTT username (the central's account, e.g. central.main); needs --password-file")
    p.add_argument("--password-file", metavar="FILE", help="file whose first line is the MQTT password")
    p.add_argument("--db", default="central.db", metavar="URL",
                   help="a SQLite file (default central.db; sqlite:///PATH too) or postgresql://USER@HOST/DB")
    p.add_argument("--config", metavar="FILE", help="central.toml: timings, supervision levels, hubs' levels")
    p.add_argument("--prefix", default="carehub/v1", help="topic prefix (default carehub/v1)")
    p.add_argument("--instance", default=None, metavar="NAME",
                   help="this instance's name, stable across restarts (default: the host name); its MQTT client "
                   "id is central-NAME, under which the broker keeps its session")
    p.add_argument("--auto-ack", action="store_true",
                   help="acknowledge every new alarm episode at once (for the test rig and benchmarks)")
    p.add_argument("--web", type=_hostport, metavar="HOST:PORT", help="serve the operator's web console here")
    p.add_argument("--console", action="store_true", help="show the operator's picture in this terminal")
    p.add_argument("--json", action="store_true", help="print one JSON line per change on stdout (for scripts)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _problems(args: argparse.Namespace) -> list[str]:
    out = []
    for flag in ("tls_ca", "tls_cert", "tls_key", "password_file", "config"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            out.append(f"--{flag.replace('_', '-')}: no such file: {path}")
    if (args.tls_cert is None) != (args.tls_key is None):
        out.append("--tls-cert and --tls-key go together")
    if args.tls_cert and not args.tls_ca:
        out.append("--tls-cert needs --tls-ca")
    if (args.username is None) != (args.password_file is None):
        out.append("--username and --password-file go together")
    if not PREFIX.match(args.prefix):
        out.append(f"--prefix: expected a topic prefix without '#' or '+' that neither starts nor ends with '/', "
                   f"found {args.prefix!r}")
    if not INSTANCE.match(args.instance):
        out.append(f"--instance: expected 1 to 64 letters, digits, '.', '-' and '_', found {args.instance!r}")
    if args.console and args.json:
        out.append("--console and --json both want stdout: choose one")
    return out


def _password(path: str) -> str:
    """The first line of the password file (OSError, UnicodeDecodeError when it cannot be read)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else ""


def main(argv: Sequence[str] | None = None, prog: str = "carehub central") -> int:
    """Run ``carehub central``; the exit code (see :data:`EXIT_HELP`)."""
    args = build_parser(prog).parse_args(argv)
    if args.instance is None:
        args.instance = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64] or "central"
    from central import config as central_config

    problems = _problems(args)
    cfg = None
    if not problems:
        try:
            cfg = central_config.load(args.config)
        except central_config.ConfigError as exc:
            problems += [str(i) for i in exc.issues]
    password = None
    if args.password_file and not problems:
        try:
            password = _password(args.password_file)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"--password-file: cannot read {args.password_file}: {exc}")
    if problems or cfg is None:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        print("carehub central: not started", file=sys.stderr)
        return 2
    from hub import logs

    logs.configure(args.log_level, "auto")
    from central.run import run_central

    return run_central(args, cfg, password=password)
