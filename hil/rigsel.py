"""From the command line's ``--rig`` to rigs: ``virtual`` or a rig file; and the ``--dry-run`` plan.

The rig modules are imported only here and only when asked for, so loading
scenarios or printing help never starts anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.fixtures import Rig, missing
from hil.model import Scenario


class BadInput(Exception):
    """A rig file (or a ``--rig`` value) the runner cannot use; ``lines`` to print, one issue each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.issue_lines = lines

    def lines(self) -> list[str]:
        """The issues, ``FILE:LINE:COL: ...`` where the loader knows the place."""
        return self.issue_lines


@dataclass
class RigChoice:
    """What ``--rig`` named: how to make a rig, and facts for the plan."""

    label: str
    make: Callable[[], Rig]
    #: False for a physical rig: one Pi, one scenario at a time.
    parallel: bool
    #: The parsed rig file (physical), for ``check_rig``.
    rigfile: Any = None
    problems: list[str] = field(default_factory=list)


def _issues(exc: Exception, path: str) -> list[str]:
    lines = getattr(exc, "lines", None)
    if callable(lines):
        return [str(x) for x in lines()]
    return [f"{path}: {type(exc).__name__}: {exc}"]


def choose(rig: str) -> RigChoice:
    """``virtual`` or the path of a rig file (loaded and checked here: :class:`BadInput` when it is wrong)."""
    if rig == "virtual":
        from hil.rigs.virtual import VirtualRig

        return RigChoice(label="virtual", make=VirtualRig, parallel=True)
    path = Path(rig)
    if not path.is_file():
        raise BadInput([f"{rig}: no such rig file (--rig takes 'virtual' or the path of a rig file)"])
    from hil.rigs import physical

    try:
        rigfile = physical.load_rig(path)
    except Exception as exc:  # the loader's FILE:LINE:COL issues, or why it could not read the file
        raise BadInput(_issues(exc, rig)) from exc
    return RigChoice(label=str(path), make=lambda: physical.PhysicalRig(rigfile), parallel=False, rigfile=rigfile)


def fixtures_of(choice: RigChoice) -> frozenset[str]:
    """The fixtures the chosen rig declares, without setting anything up."""
    declared = getattr(choice.rigfile, "fixtures", None) if choice.rigfile is not None else None
    if declared is None:
        declared = choice.make().fixtures  # a rig's constructor only records its settings
    return frozenset(declared)


@dataclass
class PlanRow:
    """One scenario in the dry run: ``run`` or ``skip`` and why."""

    name: str
    action: str
    reason: str = ""


def plan(choice: RigChoice, scenarios: list[Scenario]) -> tuple[list[str], list[PlanRow]]:
    """The rig file's problems against these scenarios (:func:`hil.rigs.physical.check_rig`), and per
    scenario whether it would run or be skipped for a missing fixture."""
    problems: list[str] = []
    if choice.rigfile is not None:
        from hil.rigs import physical

        problems = [str(p) for p in physical.check_rig(choice.rigfile, scenarios)]
    have = fixtures_of(choice)
    rows = []
    for sc in scenarios:
        lacking = missing(sc, have)
        rows.append(PlanRow(sc.name, "skip", f"needs fixture {', '.join(lacking)}") if lacking
                    else PlanRow(sc.name, "run"))
    return problems, rows
