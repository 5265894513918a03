"""A TOML file being read: its data, where each key stands, and every problem found in it.

The residence config (:mod:`hub.config.loader`) and the test rig's files
(:mod:`hil.loader`: scenarios, rig files) are read the same way:
:meth:`TomlDocument.parse` the text (a syntax error becomes an issue at its
line and column), :meth:`~TomlDocument.decode` it into a msgspec struct (the
walker :mod:`hub.structwalk` reports every mistake, not the first), then let
the file's own checks :meth:`~TomlDocument.report` what the struct cannot say.
Each problem is an :class:`Issue`, printed ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from hub.structwalk import PLAIN, Vocabulary, check_value
from hub.tomlerrors import syntax_error
from hub.tomlpos import Path, format_path, key_positions, locate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Issue", "TomlDocument"]

T = TypeVar("T")


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a file. ``line`` 0: the file as a whole (it could not be read)."""

    file: str
    line: int
    col: int
    key: str
    message: str

    def __str__(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.key}: {self.message}"


@dataclass
class TomlDocument:
    """One TOML text with its data (None after a syntax error), key positions and the issues so far."""

    filename: str
    text: str
    data: dict[str, Any] | None = None
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, filename: str) -> TomlDocument:
        """Parse ``text``; a syntax error leaves ``data`` None and one issue at its line and column."""
        doc = cls(filename, text)
        try:
            doc.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line, col, message = syntax_error(exc, text)
            doc.issues.append(Issue(filename, line, col, "toml", message))
            return doc
        doc.positions = key_positions(text)
        return doc

    def report(self, path: Path, message: str) -> None:
        """Record a problem at the key ``path`` (or its nearest enclosing key that is written out)."""
        line, col = locate(self.positions, path)
        self.issues.append(Issue(self.filename, line, col, format_path(path), message))

    def line_of(self, path: Path) -> int:
        """The line of ``path`` (or of its nearest enclosing key)."""
        return locate(self.positions, path)[0]

    def sorted_issues(self) -> list[Issue]:
        """The issues by line, column and key, each once."""
        return sorted(set(self.issues), key=lambda i: (i.line, i.col, i.key, i.message))

    def decode(self, struct_type: type[T], words: Vocabulary = PLAIN) -> T | None:
        """The data as ``struct_type``, or None with every mistake reported (walked, then converted)."""
        if self.data is None:
            return None
        before = len(self.issues)
        check_value(self.data, struct_type, (), self.report, words)
        if len(self.issues) > before:
            return None
        try:
            return msgspec.convert(self.data, struct_type)
        except msgspec.ValidationError as exc:  # the walker missed it: msgspec's own words, at its path
            message, _, where = str(exc).partition(" - at ")
            self.report(_msgspec_path(where.strip("`")), message[:1].lower() + message[1:])
            return None


def _msgspec_path(where: str) -> Path:
    """``$.step[3].device`` → ``("step", 3, "device")``."""
    out: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", where.removeprefix("$")):
        out.append(int(index) if index else name)
    return tuple(out)
