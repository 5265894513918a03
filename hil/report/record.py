"""The JSON record of a run: everything it found, as OpenHTF writes a record per unit.

The document is the :class:`~hil.results.RunSet` (every pass: rig, hub version,
config hash, every scenario with its seed, every step with its timing and data,
every measurement with its samples and limit, the central's counts) plus, for
whoever reads it without this code, the run's overall ``verdict`` and the
``flaky`` summary of ``--repeat``. Indented, struct fields in their declared
order and dict keys sorted, so two records of the same run are byte-equal and
diff cleanly. :func:`read` gives the RunSet back.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import structlog
from msgspec import Struct, field

from hil.report import verdict
from hil.results import Outcome, RunRecord, RunSet

log = structlog.get_logger("hil.report.record")

#: The record's format; bump on a change a reader must know about.
FORMAT = "carehub-hil-record/1"


class Document(Struct, kw_only=True):
    """The record as written: a RunSet with the figures a reader wants without recomputing them."""

    format: str = FORMAT
    command: str = ""
    #: Over every pass (:func:`hil.report.verdict`): fail, else error, else marginal, else pass; skip when nothing ran.
    verdict: Outcome = Outcome.SKIP
    #: Scenarios whose outcome differed between passes: name to outcomes, pass by pass.
    flaky: dict[str, list[str]] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)


def encode(runset: RunSet) -> bytes:
    """The record's bytes (UTF-8 JSON, indented, stable order, newline-terminated)."""
    doc = Document(command=runset.command, verdict=verdict(runset), flaky=runset.flaky(), runs=runset.runs)
    raw = msgspec.json.encode(doc, order="deterministic")
    return msgspec.json.format(raw, indent=2) + b"\n"


def decode(data: bytes | str) -> RunSet:
    """A RunSet from a record's bytes; raises ``msgspec.ValidationError`` naming the bad path."""
    doc = msgspec.json.decode(data, type=Document)
    if not doc.format.startswith("carehub-hil-record/"):
        raise msgspec.ValidationError(f"not a carehub HIL record (format {doc.format!r})")
    return RunSet(runs=doc.runs, command=doc.command)


def write(runset: RunSet, path: str | Path) -> Path:
    """Write the JSON record of ``runset`` to ``path`` (parents created); the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = encode(runset)
    out.write_bytes(data)
    log.info("hil_record_written", path=str(out), runs=len(runset.runs), bytes=len(data))
    return out


def read(path: str | Path) -> RunSet:
    """The RunSet a record written by :func:`write` holds."""
    return decode(Path(path).read_bytes())
