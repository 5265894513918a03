"""Where each key of a TOML document stands in its source.

``tomllib`` gives values but no positions; config errors must name the line.
:func:`key_positions` scans the source once and maps every key path it can
see (``("device", 1, "gpio", "pin")``) to its 1-based ``(line, column)``.
It understands table headers, arrays of tables (by element index), dotted
keys and keys of single-line inline tables; values spread over several
lines are skipped. :func:`locate` falls back to the nearest enclosing path.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^(\s*)(\[\[?)\s*(.+?)\s*(\]\]?)\s*(#.*)?$")
_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_KEYVAL = re.compile(rf"^(\s*)({_KEY})\s*=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEY})\s*=")


def _split_key(raw: str) -> tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", raw)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _strip_strings(line: str) -> str:
    """The line with string contents blanked, so brackets inside strings don't count."""
    return re.sub(_QUOTED, lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', line)


def key_positions(source: str) -> dict[Path, tuple[int, int]]:
    """Map every visible key path of a TOML document to its (line, column)."""
    positions: dict[Path, tuple[int, int]] = {}
    arrays: dict[tuple[str, ...], int] = {}
    table: Path = ()
    depth = 0  # open brackets/braces of a value spread over lines
    in_multiline: str | None = None
    for lineno, line in enumerate(source.splitlines(), start=1):
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        if depth == 0:
            header = _HEADER.match(line)
            if header and not _KEYVAL.match(line):
                names = _split_key(header.group(3))
                if header.group(2) == "[[":
                    arrays[names] = arrays.get(names, -1) + 1
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
                rest = line[kv.end():]
                for m in _INLINE_KEY.finditer(_strip_strings(rest)):
                    positions.setdefault(key + _split_key(m.group(1)), (lineno, kv.end() + m.start(1) + 1))
                blanked = _strip_strings(rest)
                for quote in ('"""', "'''"):
                    if blanked.count(quote) == 1:
                        in_multiline = quote
                        # Brackets after the opening quotes are string content, not structure.
                        rest = rest[: blanked.index(quote)]
                line = rest
        clean = _strip_strings(line).split("#", 1)[0]
        depth += clean.count("[") + clean.count("{") - clean.count("]") - clean.count("}")
        depth = max(depth, 0)
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
