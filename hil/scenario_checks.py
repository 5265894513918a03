"""What a scenario's structs cannot say alone: the checks across its steps and measurements.

:func:`check_scenario` reports each problem at its key (``doc.report``), so it
prints as ``FILE:LINE:COL: key.path: message`` beside the struct errors:

* a measurement's ``from`` / ``to``, an ``ack``'s ``event``, a ``check_central``'s
  ``alarms_first_after`` naming a mark that no step sets;
* a mark set by two different steps (a step inside a ``repeat`` sets its mark once per pass: that is
  one step, and fine);
* a ``join`` naming no ``background``, two backgrounds of one name;
* a fixture in ``scenario.needs`` that no rig knows (:data:`hil.fixtures.FIXTURES`);
* a ``wait`` with both ``ms`` and ``random_ms``, or ``random_ms = [lo, hi]`` with lo > hi;
* a limit with ``min`` above ``max``; a measurement of intervals without ``from``; two measurements
  of one name;
* ``name`` or ``path`` written in the file (the loader sets them from the file).

It reads the parsed TOML, not the decoded struct, and skips what is not of the
right type: so it runs even when the struct walker found mistakes, and a file's
problems all come in one pass (the walker reports the wrong types).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

import msgspec

from hub.tomldoc import TomlDocument
from hub.tomlpos import Path, format_path
from hil.fixtures import FIXTURES
from hil.model import Measure, Scenario

__all__ = ["check_scenario", "steps_with_paths"]

_NESTING = ("repeat", "background")
_MEASURE_DEFAULTS = {f.encode_name: f.default for f in msgspec.structs.fields(Measure)}


def steps_with_paths(steps: Any, prefix: Path = ("step",)) -> Iterator[tuple[dict[str, Any], Path]]:
    """Every step table of the parsed TOML with its key path (``("step", 2, "steps", 0)``), depth first."""
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        path = prefix + (i,)
        yield step, path
        if step.get("do") in _NESTING:
            yield from steps_with_paths(step.get("steps"), path + ("steps",))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "none"


#: Keys of :class:`~hil.model.Scenario` the loader sets, and from what.
_SET_BY = {"name": "the file's stem", "path": "where the file is", "profile": "the command line's profile"}


def check_scenario(doc: TomlDocument, scenario: Scenario | None = None) -> None:
    """Report every problem across the scenario's parts through ``doc.report``.

    ``scenario`` (the decoded struct, None when the walker found mistakes) is not needed: the
    checks read ``doc.data``; the parameter is there for :func:`hil.loader.load_toml_struct`.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    for key in _SET_BY:
        if key in data:
            doc.report((key,), f"set by the loader ({_SET_BY[key]}); "
                               "remove this key")
    head = data.get("scenario")
    needs = head.get("needs") if isinstance(head, dict) else None
    for i, fixture in enumerate(needs if isinstance(needs, list) else []):
        if isinstance(fixture, str) and fixture not in FIXTURES:
            doc.report(("scenario", "needs", i), f"expected a fixture, one of {_names(FIXTURES)}, "
                                                  f"found {fixture!r}{_guess(fixture, FIXTURES)}")
    steps = data.get("step")
    marks = _check_marks(steps, doc)
    _check_steps(steps, doc, marks)
    _check_measures(data.get("measure"), doc, marks)


def _check_marks(steps: Any, doc: TomlDocument) -> dict[str, Path]:
    """Each mark and the step that sets it; a second step setting a mark is reported."""
    marks: dict[str, Path] = {}
    for step, path in steps_with_paths(steps):
        if (mark := _str(step.get("mark"))) is None:
            continue
        if mark in marks:
            first = marks[mark]
            doc.report(path + ("mark",), f"the mark {mark!r} is already set by {format_path(first)} "
                                         f"(line {doc.line_of(first + ('mark',))}); a mark names one step "
                                         "(inside a repeat it collects one instant per pass)")
        else:
            marks[mark] = path
    return marks


def _guess(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_mark(name: str, marks: dict[str, Path]) -> str:
    return f"no step sets the mark {name!r}{_guess(name, marks)}; marks set: {_names(marks)}"


def _check_steps(steps: Any, doc: TomlDocument, marks: dict[str, Path]) -> None:
    backgrounds: dict[str, Path] = {}
    for step, path in steps_with_paths(steps):
        if step.get("do") == "background" and (name := _str(step.get("name"))) is not None:
            if name in backgrounds:
                doc.report(path + ("name",), f"a background called {name!r} is already at "
                                             f"{format_path(backgrounds[name])}; give each its own name")
            else:
                backgrounds[name] = path
    for step, path in steps_with_paths(steps):
        do = step.get("do")
        for kind, key in (("ack", "event"), ("check_central", "alarms_first_after")):
            if do == kind and (mark := _str(step.get(key))) is not None and mark not in marks:
                doc.report(path + (key,), _unknown_mark(mark, marks))
        if do == "join" and (name := _str(step.get("name"))) is not None and name not in backgrounds:
            doc.report(path + ("name",), f"no background step is called {name!r} "
                                         f"(backgrounds: {_names(backgrounds)})")
        if do == "wait":
            _check_wait(step, path, doc)


def _check_wait(step: dict[str, Any], path: Path, doc: TomlDocument) -> None:
    if "ms" in step and "random_ms" in step:
        doc.report(path + ("random_ms",), "give either ms (a fixed wait) or random_ms (a random one), not both")
    span = step.get("random_ms")
    if isinstance(span, list) and len(span) == 2:
        lo, hi = _num(span[0]), _num(span[1])
        if lo is not None and hi is not None and lo > hi:
            doc.report(path + ("random_ms",), f"expected [lo, hi] with lo <= hi, found [{lo:g}, {hi:g}]")


def _check_measures(measures: Any, doc: TomlDocument, marks: dict[str, Path]) -> None:
    seen: dict[str, int] = {}
    for i, m in enumerate(measures if isinstance(measures, list) else []):
        if not isinstance(m, dict):
            continue
        path: Path = ("measure", i)
        if (name := _str(m.get("name"))) is not None:
            if name in seen:
                doc.report(path + ("name",), f"a measurement called {name!r} is already measure[{seen[name]}]")
            seen.setdefault(name, i)
        stat = m.get("stat", _MEASURE_DEFAULTS["stat"])
        if "from" not in m and stat != "count":
            doc.report(path, f"stat {stat!r} is of intervals and needs 'from' (the mark they start at); "
                             "only stat = 'count' goes without")
        for key in ("from", "to"):
            if (mark := _str(m.get(key))) is not None and mark not in marks:
                doc.report(path + (key,), _unknown_mark(mark, marks))
        limits = m.get("limits")
        for kind, limit in (limits.items() if isinstance(limits, dict) else []):
            if not isinstance(limit, dict):
                continue
            lo, hi = _num(limit.get("min")), _num(limit.get("max"))
            if lo is not None and hi is not None and lo > hi:
                doc.report(path + ("limits", kind, "min"), f"min {lo:g} is above max {hi:g}; no value could pass")
