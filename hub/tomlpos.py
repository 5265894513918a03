"""Where each key of a TOML document stands in its source.

``tomllib`` gives values but no positions; config errors must name the line.
:func:`key_positions` scans the source once and maps every key path it can
see (``("device", 1, "gpio", "pin")``) to its 1-based ``(line, column)``.
It understands table headers, arrays of tables (by element index, nested ones
counted afresh under each parent element), dotted keys, and values: inline
tables and arrays, on one line or spread over several, whose elements are
located by index (``("step", 2, "steps", 0, "ms")``, ``("scenario", "needs", 1)``).
:func:`locate` falls back to the nearest enclosing path.

The source must be valid TOML (parse it with ``tomllib`` first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^(\s*)(\[\[?)\s*(.+?)\s*(\]\]?)\s*(#.*)?$")
_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_KEYVAL = re.compile(rf"^(\s*)({_KEY})\s*=")
_INLINE_KEYVAL = re.compile(rf"({_KEY})\s*=")
_SCALAR_END = re.compile(r"[,\]}#]")


def _split_key(raw: str) -> tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", raw)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


@dataclass
class _Frame:
    """An open inline table or array of a value: its path, the next element's index, whether a key is due."""

    path: Path
    array: bool
    index: int = 0
    want_key: bool = True


@dataclass
class _ValueScanner:
    """Follows one value (an inline table, an array, a string) across lines, recording what it holds."""

    positions: dict[Path, tuple[int, int]]
    stack: list[_Frame] = field(default_factory=list)
    target: Path = ()
    string: str | None = None  # the closing delimiter of an open string

    @property
    def busy(self) -> bool:
        return bool(self.stack) or self.string is not None

    def start(self, path: Path) -> None:
        self.stack, self.target, self.string = [], path, None

    def _element(self, lineno: int, col: int) -> Path:
        """The path of a value starting at ``col``: the next element of an open array, or the key's."""
        top = self.stack[-1] if self.stack else None
        if top is not None and top.array:
            path = top.path + (top.index,)
            top.index += 1
            self.positions.setdefault(path, (lineno, col + 1))
            return path
        return self.target

    def feed(self, line: str, lineno: int, i: int) -> None:
        """Scan ``line`` from index ``i``; the state carries over to the next line."""
        n = len(line)
        while i < n:
            if self.string is not None:
                i = self._in_string(line, i)
                continue
            c = line[i]
            top = self.stack[-1] if self.stack else None
            if c in " \t\r":
                i += 1
            elif c == "#":
                return
            elif top is not None and not top.array and top.want_key and c not in "},":
                m = _INLINE_KEYVAL.match(line, i)
                if m is None:  # not valid TOML: give up on this line
                    return
                self.target = top.path + _split_key(m.group(1))
                self.positions.setdefault(self.target, (lineno, i + 1))
                top.want_key = False
                i = m.end()
            elif c in "[{":
                self.stack.append(_Frame(self._element(lineno, i), array=c == "["))
                i += 1
            elif c in "]}":
                if self.stack:
                    self.stack.pop()
                i += 1
            elif c == ",":
                if top is not None and not top.array:
                    top.want_key = True
                i += 1
            elif c in "\"'":
                self._element(lineno, i)
                delim = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else c
                self.string = delim
                i += len(delim)
            else:  # a number, a boolean, a date: up to the next separator
                self._element(lineno, i)
                m = _SCALAR_END.search(line, i)
                i = m.start() if m else n

    def _in_string(self, line: str, i: int) -> int:
        assert self.string is not None
        delim = self.string
        while i < len(line):
            if delim[0] == '"' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(delim, i):
                i += len(delim)
                while delim in ('"""', "'''") and i < len(line) and line[i] == delim[0]:
                    i += 1  # up to two quotes may end a multi-line string's content
                self.string = None
                return i
            i += 1
        if len(delim) == 1:  # a one-line string cannot go on (valid TOML never gets here)
            self.string = None
        return i


def key_positions(source: str) -> dict[Path, tuple[int, int]]:
    """Map every visible key path of a TOML document to its (line, column)."""
    positions: dict[Path, tuple[int, int]] = {}
    arrays: dict[tuple[str, ...], int] = {}
    table: Path = ()
    value = _ValueScanner(positions)
    for lineno, line in enumerate(source.splitlines(), start=1):
        if value.busy:
            value.feed(line, lineno, 0)
            continue
        header = _HEADER.match(line)
        if header and not _KEYVAL.match(line):
            names = _split_key(header.group(3))
            if header.group(2) == "[[":
                arrays[names] = arrays.get(names, -1) + 1
                for inner in [k for k in arrays if len(k) > len(names) and k[: len(names)] == names]:
                    del arrays[inner]  # a new element: its own arrays of tables count from 0
            full: list[str | int] = []
            for i in range(len(names)):
                full.append(names[i])
                if names[: i + 1] in arrays:
                    full.append(arrays[names[: i + 1]])
            table = tuple(full)
            positions.setdefault(table, (lineno, len(header.group(1)) + 1))
            if header.group(2) == "[[":
                positions.setdefault(table[:-1], (lineno, len(header.group(1)) + 1))
            continue
        kv = _KEYVAL.match(line)
        if kv:
            key = table + _split_key(kv.group(2))
            positions.setdefault(key, (lineno, len(kv.group(1)) + 1))
            value.start(key)
            value.feed(line, lineno, kv.end())
    return positions


def locate(positions: dict[Path, tuple[int, int]], path: Path) -> tuple[int, int]:
    """The position of ``path``, or of its nearest enclosing key, or (1, 1)."""
    for end in range(len(path), 0, -1):
        if path[:end] in positions:
            return positions[path[:end]]
    return (1, 1)


def format_path(path: Path) -> str:
    """``("device", 1, "gpio", "pin")`` → ``device[1].gpio.pin``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"
