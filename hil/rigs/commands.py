"""The one way the physical rig runs a program: :class:`CommandRunner`.

Every ``systemctl``, ``nft``, ``tc``, ``hcitool``, ``journalctl`` the rig runs goes
through a runner, so the rig's logic is tested against a fake that records the
commands and answers them (``tests/test_hil_physical.py``). :class:`LocalRunner`
runs them on this machine; :class:`SshRunner` on the hub's machine when the rig
file's ``[hub] ssh`` says the hub is another machine (``ssh -o BatchMode=yes``:
a key, no password prompt).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Protocol

import structlog
from msgspec import Struct

from hil.fixtures import RigError

log = structlog.get_logger("hil.rigs.commands")


class Result(Struct, frozen=True):
    """What a command did: its argv, exit code and output."""

    argv: tuple[str, ...]
    code: int
    out: str = ""
    err: str = ""


class CommandError(RigError):
    """A command the rig needed failed (non-zero exit, not found, timed out)."""


class CommandRunner(Protocol):
    """Runs one program to its end."""

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 30.0, check: bool = True  # noqa: A002
    ) -> Result:
        """Run ``argv`` (``input`` on its stdin); with ``check``, raise :class:`CommandError` unless it exits 0."""
        ...


def _checked(result: Result, check: bool) -> Result:
    if check and result.code != 0:
        raise CommandError(f"{shlex.join(result.argv)} exited {result.code}: {result.err.strip() or result.out.strip()}")
    return result


class LocalRunner:
    """Runs programs on this machine with :func:`subprocess.run`."""

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 30.0, check: bool = True  # noqa: A002
    ) -> Result:
        args = tuple(str(a) for a in argv)
        try:
            proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise CommandError(f"{args[0]}: not found (is it installed? see hil/README.md)") from None
        except subprocess.TimeoutExpired:
            raise CommandError(f"{shlex.join(args)}: no answer within {timeout} s") from None
        log.debug("rig_command", argv=shlex.join(args), code=proc.returncode)
        return _checked(Result(args, proc.returncode, proc.stdout, proc.stderr), check)


class SshRunner:
    """Runs programs on another machine: ``ssh -o BatchMode=yes DEST -- 'quoted argv'`` through ``via``."""

    def __init__(self, dest: str, via: CommandRunner | None = None) -> None:
        self.dest = dest
        self.via = via or LocalRunner()

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 30.0, check: bool = True  # noqa: A002
    ) -> Result:
        args = tuple(str(a) for a in argv)
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(timeout))}", self.dest, "--",
               shlex.join(args)]
        result = self.via.run(ssh, input=input, timeout=timeout, check=False)
        return _checked(Result(args, result.code, result.out, result.err), check)
