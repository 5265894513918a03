"""From the command line's ``--rig`` to rigs: ``virtual`` or a rig file; the central each rig gets;
and the ``--dry-run`` plan.

The rig modules (:mod:`hil.rigs.virtual`, :mod:`hil.rigs.physical`) and the
central recorder (:mod:`hil.central`) are imported only here and only when
asked for, so loading scenarios or printing help starts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.fixtures import Central, Rig, RigError, missing
from hil.model import Scenario


class BadInput(Exception):
    """A rig file (or a ``--rig`` value) the runner cannot use; :meth:`lines` to print, one issue each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.issue_lines = lines

    def lines(self) -> list[str]:
        """The issues, ``FILE:LINE:COL: ...`` where the loader knows the place."""
        return self.issue_lines


@dataclass
class RigChoice:
    """What ``--rig`` named: how to make a rig."""

    label: str
    make: Callable[[], Rig]
    #: False for a physical rig: one bench, one scenario at a time.
    parallel: bool
    #: The loaded rig file (physical), for the dry run.
    rigfile: Any = None


def virtual_central(host: str, port: int, hub_id: str, prefix: str) -> Central:
    """The virtual rig's central: a recorder on its own broker; the hub starts from an empty state
    directory, so its first event carries seq 1 (a gap at the start is found too)."""
    from hil.central import CentralRecorder

    return CentralRecorder(host=host, port=port, hub=hub_id, prefix=prefix, first_seq=1)


def physical_central(rigfile: Any) -> Callable[[Any], Central]:
    """The physical rig's central factory: a recorder on the rig file's ``[broker]``, for the hub whose
    id the bench's residence config names (the rig empties the hub's state directory, so seq starts at 1)."""

    def make(broker: Any) -> Central:
        from hil.central import CentralRecorder
        from hil.harness.tlsfiles import TlsFiles
        from hil.rigs.check import read_hub_config

        config = read_hub_config(rigfile) or {}
        hub_id = config.get("hub", {}).get("id")
        if not hub_id:
            raise RigError(f"{rigfile.hub.config}: cannot read the hub's id ([hub] id) for the central recorder")
        tls = None
        if broker.tls:
            if not (broker.ca and broker.cert and broker.key):
                raise RigError(f"{rigfile.path}: [broker] tls needs ca, cert and key for the central recorder")
            # the recorder presents the client identity only; the server's files are not its to read
            tls = TlsFiles(ca=Path(broker.ca), server_cert=Path(), server_key=Path(),
                           client_cert=Path(broker.cert), client_key=Path(broker.key))
        password = Path(broker.password_file).read_text().strip() if broker.password_file else None
        return CentralRecorder(host=broker.host, port=broker.port, hub=hub_id, prefix=broker.prefix, tls=tls,
                               username=broker.username, password=password, first_seq=1)

    return make


def _issues(exc: Exception, path: str) -> list[str]:
    lines = getattr(exc, "lines", None)
    if callable(lines):
        return [str(x) for x in lines()]
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines() if text.startswith(path) else [f"{path}: {text}"]


def choose(rig: str) -> RigChoice:
    """``virtual`` or the path of a rig file (loaded here: :class:`BadInput` when it is wrong)."""
    if rig == "virtual":
        from hil.rigs.virtual import VirtualRig

        return RigChoice(label="virtual", make=lambda: VirtualRig(virtual_central), parallel=True)
    path = Path(rig)
    if not path.is_file():
        raise BadInput([f"{rig}: no such rig file (--rig takes 'virtual' or the path of a rig file)"])
    from hil.rigs import physical
    from hil.rigs.rigfile import load_rig

    try:
        rigfile = load_rig(path)
    except Exception as exc:  # the loader's FILE:LINE:COL issues, or why it could not read the file
        raise BadInput(_issues(exc, rig)) from exc
    central = physical_central(rigfile)
    return RigChoice(label=f"{rigfile.rig.name} ({path})", parallel=False, rigfile=rigfile,
                     make=lambda: physical.PhysicalRig(rigfile, central_factory=central))


def dry_run(choice: RigChoice, scenarios: list[Scenario]) -> tuple[str, bool]:
    """What would run and what would be skipped, as text, and whether the rig is fit (no problem).

    A rig file is checked by :func:`hil.rigs.check.check_rig` (its wiring against each scenario's
    steps, and against the hub's config when it is readable here); another rig is asked only for its
    fixtures (a virtual rig also says why it lacks one)."""
    if choice.rigfile is not None:
        from hil.rigs.check import check_rig, read_hub_config

        report = check_rig(choice.rigfile, scenarios, hub_config=read_hub_config(choice.rigfile))
        return report.render(), bool(report.ok)
    rig = choice.make()  # a rig's constructor only looks around; setup starts things
    why: dict[str, str] = getattr(rig, "missing", None) or {}
    lines = [f"rig {rig.name} ({rig.kind}): {', '.join(sorted(rig.fixtures)) or 'no fixtures'}"]
    width = max([len(sc.name) for sc in scenarios] + [8])
    runs = 0
    for sc in scenarios:
        lacking = missing(sc, rig.fixtures)
        if not lacking:
            runs += 1
            lines.append(f"{sc.name:<{width}}  runs")
            continue
        lines.append(f"{sc.name:<{width}}  skip      needs fixture {', '.join(lacking)}")
        lines += [f"{'':<{width}}            {f}: {why[f]}" for f in lacking if f in why]
    lines.append(f"{runs} run, {len(scenarios) - runs} skipped")
    return "\n".join(lines), True
