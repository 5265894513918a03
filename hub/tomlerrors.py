"""TOML syntax errors in an installer's words, at the line and column where they are.

tomllib reports some errors without a position ("at end of document") and in
a parser's wording; :func:`syntax_error` gives every one a line and a column
and says what to do about it.
"""

from __future__ import annotations

import re

__all__ = ["syntax_error"]


def syntax_error(exc: Exception, text: str) -> tuple[int, int, str]:
    """Line, column and message (``not valid TOML: ...``) of a :class:`tomllib.TOMLDecodeError`."""
    line, col = _toml_error_position(exc, text)
    msg = _toml_message(str(exc).split(" (at ")[0])
    if _at_end(exc, text):
        msg += " (reached the end of the file)"
    return line, col, f"not valid TOML: {msg}"


def _at_end(exc: Exception, text: str) -> bool:
    pos = getattr(exc, "pos", None)
    return "at end of document" in str(exc) or (isinstance(pos, int) and pos >= len(text))


def _toml_error_position(exc: Exception, text: str) -> tuple[int, int]:
    if _at_end(exc, text):
        # tomllib says "at end of document" (no line): point at the end of the last line with content.
        body = text.rstrip()
        line = body.count("\n") + 1
        return line, len(body) - (body.rfind("\n") + 1) + 1
    lineno = getattr(exc, "lineno", None)
    colno = getattr(exc, "colno", None)
    if lineno:
        return int(lineno), int(colno or 1)
    m = re.search(r"at line (\d+), column (\d+)", str(exc))
    return (int(m.group(1)), int(m.group(2))) if m else (1, 1)


#: tomllib's wording → what an installer should do about it.
_TOML_HINTS: list[tuple[str, str]] = [
    (r"^(Illegal|Found invalid) character '\\n'$", "unclosed string: the closing quote is missing on this line"),
    (r"^Unterminated string$", "unclosed string: the closing quote is missing"),
    (r"^Cannot overwrite a value$", "duplicate key: this key (or a table of that name) is already set above"),
    (r"^Cannot declare \((.*)\) twice$", "duplicate table: this table is already declared above"),
    (r"^Duplicate inline table key '(.*)'$", r"duplicate key '\1' in this inline table"),
    (r"^Expected '=' after a key in a key/value pair$", "expected 'key = value' on this line, found no '='"),
]


def _toml_message(msg: str) -> str:
    for pattern, hint in _TOML_HINTS:
        if re.match(pattern, msg):
            return re.sub(pattern, hint, msg)
    return msg
