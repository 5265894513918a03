"""Reading scenario files (and, through :func:`load_toml_struct`, rig files) with every mistake at its line.

:func:`load_scenario` reads one ``hil/scenarios/<name>.toml`` into a
:class:`hil.model.Scenario`; :func:`load_scenarios` reads what a command line
names (bare names, files, directories). A bad file raises
:class:`ScenarioError`, one line per problem, exactly as a bad residence
config does (the same machinery: :mod:`hub.tomldoc`, :mod:`hub.structwalk`)::

    hil/scenarios/press_ack.toml:14:1: step[2].devcie: unknown key (did you mean 'device'?); expected one of: ...
    hil/scenarios/press_ack.toml:21:1: step[4].do: expected one of 'press', 'hold', ..., found a string 'prss'
    hil/scenarios/press_ack.toml:30:1: measure[0].from: no step sets the mark 'pres' (marks set: 'press', 'alarm')

After the structs, the scenario is checked as a whole (:mod:`hil.scenario_checks`):
marks that measurements and acks name, joins, fixtures, waits, limits. All
problems of a file come in one pass, sorted by line.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from hub.structwalk import PLAIN, Vocabulary
from hub.tomldoc import Issue, TomlDocument
from hil.model import Scenario
from hil.params import ParamError, substitute
from hil.scenario_checks import check_scenario

__all__ = ["SCENARIO_DIR", "LoadError", "ScenarioError", "load_scenario", "load_scenarios", "load_toml_struct",
           "read_document"]

#: Where bare scenario names are looked up (``press_ack`` → ``hil/scenarios/press_ack.toml``).
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

T = TypeVar("T")
PathLike = str | os.PathLike[str]


class LoadError(Exception):
    """One or more files the rig cannot use; ``issues`` lists every problem, file by file, by line."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, ``FILE:LINE:COL: key.path: what was expected, what was found``,
        ready for a terminal (``print(*err.lines(), sep="\\n", file=sys.stderr)``)."""
        return [str(i) for i in self.issues]


class ScenarioError(LoadError):
    """A scenario file (or several) is wrong; nothing was run."""


def read_document(path: PathLike) -> TomlDocument:
    """Read and parse a TOML file; a file that cannot be read or parsed leaves ``data`` None and says why."""
    filename = os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        doc = TomlDocument(filename, "")
        doc.issues.append(Issue(filename, 0, 0, "", f"cannot read: {exc}"))
        return doc
    return TomlDocument.parse(text, filename)


def load_toml_struct(
    path: PathLike,
    struct_type: type[T],
    *,
    check: Callable[[TomlDocument, T | None], None] | None = None,
    error: type[LoadError] = LoadError,
    words: Vocabulary = PLAIN,
    prepare: Callable[[TomlDocument], None] | None = None,
) -> T:
    """Read ``path`` as TOML and decode it into ``struct_type`` (a msgspec struct), or raise ``error``
    with every problem as ``FILE:LINE:COL: key.path: message``.

    The generic part of every rig file: the physical rig's rig file is loaded with
    ``load_toml_struct(path, RigFile, check=check_rig_file, error=RigFileError)``.

    * a file that cannot be read: one issue ``FILE: cannot read: ...``;
    * a TOML syntax error: one issue at its line and column, key ``toml``;
    * every key checked against the struct, all at once: unknown keys (with a guess and the known
      ones), wrong types, values out of bounds, a ``Literal`` or tag outside its choices;
    * then ``check(doc, obj)``, for what the struct cannot say alone, whenever the TOML parsed (so a
      file's problems all come in one pass): ``obj`` is the decoded struct, or None when the walker
      found mistakes (a check that needs the struct returns at once then; one that reads ``doc.data``,
      the parsed TOML, skipping what has the wrong type, runs anyway). It calls
      ``doc.report(("step", 3, "device"), "what was expected, what was found")`` for each problem,
      and may use ``doc.line_of(path)`` to point at another key in a message.

    ``words`` gives the file's own words for its patterns (see :class:`hub.structwalk.Vocabulary`);
    a pattern's ``msgspec.Meta(extra={"help": ...})`` is used without it. ``prepare(doc)`` may rewrite
    ``doc.data`` after parsing and before decoding (a scenario's ``"$name"`` parameters), reporting
    what it cannot do; positions stay those of the text.
    """
    doc = read_document(path)
    if doc.data is not None and prepare is not None:
        prepare(doc)
    obj = doc.decode(struct_type, words)
    if doc.data is not None and check is not None:
        check(doc, obj)
    if doc.issues or obj is None:
        raise error(doc.sorted_issues())
    return obj


def _parameters(profile: str | None) -> Callable[[TomlDocument], None]:
    """The ``prepare`` step of a scenario: ``"$name"`` replaced by its ``[params]`` value for ``profile``."""

    def prepare(doc: TomlDocument) -> None:
        assert doc.data is not None
        try:
            data, used = substitute(doc.data, profile)
        except ParamError as exc:  # said where; the structs are not decoded (each "$name" would be a type error)
            for where, message in exc.problems:
                doc.report(where, message)
            doc.data = None
            return
        doc.data = {**data, "params": used}

    return prepare


def load_scenario(path: PathLike, profile: str | None = None) -> Scenario:
    """One scenario file, checked; ``name`` is the file's stem, ``path`` the path as given.

    ``profile`` (``quick``) picks the smaller sizes of ``[params.quick]`` (:mod:`hil.params`).
    Raises :class:`ScenarioError` with every problem of the file.
    """
    scenario = load_toml_struct(
        path, Scenario, check=check_scenario, error=ScenarioError, prepare=_parameters(profile)
    )
    scenario.profile = profile or "full"
    scenario.name = Path(path).stem
    scenario.path = os.fspath(path)
    return scenario


def load_scenarios(
    paths_or_names: Iterable[PathLike], scenario_dir: PathLike = SCENARIO_DIR, profile: str | None = None
) -> list[Scenario]:
    """The scenarios a command line names, in its order, each once.

    A bare name (``press_ack``: no ``/``, no ``.toml``) is ``scenario_dir/press_ack.toml``; a directory is
    every ``*.toml`` in it, sorted; anything else is a file. Raises :class:`ScenarioError` with the
    problems of every file together (a name that matches no file is one of them).
    """
    files, issues = _resolve(paths_or_names, Path(scenario_dir))
    scenarios: list[Scenario] = []
    for f in files:
        try:
            scenarios.append(load_scenario(f, profile))
        except ScenarioError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ScenarioError(issues)
    return scenarios


def _resolve(args: Iterable[PathLike], scenario_dir: Path) -> tuple[list[Path], list[Issue]]:
    files: list[Path] = []
    issues: list[Issue] = []
    for arg in args:
        text = os.fspath(arg)
        p = Path(text)
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                issues.append(Issue(text, 0, 0, "", "no scenario files (*.toml) in this directory"))
            files.extend(found)
        elif "/" not in text and os.sep not in text and not text.endswith(".toml"):
            named = scenario_dir / f"{text}.toml"
            if named.is_file():
                files.append(named)
            else:
                issues.append(Issue(text, 0, 0, "", _no_such_name(text, scenario_dir)))
        else:
            files.append(p)
    seen: set[Path] = set()
    unique = []
    for f in files:
        if (key := f.resolve()) not in seen:
            seen.add(key)
            unique.append(f)
    return unique, issues


def _no_such_name(name: str, scenario_dir: Path) -> str:
    known = sorted(p.stem for p in scenario_dir.glob("*.toml")) if scenario_dir.is_dir() else []
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = f"; known: {', '.join(known)}" if known else ""
    return f"no scenario called {name!r} in {scenario_dir}{hint}{listing}"
